"""The log screen stays bounded whatever a job writes: a progress bar redrawn with `\\r` and no
newline for megabytes, or one line that never ends. Fed as LogChunk events of at most 1 MiB
(what the follower emits), through the same path as the backend's."""

from __future__ import annotations

from repx_tui.backend.events import LogChunk
from repx_tui.backend.logs import MAX_READ
from repx_tui.ui.logbuffer import ELLIPSIS, MAX_CHARS, MAX_LINE_CHARS, MAX_LINES
from repx_tui.ui.screens.logs import LogsScreen
from tests.helpers import async_wait_until
from tests.ui.fixed import fixed_app, job_id, job_states
from tests.ui.helpers import screen_text


def chunks(data: str, job: str, stream: str = "stdout") -> list[LogChunk]:
    return [
        LogChunk(job=job, stream=stream, offset=i, text=data[i : i + MAX_READ]) for i in range(0, len(data), MAX_READ)
    ]


async def open_logs(pilot, app) -> LogsScreen:
    app.controller.feed(job_states())
    await async_wait_until(lambda: app.screen.query_one("#jobs").row_count == 8, timeout=5)
    table = app.screen.query_one("#jobs")
    table.move_cursor(row=table.get_row_index(job_id(2)))
    await pilot.press("o")
    assert isinstance(app.screen, LogsScreen)
    return app.screen


async def test_carriage_return_progress_stream_is_bounded_and_shows_the_latest_update():
    updates = 250_000
    stream = "".join(f"\rprogress {i:07d}/{updates:07d}" for i in range(updates))  # ~6 MB, no newline
    app = fixed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        logs = await open_logs(pilot, app)
        for event in chunks(stream, job_id(2)):
            app.controller.feed(event)
        latest = f"progress {updates - 1:07d}/{updates:07d}"
        await async_wait_until(lambda: latest in screen_text(app), timeout=20, message="latest update shown")
        lines = logs.lines["stdout"]
        assert len(lines) == MAX_LINES and lines[-1] == f"progress {updates - 2:07d}/{updates:07d}"
        assert len(logs.log_view.lines) <= MAX_LINES
        assert logs.buffers["stdout"].chars <= MAX_CHARS
        assert f"{MAX_LINES} lines" in screen_text(app)
        # the update after the last \r arrives, ended by a newline: it moves into the log
        app.controller.feed(LogChunk(job=job_id(2), stream="stdout", offset=len(stream), text="\ndone\n"))
        await async_wait_until(lambda: logs.lines["stdout"][-1] == "done", timeout=5)
        assert logs.lines["stdout"][-2] == latest and logs.buffers["stdout"].partial == ""


async def test_a_line_that_never_ends_is_cut_and_the_log_goes_on():
    endless = "y" * (3 * MAX_READ)
    app = fixed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        logs = await open_logs(pilot, app)
        for event in chunks(endless, job_id(2)):
            app.controller.feed(event)
        await async_wait_until(lambda: ELLIPSIS in screen_text(app), timeout=10, message="cut line shown")
        assert logs.buffers["stdout"].partial == "y" * MAX_LINE_CHARS + ELLIPSIS
        app.controller.feed(LogChunk(job=job_id(2), stream="stdout", offset=len(endless), text="yy\nnext line\n"))
        await async_wait_until(lambda: logs.lines["stdout"][-1:] == ["next line"], timeout=5)
        assert logs.lines["stdout"] == ["y" * MAX_LINE_CHARS + ELLIPSIS, "next line"]
        assert "next line" in screen_text(app)
