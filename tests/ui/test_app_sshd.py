"""The TUI over the REAL sshd target: health check, pick, run a Lab, live states arrive."""

from __future__ import annotations

import uuid

import pytest

from repx_tui.backend.config import load_config
from repx_tui.backend.events import JobsChanged, Phase, PhaseDone, TargetHealth
from repx_tui.ui.app import RepxApp
from tests.helpers import async_wait_until
from tests.labgen import make_lab
from tests.ui.conftest import write_config
from tests.ui.helpers import Recorder, table_cell

pytestmark = [pytest.mark.sshd, pytest.mark.timeout(180)]


async def test_sshd_target_health_pick_and_run(sshd_target, tmp_path, monkeypatch):
    monkeypatch.setenv("REPX_SSH_CONFIG", sshd_target["ssh_config"])
    remote_base = f"/tmp/repx-ui-test/{uuid.uuid4().hex}"  # a fresh store: nothing to reuse
    config_path = write_config(tmp_path / "config.toml", tmp_path / "store", sshd_target, remote_base)
    monkeypatch.setenv("REPX_CONFIG", str(config_path))
    lab_path = make_lab(tmp_path / "lab", "quick", image_layers=1)
    record = Recorder()
    app = RepxApp(load_config(), lab_path=str(lab_path))
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        health = await async_wait_until(
            lambda: (
                {h.target: h for h in record.events(TargetHealth)} if len(record.events(TargetHealth)) == 2 else None
            ),
            timeout=60,
            message="health of both targets",
        )
        assert health["cluster"].ok, health["cluster"]
        table = app.screen.query_one("#targets")
        assert "logged in" in table_cell(table, "cluster", "reachable")
        table.move_cursor(row=table.get_row_index("cluster"))
        await pilot.press("enter")
        assert app.controller.target.name == "cluster" and app.current_mode == "jobs"
        app.controller.run(["simulation"])  # what `repx-tui run` does, on the picked target
        await async_wait_until(
            lambda: {e.phase for e in record.events(PhaseDone)} == set(Phase),
            timeout=90,
            message=f"sync+submit over ssh {record.failures()} {[e for e in record.events() if 'Phase' in type(e).__name__]}",
        )
        await async_wait_until(
            lambda: any(i.state.state.finished for i in app.jobs_model.jobs.values()), timeout=90, message="a job done"
        )
        assert record.events(JobsChanged) and not record.failures()
        await pilot.press("q")
