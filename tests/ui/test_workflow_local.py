"""`repx-tui` with no arguments, on the REAL local target: pick the target, pick the Lab in the
picker, run it, a stage fails, the user fixes it and retries the failed job from the table, and
everything succeeds; the picker then says the Lab is all there."""

from __future__ import annotations

import json
import shutil

import pytest

from repx_tui.backend.config import load_config
from repx_tui.backend.events import JobStateKind
from repx_tui.backend.lab import Lab
from repx_tui.ui.app import RepxApp
from repx_tui.ui.labsources import recent_file
from repx_tui.ui.screens.labpicker import LabPickerScreen
from repx_tui.ui.screens.rundialog import RunScreen
from tests.helpers import async_wait_until
from tests.labgen import make_lab
from tests.ui.conftest import write_config
from tests.ui.helpers import Recorder, screen_text, table_cell
from tests.ui.workflow import failing_lab, pick_target_and_lab, run_then_retry, settled, states

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


async def test_the_folder_browser_opens_a_lab_directory_and_a_tar(tmp_path, monkeypatch):
    """No ./result, nothing recent: Tab moves to the folder browser, Enter opens a folder, then a
    Lab directory or a Lab tar in it (each goes on to its Run dialog); Backspace goes up a folder."""
    from repx_tui.ui.screens.labpicker import LabBrowser
    from tests.labgen import make_lab_tar

    work = tmp_path / "work"
    directory = make_lab(work / "labs" / "mylab", "quick")
    tar = make_lab_tar(work / "labs", "quick", runs=["simulation"], name="other.tar")
    shutil.rmtree(work / "labs" / "lab-src")
    monkeypatch.chdir(work)
    monkeypatch.setenv("REPX_CONFIG", str(write_config(tmp_path / "config.toml", tmp_path / "store")))
    record = Recorder()
    app = RepxApp(load_config(), target="local")
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        for entry, lab in ((1, directory), (2, tar)):  # under ./labs: mylab/, other.tar
            await pilot.press("L")
            picker = await async_wait_until(lambda: isinstance(app.screen, LabPickerScreen) and app.screen, timeout=5)
            await pilot.press("tab")
            browser = picker.query_one(LabBrowser)
            assert browser.has_focus
            await pilot.press("down", "enter")  # ./labs
            await async_wait_until(lambda b=browser: len(b.cursor_node.children) == 2, timeout=5, message="./labs")
            await pilot.press(*["down"] * entry)
            # the panel describes the highlighted Lab as the list does: id, runs, how much is on the target
            lab_id = Lab.load(lab).lab_id
            await async_wait_until(lambda i=lab_id: f"Lab {i}" in screen_text(app) and "On local: the Lab is not there"
                                   in screen_text(app), timeout=30, message=f"{lab.name} described")  # fmt: skip
            assert "Enter opens it" in screen_text(app)
            await pilot.press("enter")
            await async_wait_until(lambda: isinstance(app.screen, RunScreen), timeout=30,
                                   message=f"{lab.name} opened {record.failures()}")  # fmt: skip
            assert app.controller.lab is not None and app.controller.lab.source == lab
            await pilot.press("escape")
        await pilot.press("L", "tab", "backspace")
        await async_wait_until(lambda: app.screen.query_one(LabBrowser).path == tmp_path, timeout=5)
        assert not record.failures()
        await pilot.press("escape", "q")


async def test_a_cancelled_job_is_retried_with_its_dependants(tmp_path, monkeypatch):
    """c on a running job cancels it and its dependants; Space f on it re-submits exactly those
    (not what succeeded meanwhile), and they all succeed."""
    from repx_tui.ui.screens.cancel import CancelScreen

    lab = make_lab(tmp_path / "lab", "quick", sleep_seconds=2.0)
    monkeypatch.setenv("REPX_CONFIG", str(write_config(tmp_path / "config.toml", tmp_path / "store")))
    record = Recorder()
    app = RepxApp(load_config(), lab_path=str(lab), target="local", runs=["@all"])
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        await async_wait_until(lambda: app.current_mode == "jobs" and JobStateKind.RUNNING in states(app).values(),
                               timeout=60, message=f"a job running {record.failures()}")  # fmt: skip
        victim = sorted(j for j, s in states(app).items() if s == JobStateKind.RUNNING)[0]
        table = app.screen.query_one("#jobs")
        table.move_cursor(row=table.get_row_index(victim))
        await pilot.press("c")
        dialog = await async_wait_until(lambda: isinstance(app.screen, CancelScreen) and app.screen, timeout=5)
        cancelled = {k.value for k in dialog.query_one("#cancel-jobs").rows}
        assert victim in cancelled and app.controller.lab.dependants(victim) <= cancelled
        await pilot.press("y")
        await async_wait_until(lambda: all(states(app)[j] == JobStateKind.CANCELLED for j in cancelled), timeout=60,
                               message=f"cancelled {states(app)}")  # fmt: skip
        await pilot.press("escape")
        await async_wait_until(lambda: settled(app), timeout=120, message=f"settled {states(app)}")
        table.move_cursor(row=table.get_row_index(victim))
        await pilot.press("space", "f")
        retry = await async_wait_until(lambda: isinstance(app.screen, RunScreen) and app.screen, timeout=10)
        assert set(retry.setup.job_ids) == cancelled
        await pilot.press("enter")
        await async_wait_until(lambda: retry.plan is not None, timeout=60, message=f"plan {record.failures()}")
        await pilot.press("enter")
        await async_wait_until(lambda: all(s == JobStateKind.SUCCEEDED for s in states(app).values()), timeout=120,
                               message=f"all succeeded {states(app)} {record.failures()}")  # fmt: skip
        assert not record.failures()
        await pilot.press("q")
