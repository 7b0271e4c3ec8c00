"""`?`: every key of the app and of the screen underneath, generated from the bindings."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from repx_tui.ui.screens.jobactions import ACTION_MENU, GO_MENU

# Keys handled by widgets rather than bindings, listed so the help is complete.
EXTRA_KEYS = {
    "Jobs": [("enter", "inspect the job (on a run row: fold it); o opens its logs"), ("↑/↓ PgUp/PgDn", "move")],
    "Inspector": [("↑/↓", "move in the list of jobs and units"), ("enter", "jump to that job / open that unit's log")],
    "Targets": [("↑/↓", "move")],
}
# The menus' own entries, so the help never lists fewer keys than the menus have.
MENU_KEYS = {
    "Space menu (Jobs)": [(key, label) for key, label, _action in ACTION_MENU],
    "g menu": [(key, label) for key, label, _action in GO_MENU],
}


def _pretty(key: str) -> str:
    names = {"slash": "/", "percent_sign": "%", "period": ".", "question_mark": "?", "space": "Space"}
    return ", ".join(names.get(k, k) for k in key.split(","))


def bindings_table(title: str, bindings, extra=()) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    seen: set[tuple[str, str | None]] = {
        (key, None) for key, _text in extra
    }  # a key explained below is not listed twice
    for b in bindings:
        b = b if isinstance(b, Binding) else Binding(*b)
        if (b.key, b.action) in seen or (b.key, None) in seen:
            continue
        seen.add((b.key, b.action))
        table.add_row(_pretty(b.key), b.description or b.action)
    for key, text in extra:
        table.add_row(key, text)
    return table


def screen_only(bindings, app_bindings) -> list[Binding]:
    """A screen's bindings less those that repeat an App key with the App's action (the Jobs
    screen binds `?` to app.help so its key bar shows it): those are listed under Everywhere."""
    app_keys = {(b.key, b.action) for b in (b if isinstance(b, Binding) else Binding(*b) for b in app_bindings)}
    own = [b if isinstance(b, Binding) else Binding(*b) for b in bindings]
    return [b for b in own if (b.key, b.action.removeprefix("app.")) not in app_keys]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        name = getattr(self.under, "HELP_TITLE", type(self.under).__name__.removesuffix("Screen"))
        with VerticalScroll(id="help-box", classes="dialog"):
            yield Static("[b]Keys[/b]   (↑/↓ PgUp/PgDn scroll, Esc closes)", classes="title")
            own = screen_only(self.under.BINDINGS, self.app.BINDINGS)
            yield Static(bindings_table(f"{name} screen", own, EXTRA_KEYS.get(name, ())))
            for title, keys in MENU_KEYS.items():
                yield Static(bindings_table(title, [], keys))
            yield Static(bindings_table("Everywhere", self.app.BINDINGS))

    def action_close(self) -> None:
        self.dismiss(None)
