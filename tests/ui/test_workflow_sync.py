"""Sync only (S) and how a sync ends, on the REAL local target: after a sync only, or when a phase
failed, the Sync view stays with what happened and Enter goes on to the jobs; after a good run
it goes to the jobs by itself."""

from __future__ import annotations

import pytest

from repx_tui.backend.config import load_config
from repx_tui.backend.events import JobsChanged, Phase, PhaseDone, PhaseFailed, SyncSummary
from repx_tui.ui.app import RepxApp
from tests.helpers import async_wait_until
from tests.labgen import make_lab
from tests.ui.conftest import write_config
from tests.ui.helpers import Recorder, screen_text

pytestmark = pytest.mark.timeout(180)


async def test_sync_only_submits_nothing_and_stays_on_the_sync_view(tmp_path, monkeypatch):
    lab = make_lab(tmp_path / "lab", "quick", image_layers=2)
    monkeypatch.setenv("REPX_CONFIG", str(write_config(tmp_path / "config.toml", tmp_path / "store")))
    record = Recorder()
    app = RepxApp(load_config(), lab_path=str(lab), target="local")
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        await async_wait_until(lambda: record.events(JobsChanged), timeout=30, message="the jobs")
        await pilot.press("S")
        assert app.current_mode == "sync"
        summary = (await async_wait_until(lambda: record.events(SyncSummary), timeout=60,
                                          message=f"sync {record.failures()}"))[0]  # fmt: skip
        assert summary.bytes_sent > 0
        await async_wait_until(lambda: "nothing submitted" in screen_text(app), timeout=5, message="the outcome")
        assert Phase.SUBMIT not in {e.phase for e in record.events(PhaseDone)}
        assert app.current_mode == "sync"  # stays: Enter goes on
        text = screen_text(app)
        assert "2 layers" in text and "sent" in text and "overall" in text  # the one totals line
        await pilot.press("enter")
        assert app.current_mode == "jobs"
        assert all(not i.state.state.active and not i.state.state.finished for i in app.jobs_model.jobs.values())
        await pilot.press("q")


async def test_a_failed_sync_stays_on_the_sync_view(tmp_path, monkeypatch):
    lab = make_lab(tmp_path / "lab", "quick")
    (tmp_path / "a-file").write_text("")  # base_path under a file: it can never be created
    monkeypatch.setenv("REPX_CONFIG", str(write_config(tmp_path / "config.toml", tmp_path / "a-file" / "store")))
    record = Recorder()
    app = RepxApp(load_config(), lab_path=str(lab), target="local", runs=["simulation"])
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        await async_wait_until(lambda: record.failures(), timeout=60, message="the run failed")
        assert record.events(PhaseFailed)
        await async_wait_until(lambda: "go on to the jobs" in screen_text(app), timeout=5, message="the outcome")
        assert app.current_mode == "sync" and "cannot be created" in screen_text(app)
        await pilot.press("enter")
        assert app.current_mode == "jobs"
        await pilot.press("q")
