"""Targets: every configured target with its health checks, checked in parallel; Enter picks one."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from repx_tui.backend.config import Target
from repx_tui.backend.events import TargetHealth
from repx_tui.ui.messages import BackendUpdate, CheckTargets, TargetPicked, TargetsChecking
from repx_tui.ui.model import TargetsModel
from repx_tui.ui.widgets.footer import StableFooter

if TYPE_CHECKING:
    from repx_tui.ui.app import RepxApp

CHECKS = ("reachable", "scheduler", "base_path", "free_space")


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

    def compose(self) -> ComposeResult:
        yield Static("Targets", id="title", classes="title")
        yield DataTable(id="targets", cursor_type="row", zebra_stripes=True)
        yield Static("", id="hints", classes="panel")
        yield StableFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("target", key="name")
        table.add_column("where", key="where")
        for check in CHECKS:
            table.add_column(check.replace("_", " "), key=check)
        for target in self.model.targets.values():
            table.add_row(*self._row(target), key=target.name)
        for health in self.model.health.values():
            self.show_health(health)
        self._update_hints()
        self.post_message(CheckTargets(only_unchecked=True))

    def on_backend_update(self, message: BackendUpdate) -> None:
        if isinstance(message.event, TargetHealth):
            self.show_health(message.event)

    def on_targets_checking(self, message: TargetsChecking) -> None:
        self.show_checking(message.names)

    def _row(self, target: Target) -> list:
        where = "this machine" if target.is_local else target.address
        checking = Text("… checking", style="grey50")
        # base_path is not repeated here: the "base path" check shows it (or why it is unusable)
        return [self._name_cell(target.name), f"{where} ({target.scheduler()})"] + [checking] * 4

    def _name_cell(self, name: str) -> Text:
        """The target picked is marked: its jobs are the ones the Jobs screen shows."""
        return Text(("● " if name == self.model.current else "  ") + name, style="bold")

    def on_screen_resume(self) -> None:
        table = self.query_one(DataTable)
        for name in self.model.targets:
            if name in table.rows:
                table.update_cell(name, "name", self._name_cell(name))

    def _cell_width(self) -> int:
        """Check cells share what the name and where columns leave, so the table fits 80 columns;
        the panel below shows each check's full text."""
        table = self.query_one(DataTable)
        fixed = sum(c.get_render_width(table) for c in list(table.columns.values())[:2])
        return max(10, (self.size.width - 2 - fixed) // len(CHECKS) - 2)

    def show_health(self, health: TargetHealth) -> None:
        if not self.is_mounted:
            return
        table = self.query_one(DataTable)
        if health.target not in table.rows:
            return
        by_name = {c.name: c for c in health.checks}
        width = self._cell_width()
        for check in CHECKS:
            result = by_name.get(check)
            if result is None:
                cell = Text("– not checked", style="grey50")
            elif result.ok:
                cell = Text(f"✓ {result.detail}", style="green")
            else:
                cell = Text(f"✗ {result.detail}", style="bold red")
            cell.truncate(width, overflow="ellipsis")
            table.update_cell(health.target, check, cell, update_width=True)
        self._update_hints()

    def show_checking(self, names: list[str]) -> None:
        if not self.is_mounted:
            return
        table = self.query_one(DataTable)
        for name in names:
            for check in CHECKS:
                table.update_cell(name, check, Text("… checking", style="grey50"))

    def selected_target(self) -> str | None:
        table = self.query_one(DataTable)
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
        health = self.model.health.get(name) if name else None
        hints = self.query_one("#hints", Static)
        if health is None:
            hints.update(f"[b]{name or ''}[/b]: checking…" if name else "No targets configured.")
            return
        failing = [c for c in health.checks if not c.ok]
        if not failing:
            lines = Text.from_markup(f"[b]{name}[/b]: all checks passed. Enter picks it, then a Lab to run there.\n")
        else:
            lines = Text.from_markup(f"[b]{name}[/b]: {len(failing)} check(s) failed — try:\n")
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
        self.query_one(DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one(DataTable).action_cursor_up()
