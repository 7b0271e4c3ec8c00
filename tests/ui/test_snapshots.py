"""SVG snapshots of each screen at 100x30 and 80x24 (fixed state, fixed paths, fixed clock).

Update after an intended change with: python -m pytest tests/ui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

from tests.helpers import async_wait_until
from tests.ui.fixed import fixed_app, health_events, job_id, job_states, log_text, sync_events

SIZES = [(100, 30), (80, 24)]


def _cursor_on(pilot, n: int) -> None:
    """The jobs table's cursor on fixed job number n."""
    table = pilot.app.screen.query_one("#jobs")
    table.move_cursor(row=table.get_row_index(job_id(n)))


async def _jobs(pilot):
    app = pilot.app
    app.controller.feed(job_states())
    await async_wait_until(lambda: app.screen.query_one("#jobs").row_count == 8, timeout=5)
    await pilot.press("j", "j", "x")


async def _sync(pilot):
    await pilot.press("2")
    for event in sync_events():
        pilot.app.controller.feed(event)
    await async_wait_until(lambda: pilot.app.screen.query_one("#layers").row_count == 4, timeout=5)


async def _targets(pilot):
    await pilot.press("1")
    for event in health_events():
        pilot.app.controller.feed(event)
    await pilot.pause()
    await pilot.press("j")


async def _cancel(pilot):
    await _jobs(pilot)
    await pilot.press("c")


async def _logs(pilot):
    await _jobs(pilot)
    _cursor_on(pilot, 2)
    await pilot.press("o")
    pilot.app.controller.feed(log_text(60))
    await async_wait_until(lambda: len(pilot.app.screen.lines["stdout"]) == 60, timeout=5)
    await pilot.press("up", "up")


async def _units(pilot):
    """The unit picker of a scatter-gather job's logs, with the units the target reported."""
    from repx_tui.ui.controller import LogUnitsFound
    from repx_tui.ui.widgets.picker import Picker

    await _jobs(pilot)
    _cursor_on(pilot, 4)
    await pilot.press("o", "u")
    units = ["", "scatter", "branch-0/step-extract", "branch-0/step-square", "branch-1/step-extract", "gather"]
    pilot.app.post_message(LogUnitsFound(job_id(4), units))
    await async_wait_until(lambda: isinstance(pilot.app.screen, Picker), timeout=5)


async def _help(pilot):
    await _jobs(pilot)
    await pilot.press("question_mark")


async def _with_usage(pilot):
    """The fixed jobs as finished SLURM jobs with sacct's usage (job 3 out of memory)."""
    from tests.ui.fixed_jobs import efficiency_states

    app = pilot.app
    app.jobs_model.now = lambda: 2000.0  # the overview's "now": a fixed clock
    app.controller.feed(efficiency_states())
    await async_wait_until(lambda: app.jobs_model.jobs[job_id(5)].state.state.value == "queued", timeout=5)


async def _efficiency(pilot):
    await _with_usage(pilot)
    await pilot.press("e", "j", "j")


async def _inspector(pilot):
    from tests.ui.fixed_jobs import inspection

    await _with_usage(pilot)
    _cursor_on(pilot, 3)
    await pilot.press("enter")
    pilot.app.controller.feed(inspection(3))
    await async_wait_until(lambda: pilot.app.screen.inspection is not None, timeout=5)


async def _overview(pilot):
    await _with_usage(pilot)
    await pilot.press("v")


async def _pull(pilot):
    from tests.ui.fixed_jobs import pull_events

    await _with_usage(pilot)
    _cursor_on(pilot, 0)
    await pilot.press("x", "x", "x", "p")
    pilot.app.screen.query_one("#pull-dest").value = "/home/me/results"  # not this machine's cwd
    await pilot.press("enter")
    for event in pull_events():
        pilot.app.controller.feed(event)
    await async_wait_until(lambda: pilot.app.screen.summary is not None, timeout=5)


SCREENS = {
    "jobs": _jobs,
    "sync": _sync,
    "targets": _targets,
    "cancel": _cancel,
    "logs": _logs,
    "units": _units,
    "efficiency": _efficiency,
    "inspector": _inspector,
    "overview": _overview,
    "pull": _pull,
    "help": _help,
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen_snapshot(snap_compare, screen, size):
    assert snap_compare(fixed_app(), terminal_size=size, run_before=SCREENS[screen])


async def _first_screen(pilot):
    from tests.ui.fixed import picker_health_events

    for event in picker_health_events():
        pilot.app.controller.feed(event)
    await async_wait_until(lambda: len(pilot.app.targets_model.health) == 3, timeout=5)
    await pilot.press("j", "j")  # the long-address target: the panel spells it out


def test_target_picker_first_screen_snapshot_80x24(snap_compare):
    """`repx-tui` as it opens on an 80x24 terminal: the compact target table (short headers, the
    scheduler in its column, a long address cut) and the highlighted target in full below."""
    from tests.ui.fixed import picker_app

    assert snap_compare(picker_app(), terminal_size=(80, 24), run_before=_first_screen)
