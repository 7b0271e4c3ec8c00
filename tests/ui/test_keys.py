"""Every key path of the Jobs, Logs, Sync and Targets screens, on a fixed state fed as events."""

from __future__ import annotations

from repx_tui.backend.events import JobStateKind
from repx_tui.ui.screens.cancel import CancelScreen
from repx_tui.ui.screens.help import HelpScreen
from repx_tui.ui.screens.jobs import RUN_KEY_PREFIX, JobsScreen
from repx_tui.ui.screens.logs import LogsScreen
from repx_tui.ui.widgets.menu import KeyMenu
from tests.helpers import async_wait_until
from tests.ui.fixed import fixed_app, health_events, job_id, job_states, log_text, sync_events
from tests.ui.helpers import Recorder, screen_text, table_cell


async def started(pilot, app):
    app.controller.feed(job_states())
    await async_wait_until(lambda: app.screen.query_one("#jobs").row_count == 8, timeout=5)
    return app.screen.query_one("#jobs")


async def test_updates_are_cell_by_cell_and_keep_cursor_and_marks():
    app = fixed_app()
    async with app.run_test(size=(100, 30)) as pilot:
        table = await started(pilot, app)
        await pilot.press("j", "j", "x")
        screen: JobsScreen = app.screen
        assert screen.marked == {job_id(1)}
        cursor = screen.cursor_key()
        rows_before = list(table.rows)
        app.controller.feed(job_states({2: JobStateKind.SUCCEEDED, 5: JobStateKind.RUNNING}))
        await async_wait_until(lambda: "succeeded" in table_cell(table, job_id(2), "state"), timeout=5)
        assert list(table.rows) == rows_before  # no rebuild: same rows, same order
        assert screen.cursor_key() == cursor and screen.marked == {job_id(1)}
        assert "running" in table_cell(table, job_id(5), "state")
        assert "3/5" in table_cell(table, RUN_KEY_PREFIX + "simulation", "state")


async def test_filter_state_filters_sort_tree_and_marks():
    app = fixed_app()
    async with app.run_test(size=(100, 30)) as pilot:
        table = await started(pilot, app)
        screen: JobsScreen = app.screen
        await pilot.press("slash", *"consumer", "enter")
        assert set(screen.shown_jobs) == {job_id(3)}
        await pilot.press("slash", *["backspace"] * 8, "enter")
        assert len(screen.shown_jobs) == 6
        await pilot.press("l")  # all -> failed
        assert screen.shown_jobs == {job_id(3)}
        await pilot.press("l")  # -> running
        assert screen.shown_jobs == {job_id(2)}
        await pilot.press("h", "h")  # back to all
        assert len(screen.shown_jobs) == 6
        await pilot.press("t")  # flat: no run rows
        assert not any(k.startswith(RUN_KEY_PREFIX) for k in table.rows)
        await pilot.press("s")  # sort by state
        first = table.key_at(0)
        assert app.jobs_model.jobs[first].state.state == JobStateKind.BLOCKED
        await pilot.press("percent_sign")
        assert screen.marked == set(screen.shown_jobs)
        await pilot.press("percent_sign")
        assert not screen.marked
        await pilot.press("x", "escape")
        assert not screen.marked
        await pilot.press("t", "g")
        assert isinstance(app.screen, KeyMenu)
        await pilot.press("e")  # g e: end
        assert screen.cursor_key() == job_id(5)
        await pilot.press("g", "g")  # g g: top
        assert screen.cursor_key() == RUN_KEY_PREFIX + "simulation"
        await pilot.press("period")  # fold the run
        assert job_id(0) not in table.rows


async def test_cancel_dialog_lists_dependants_and_no_aborts():
    record = Recorder()
    app = fixed_app()
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        table = await started(pilot, app)
        table.move_cursor(row=table.get_row_index(job_id(0)))
        await pilot.press("space")
        assert isinstance(app.screen, KeyMenu)
        await pilot.press("c")
        dialog = app.screen
        assert isinstance(dialog, CancelScreen)
        listed = [k.value for k in dialog.query_one("#cancel-jobs").rows]
        assert listed == [job_id(0), job_id(3), job_id(4)]  # the job, its dependant, and theirs
        assert "1 selected + 2 dependant" in screen_text(app)
        await pilot.press("n")
        assert isinstance(app.screen, JobsScreen)
        assert not dialog.confirmed


async def test_logs_follow_pause_resume_wrap_search_and_stream():
    app = fixed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        table = await started(pilot, app)
        table.move_cursor(row=table.get_row_index(job_id(2)))
        await pilot.press("o")
        logs = app.screen
        assert isinstance(logs, LogsScreen) and logs.job_id == job_id(2)
        app.controller.feed(log_text(60))
        await async_wait_until(lambda: len(logs.lines["stdout"]) == 60, timeout=5)
        assert logs.following
        await pilot.press("up")
        assert not logs.following and "PAUSED" in screen_text(app)
        await pilot.press("end")
        assert logs.following and "FOLLOWING" in screen_text(app)
        await pilot.press("w")
        assert logs.wrap and logs.log_view.wrap
        await pilot.press("slash", *"step 7:", "enter")
        assert logs.match_line == 7 and not logs.following
        await pilot.press("n")
        assert logs.match_line == 7  # the only match: wraps around to itself
        await pilot.press("o")
        assert logs.stream == "stderr" and not logs.lines["stderr"]
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen)


async def test_help_palette_sync_targets_and_quit():
    app = fixed_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for key in ("Filter", "State →", "Mark all", "Cancel", "Tree"):
            assert key in text
        await pilot.press("escape", "2")
        for event in sync_events():
            app.controller.feed(event)
        await async_wait_until(lambda: app.screen.query_one("#layers").row_count == 4, timeout=5)
        text = screen_text(app)
        for mark in ("REUSED", "NODE-LOCAL", "SENT", "to send"):
            assert mark in text
        assert "4.0 MiB reused" in text and "3.0 MiB of 7.0 MiB sent" in text
        await pilot.press("f")  # only layers sent (or still to send)
        assert app.screen.query_one("#layers").row_count == 2
        await pilot.press("1")
        for event in health_events():
            app.controller.feed(event)
        await async_wait_until(lambda: "✗" in screen_text(app), timeout=5)  # cells are cut to fit
        await pilot.press("j")  # the panel spells out the highlighted target's checks in full
        assert "Permission denied" in screen_text(app) and "ssh -o BatchMode=yes" in screen_text(app)
        await pilot.press("ctrl+p", *"jobs")
        await pilot.press("enter")
        await async_wait_until(lambda: app.current_mode == "jobs", timeout=5)
        await pilot.press("q")
    assert app.return_code in (0, None)


async def test_backend_failures_become_notifications():
    app = fixed_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.autostart = True
        app.controller.lab = None
        app.controller.watch_status()  # no Lab loaded: a RepxError, shown, not raised
        await async_wait_until(lambda: app._notifications, timeout=5, message="a notification")
        note = list(app._notifications)[0]
        assert "no Lab loaded" in note.message and note.severity == "error"
        await pilot.press("q")


async def test_keys_typed_right_after_slash_go_to_the_filter_not_to_bindings():
    """A fast typist's burst, delivered as a terminal driver does: no pause between the keys."""
    from textual import events

    app = fixed_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, app)
        screen: JobsScreen = app.screen
        for key, char in (("slash", "/"), ("2", "2"), ("o", "o")):  # "2": Sync screen, "o": logs
            event = events.Key(key, char)
            event.set_sender(app)
            app._driver.send_message(event)
        await async_wait_until(lambda: screen.query_one("#filter").value == "2o", timeout=5)
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("enter")
        assert screen.shown_jobs == set()  # no job matches "2o"
