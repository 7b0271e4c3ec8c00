"""Logs: follow a job's stdout or stderr; scrolling up pauses follow, End resumes it.

What is kept is bounded (repx_tui/ui/logbuffer.py): `\r` ends a display line, a line is cut at
64 KiB, the last 10,000 lines stay. The unterminated last line (a progress bar's latest update)
shows under the log until its line break arrives.

A scatter-gather job logs per unit (scatter, each branch's steps, gather): `u` lists the units
that have a log on the target and follows the one picked."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input, RichLog, Static

from repx_tui.backend.events import LogChunk
from repx_tui.ui import format as fmt
from repx_tui.ui.logbuffer import ELLIPSIS, MAX_LINES, LogLines
from repx_tui.ui.messages import BackendUpdate, FollowLog, ListLogUnits, LogFollowing, LogUnitsListed
from repx_tui.ui.widgets.footer import StableFooter
from repx_tui.ui.widgets.inputs import open_box
from repx_tui.ui.widgets.picker import Picker

if TYPE_CHECKING:
    from repx_tui.ui.app import RepxApp

JOB_OWN_LOG = "job (its own log)"  # how the unit picker names unit "", the job's own log


class LogView(RichLog):
    """A RichLog that tells its screen when the user scrolls away from the bottom."""

    @property
    def logs(self) -> LogsScreen:
        return cast(LogsScreen, self.screen)

    def _user_scrolled(self) -> None:
        if self.scroll_offset.y < self.max_scroll_y:
            self.logs.pause_follow()

    def on_mouse_scroll_up(self, _event: events.MouseScrollUp) -> None:
        self.call_after_refresh(self._user_scrolled)

    # The scroll bindings of ScrollView: anything that moves up leaves follow mode.
    def action_scroll_up(self) -> None:
        self.logs.pause_follow()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.logs.pause_follow()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.logs.pause_follow()
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        self.logs.action_follow()


class LogsScreen(Screen):
    AUTO_FOCUS = "#log"
    DEFAULT_CSS = "#log-partial { height: 1; }"
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("o", "switch_stream", "stdout/stderr"),
        Binding("s", "switch_stream", "stdout/stderr", show=False),
        Binding("u", "pick_unit", "Unit"),
        Binding("w", "toggle_wrap", "Wrap"),
        Binding("slash", "search", "Search"),
        Binding("n", "next_match(1)", "Next match"),
        Binding("N", "next_match(-1)", "Prev", show=False),
        Binding("end", "follow", "Follow"),
        Binding("G", "follow", "Follow", show=False),
        Binding("k", "scroll(-1)", "Up (pauses follow)", show=False),
        Binding("j", "scroll(1)", "Down", show=False),
        Binding("g", "top", "Top (pauses follow)", show=False),
    ]

    def __init__(self, job_id: str, stream: str = "stdout", sub: str | None = None) -> None:
        super().__init__()
        self.job_id = job_id
        self.stream = stream
        self.sub = sub  # a scatter-gather unit (`branch-0/step-x`), None: the job's own log
        # Chunks are shown while _shown_token == _follow_token: after a switch, text of the
        # replaced follow still in flight is dropped until the App says the new one started.
        self._follow_token = 0
        self._shown_token = 0
        self._units_wanted = False
        self.following = True
        self.wrap = False
        self.search_term = ""
        self.match_line: int | None = None
        self.buffers: dict[str, LogLines] = {"stdout": LogLines(), "stderr": LogLines()}

    @property
    def lines(self) -> dict[str, list[str]]:
        return {stream: buffer.lines for stream, buffer in self.buffers.items()}

    def compose(self) -> ComposeResult:
        yield Static("", id="log-status", classes="title")
        yield LogView(id="log", max_lines=MAX_LINES, wrap=False, auto_scroll=True, min_width=20)
        yield Static("", id="log-partial", markup=False)
        yield Input(placeholder="search (Enter: find, Esc: close)", id="search", select_on_focus=False)
        yield StableFooter()

    def on_mount(self) -> None:
        self.query_one("#search", Input).display = False
        self.query_one("#log-partial", Static).display = False
        self._update_status()
        self._follow()

    @property
    def log_view(self) -> LogView:
        return self.query_one(LogView)

    # --- incoming text ----------------------------------------------------------------

    def _follow(self) -> None:
        self.post_message(FollowLog(self.job_id, self.stream, self.sub, self._follow_token))

    def on_log_following(self, message: LogFollowing) -> None:
        self._shown_token = message.token

    def on_backend_update(self, message: BackendUpdate) -> None:
        event = message.event
        if isinstance(event, LogChunk) and event.job == self.job_id and self._shown_token == self._follow_token:
            self.add_chunk(event.stream, event.text)

    def add_chunk(self, stream: str, text: str) -> None:
        """Append a LogChunk's text: complete display lines go to the log, the unterminated
        last one to the line under it."""
        complete = self.buffers[stream].feed(text)
        if stream == self.stream and self.is_mounted:
            if complete:
                self._write(complete, scroll_end=self.following)
                self._update_status()  # the line count in the header
            self._show_partial()

    def _write(self, lines: list[str], scroll_end: bool) -> None:
        """Many lines in one write (one render), and the view keeps as many lines as the buffer."""
        view = self.log_view
        view.max_lines = MAX_LINES if self.wrap else max(1, len(self.buffers[self.stream].lines))
        view.write(self._render_line("\n".join(lines)), scroll_end=scroll_end)

    def _show_partial(self) -> None:
        partial = self.buffers[self.stream].partial
        box = self.query_one("#log-partial", Static)
        box.display = bool(partial)
        width = max(2, box.content_size.width or self.size.width)
        box.update(Text(partial if len(partial) <= width else partial[: width - 1] + ELLIPSIS, no_wrap=True, end=""))

    def _render_line(self, line: str) -> Text:
        text = Text(line)
        if self.search_term:
            text.highlight_words([self.search_term], style="black on yellow", case_sensitive=False)
        return text

    def _repaint(self) -> None:
        view = self.log_view
        view.clear()
        view.wrap = self.wrap
        view.auto_scroll = self.following
        if self.lines[self.stream]:
            self._write(self.lines[self.stream], scroll_end=False)
        self._show_partial()
        if self.following:
            view.scroll_end(animate=False)
        self._update_status()

    def _update_status(self) -> None:
        mode = (
            Text(" FOLLOWING ", style="bold black on green")
            if self.following
            else Text(" PAUSED ", style="bold black on yellow")
        )
        where = fmt.short_id(self.job_id) + (f"/{self.sub}" if self.sub else "")
        text = Text.assemble(Text(f"{where} ", style="bold"), Text(f"[{self.stream}] ", style="cyan"), mode)
        count = len(self.lines[self.stream])
        text.append(f"  wrap {'on' if self.wrap else 'off'}  " + (f"{count} lines" if count else "no output (yet)"))
        if self.search_term:
            where = f" @ line {self.match_line + 1}" if self.match_line is not None else ""
            text.append(f"  /{self.search_term}{where}", style="bold")
        self.query_one("#log-status", Static).update(text)

    # --- follow -----------------------------------------------------------------------

    def pause_follow(self) -> None:
        if self.following:
            self.following = False
            self.log_view.auto_scroll = False
            self._update_status()

    def action_follow(self) -> None:
        self.following = True
        self.log_view.auto_scroll = True
        self.log_view.scroll_end(animate=False)
        self._update_status()

    def action_scroll(self, step: int) -> None:
        if step < 0:
            self.pause_follow()
        self.log_view.scroll_relative(y=step, animate=False)

    def action_top(self) -> None:
        self.pause_follow()
        self.log_view.scroll_home(animate=False)

    # --- stream, wrap, search ---------------------------------------------------------

    def action_switch_stream(self) -> None:
        self._switch("stderr" if self.stream == "stdout" else "stdout", self.sub)

    def _switch(self, stream: str, sub: str | None) -> None:
        """Follow another stream or unit: what was shown goes, the new log starts from its tail."""
        streams = [stream] if sub == self.sub else list(self.buffers)
        self.stream, self.sub = stream, sub
        for name in streams:
            self.buffers[name].clear()
        self._follow_token += 1
        self._repaint()
        self._follow()

    # --- scatter-gather units ---------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pick_unit":  # a simple job has one log: no `u` in its footer
            info = cast("RepxApp", self.app).jobs_model.jobs.get(self.job_id)
            return info is None or info.stage in ("scatter-gather", "")  # "": stage not known
        return True

    def action_pick_unit(self) -> None:
        """Ask the target which units have a log; the picker opens when the answer comes."""
        self._units_wanted = True
        self.post_message(ListLogUnits(self.job_id))

    def on_log_units_listed(self, message: LogUnitsListed) -> None:
        if message.job_id != self.job_id or not self._units_wanted:
            return
        self._units_wanted = False
        if not message.units:
            self.notify("no log of this job on the target yet", severity="warning")
            return
        choices = [(unit, unit or JOB_OWN_LOG) for unit in message.units]
        self.app.push_screen(Picker(f"Logs of {fmt.short_id(self.job_id)}", choices, self.sub or ""), self._unit_picked)

    def _unit_picked(self, unit: str | None) -> None:
        if unit is not None and (unit or None) != self.sub:
            self._switch(self.stream, unit or None)

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap
        self._repaint()

    def action_search(self) -> None:
        open_box(self, self.query_one("#search", Input))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.search_term = event.value.strip()
        event.input.display = False
        self.log_view.focus()
        self.match_line = None
        self._repaint()
        if self.search_term:
            self.action_next_match(1)

    def on_key(self, event: events.Key) -> None:
        box = self.query_one("#search", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.display = False
            self.log_view.focus()

    def action_next_match(self, step: int) -> None:
        if not self.search_term:
            return
        lines = self.lines[self.stream]
        needle = self.search_term.lower()
        start = self.match_line if self.match_line is not None else (len(lines) - 1 if step < 0 else -1)
        for n in range(1, len(lines) + 1):
            index = (start + step * n) % len(lines)
            if needle in lines[index].lower():
                self.match_line = index
                self.pause_follow()
                # wrapped lines make line numbers inexact; good enough to land near the match
                self.log_view.scroll_to(y=index, animate=False)
                self._update_status()
                return
        self.notify(f"no match for {self.search_term!r}", severity="warning")

    def action_close(self) -> None:
        self.dismiss()  # the App stops following this log
