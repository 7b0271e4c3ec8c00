"""The workflow's keys and messages on the fixed state (no backend): what each key asks the App
for, what the Run dialog sends up and shows of the answer, and job states of a target or Lab
the user switched away from never reaching the table."""

from __future__ import annotations

import asyncio

from repx_tui.backend.events import JobsChanged, JobState, JobStateKind, LabPresence, RunPlan
from repx_tui.ui.controller import BackendEventMessage, ToScreens
from repx_tui.ui.messages import PlanRun, RunPlanned, WorkflowRequested
from repx_tui.ui.screens.jobs import JobsScreen
from repx_tui.ui.screens.labpicker import LabPickerScreen
from repx_tui.ui.screens.rundialog import RunScreen
from tests.helpers import async_wait_until
from tests.ui.fixed import fixed_app, job_id, job_states
from tests.ui.helpers import Recorder, screen_text
from tests.ui.test_routing import recorded


async def started(app):
    app.controller.feed(job_states())
    await async_wait_until(lambda: app.screen.query_one("#jobs").row_count == 8, timeout=5)
    return app.screen.query_one("#jobs")


def plan_for(jobs: list[str], missing: tuple[str, ...] = ()) -> RunPlan:
    presence = LabPresence("local", "lab", current=True, layers_there=2, layers_total=2, bytes_to_send=0)
    return RunPlan("local", tuple(jobs), (), presence, 0, missing_runs=missing)


async def test_run_dialog_checks_first_then_goes_with_what_was_checked():
    record = Recorder()
    app = fixed_app()
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        table = await started(app)
        table.move_cursor(row=table.get_row_index(job_id(3)))
        await pilot.press("x", "R")  # the marked job goes into the jobs box
        dialog = app.screen
        assert isinstance(dialog, RunScreen) and dialog.query_one("#run-jobs").value == job_id(3)
        assert dialog.query_one("#run-runs").selected == []  # marked jobs: no run ticked
        await pilot.press("enter")
        (ask,) = recorded(record, PlanRun)
        assert ask.request.specs == (job_id(3),) and ask.request.mode == "run" and ask.request.scheduler == "local"
        await pilot.press("enter")  # still checking: no second question, no go
        assert len(recorded(record, PlanRun)) == 1 and app.screen is dialog

        # an answer needing a missing run cannot go until allowed
        app.post_message(ToScreens(RunPlanned, ask.token, [job_id(3)], plan_for([job_id(3)], ("simulation",))))
        await async_wait_until(lambda: dialog.plan is not None, timeout=5)
        await async_wait_until(lambda: "allow missing runs" in screen_text(app), timeout=5)
        assert not dialog.ready_to_go()
        dialog.query_one("#run-allow-missing").focus()
        await pilot.press("space")  # a change: the plan shown is stale, Enter checks again
        assert dialog.plan is None
        await pilot.press("enter")
        second = recorded(record, PlanRun)[-1]
        assert second.request.allow_missing_runs and second.token > ask.token
        app.post_message(ToScreens(RunPlanned, ask.token, [], None, "an old answer"))  # dropped: old token
        app.post_message(ToScreens(RunPlanned, second.token, [job_id(3)], plan_for([job_id(3)], ("simulation",))))
        await async_wait_until(lambda: dialog.plan is not None, timeout=5)
        await async_wait_until(lambda: "Submit 1 job(s)" in screen_text(app), timeout=5)
        assert dialog.error is None and dialog.ready_to_go()
        await pilot.press("enter")
        assert app.current_mode == "sync" and not isinstance(app.screen, RunScreen)
        assert app.controller.last_request == {}  # autostart off: nothing was started


async def test_space_menu_and_keys_ask_the_app_for_the_workflow():
    record = Recorder()
    app = fixed_app()
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        table = await started(app)
        table.move_cursor(row=table.get_row_index(job_id(3)))
        await pilot.press("space", "f")  # retry from the Space menu: the row's job
        asked = recorded(record, WorkflowRequested)[-1]
        assert (asked.action, asked.job_ids, asked.marked) == ("retry", [job_id(3)], False)
        await async_wait_until(lambda: "No Lab open" in str([n.message for n in app._notifications]), timeout=5)
        await pilot.press("F")  # the same from anywhere: the Jobs screen answers with its selection
        assert recorded(record, WorkflowRequested)[-1].action == "retry"
        await pilot.press("space", "t")
        assert app.current_mode == "targets"
        await pilot.press("L")
        assert isinstance(app.screen, LabPickerScreen)
        await pilot.press("R")  # the workflow keys wait while the picker is open
        assert isinstance(app.screen, LabPickerScreen)
        await pilot.press("escape", "3", "space", "s")  # sync only
        assert recorded(record, WorkflowRequested)[-1].action == "sync-only" and app.current_mode == "sync"


async def test_job_states_of_a_target_switched_away_from_are_dropped():
    app = fixed_app()
    async with app.run_test(size=(100, 30)):
        await started(app)
        await async_wait_until(lambda: app.jobs_model.jobs[job_id(0)].state.state == JobStateKind.SUCCEEDED, timeout=5)
        old = app.controller.generation
        app.controller.forget_states()  # what picking another target or Lab does
        stale = JobsChanged(changed=(JobState(job_id(0), "simulation", JobStateKind.FAILED),))
        app.post_message(BackendEventMessage(stale, old))
        app.controller.feed(JobsChanged(changed=(JobState(job_id(1), "simulation", JobStateKind.CANCELLED),)))
        await async_wait_until(lambda: app.jobs_model.jobs[job_id(1)].state.state == JobStateKind.CANCELLED, timeout=5)
        assert app.jobs_model.jobs[job_id(0)].state.state == JobStateKind.SUCCEEDED
        assert isinstance(app.screen, JobsScreen)


async def test_no_second_run_while_one_is_under_way():
    """Starting one would cancel the run in progress (its worker group is exclusive)."""
    app = fixed_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app)
        running = app.run_worker(asyncio.Event().wait(), group="run", name="run")
        for key in ("R", "S", "L"):
            await pilot.press(key)
            assert isinstance(app.screen, JobsScreen) and app.current_mode == "jobs", key
        assert "still under way" in str([n.message for n in app._notifications])
        running.cancel()
        await async_wait_until(lambda: running.is_finished, timeout=5)
        await pilot.press("R")
        assert isinstance(app.screen, RunScreen)


async def test_command_palette_has_the_workflow():
    app = fixed_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app)
        await pilot.press("ctrl+p", *"Open a Lab")
        await pilot.press("enter")
        await async_wait_until(lambda: isinstance(app.screen, LabPickerScreen), timeout=5, message="the Lab picker")
        await pilot.press("escape", "ctrl+p", *"Run… (sync")
        await pilot.press("enter")
        await async_wait_until(lambda: isinstance(app.screen, RunScreen), timeout=5, message="the Run dialog")


async def test_the_jobs_footer_leads_with_the_way_on_at_80_columns():
    """Textual's key bar cuts what does not fit: on the Jobs screen the keys a new user needs next
    (Space: run, retry, sync…; ?: every key; Enter/i, o, x, c) come first, so they show at 80x24."""
    app = fixed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app)
        footer = screen_text(app).splitlines()[-1]
        for shown in ("Actions", "Help", "Inspect", "Logs"):
            assert shown in footer, footer
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
