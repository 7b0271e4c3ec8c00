"""The TUI on the REAL backend and the local target: run -> sync -> jobs -> logs -> cancel."""

from __future__ import annotations

import pytest

from repx_tui.backend.events import (
    JobCancelled,
    JobsChanged,
    JobStateKind,
    LayerAction,
    LayerProgress,
    LogChunk,
    Phase,
    PhaseDone,
    TargetHealth,
)
from repx_tui.backend.lab import Lab
from repx_tui.ui.app import RepxApp
from repx_tui.ui.screens.cancel import CancelScreen
from repx_tui.ui.screens.jobs import RUN_KEY_PREFIX, JobsScreen
from repx_tui.ui.screens.logs import LogsScreen
from repx_tui.ui.widgets.picker import Picker
from tests.helpers import async_wait_until
from tests.labgen import make_lab
from tests.ui.helpers import Recorder, screen_text, table_cell

pytestmark = pytest.mark.timeout(180)


def jobs_table(app):
    return app.screen.query_one("#jobs")


async def test_run_syncs_then_shows_live_jobs_and_logs(local_config, tmp_path):
    lab_path = make_lab(tmp_path / "lab", "quick", image_layers=2, log_lines=30)
    lab = Lab.load(lab_path)
    record = Recorder()
    app = RepxApp(local_config, lab_path=str(lab_path), target="local", runs=["simulation"])
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        assert app.current_mode == "sync"
        await async_wait_until(lambda: app.current_mode == "jobs", timeout=60, message="sync + submit done")
        done = {e.phase for e in record.events(PhaseDone)}
        assert done == set(Phase), record.failures()
        layers = record.events(LayerProgress)
        assert {e.action for e in layers if e.done} == {LayerAction.TRANSFERRED}
        assert len(app.sync_model.layers) == 2

        # the table is keyed by job id and holds every job of the Lab, grouped under run rows
        table = jobs_table(app)
        await async_wait_until(lambda: table.row_count, timeout=5, message="jobs table filled")
        for job_id in lab.runs["simulation"].jobs:
            assert job_id in table.rows
        assert RUN_KEY_PREFIX + "simulation" in table.rows

        # cursor stays on the same job while status events rewrite cells
        await pilot.press("j", "j")
        screen: JobsScreen = app.screen
        key = screen.cursor_key()
        before = len(record.events(JobsChanged))
        await async_wait_until(lambda: len(record.events(JobsChanged)) > before, timeout=30, message="a status change")
        assert screen.cursor_key() == key

        sim = set(lab.runs["simulation"].jobs)

        def all_finished():
            return all(app.jobs_model.jobs[j].state.state.finished for j in sim)

        await async_wait_until(all_finished, timeout=90, message="simulation jobs finished")
        await async_wait_until(
            lambda: all("succeeded" in table_cell(table, j, "state") for j in sim), timeout=5, message="cells"
        )
        assert "7/7" in table_cell(table, RUN_KEY_PREFIX + "simulation", "state")

        # logs: `o` on a job opens its stdout, followed; `o` there switches to stderr
        producer = next(j for j in sim if "stage-A" in j)
        table.move_cursor(row=table.get_row_index(producer))
        await pilot.press("o")
        assert isinstance(app.screen, LogsScreen)
        await async_wait_until(lambda: record.events(LogChunk), timeout=20, message="a log chunk")
        logs: LogsScreen = app.screen
        await async_wait_until(lambda: logs.lines["stdout"], timeout=10, message="log lines shown")
        assert logs.following
        await pilot.press("o")
        assert logs.stream == "stderr"
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)
        assert not record.failures()
        await pilot.press("q")
    assert app.return_code in (0, None)


async def test_cancel_confirmation_lists_dependants_and_outcomes(local_config, tmp_path):
    lab_path = make_lab(tmp_path / "lab", "quick", sleep_seconds=30.0)
    lab = Lab.load(lab_path)
    record = Recorder()
    app = RepxApp(local_config, lab_path=str(lab_path), target="local", runs=["simulation"])
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        await async_wait_until(lambda: app.current_mode == "jobs", timeout=60, message="submitted")
        running = await async_wait_until(
            lambda: [j for j, i in app.jobs_model.jobs.items() if i.state.state.active],
            timeout=30,
            message=f"an active job ({ {i.state.state for i in app.jobs_model.jobs.values()} })",
        )
        table = jobs_table(app)
        table.move_cursor(row=table.get_row_index(running[0]))
        await pilot.press("x")  # mark it, then cancel the marked job
        await pilot.press("c")
        dialog = app.screen
        assert isinstance(dialog, CancelScreen)
        listed = set(dialog.query_one("#cancel-jobs").rows)
        expected = {running[0], *lab.dependants(running[0])}
        assert {k.value for k in listed} >= expected  # dependants are part of what is cancelled
        await pilot.press("y")
        await async_wait_until(lambda: record.events(JobCancelled), timeout=30, message="cancel outcomes")
        outcome = {e.job: e for e in record.events(JobCancelled)}
        assert outcome[running[0]].ok, outcome
        await async_wait_until(
            lambda: "cancelled" in table_cell(dialog.query_one("#cancel-jobs"), running[0], "outcome"),
            timeout=5,
            message="outcome shown",
        )
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)
        assert not app.screen.marked  # marks are cleared after a confirmed cancel
        cancel_all = dict.fromkeys(lab.runs["simulation"].jobs)
        app.controller.cancel(list(cancel_all))  # leave nothing running behind
        await async_wait_until(lambda: len(record.events(JobCancelled)) > len(outcome), timeout=30)
        await pilot.press("q")


async def test_targets_screen_checks_health_and_picks(local_config, tmp_path):
    lab_path = make_lab(tmp_path / "lab", "quick")
    record = Recorder()
    app = RepxApp(local_config, lab_path=str(lab_path))
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        assert app.current_mode == "targets"
        health = await async_wait_until(lambda: record.events(TargetHealth), timeout=30, message="health")
        assert health[0].target == "local" and health[0].ok, health
        table = app.screen.query_one("#targets")
        await async_wait_until(lambda: "✓" in table_cell(table, "local", "base_path"), timeout=5)
        assert "all checks passed" in screen_text(app)
        await pilot.press("enter")
        assert app.current_mode == "jobs"
        assert app.controller.target.name == "local"
        await async_wait_until(lambda: record.events(JobsChanged), timeout=30, message="status after pick")
        await pilot.press("q")


async def test_scatter_gather_step_log_is_picked_in_the_logs_screen(local_config, tmp_path):
    """What `repx-tui logs <job>/branch-0/step-square` shows, the Logs screen shows after `u`."""
    lab_path = make_lab(tmp_path / "lab", "quick", log_lines=4)
    lab = Lab.load(lab_path)
    sum_job = min(j for j in lab.runs["simulation"].jobs if lab.jobs[j].stage_type == "scatter-gather")
    record = Recorder()
    app = RepxApp(local_config, lab_path=str(lab_path), target="local", runs=["simulation"])
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        await async_wait_until(lambda: app.current_mode == "jobs", timeout=60, message="submitted")
        await async_wait_until(
            lambda: app.jobs_model.jobs[sum_job].state.state.finished,
            timeout=90,
            message="the scatter-gather job finished",
        )
        assert app.jobs_model.jobs[sum_job].state.state == JobStateKind.SUCCEEDED, record.failures()
        table = jobs_table(app)
        table.move_cursor(row=table.get_row_index(sum_job))
        await pilot.press("o")
        logs = app.screen
        assert isinstance(logs, LogsScreen) and logs.sub is None
        await pilot.press("u")
        picker = await async_wait_until(
            lambda: isinstance(app.screen, Picker) and app.screen,
            timeout=20,
            message=f"the unit picker {record.failures()}",
        )
        units = [value for value, _label in picker.choices]
        assert units[:2] == ["", "scatter"] and units[-1] == "gather", units
        assert "branch-0/step-square" in units and "branch-1/step-extract" in units
        await pilot.press(*["j"] * units.index("branch-0/step-square"), "enter")
        assert app.screen is logs and logs.sub == "branch-0/step-square"
        wanted = "stage-D-sum-squares/step-square log line 4/4"
        await async_wait_until(lambda: wanted in logs.lines["stdout"], timeout=20, message="the step's log lines")
        shown = [line for line in logs.lines["stdout"] if line]
        assert all("step-square" in line for line in shown), shown  # that unit's log only
        assert "branch-0/step-square" in screen_text(app) and wanted in screen_text(app)
        assert not record.failures()
        await pilot.press("escape", "q")
