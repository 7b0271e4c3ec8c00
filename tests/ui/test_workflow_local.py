"""`repx-tui` with no arguments, on the REAL local target: pick the target, pick the Lab in the
picker, run it, a stage fails, the user fixes it and retries the failed job from the table, and
everything succeeds; the picker then says the Lab is all there."""

from __future__ import annotations

import json

import pytest

from repx_tui.backend.config import load_config
from repx_tui.backend.events import JobStateKind
from repx_tui.ui.app import RepxApp
from repx_tui.ui.labsources import recent_file
from repx_tui.ui.screens.labpicker import LabPickerScreen
from repx_tui.ui.screens.rundialog import RunScreen
from tests.helpers import async_wait_until
from tests.ui.conftest import write_config
from tests.ui.helpers import Recorder, screen_text, table_cell
from tests.ui.workflow import failing_lab, pick_target_and_lab, run_then_retry, states

pytestmark = pytest.mark.timeout(300)


async def test_from_nothing_to_jobs_then_retry_on_the_local_target(tmp_path, monkeypatch):
    lab, fixed, work = failing_lab(tmp_path)
    monkeypatch.chdir(work)
    monkeypatch.setenv("REPX_CONFIG", str(write_config(tmp_path / "config.toml", tmp_path / "store")))
    record = Recorder()
    app = RepxApp(load_config())
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        await pick_target_and_lab(app, pilot, record, "local")
        await run_then_retry(app, pilot, record, fixed)

        # the Lab is remembered, and the picker (L) now finds all of it on the target
        recent = json.loads(recent_file().read_text())["labs"]
        assert recent[0]["path"] == str(work / "result") and recent[0]["lab_id"] == app.controller.lab.lab_id
        await pilot.press("L")
        picker = await async_wait_until(lambda: isinstance(app.screen, LabPickerScreen) and app.screen, timeout=5)
        labs = picker.query_one("#labs")
        await async_wait_until(lambda: "all there" in table_cell(labs, str(work / "result"), "there"), timeout=30,
                               message="the Lab is all on the target now")  # fmt: skip
        await pilot.press("escape", "q")


async def test_with_no_config_and_no_lab_the_picker_offers_the_demo(tmp_path, monkeypatch):
    """Nothing at all (no config.toml, no ./result, nothing recent): target `local`, the demo
    Lab offered in the picker, written when picked, run from the dialog, its jobs succeed."""
    monkeypatch.chdir(tmp_path)
    record = Recorder()
    app = RepxApp(load_config())  # the embedded default: `local`, this machine
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        await async_wait_until(lambda: "local" in app.targets_model.health, timeout=30, message="health")
        await pilot.press("enter")
        picker = await async_wait_until(lambda: isinstance(app.screen, LabPickerScreen) and app.screen, timeout=5)
        (demo,) = picker.rows
        assert picker.rows[demo].candidate.origin == "demo" and "demo Lab" in screen_text(app)
        await pilot.press("enter")
        dialog = await async_wait_until(lambda: isinstance(app.screen, RunScreen) and app.screen, timeout=120,
                                        message=f"the demo written and read {record.failures()}")  # fmt: skip
        assert set(dialog.query_one("#run-runs").selected) == set(app.controller.lab.runs)
        await pilot.press("enter")
        await async_wait_until(lambda: dialog.plan is not None, timeout=60, message=f"plan {record.failures()}")
        await pilot.press("enter")
        await async_wait_until(
            lambda: app.jobs_model.jobs and all(s == JobStateKind.SUCCEEDED for s in states(app).values()),
            timeout=180, message=f"the demo's jobs {states(app)} {record.failures()}",
        )  # fmt: skip
        assert app.current_mode == "jobs"
        await pilot.press("q")
