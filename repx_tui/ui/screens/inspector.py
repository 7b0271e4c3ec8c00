"""The job inspector (Enter or `i` on a job): everything about one job on one screen.

Upstream RepX's context panel shows a job's run, dependencies, dependents and parameters; this
adds what the job asks SLURM for and which resources.toml rule / Lab hint / default produced
each value, its state, reason, exit code, SLURM ids, node, times, efficiency (with the hint for
an OUT_OF_MEMORY / TIMEOUT), the remote paths of out/ and the logs (`y` / `Y` copy them, OSC 52),
and a scatter-gather job's units with their own state and logs.

The screen posts InspectJob; the answer is a JobInspection coming down as a BackendUpdate (the
Lab's part first, at once, then the target's). The list at the bottom holds the jobs it reads
from, the jobs that read from it (Enter jumps there, Backspace comes back) and the units
(Enter opens that unit's log).
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from repx_tui.backend.events import JobInspection, JobStateKind, UnitState
from repx_tui.backend.inspection import param_text
from repx_tui.backend.status.efficiency import human_bytes, human_seconds
from repx_tui.ui import format as fmt
from repx_tui.ui.jobcolumns import efficiency_cells
from repx_tui.ui.messages import BackendUpdate, InspectJob, JobsUpdated, OpenLog
from repx_tui.ui.model import JobsModel
from repx_tui.ui.widgets.footer import StableFooter

REFRESH_AFTER_CHANGE = 2.0  # seconds: a state change asks the target again, at most this often
UNIT_STYLE = {"succeeded": "green", "failed": "bold red", "cancelled": "magenta", "running": "bold cyan"}


def _state(ins: JobInspection | None, info):
    """The table's state (it is the newest) when the job is in it, else the inspection's."""
    if info is not None and info.state.state is not JobStateKind.UNKNOWN:
        return info.state
    return ins.state if ins and ins.state else (info.state if info else None)


class InspectorScreen(Screen[str | None]):
    HELP_TITLE = "Inspector"
    AUTO_FOCUS = "#inspect-links"
    DEFAULT_CSS = """
    #inspect-panes { height: 1fr; }
    #inspect-body { width: 1fr; height: 1fr; padding: 0 1; }
    #inspect-links { width: 36%; height: 1fr; border: none; border-left: solid $primary; padding: 0; }
    """
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("backspace", "back", "Previous job"),
        Binding("o", "logs('stdout')", "Logs"),
        Binding("E", "logs('stderr')", "Stderr"),
        Binding("y", "copy('out')", "Copy out/"),
        Binding("Y", "copy('logs')", "Copy logs"),
        Binding("r", "refresh", "Refresh"),
        Binding("ctrl+d", "scroll_details(1)", "Details ↓", show=False),
        Binding("ctrl+u", "scroll_details(-1)", "Details ↑", show=False),
    ]

    def __init__(self, job_id: str, model: JobsModel) -> None:
        super().__init__()
        self.job_id = job_id
        self.model = model
        self.history: list[str] = []
        self.inspection: JobInspection | None = None
        self._refresh_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="inspect-title", classes="title")
        with Horizontal(id="inspect-panes"):
            with VerticalScroll(id="inspect-body"):
                yield Static("", id="inspect-details")
            yield OptionList(id="inspect-links")
        yield StableFooter()

    def on_mount(self) -> None:
        self._ask()

    def on_resize(self, _event: events.Resize) -> None:
        self.call_after_refresh(lambda: self._fill_links(self.inspection))  # labels follow the pane's width

    # --- asking and answering ----------------------------------------------------------

    def _ask(self) -> None:
        self.inspection = None
        self._redraw()
        self.post_message(InspectJob(self.job_id))

    def on_backend_update(self, message: BackendUpdate) -> None:
        event = message.event
        if isinstance(event, JobInspection) and event.job == self.job_id and self.is_mounted:
            # The Lab's part may come after the target's answer to a refresh: keep the fuller one.
            if self.inspection is None or event.out_path or not self.inspection.out_path:
                self.inspection = event
            self._redraw()

    def on_jobs_updated(self, message: JobsUpdated) -> None:
        if self.job_id in message.job_ids and self.is_mounted:
            self._redraw()
            if self._refresh_timer is None:
                self._refresh_timer = self.set_timer(REFRESH_AFTER_CHANGE, self._refresh_after_change)

    def _refresh_after_change(self) -> None:
        self._refresh_timer = None
        self.post_message(InspectJob(self.job_id))

    # --- drawing -------------------------------------------------------------------------

    def _redraw(self) -> None:
        info = self.model.jobs.get(self.job_id)
        ins = self.inspection
        state = _state(ins, info)
        title = Text(f"Job {fmt.short_id(self.job_id)}", style="bold")
        if info is not None:
            title.append(f"  run {info.run} · {info.stage or 'simple'}")
        if state is not None:
            title.append("  ").append_text(fmt.state_text(state.state, state.stale))
        self.query_one("#inspect-title", Static).update(title)
        self.query_one("#inspect-details", Static).update(self._details(ins, info))
        self._fill_links(ins)

    def _details(self, ins: JobInspection | None, info) -> Table:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold cyan", no_wrap=True)
        grid.add_column(overflow="fold")  # paths and ids wrap whole, never cut with an ellipsis
        state = _state(ins, info)
        if state is not None:
            self._state_rows(grid, state, ins)
        if ins is None:
            grid.add_row("", Text("asking the target…", style="grey50"))
            return grid
        if ins.error:
            grid.add_row("target", Text(f"not read: {ins.error}", style="yellow"))
        for label, when in (("submitted", ins.submit), ("started", ins.start), ("ended", ins.end)):
            if when:
                grid.add_row(label, when)
        grid.add_row("params", "" if ins.params else Text("none", style="grey50"))
        for key, value in sorted(ins.params.items()):
            grid.add_row(f"  {key}", param_text(value))
        grid.add_row("resources", Text(ins.resources_note, style="grey50"))
        for value in ins.resources:
            shown = f"{value.value or '-':<10}"
            grid.add_row(f"  {value.key}", Text.assemble((shown, "bold"), " ", (value.source, "grey62")))
        grid.add_row("out", ins.out_path)
        grid.add_row("stdout", ins.stdout_path)
        grid.add_row("stderr", ins.stderr_path)
        grid.add_row("job id", self.job_id)
        return grid

    def _state_rows(self, grid: Table, state, ins: JobInspection | None) -> None:
        line = fmt.state_text(state.state, state.stale)
        if state.exit_code not in (None, 0):
            line.append(f"  exit {state.exit_code}")
        ids = ins.slurm_ids if ins and ins.slurm_ids else ((state.slurm_id,) if state.slurm_id else ())
        if ids:
            line.append(f"  slurm {', '.join(ids)}")
        if state.node:
            line.append(f"  on {state.node}")
        if state.elapsed:
            line.append(f"  elapsed {state.elapsed}")
        grid.add_row("state", line)
        if state.reason:
            grid.add_row("reason", state.reason)
        if state.hint:
            grid.add_row("hint", Text(state.hint, style="bold red"))
        eff = state.efficiency
        if eff is not None:
            cpu, mem, used = efficiency_cells(state)
            line = Text.assemble("cpu ", cpu or "?", f" of {eff.cpus or '?'}", "   mem ", mem or "?",
                                 f" ({human_bytes(eff.max_rss)} of {human_bytes(eff.req_mem)})",
                                 "   time ", used or "?", f" of {human_seconds(eff.time_limit_s)}")  # fmt: skip
            grid.add_row("usage", line)

    def _fill_links(self, ins: JobInspection | None) -> None:
        links = self.query_one("#inspect-links", OptionList)
        highlighted = links.highlighted_option.id if links.highlighted_option is not None else None
        options: list[Option] = []
        if ins is not None:
            options += self._job_options(f"reads from ({len(ins.upstream)})", ins.upstream)
            options += self._job_options(f"read by ({len(ins.downstream)})", ins.downstream)
            if ins.units and (len(ins.units) > 1 or ins.units[0].unit):
                header = f"units ({len(ins.units)}): Enter opens the log (out/err size)"
                options.append(Option(Text(header, style="bold"), disabled=True))
                options += [self._unit_option(u) for u in ins.units]
        links.clear_options()
        links.add_options(options)
        ids = [o.id for o in options if not o.disabled]
        if ids:
            links.highlighted = next(
                i for i, o in enumerate(options) if o.id == (highlighted if highlighted in ids else ids[0])
            )

    def _job_options(self, header: str, job_ids: tuple[str, ...]) -> list[Option]:
        options = [Option(Text(header, style="bold"), disabled=True)]
        width = self.query_one("#inspect-links", OptionList).scrollable_content_region.width
        for job_id in job_ids:
            info = self.model.jobs.get(job_id)
            kind = info.state.state if info else JobStateKind.UNKNOWN
            shown = fmt.short_id(job_id)
            if info is not None and width and len(shown) + 4 > width:  # narrow (80 columns): the name, as
                shown = info.name  # the Jobs table shows it; Enter shows the job with its full id
            label = Text(f"  {fmt.STATE_GLYPH[kind]} ", style=fmt.STATE_STYLE[kind]).append(shown, style="")
            options.append(Option(label, id=f"job:{job_id}"))
        return options

    def _unit_option(self, unit: UnitState) -> Option:
        name = unit.unit or "(the job's own log)"
        code = f" exit {unit.exit_code}" if unit.exit_code not in (None, 0) else ""
        logs = unit.stdout_bytes is not None or unit.stderr_bytes is not None
        sizes = f" {human_bytes(unit.stdout_bytes or 0)}/{human_bytes(unit.stderr_bytes or 0)}" if logs else ""
        label = Text(f"  {name} ").append(f"{unit.state}{code}", style=UNIT_STYLE.get(unit.state, "grey50"))
        return Option(label.append(sizes, style="grey62"), id=f"unit:{unit.unit}")

    # --- keys ------------------------------------------------------------------------------

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        kind, _, value = (event.option.id or "").partition(":")
        if kind == "job" and value in self.model.jobs:
            self.history.append(self.job_id)
            self.job_id = value
            self._ask()
        elif kind == "unit":
            self.post_message(OpenLog(self.job_id, "stdout", value or None))

    def action_back(self) -> None:
        if self.history:
            self.job_id = self.history.pop()
            self._ask()

    def action_logs(self, stream: str) -> None:
        self.post_message(OpenLog(self.job_id, stream))

    def action_copy(self, what: str) -> None:
        ins = self.inspection
        if ins is None or not ins.out_path:
            self.notify("No paths yet: the target has not answered", severity="warning")
            return
        text = ins.out_path if what == "out" else f"{ins.stdout_path}\n{ins.stderr_path}"
        self.app.copy_to_clipboard(text)
        self.notify(f"copied {text.splitlines()[0]}" + (" (+ stderr)" if what == "logs" else ""))

    def action_refresh(self) -> None:
        self.post_message(InspectJob(self.job_id))

    def action_scroll_details(self, direction: int) -> None:
        body = self.query_one("#inspect-body", VerticalScroll)
        body.scroll_relative(y=direction * max(1, body.size.height // 2), animate=False)

    def action_close(self) -> None:
        self.dismiss(self.job_id)
