"""Sync: the four phases with state and timing, one row per image layer with its own bar, one
line of totals (sent / reused / node-local, overall rate and ETA), and how the sync ended: after
a failure the view stays, and Enter goes on to the jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from repx_tui.backend.events import LayerAction, LayerProgress, Phase
from repx_tui.ui import format as fmt
from repx_tui.ui.messages import BackendUpdate, SyncFinished, SyncReset
from repx_tui.ui.model import SYNC_EVENTS, LayerRow, PhaseRow, SyncEvent, SyncModel
from repx_tui.ui.widgets.fittable import FitTable
from repx_tui.ui.widgets.footer import StableFooter

if TYPE_CHECKING:
    from repx_tui.ui.app import RepxApp

PHASE_STYLE = {
    "waiting": "grey50",
    "running": "bold cyan",
    "done": "bold green",
    "skipped": "yellow",
    "failed": "bold red",
}
# The image name goes last and takes what the others leave: at 80 columns it is cut (the
# hovered row's tooltip has it whole), then the layer digest down to 8 characters, never the
# mark, bar, size or rate.
LAYER_COLUMNS = ("mark", "layer", "bar", "size", "rate", "image")
LAYER_MIN_WIDTH = {"layer": 8, "image": 10}
PHASE_GLYPH = {"waiting": "·", "running": "▶", "done": "✓", "skipped": "↷", "failed": "✗"}


class SyncScreen(Screen):
    AUTO_FOCUS = "#layers"
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("f", "cycle_layer_filter", "Layers: all/sent/reused"),
        Binding("enter", "to_jobs", "Jobs", show=False, priority=True),
    ]
    LAYER_FILTERS = ("all", "transferred", "reused", "node-local")

    def __init__(self) -> None:
        super().__init__()
        self.layer_filter = "all"

    def compose(self) -> ComposeResult:
        yield Static("Sync", id="title", classes="title")
        yield Static("", id="phases")  # a rich Table: long details and hints wrap instead of being cut
        yield Static("", id="totals", classes="panel")
        yield Static("", id="sync-outcome", classes="panel")
        yield FitTable(id="layers", cursor_type="row", zebra_stripes=True, flex="image")
        yield StableFooter()

    @property
    def model(self) -> SyncModel:
        return cast("RepxApp", self.app).sync_model

    def on_mount(self) -> None:
        self._update_phases()
        layers = self.query_one("#layers", FitTable)
        for key in LAYER_COLUMNS:
            layers.add_column(key, key=key, min_width=LAYER_MIN_WIDTH.get(key))
        self.refresh_all_layers()
        self._update_totals()
        self._show_outcome()

    def on_sync_reset(self, _message: SyncReset) -> None:
        if self.is_mounted:
            self._update_phases()
            self.refresh_all_layers()
            self._update_totals()
            self._show_outcome()

    def on_sync_finished(self, _message: SyncFinished) -> None:
        if self.is_mounted:
            self._update_totals()
            self._show_outcome()

    def _show_outcome(self) -> None:
        banner = self.query_one("#sync-outcome", Static)
        outcome = self.model.outcome
        banner.display = outcome is not None
        if outcome is None:
            return
        ok, summary = outcome
        text = Text(summary, style="bold green" if ok else "bold red")
        text.append("   ")
        text.append(" Enter ", style="bold black on yellow")
        text.append(" go on to the jobs")
        banner.update(text)

    def action_to_jobs(self) -> None:
        self.app.switch_mode("jobs")

    def _update_phases(self) -> None:
        table = Table(box=None, expand=True, padding=(0, 1), header_style="bold")
        table.add_column("phase", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("progress", no_wrap=True)
        table.add_column("time", no_wrap=True, justify="right")
        table.add_column("detail", ratio=1, overflow="fold")
        for row in self.model.phases.values():
            table.add_row(*self._phase_cells(row))
        self.query_one("#phases", Static).update(table)

    def _phase_cells(self, row: PhaseRow) -> list:
        """Bar in its own narrow column, byte counts leading the detail (which wraps at 80 cols)."""
        state = Text(f"{PHASE_GLYPH[row.state]} {row.state}", style=PHASE_STYLE[row.state])
        detail = Text()
        if row.total_bytes:
            # Done means every byte is in place: the bar must not read 0% when all was reused.
            done = row.total_bytes if row.state == "done" else row.bytes_done
            progress = fmt.bar(done, row.total_bytes, 8)
            detail.append(f"{fmt.size(row.bytes_done)} sent of {fmt.size(row.total_bytes)}", style="bold")
            detail.append(f" {fmt.rate(row.rate)}" if row.state == "running" and row.rate else "")
        elif row.bytes_done:
            progress = Text("")
            detail.append(f"{fmt.size(row.bytes_done)} sent", style="bold")
        elif row.total_files and row.files_done and row.state == "running":  # submit: jobs settled so far
            progress = fmt.bar(row.files_done, row.total_files, 8)
            detail.append(f"{row.files_done} of {row.total_files} jobs", style="bold")
            detail.append(self._per_second(row))
        else:
            progress = Text("")
        if row.wire_bytes is not None and 0 < row.wire_bytes < row.bytes_done:  # compressed: what the wire carried
            how = f", {row.compression}" if row.compression not in ("", "off") else ""
            ratio = row.bytes_done / row.wire_bytes
            detail.append(f" · {fmt.size(row.wire_bytes)} on the wire ({ratio:.1f}:1{how})", style="bold cyan")
        if row.detail:
            detail.append((" · " if detail else "") + row.detail)
        if row.hint:
            detail.append(f"  hint: {row.hint}", style="bold")
        return [Text(row.phase.value, style="bold"), state, progress, fmt.duration(row.seconds), detail]

    def _per_second(self, row: PhaseRow) -> str:
        elapsed = self.model.clock() - row.started_at if row.started_at is not None else 0.0
        return f" {row.files_done / elapsed:.0f}/s" if elapsed > 0.5 else ""

    def _layer_cells(self, row: LayerRow) -> list:
        label, style = fmt.LAYER_MARK[LayerAction.PENDING if row.waiting else row.action]
        if row.waiting:
            label = "· to send"
            bar = fmt.bar(0, row.size, 12)
        elif row.action == LayerAction.TRANSFERRED:
            bar = fmt.bar(row.sent, row.size, 12, "yellow" if not row.done else "green")
        elif row.action == LayerAction.PENDING:
            bar = fmt.bar(0, row.size, 12)
        else:  # nothing crossed the network: a full bar in the mark's colour
            bar = fmt.bar(row.size, row.size, 12, style.replace("bold ", ""))
        return [
            Text(label, style=style),
            row.digest[:12],
            bar,
            fmt.size(row.size),
            fmt.rate(row.rate) if row.action == LayerAction.TRANSFERRED else "",
            fmt.short_id(row.image),
        ]

    def _layer_visible(self, row: LayerRow) -> bool:
        return self.layer_filter == "all" or row.action.value == self.layer_filter

    def on_backend_update(self, message: BackendUpdate) -> None:
        if isinstance(message.event, SYNC_EVENTS):
            self.apply(message.event)

    def apply(self, event: SyncEvent) -> None:
        """Redraw what one event changed."""
        if not self.is_mounted:
            return
        if isinstance(event, LayerProgress):
            self._update_layer(self.model.layers[(event.image, event.digest)])
        else:
            self._update_phases()
        self._update_totals()

    def _update_layer(self, row: LayerRow) -> None:
        table = self.query_one("#layers", DataTable)
        key = f"{row.image}@{row.digest}"
        if not self._layer_visible(row):
            if key in table.rows:
                table.remove_row(key)
            return
        cells = self._layer_cells(row)
        if key not in table.rows:
            table.add_row(*cells, key=key)
            return
        for column, cell in zip(LAYER_COLUMNS, cells):
            table.update_cell(key, column, cell, update_width=column in ("mark", "rate", "image"))

    def refresh_all_layers(self) -> None:
        table = self.query_one("#layers", DataTable)
        table.clear()
        for row in self.model.layers.values():
            if self._layer_visible(row):
                table.add_row(*self._layer_cells(row), key=f"{row.image}@{row.digest}")

    def _update_totals(self) -> None:
        self.query_one("#totals", Static).update(totals_line(self.model, self.layer_filter))

    def action_cycle_layer_filter(self) -> None:
        filters = self.LAYER_FILTERS
        self.layer_filter = filters[(filters.index(self.layer_filter) + 1) % len(filters)]
        self.refresh_all_layers()
        self._update_totals()

    def action_cursor_down(self) -> None:
        self.query_one("#layers", DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#layers", DataTable).action_cursor_up()


def totals_line(model: SyncModel, layer_filter: str = "all") -> Text:
    """One line: layers sent of those to send, reused, node-local, then the overall rate and ETA."""
    totals = model.totals()
    sent, rate, left = model.overall()
    text = Text()
    if not totals["layers"] and model.phases[Phase.IMAGES].state in ("done", "skipped"):  # the Lab has no images:
        # what every phase sent beside the overall rate (not "0 Bytes of 0 Bytes" beside a rate)
        text.append("no image layers  ", style="bold")
        text.append("↑ ", style="bold yellow")
        text.append(f"{fmt.size(sent)} sent  ")
    else:
        text.append(f"{totals['layers']} layers  ", style="bold")
        text.append("↑ ", style="bold yellow")
        text.append(f"{fmt.size(totals['sent'])} of {fmt.size(totals['to_send'])} sent  ")
    for key, mark, style in (("reused", "=", "bold green"), ("node_local", "⌂", "bold blue")):
        if totals[key]:
            text.append(f"{mark} ", style=style)
            text.append(f"{fmt.size(totals[key])} {key.replace('_', '-')}  ")
    if rate:
        text.append(f"{fmt.rate(rate)} overall", style="bold")
    if rate and left:
        text.append(f", {fmt.eta(left, rate)}", style="bold")
    if layer_filter != "all":
        text.append(f"  showing: {layer_filter}", style="grey50")
    return text
