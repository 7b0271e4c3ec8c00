"""10,000 jobs in the Jobs table: every row there, cursor kept across refreshes, filters count right.

Behaviour only; the latency of the same situation is measured in bench/bench_tui.py."""

from __future__ import annotations

from repx_tui.backend.events import JobsChanged, JobState, JobStateKind
from repx_tui.ui.screens.jobs import RUN_KEY_PREFIX, JobsScreen
from tests.helpers import async_wait_until
from tests.ui.fixed import fixed_app
from tests.ui.helpers import table_cell

JOBS, RUNS = 10_000, 20


def big_job(n: int) -> str:
    return f"{n:032x}-stage-{n % 9}-work"


def states(kinds: dict[int, JobStateKind]) -> JobsChanged:
    return JobsChanged(changed=tuple(
        JobState(job=big_job(n), run="", state=kind, slurm_id=str(100000 + n),
                 node="node01" if kind == JobStateKind.RUNNING else None)
        for n, kind in kinds.items()
    ))  # fmt: skip


async def test_ten_thousand_jobs_rows_cursor_and_filters():
    app = fixed_app()
    app.jobs_model = type(app.jobs_model)()
    for n in range(JOBS):
        app.jobs_model.add_job(big_job(n), f"stage-{n % 9}-work", f"run-{n % RUNS:02d}", "simple")
    async with app.run_test(size=(100, 30)) as pilot:
        screen: JobsScreen = app.screen
        table = screen.table
        app.controller.feed(states({n: JobStateKind.QUEUED for n in range(JOBS)}))
        await async_wait_until(lambda: app.jobs_model.jobs[big_job(JOBS - 1)].state.slurm_id, timeout=30)
        assert table.row_count == JOBS + RUNS and len(screen.shown_jobs) == JOBS
        assert all(big_job(n) in table.rows for n in range(0, JOBS, 997))

        # a refresh with a few hundred changes keeps the cursor on its job and rewrites the cells
        await pilot.press("pagedown", "j", "j")
        cursor = screen.cursor_key()
        assert cursor and not cursor.startswith(RUN_KEY_PREFIX)
        order = list(table.rows)
        moved = {n: JobStateKind.RUNNING for n in range(0, JOBS, 33)}  # 304 jobs
        app.controller.feed(states(moved))
        await async_wait_until(lambda: "running" in table_cell(table, big_job(33), "state"), timeout=10)
        assert screen.cursor_key() == cursor and list(table.rows) == order
        assert table_cell(table, big_job(33), "node") == "node01"

        # the state filter and a typed filter show exactly the matching jobs
        await pilot.press("l", "l")  # all -> failed -> running
        await async_wait_until(lambda: len(screen.shown_jobs) == len(moved), timeout=5)
        assert screen.shown_jobs == {big_job(n) for n in moved}
        await pilot.press("h", "h", "slash", *"stage-4", "enter")
        expected = {big_job(n) for n in range(JOBS) if n % 9 == 4}
        assert screen.shown_jobs == expected and len(expected) == 1111
        assert table.row_count == len(expected) + RUNS
        await pilot.press("slash", *["backspace"] * 7, "enter", "t")  # flat: no run rows
        assert table.row_count == JOBS and len(screen.shown_jobs) == JOBS
