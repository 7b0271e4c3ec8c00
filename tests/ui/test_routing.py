"""Screens post messages up, the App routes them; backend events come down as messages.

No screen or widget calls an App method of ours (only Textual's own), and what a key asks for
shows up as one message the App receives (recorded with the Pilot message hook)."""

from __future__ import annotations

import ast
from pathlib import Path

from repx_tui.backend.events import JobCancelled, LogChunk
from repx_tui.ui.controller import LogUnitsFound
from repx_tui.ui.messages import CancelRequested, FollowLog, ListLogUnits, OpenLog
from repx_tui.ui.screens.cancel import CancelScreen
from repx_tui.ui.screens.jobs import JobsScreen
from repx_tui.ui.screens.logs import LogsScreen
from repx_tui.ui.widgets.picker import Picker
from tests.helpers import async_wait_until
from tests.ui.fixed import fixed_app, job_id, job_states
from tests.ui.helpers import Recorder, screen_text, table_cell

UI = Path(__file__).resolve().parents[2] / "repx_tui" / "ui"
# Textual's App API a screen may use: it changes what is shown, never calls back into a screen.
TEXTUAL_APP_CALLS = {
    "push_screen",
    "pop_screen",
    "switch_mode",
    "install_screen",
    "is_screen_installed",
    "notify",
    "exit",
    "copy_to_clipboard",  # OSC 52: the terminal's clipboard, nothing of ours
}


def app_calls(path: Path) -> list[str]:
    """Names of the methods called as `self.app.<name>(...)` in a module."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute) and func.value.attr == "app":
            calls.append(func.attr)
    return calls


def test_screens_and_widgets_call_no_app_method_of_ours():
    modules = sorted([*(UI / "screens").glob("*.py"), *(UI / "widgets").glob("*.py")])
    assert len(modules) > 8
    ours = {str(m.relative_to(UI)): sorted(set(app_calls(m)) - TEXTUAL_APP_CALLS) for m in modules}
    assert {m: calls for m, calls in ours.items() if calls} == {}


def recorded(record: Recorder, kind: type) -> list:
    """Messages of one kind, each once (the hook sees a message again at each hop as it bubbles)."""
    return list({id(m): m for m in record.messages if isinstance(m, kind)}.values())


async def started(app):
    app.controller.feed(job_states())
    await async_wait_until(lambda: app.screen.query_one("#jobs").row_count == 8, timeout=5)
    return app.screen.query_one("#jobs")


async def test_cancel_key_posts_one_request_and_outcomes_come_down():
    record = Recorder()
    app = fixed_app()
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        table = await started(app)
        table.move_cursor(row=table.get_row_index(job_id(0)))
        await pilot.press("x", "c")
        dialog = app.screen
        assert isinstance(dialog, CancelScreen)
        await pilot.press("y")
        (request,) = recorded(record, CancelRequested)
        assert request.job_ids == [job_id(0), job_id(3), job_id(4)]  # the job and its dependants
        app.controller.feed(JobCancelled(job_id(3), True, "cancelled by request"))
        await async_wait_until(
            lambda: "✓ cancelled" in table_cell(dialog.query_one("#cancel-jobs"), job_id(3), "outcome"),
            timeout=5,
            message="outcome shown",
        )
        await pilot.press("escape")
        assert isinstance(app.screen, JobsScreen) and not app.screen.marked
        app.cancel_selected()  # the command palette's entry: the Jobs screen asks for confirmation
        await async_wait_until(lambda: isinstance(app.screen, CancelScreen), timeout=5, message="dialog again")


async def test_logs_of_a_unit_and_text_of_the_replaced_log_is_dropped():
    record = Recorder()
    app = fixed_app()
    sg = job_id(4)  # the scatter-gather job of the fixed state
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        table = await started(app)
        table.move_cursor(row=table.get_row_index(sg))
        await pilot.press("o")
        logs = app.screen
        assert isinstance(logs, LogsScreen)
        assert [(m.job_id, m.stream) for m in recorded(record, OpenLog)] == [(sg, "stdout")]
        assert [(m.job_id, m.sub) for m in recorded(record, FollowLog)] == [(sg, None)]
        await pilot.press("u")
        assert [m.job_id for m in recorded(record, ListLogUnits)] == [sg]
        app.post_message(LogUnitsFound(sg, ["", "scatter", "branch-0/step-square", "gather"]))  # the target's answer
        picker = await async_wait_until(lambda: isinstance(app.screen, Picker) and app.screen, timeout=5)
        assert picker.query_one("#picker").highlighted == 0  # the log shown now
        await pilot.press("j", "j", "enter")
        assert app.screen is logs and logs.sub == "branch-0/step-square"
        assert recorded(record, FollowLog)[-1].sub == "branch-0/step-square"
        await async_wait_until(lambda: "branch-0/step-square" in screen_text(app), timeout=5)

        # Switch again while text of the log being replaced is still on its way: it is dropped.
        logs._switch("stdout", "gather")
        app.controller.feed(LogChunk(job=sg, stream="stdout", offset=0, text="from the step\n"))
        await async_wait_until(lambda: recorded(record, FollowLog)[-1].sub == "gather", timeout=5)
        await pilot.pause()
        app.controller.feed(LogChunk(job=sg, stream="stdout", offset=0, text="from the gather\n"))
        await async_wait_until(lambda: logs.lines["stdout"], timeout=5, message="the gather's text")
        assert logs.lines["stdout"] == ["from the gather"]


async def test_simple_job_logs_have_no_unit_key():
    app = fixed_app()
    async with app.run_test(size=(100, 30)) as pilot:
        table = await started(app)
        table.move_cursor(row=table.get_row_index(job_id(2)))
        await pilot.press("o", "u")
        assert isinstance(app.screen, LogsScreen) and app.screen.sub is None
        assert "Unit" not in screen_text(app)
