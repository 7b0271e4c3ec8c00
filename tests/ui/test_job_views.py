"""Key paths of the job inspector, the efficiency columns, the run overview, the pull dialog and
the column filters, on the fixed state (events fed through Controller.feed; messages recorded)."""

from __future__ import annotations

from repx_tui.backend.events import JobsChanged, JobStateKind
from repx_tui.backend.pull import default_dest
from repx_tui.ui.messages import InspectJob, OpenLog, PullRequested
from repx_tui.ui.screens.inspector import InspectorScreen
from repx_tui.ui.screens.jobs import JobsScreen
from repx_tui.ui.screens.logs import LogsScreen
from repx_tui.ui.screens.overview import OverviewScreen
from repx_tui.ui.screens.pull import PullScreen
from tests.helpers import async_wait_until
from tests.ui.fixed import fixed_app, job_id, job_states
from tests.ui.fixed_jobs import efficiency_states, inspection, pull_events, sg_inspection
from tests.ui.helpers import Recorder, screen_text, table_cell


def asked(record: Recorder, kind: type) -> list:
    return list({id(m): m for m in record.messages if isinstance(m, kind)}.values())


async def jobs_shown(app, event=None):
    app.controller.feed(event or efficiency_states())
    jobs = app.jobs_model.jobs
    await async_wait_until(lambda: jobs[job_id(5)].state.state is JobStateKind.QUEUED, timeout=5)  # applied
    return app.screen.query_one("#jobs")


async def test_enter_inspects_a_job_and_jumps_along_its_dependencies():
    record = Recorder()
    app = fixed_app()
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        table = await jobs_shown(app)
        table.move_cursor(row=table.get_row_index(job_id(3)))
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, InspectorScreen) and screen.job_id == job_id(3)
        assert [m.job_id for m in asked(record, InspectJob)] == [job_id(3)]
        app.controller.feed(inspection(3))
        await async_wait_until(lambda: "resolves now" in screen_text(app), timeout=5)
        text = screen_text(app)
        for shown in ("alpha", "0.5", "raise mem", "500M", "the Lab's resource_hints", "slurm 1003",
                      "2026-12-01T10:00:20", "/srv/repx/outputs/", "reads from (3)", "read by (1)"):  # fmt: skip
            assert shown in text, shown
        await pilot.press("y")
        assert app.clipboard == inspection(3).out_path
        await pilot.press("enter")  # the first job it reads from
        assert screen.job_id == job_id(0) and asked(record, InspectJob)[-1].job_id == job_id(0)
        await pilot.press("backspace")
        assert screen.job_id == job_id(3)
        app.controller.feed(inspection(3))
        await async_wait_until(lambda: "read by (1)" in screen_text(app), timeout=5)
        await pilot.press("down", "down", "down", "enter")  # past two more upstream jobs to the dependant
        assert screen.job_id == job_id(4)
        app.controller.feed(sg_inspection())
        await async_wait_until(lambda: "units (5)" in screen_text(app), timeout=5)
        await pilot.press("down", "down", "down", "down", "enter")  # scatter-gather units: branch-1's step
        logs = await async_wait_until(lambda: isinstance(app.screen, LogsScreen) and app.screen, timeout=5)
        assert (logs.job_id, asked(record, OpenLog)[-1].sub) == (job_id(4), "branch-1/step-square")
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("escape")  # back on the jobs table, the cursor on the last job looked at
        assert isinstance(app.screen, JobsScreen) and app.screen.cursor_key() == job_id(4)
        await pilot.press("o")  # logs stay one key away
        assert isinstance(app.screen, LogsScreen) and app.screen.job_id == job_id(4)


async def test_efficiency_columns_toggle_and_the_view_is_kept_per_target():
    app = fixed_app()
    async with app.run_test(size=(100, 30)) as pilot:
        table = await jobs_shown(app)
        assert "cpu" not in [c.key for c in table.columns]
        await pilot.press("e")
        assert {"cpu", "mem", "tlim"} <= {c.key for c in table.columns}
        assert table_cell(table, job_id(0), "cpu") == "94%" and table_cell(table, job_id(0), "mem") == "40%"
        assert table_cell(table, job_id(1), "mem") == "?"  # asked for 500M, sacct has no sample
        assert table_cell(table, job_id(3), "mem") == "98%" and "raise mem" in table_cell(table, job_id(3), "reason")
        assert "out-of-memory" in table_cell(table, "\x1frun:simulation", "state")
        await pilot.press("e")
        assert "cpu" not in [c.key for c in table.columns]
        await pilot.press("e", "slash", *"run:simulation state:oom", "enter")
        assert app.screen.shown_jobs == {job_id(3)}
    again = fixed_app()  # the same target later: its filter and columns come back
    async with again.run_test(size=(100, 30)):
        table = await jobs_shown(again)
        screen = again.screen
        assert screen.efficiency and screen.text_filter == "run:simulation state:oom"
        assert "mem" in [c.key for c in table.columns]
        await async_wait_until(lambda: screen.shown_jobs == {job_id(3)}, timeout=5)


async def test_parameter_and_negated_filters():
    app = fixed_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await jobs_shown(app)
        for n, alpha in enumerate((0.5, 1, 0.5, 2, 0.5, 1)):
            app.jobs_model.jobs[job_id(n)].params["alpha"] = alpha
        await pilot.press("slash", *"alpha=0.5 !node:node1", "enter")
        assert app.screen.shown_jobs == {job_id(4)}  # alpha 0.5 and not on node1 (blocked: no node)


async def test_overview_shows_state_bars_counts_throughput_and_eta():
    app = fixed_app()
    now = [100.0]
    app.jobs_model.now = lambda: now[0]
    async with app.run_test(size=(100, 30)) as pilot:
        await jobs_shown(app, job_states())
        now[0] = 160.0  # the running producer finishes a minute into the watch
        app.controller.feed(JobsChanged(changed=(job_states({2: JobStateKind.SUCCEEDED}).changed[2],)))
        await async_wait_until(lambda: job_id(2) in app.jobs_model.finished_at, timeout=5)
        await pilot.press("v")
        assert isinstance(app.screen, OverviewScreen)
        text = screen_text(app)
        assert "target local (local, this machine)" in text
        assert "4/5 finished" in text and "✓ 3 succeeded" in text and "✗ 1 failed" in text
        assert "1.0 jobs/min" in text and "(from jobs seen finishing)" in text
        assert "ETA 00:01:00 for 1 job(s)" in text  # the blocked job, at that rate
        assert "█" in text
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)


async def test_pull_key_asks_for_the_chosen_jobs_and_shows_their_progress():
    record = Recorder()
    app = fixed_app()
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        table = await jobs_shown(app)
        table.move_cursor(row=table.get_row_index(job_id(0)))
        await pilot.press("x", "x", "p")
        dialog = app.screen
        assert isinstance(dialog, PullScreen)
        assert dialog.query_one("#pull-dest").value == str(default_dest("local"))
        await pilot.press("enter")
        (request,) = asked(record, PullRequested)
        assert request.job_ids == [job_id(0), job_id(1)] and request.dest == str(default_dest("local"))
        for event in pull_events():
            app.controller.feed(event)
        await async_wait_until(lambda: "1 pulled" in screen_text(app), timeout=5)
        jobs = dialog.query_one("#pull-jobs")
        assert (
            table_cell(jobs, job_id(0), "status") == "pulled" and table_cell(jobs, job_id(1), "status") == "unchanged"
        )
        assert "5 file(s), 3.0M" in table_cell(jobs, job_id(0), "got")
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)
