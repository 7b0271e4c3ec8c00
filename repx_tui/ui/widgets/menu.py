"""The Space (actions) and g (go to) menus: one key picks an entry, like upstream RepX's popups."""

from __future__ import annotations

from rich.table import Table
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class KeyMenu(ModalScreen[str | None]):
    """Shows (key, label, action) entries; dismisses with the chosen action, or None."""

    def __init__(self, title: str, entries: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.entries = entries

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        for _ in range(3):
            table.add_column()
            table.add_column()
        cells = []
        for key, label, _action in self.entries:
            cells += [f"[b black on yellow] {key} [/]", label]
        for i in range(0, len(cells), 6):
            row = cells[i : i + 6]
            table.add_row(*(row + [""] * (6 - len(row))))
        with Vertical(classes="menu"):
            yield Static(f"[b]{self.title_text}[/b]   (Esc closes)")
            yield Static(table)

    def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        if event.key in ("escape", "space", "q"):
            self.dismiss(None)
            return
        for key, _label, action in self.entries:
            if event.character == key or event.key == key:
                self.dismiss(action)
                return
