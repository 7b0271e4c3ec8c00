"""`repx-tui` with no arguments, on the REAL local target: pick the target, pick the Lab in the
picker, run it, a stage fails, the user fixes it and retries the failed job from the table, and
everything succeeds; the picker then says the Lab is all there."""

from __future__ import annotations

import json

import pytest

from repx_tui.backend.config import load_config
from repx_tui.ui.app import RepxApp
from repx_tui.ui.labsources import recent_file
from repx_tui.ui.screens.labpicker import LabPickerScreen
from tests.helpers import async_wait_until
from tests.ui.conftest import write_config
from tests.ui.helpers import Recorder, table_cell
from tests.ui.workflow import failing_lab, pick_target_and_lab, run_then_retry

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
