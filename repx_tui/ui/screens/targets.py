"""Targets: every configured target with its health checks, checked in parallel; Enter picks one.

At 80 columns the full headers do not fit beside the checks: the table then abbreviates them,
names the scheduler in its check's column (the address column no longer carries it), and cuts
the address to the room left; the panel below spells out the highlighted target in full.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from repx_tui.backend.config import Target
from repx_tui.backend.events import HealthCheck, TargetHealth
from repx_tui.ui.messages import BackendUpdate, CheckTargets, TargetPicked, TargetsChecking
from repx_tui.ui.model import TargetsModel
from repx_tui.ui.widgets.fittable import FitTable
from repx_tui.ui.widgets.footer import StableFooter

if TYPE_CHECKING:
    from repx_tui.ui.app import RepxApp

CHECKS = ("reachable", "scheduler", "base_path", "free_space")
SHORT_HEADERS = {"reachable": "reach", "scheduler": "sched", "base_path": "base", "free_space": "free"}
FULL_CHECK_MIN = 10  # a check cell under this with full headers: switch to the compact layout
COMPACT_CHECK_MIN = 11  # "✓ logged in", "✓ 120.0 GiB": the address column gets what is left
PENDING = {"checking": ("…", "checking"), "unchecked": ("–", "not checked")}  # mark, label
SCROLLBAR = 2  # the layout is chosen as if the table had its vertical scrollbar: it never flips with the rows
NAME_MIN = 12
WHERE_MIN = 10


class TargetsScreen(Screen):
    AUTO_FOCUS = "#targets"
    BINDINGS = [
        Binding("enter", "pick", "Pick target"),
        Binding("r", "recheck", "Re-check"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    @property
    def model(self) -> TargetsModel:
        return cast("RepxApp", self.app).targets_model

    def __init__(self) -> None:
        super().__init__()
        self.compact = False

    def compose(self) -> ComposeResult:
        yield Static("Targets", id="title", classes="title")
        yield FitTable(id="targets", cursor_type="row", zebra_stripes=True, flex="where")
        yield Static("", id="hints", classes="panel")
        yield StableFooter()

    def on_mount(self) -> None:
        self.compact = self._needs_compact(self.size.width)
        self._build()
        self._update_hints()
        self.post_message(CheckTargets(only_unchecked=True))

    def on_resize(self, event: events.Resize) -> None:
        compact = self._needs_compact(event.size.width)
        if compact != self.compact:
            self.compact = compact
            self._build()

    def _needs_compact(self, width: int) -> bool:
        """Whether the full headers and "address (scheduler)" leave each check fewer than
        FULL_CHECK_MIN cells (the table would need horizontal scrolling, or cut the address)."""
        targets = list(self.model.targets.values())
        if not targets or not width:
            return False
        name = max(len(t.name) for t in targets) + 2
        where = max(len(self._where(t, compact=False)) for t in targets)
        padding = 2 * (2 + len(CHECKS))
        return width - SCROLLBAR - padding - name - where < len(CHECKS) * FULL_CHECK_MIN

    def _build(self) -> None:
        """Columns for the layout in use, then every row (the cursor stays on its target)."""
        table = self.query_one(FitTable)
        selected = self.selected_target()
        table.clear(columns=True)
        table.add_column("target", key="name", min_width=NAME_MIN)
        table.add_column("where", key="where", min_width=WHERE_MIN)
        check_min = COMPACT_CHECK_MIN if self.compact else FULL_CHECK_MIN
        for check in CHECKS:
            header = SHORT_HEADERS[check] if self.compact else check.replace("_", " ")
            # the compact layout never cuts the scheduler's name: it is short and it matters
            keep = self.compact and check == "scheduler"
            table.add_column(header, key=check, min_width=None if keep else check_min)
        for target in self.model.targets.values():
            table.add_row(*self._row(target), key=target.name)
        for health in self.model.health.values():
            self.show_health(health)
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)

    def on_backend_update(self, message: BackendUpdate) -> None:
        if isinstance(message.event, TargetHealth):
            self.show_health(message.event)

    def on_targets_checking(self, message: TargetsChecking) -> None:
        self.show_checking(message.names)

    @staticmethod
    def _where(target: Target, compact: bool) -> str:
        """The address; with full headers also its scheduler (compact: the scheduler column has it).
        base_path is not repeated here: the "base path" check shows it (or why it is unusable)."""
        where = "this machine" if target.is_local else str(target.address)
        return where if compact else f"{where} ({target.scheduler()})"

    def _row(self, target: Target) -> list:
        cells = [self._check_cell(target.name, check, None, "checking") for check in CHECKS]
        return [self._name_cell(target.name), self._where(target, self.compact), *cells]

    def _check_cell(self, name: str, check: str, result: HealthCheck | None, pending: str = "unchecked") -> Text:
        """One check's cell: its mark and detail, or PENDING's while it has no result."""
        mark, label = PENDING[pending]
        if result is not None:
            mark, label = ("✓" if result.ok else "✗"), result.detail
        if self.compact and check == "scheduler":  # the scheduler's name, with the check's mark
            label = self.model.targets[name].scheduler()
        elif self.compact and result is None and pending == "unchecked":
            label = ""  # a bare "–": the panel says why it was not checked
        elif self.compact and check == "free_space":
            label = label.removesuffix(" free")
        if result is None:
            return Text(f"{mark} {label}", style="grey50")
        return Text(f"{mark} {label}", style="green" if result.ok else "bold red")

    def _name_cell(self, name: str) -> Text:
        """The target picked is marked: its jobs are the ones the Jobs screen shows."""
        return Text(("● " if name == self.model.current else "  ") + name, style="bold")

    def on_screen_resume(self) -> None:
        table = self.query_one(FitTable)
        for name in self.model.targets:
            if name in table.rows:
                table.update_cell(name, "name", self._name_cell(name))

    def show_health(self, health: TargetHealth) -> None:
        """The checks' results; the table cuts them to fit, the panel shows them in full."""
        if not self.is_mounted:
            return
        table = self.query_one(FitTable)
        if health.target not in table.rows:
            return
        by_name = {c.name: c for c in health.checks}
        for check in CHECKS:
            table.update_cell(health.target, check, self._check_cell(health.target, check, by_name.get(check)))
        self._update_hints()

    def show_checking(self, names: list[str]) -> None:
        if not self.is_mounted:
            return
        table = self.query_one(FitTable)
        for name in names:
            if name in table.rows:
                for check in CHECKS:
                    table.update_cell(name, check, self._check_cell(name, check, None, "checking"))

    def selected_target(self) -> str | None:
        table = self.query_one(FitTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._update_hints()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.post_message(TargetPicked(event.row_key.value))

    def _update_hints(self) -> None:
        name = self.selected_target()
        hints = self.query_one("#hints", Static)
        if not name:
            hints.update("No targets configured.")
            return
        lines = Text().append(name, style="bold")
        target = self.model.targets.get(name)
        if target is not None:  # in full: the table may have cut the address
            lines.append(f" ({self._where(target, compact=True)}, {target.scheduler()}, base_path {target.base_path})")
        health = self.model.health.get(name)
        if health is None:
            hints.update(lines.append(": checking…"))
            return
        failing = [c for c in health.checks if not c.ok]
        if not failing:
            lines.append(": all checks passed. Enter picks it, then a Lab to run there.\n")
        else:
            lines.append(f": {len(failing)} check(s) failed — try:\n")
        for check in health.checks:
            lines.append(
                f"  {'✓' if check.ok else '✗'} {check.name}: {check.detail}\n", style="green" if check.ok else "red"
            )
            if check.hint and not check.ok:
                lines.append(f"      $ {check.hint}\n", style="bold")
        hints.update(lines)

    def action_pick(self) -> None:
        name = self.selected_target()
        if name:
            self.post_message(TargetPicked(name))

    def action_recheck(self) -> None:
        self.post_message(CheckTargets())

    def action_cursor_down(self) -> None:
        self.query_one(FitTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one(FitTable).action_cursor_up()
