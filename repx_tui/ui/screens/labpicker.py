"""Lab picker: the Labs found (`./result`, `result*` links, recent ones) with what each holds and
how much of it the chosen target has, and a folder browser for any other Lab directory or tar.

On mount it posts DescribeLabs up; each LabDescribed that comes down fills a row (read from the
Lab, then probed on the target). Dismissed with the chosen path (the App opens it) or None.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, DirectoryTree, Static, Tree

from repx_tui.backend.events import LabPresence
from repx_tui.ui import format as fmt
from repx_tui.ui.labsources import LabCandidate, looks_like_lab, shown_path
from repx_tui.ui.messages import DescribeLabs, LabDescribed, LabInfo
from repx_tui.ui.widgets.footer import StableFooter

# (key, header, width); the path takes what is left
COLUMNS = (("from", "from", 10), ("path", "Lab", 0), ("id", "lab id", 10), ("git", "git", 7), ("runs", "runs", 4),
           ("jobs", "jobs", 5), ("there", "on target", 14))  # fmt: skip
NARROW_DROPS = ("git", "runs")  # under 90 columns: the panel below the table shows them


class LabBrowser(DirectoryTree):
    """Folders (not hidden ones) and tars; the root is labelled as it reads from here (`.`, `~/x`)."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".") and (self._safe_is_dir(p) or looks_like_lab(p))]

    def label_root(self) -> None:
        self.root.set_label(shown_path(str(Path(self.path).absolute())))

    async def watch_path(self) -> None:
        await super().watch_path()
        self.label_root()


class LabRow:
    """What is known of one candidate so far."""

    def __init__(self, candidate: LabCandidate) -> None:
        self.candidate = candidate
        self.info: LabInfo | None = None
        self.error: str | None = None
        self.presence: LabPresence | None = None
        self.presence_error: str | None = None


class LabPickerScreen(Screen[str | None]):
    AUTO_FOCUS = "#labs"
    HELP_TITLE = "Lab picker"
    BINDINGS = [
        Binding("enter", "open", "Open", show=False),  # the table and the tree answer Enter themselves
        Binding("tab", "switch_pane", "Found ⇄ browse"),
        Binding("backspace", "parent", "Up a folder"),
        Binding("r", "recheck", "Re-check"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("escape", "close", "Back"),
    ]
    DEFAULT_CSS = """
    #labs { height: auto; max-height: 40%; }
    #lab-detail { height: auto; max-height: 7; }
    #browser { height: 1fr; border-top: solid $primary; }
    """

    def __init__(self, candidates: list[LabCandidate], target: str | None, browse_root: Path) -> None:
        super().__init__()
        self.rows = {c.path: LabRow(c) for c in candidates}
        self.browsed: dict[str, LabRow] = {}  # Labs highlighted in the folder browser, described on the way
        self.target = target
        self.browse_root = browse_root
        self.columns = list(COLUMNS)

    def compose(self) -> ComposeResult:
        where = f" to run on {self.target}" if self.target else ""
        yield Static(f"Open a Lab{where}", id="title", classes="title")
        yield DataTable(id="labs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="lab-detail", classes="panel")
        yield LabBrowser(self.browse_root, id="browser")
        yield StableFooter()

    def on_mount(self) -> None:
        table = self.query_one("#labs", DataTable)
        self.columns = [c for c in COLUMNS if self.size.width >= 90 or c[0] not in NARROW_DROPS]
        path_width = max(12, self.size.width - sum(w + 2 for _k, _l, w in self.columns) - 6)  # - its padding, scrollbar
        for key, label, width in self.columns:
            table.add_column(label, key=key, width=width or path_width)
        for path, row in self.rows.items():
            table.add_row(*self._cells(row), key=path)
        self.query_one(LabBrowser).label_root()
        if not self.rows:  # nothing found (not even the demo): the browser is the way on
            self.query_one(LabBrowser).focus()
        self._show_detail()
        self._describe()

    def _describe(self) -> None:
        if self.rows:
            self.post_message(DescribeLabs(list(self.rows)))

    # --- rows -------------------------------------------------------------------------------

    def _cells(self, row: LabRow) -> list:
        """The row's cells for the columns shown."""
        info = row.info
        cells: dict[str, Text | str] = {
            "from": Text(row.candidate.origin, style="bold" if row.candidate.origin.startswith("./") else ""),
            "path": Text(_where(row.candidate), overflow="ellipsis", no_wrap=True),
            "there": self._there(row),
        }
        if info is None and _unwritten_demo(row):
            cells["there"] = Text("–", style="grey50")
        elif info is None:
            waiting = Text("✗ not a Lab", style="red") if row.error else Text("… reading", style="grey50")
            cells["id"] = Text(row.candidate.lab_id[:10]) if row.candidate.lab_id else waiting
        else:
            cells.update(id=info.lab_id[:10], git=info.git_hash[:7], runs=str(len(info.runs)), jobs=str(info.jobs))
        return [cells.get(key, "") for key, _label, _width in self.columns]

    def _there(self, row: LabRow) -> Text:
        """How much of the Lab the chosen target has, in a few cells."""
        if self.target is None or row.error:
            return Text("–", style="grey50")
        if row.presence_error:
            return Text("? not answering", style="yellow")
        presence = row.presence
        if presence is None:
            return Text("… checking", style="grey50")
        if presence.current and presence.layers_there == presence.layers_total:
            return Text("✓ all there", style="green")
        if presence.current or presence.layers_there:  # the panel below says it in full
            layers = f"{presence.layers_there}/{presence.layers_total} layers" if presence.layers_total else ""
            return Text(f"◐ {'Lab, ' if presence.current else ''}{layers}".rstrip(", "), style="yellow")
        return Text("✗ not there", style="grey50")

    def on_lab_described(self, message: LabDescribed) -> None:
        row = self.rows.get(message.path)
        if row is None:
            self._browsed_described(message)
            return
        _answered(row, message)
        table = self.query_one("#labs", DataTable)
        for (key, _label, _width), cell in zip(self.columns, self._cells(row)):
            table.update_cell(message.path, key, cell)
        self._show_detail()

    # --- the panel under the table --------------------------------------------------------------

    def highlighted(self) -> str | None:
        table = self.query_one("#labs", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#lab-detail", Static)
        path = self.highlighted()
        if path is None:
            detail.update(Text.from_markup(
                "No Lab found here ([b]./result[/b] or a recent one). Browse to a Lab directory or tar below "
                "([b]Tab[/b]), or leave and try [b]repx-tui demo[/b]."))  # fmt: skip
            return
        detail.update(describe(self.rows[path], self.target))

    def _described(self, row: LabRow) -> bool:
        if row.error or row.presence_error or row.presence is not None:
            return True
        return row.info is not None and self.target is None

    def _browsed_described(self, message: LabDescribed) -> None:
        row = self.browsed.get(message.path)
        if row is None:
            return
        _answered(row, message)
        tree = self.query_one(LabBrowser)
        node = tree.cursor_node
        shown = node.data.path if node is not None and node.data is not None else None
        if tree.has_focus and shown is not None and str(Path(shown).absolute()) == message.path:
            self.query_one("#lab-detail", Static).update(describe(row, self.target))

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if event.node.data is not None and self.query_one(LabBrowser).has_focus:  # the panel speaks of the pane in use
            self._show_browsed(Path(event.node.data.path))

    def _show_browsed(self, path: Path) -> None:
        if looks_like_lab(path):
            key = str(path.absolute())
            row = self.rows.get(key) or self.browsed.setdefault(key, LabRow(LabCandidate(key, "browsed")))
            if key not in self.rows and not self._described(row):  # again if the last ask was replaced unanswered
                self.post_message(DescribeLabs([key], browsed=True))
            text = describe(row, self.target)
        else:
            text = Text.assemble((shown_path(str(path.absolute())), "bold"), ": Enter opens or closes the folder, "
                                 "Backspace goes up; a Lab is a directory with lab/ in it, or its tar.")  # fmt: skip
        self.query_one("#lab-detail", Static).update(text)

    # --- choosing ------------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.dismiss(event.row_key.value)

    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        event.stop()
        if looks_like_lab(event.path):
            self.dismiss(str(event.path.absolute()))

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        if looks_like_lab(event.path):
            self.dismiss(str(event.path.absolute()))
        else:
            self.notify(f"{event.path.name} is not a Lab tar", severity="warning")

    def action_open(self) -> None:
        path = self.highlighted()
        if path is not None:
            self.dismiss(path)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_switch_pane(self) -> None:
        table, tree = self.query_one("#labs", DataTable), self.query_one(LabBrowser)
        if table.has_focus:
            tree.focus()
            node = tree.cursor_node
            if node is not None and node.data is not None:
                self._show_browsed(Path(node.data.path))
        else:
            table.focus()
            self._show_detail()

    def action_parent(self) -> None:
        tree = self.query_one(LabBrowser)
        current = Path(tree.path).absolute()
        if current.parent != current:
            tree.path = current.parent
        tree.focus()

    def action_recheck(self) -> None:
        self.browsed.clear()
        for path, row in self.rows.items():
            row.presence, row.presence_error = None, None
            self.on_lab_described(LabDescribed(path, row.info, row.error))
        self._describe()

    def action_cursor_down(self) -> None:
        widget = self.focused
        if isinstance(widget, (DataTable, Tree)):
            widget.action_cursor_down()

    def action_cursor_up(self) -> None:
        widget = self.focused
        if isinstance(widget, (DataTable, Tree)):
            widget.action_cursor_up()


def _answered(row: LabRow, message: LabDescribed) -> None:
    row.info, row.error = message.info, message.error
    row.presence, row.presence_error = message.presence, message.presence_error


def _unwritten_demo(row: LabRow) -> bool:
    return row.candidate.origin == "demo" and not Path(row.candidate.path).exists()


def _where(candidate: LabCandidate) -> str:
    """What a `./result` link points to (its name is in the first column), else the path."""
    if candidate.origin == "demo" and not Path(candidate.path).exists():
        return "demo Lab (written on Enter)"
    if candidate.origin.startswith("./"):
        return "→ " + shown_path(str(Path(candidate.path).resolve()))
    return shown_path(candidate.path)


def describe(row: LabRow, target: str | None) -> Text:
    """The highlighted Lab in full: where it is, what it holds, how much of it the target has."""
    text = Text()
    text.append(shown_path(row.candidate.path), style="bold")
    real = str(Path(row.candidate.path).resolve())
    text.append(f" → {shown_path(real)}" if real != row.candidate.path else "")
    text.append("\n")
    if row.error:
        text.append(f"✗ {row.error}\n", style="red")
        return text
    info = row.info
    if info is None and _unwritten_demo(row):
        text.append("No Lab found here or among the recent ones. This demo Lab (two runs, an image of three layers)\n"
                    "is what `repx-tui demo` runs: Enter writes it and opens it. Or Tab: browse to your Lab.\n")  # fmt: skip
        return text
    if info is None:
        text.append("reading…\n", style="grey50")
        return text
    runs = ", ".join(f"{name} ({count})" for name, count in info.runs.items())
    text.append(f"Lab {info.lab_id} · git {info.git_hash[:12]} · {info.jobs} jobs · runs: {runs}")
    text.append(f" · groups: {', '.join('@' + g for g in info.groups)}\n" if info.groups else "\n")
    if target is not None:
        text.append_text(_presence_line(row, target))
    text.append("Enter opens it", style="grey50")
    return text


def _presence_line(row: LabRow, target: str) -> Text:
    if row.presence_error:
        return Text(f"On {target}: not known ({row.presence_error})\n", style="yellow")
    presence = row.presence
    if presence is None:
        return Text(f"On {target}: checking…\n", style="grey50")
    text = Text(f"On {target}: ")
    text.append("the Lab is there and up to date" if presence.current else "the Lab is not there (or not this version)")
    if presence.layers_total:
        text.append(f"; image layers {presence.layers_there} of {presence.layers_total} there")
        missing = presence.layers_total - presence.layers_there
        text.append(f", {fmt.size(presence.bytes_to_send)} to send" if missing else "")
    text.append("\n")
    return text
