"""SVG snapshots of the workflow screens at 100x30 and 80x24: the Lab picker, the Run dialog with
its confirmation, the retry dialog, and the Sync view after a failed sync (fixed state; the
picker's folder is a fixed tree in a temporary working directory, every path shown relative).

Update after an intended change with: python -m pytest tests/ui/test_workflow_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

import pytest

from repx_tui.backend.events import LabPresence, Phase, PhaseFailed, RunPlan
from repx_tui.ui.controller import ToScreens
from repx_tui.ui.labsources import remember
from repx_tui.ui.messages import LabDescribed, LabInfo, RunPlanned
from repx_tui.ui.screens.labpicker import LabPickerScreen
from repx_tui.ui.screens.rundialog import RunScreen
from tests.helpers import async_wait_until
from tests.ui.fixed import JOBS, fixed_app, job_id, job_states, sync_events

SIZES = [(100, 30), (80, 24)]
LAB_ID = "145kmzagwq42xnplnpgqsv60p5dz47gm"
GIT = "4167d47368f9b4b2909635756bfd35b2f0ed189f"
INFO = LabInfo(LAB_ID, GIT, {"simulation": 5, "analysis": 1}, {"all": ("simulation", "analysis")}, 6)


def workspace(root: Path) -> None:
    """./result -> labs/lab-v2, labs/lab-v1 opened before (recent), a tar beside them."""
    for name in ("lab-v1", "lab-v2"):
        (root / "labs" / name / "lab").mkdir(parents=True)
        (root / "labs" / name / "lab" / f"{name}-lab-metadata.json").write_text("{}")
    (root / "labs" / "lab-v3.tar.gz").write_bytes(b"")
    (root / "result").symlink_to(root / "labs" / "lab-v2")
    remember(str(root / "labs" / "lab-v1"), "0ab3q7lzqz7r4b3a5v9n2kx1w6c8d0fh")


def presence(current: bool, there: int) -> LabPresence:
    return LabPresence(
        "local", LAB_ID, current=current, layers_there=there, layers_total=3, bytes_to_send=(3 - there) << 21
    )


async def _picker(pilot):
    app = pilot.app
    await pilot.press("L")
    picker = await async_wait_until(lambda: isinstance(app.screen, LabPickerScreen) and app.screen, timeout=5)
    result, older = (str(Path.cwd() / "result"), str(Path.cwd() / "labs" / "lab-v1"))
    app.post_message(ToScreens(LabDescribed, result, INFO, None, presence(False, 1)))
    app.post_message(ToScreens(LabDescribed, older, LabInfo("0ab3q7lzqz7r4b3a5v9n2kx1w6c8d0fh", "9f1c" * 10,
                                                            {"simulation": 5}, {}, 5), None, presence(True, 3)))  # fmt: skip
    labs = picker.query_one("#labs")
    await async_wait_until(lambda: "all there" in str(labs.get_cell(older, "there")), timeout=5)
    browser = picker.query_one("#browser")
    await async_wait_until(lambda: len(browser.root.children) == 2, timeout=5)


async def _run_dialog(pilot):
    app = pilot.app
    app.controller.feed(job_states())
    await async_wait_until(lambda: app.screen.query_one("#jobs").row_count == 8, timeout=5)
    await pilot.press("R")
    dialog = await async_wait_until(lambda: isinstance(app.screen, RunScreen) and app.screen, timeout=5)
    await pilot.press("enter")  # asks the target (PlanRun); the answer comes down:
    jobs = [job_id(n) for n in range(len(JOBS))]
    plan = RunPlan("local", tuple(jobs[3:]), ((jobs[0], "succeeded"), (jobs[1], "succeeded"), (jobs[2], "running")),
                   presence(False, 1), lab_bytes=3 << 20)  # fmt: skip
    app.post_message(ToScreens(RunPlanned, dialog.token, jobs, plan))
    await async_wait_until(lambda: dialog.plan is not None, timeout=5)


async def _retry_dialog(pilot):
    app = pilot.app
    app.controller.feed(job_states())
    await async_wait_until(lambda: app.screen.query_one("#jobs").row_count == 8, timeout=5)
    app.open_run_dialog("retry", [job_id(3), job_id(4)])
    await async_wait_until(lambda: isinstance(app.screen, RunScreen), timeout=5)


async def _sync_failed(pilot):
    app = pilot.app
    await pilot.press("2")
    for event in sync_events():
        app.controller.feed(event)
    app.controller.feed(PhaseFailed(Phase.IMAGES, "local: no space left on device", "free space under base_path"))
    await async_wait_until(lambda: app.screen.query_one("#layers").row_count == 4, timeout=5)
    app.sync_finished(False, "images failed: local: no space left on device")
    await pilot.pause()


SCREENS = {"labpicker": _picker, "run": _run_dialog, "retry": _retry_dialog, "sync-failed": _sync_failed}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_workflow_snapshot(snap_compare, screen, size, tmp_path, monkeypatch):
    workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert snap_compare(fixed_app(), terminal_size=size, run_before=SCREENS[screen])
