"""The whole path a new user takes in the TUI, driven with keys only, shared by the local and the
SLURM tests: pick the target, pick the Lab in the picker, run it from the Run dialog, jobs finish
(one stage fails until a file exists), retry the failed jobs, they succeed.
"""

from __future__ import annotations

from pathlib import Path

from repx_tui.backend.events import JobStateKind, Phase, PhaseDone, RunPlan, SubmitResult
from repx_tui.ui.screens.labpicker import LabPickerScreen
from repx_tui.ui.screens.rundialog import RunScreen
from tests.helpers import async_wait_until
from tests.labgen import make_lab
from tests.ui.helpers import Recorder, screen_text, table_cell

FAILING = "stage-C-consumer"  # fails (exit 3) until the test creates its file


def failing_lab(root: Path) -> tuple[Path, Path, Path]:
    """A Lab whose stage C fails while `<root>/fixed` is missing, behind `<root>/work/result`.
    Returns (lab, the file that fixes it, the working directory)."""
    fixed = root / "fixed"
    lab = make_lab(root / "lab", "quick", fail_job=FAILING, fail_unless=str(fixed))
    work = root / "work"
    work.mkdir()
    (work / "result").symlink_to(lab)
    return lab, fixed, work


def states(app) -> dict[str, JobStateKind]:
    return {job_id: info.state.state for job_id, info in app.jobs_model.jobs.items()}


def settled(app) -> bool:
    """Every job finished, or blocked behind one that failed."""
    return bool(app.jobs_model.jobs) and all(s.finished or s == JobStateKind.BLOCKED for s in states(app).values())


async def pick_target_and_lab(app, pilot, record: Recorder, target: str) -> None:
    """Targets screen → Enter on `target` → the Lab picker lists ./result as not there yet →
    Enter opens it → the Run dialog opens by itself."""
    assert app.current_mode == "targets"
    table = app.screen.query_one("#targets")
    await async_wait_until(lambda: target in app.targets_model.health, timeout=60, message="health checked")
    table.move_cursor(row=table.get_row_index(target))
    await pilot.press("enter")
    picker = await async_wait_until(lambda: isinstance(app.screen, LabPickerScreen) and app.screen, timeout=10,
                                    message="the Lab picker after the target")  # fmt: skip
    labs = picker.query_one("#labs")
    await async_wait_until(lambda: "not there" in table_cell(labs, picker.highlighted(), "there"), timeout=60,
                           message=f"the Lab's presence on {target} {record.failures()}")  # fmt: skip
    assert table_cell(labs, picker.highlighted(), "from") == "./result"
    assert table_cell(labs, picker.highlighted(), "jobs") == "8"
    await pilot.press("enter")
    await async_wait_until(lambda: isinstance(app.screen, RunScreen), timeout=30,
                           message=f"the Run dialog after the Lab {record.failures()}")  # fmt: skip
    assert app.controller.target.name == target and app.controller.lab is not None


async def confirm(app, pilot, record: Recorder) -> RunPlan:
    """Enter asks the target what would happen; the confirmation shows it; Enter goes."""
    dialog: RunScreen = app.screen
    await pilot.press("enter")
    await async_wait_until(lambda: dialog.plan is not None or dialog.error, timeout=60,
                           message=f"the plan {record.failures()}")  # fmt: skip
    assert dialog.error is None, dialog.error
    plan = dialog.plan
    assert plan is not None
    await async_wait_until(lambda: f"Submit {len(plan.submit)} job(s)" in screen_text(app), timeout=5)
    await pilot.press("enter")
    await async_wait_until(lambda: not isinstance(app.screen, RunScreen), timeout=5, message="dialog closed")
    return plan


async def run_then_retry(app, pilot, record: Recorder, fixed: Path, resources: str | None = None) -> None:
    """From the Run dialog: run everything, see the failure, fix it, retry from the Jobs screen."""
    lab = app.controller.lab
    if resources is not None:
        await pilot.press("tab", "tab", "tab", "tab")  # runs -> jobs -> scheduler -> execution -> resources
        assert app.focused.id == "run-resources", app.focused
        await pilot.press(*resources)
    plan = await confirm(app, pilot, record)
    assert set(plan.submit) == set(lab.jobs) and not plan.skipped
    assert not plan.presence.current  # nothing was on the target yet
    assert app.current_mode == "sync"
    await async_wait_until(
        lambda: app.current_mode == "jobs", timeout=120, message=f"sync + submit {record.failures()}"
    )
    assert {e.phase for e in record.events(PhaseDone)} >= {Phase.HOST_TOOLS, Phase.LAB, Phase.SUBMIT}
    await async_wait_until(lambda: settled(app), timeout=240, message=f"jobs settled {states(app)}")
    failed = {j for j, s in states(app).items() if s == JobStateKind.FAILED}
    assert failed and all(FAILING in j for j in failed), states(app)
    downstream = {d for f in failed for d in lab.dependants(f)}
    assert all(s == JobStateKind.SUCCEEDED for j, s in states(app).items() if j not in failed | downstream), states(app)

    fixed.touch()  # what the user fixed before retrying
    table = app.screen.query_one("#jobs")
    first_failed = sorted(failed)[0]
    table.move_cursor(row=table.get_row_index(first_failed))
    await pilot.press("x")  # mark one failed job, retry it from the Space menu
    await pilot.press("space", "f")
    dialog = await async_wait_until(lambda: isinstance(app.screen, RunScreen) and app.screen, timeout=10,
                                    message="the retry dialog")  # fmt: skip
    retried = set(dialog.setup.job_ids)
    assert first_failed in retried and lab.dependants(first_failed) <= retried
    assert not retried & {j for j, s in states(app).items() if s == JobStateKind.SUCCEEDED}
    submissions = len(record.events(SubmitResult))
    await confirm(app, pilot, record)
    result = (await async_wait_until(lambda: record.events(SubmitResult)[submissions:], timeout=60,
                                     message=f"the retry submitted {record.failures()}"))[0]  # fmt: skip
    assert {job for job, _id in result.submitted} == retried and not result.errors
    assert app.current_mode == "jobs"  # a retry stays on the table
    await async_wait_until(lambda: all(states(app)[j] == JobStateKind.SUCCEEDED for j in retried), timeout=240,
                           message=f"retried jobs succeeded {states(app)}")  # fmt: skip
    assert all(s == JobStateKind.SUCCEEDED for s in states(app).values()), states(app)
    assert not record.failures()
