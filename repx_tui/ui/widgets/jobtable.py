"""A virtual table for many rows: only the lines on screen are ever rendered.

Textual's DataTable measures every cell it is given (and, for a cell that shrinks, every cell of
its column again), so 10,000 rows with a few hundred updates per refresh cost seconds. Here
columns have widths decided by the screen from the terminal width, rows are plain dicts of
cells, and `render_line` draws a row only when it is visible: setting all rows is O(n) in plain
Python with no measuring and no cells built (a row's cells are asked for when it is drawn), and a
changed row costs one line repaint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, KeysView
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = Text | str
Row = dict[str, Cell]
SPAN = "\x00span"  # a row's SPAN entry names the column whose cell runs to the end of the line


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int


class JobTable(ScrollView, can_focus=True):
    """Rows keyed by string; a fixed header line; a row cursor kept on its key across changes."""

    BINDINGS = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "go_top", "Top", show=False),
        Binding("end", "go_end", "End", show=False),
        Binding("enter", "select", "Select", show=False),
    ]
    COMPONENT_CLASSES = {"job-table--header", "job-table--cursor", "job-table--even", "job-table--group"}
    DEFAULT_CSS = """
    JobTable {
        background: $surface;
        color: $foreground;
        height: 1fr;
        overflow-x: hidden;
        & > .job-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .job-table--even { background: $surface-lighten-1 50%; }
        & > .job-table--group { text-style: bold; background: $primary 15%; }
        & > .job-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .job-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """

    class RowSelected(Message):
        """Enter (or a click on the cursor row) on a row."""

        def __init__(self, table: JobTable, row_key: str) -> None:
            super().__init__()
            self.table = table
            self.row_key = row_key

        @property
        def control(self) -> JobTable:
            return self.table

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.columns: list[Column] = []
        self._keys: list[str] = []  # display order
        self._index: dict[str, int] = {}  # key -> position, same order as _keys
        self._row_of: Callable[[str], Row] = lambda _key: {}
        self._groups: set[str] = set()  # keys of group (run) rows, drawn bold
        self.cursor_row = 0
        self._strips: dict[tuple[str, int], Strip] = {}  # (key, style state) -> rendered line
        self._styles: dict[tuple[str, bool], Style] = {}

    # --- data -------------------------------------------------------------------------

    @property
    def rows(self) -> KeysView[str]:
        """Row keys in display order (a view: `in` is O(1))."""
        return self._index.keys()

    @property
    def row_count(self) -> int:
        return len(self._keys)

    def set_columns(self, columns: Iterable[Column]) -> None:
        self.columns = list(columns)
        self._strips.clear()
        self.refresh()

    def set_rows(self, keys: Iterable[str], row_of: Callable[[str], Row], groups: Iterable[str] = ()) -> None:
        """Show these rows, in this order; `row_of(key)` gives a row's cells when it is drawn.

        The cursor stays on the same key when it is still shown."""
        current = self.cursor_key
        self._keys = list(keys)
        self._index = {key: n for n, key in enumerate(self._keys)}
        self._row_of = row_of
        self._groups = set(groups)
        self._strips.clear()
        self.virtual_size = Size(self.size.width, len(self._keys) + 1)
        target = self._index.get(current, min(self.cursor_row, max(len(self._keys) - 1, 0))) if current else 0
        self.move_cursor(row=target)
        self.refresh()

    def refresh_row(self, key: str) -> None:
        """The row's cells changed: draw it again if it is on screen."""
        index = self._index.get(key)
        if index is None:
            return
        for state in (0, 1, 2):
            self._strips.pop((key, state), None)
        self._refresh_row(index)

    def get_cell(self, key: str, column: str) -> Cell:
        if key not in self._index:
            raise KeyError(key)
        return self._row_of(key)[column]

    def get_row_index(self, key: str) -> int:
        return self._index[key]

    def key_at(self, index: int) -> str:
        return self._keys[index]

    # --- cursor -----------------------------------------------------------------------

    @property
    def cursor_key(self) -> str | None:
        return self._keys[self.cursor_row] if 0 <= self.cursor_row < len(self._keys) else None

    def move_cursor(self, *, row: int, animate: bool = False) -> None:
        old = self.cursor_row
        self.cursor_row = max(0, min(row, len(self._keys) - 1))
        self._refresh_row(old)
        self._refresh_row(self.cursor_row)
        self._scroll_cursor_into_view()

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_cursor_into_view(self) -> None:
        top, page = round(self.scroll_y), self._page()
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + page:
            self.scroll_to(y=self.cursor_row - page + 1, animate=False, immediate=True)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self.cursor_row + 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self.cursor_row - 1)

    def action_page_down(self) -> None:
        self.move_cursor(row=self.cursor_row + self._page())

    def action_page_up(self) -> None:
        self.move_cursor(row=self.cursor_row - self._page())

    def action_go_top(self) -> None:
        self.move_cursor(row=0)

    def action_go_end(self) -> None:
        self.move_cursor(row=len(self._keys) - 1)

    def action_select(self) -> None:
        if self.cursor_key is not None:
            self.post_message(self.RowSelected(self, self.cursor_key))

    def on_click(self, event: events.Click) -> None:
        row = round(self.scroll_y) + event.y - 1
        if event.y == 0 or not 0 <= row < len(self._keys):
            return
        if row == self.cursor_row and event.chain > 1:
            self.action_select()
        self.move_cursor(row=row)

    # --- rendering --------------------------------------------------------------------

    def on_resize(self, _event: events.Resize) -> None:
        self.virtual_size = Size(self.size.width, len(self._keys) + 1)
        self._strips.clear()
        self._scroll_cursor_into_view()

    def _refresh_row(self, index: int) -> None:
        y = index - round(self.scroll_y) + 1
        if 1 <= y < self.size.height:
            self.refresh_line(y)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            return self._header(width)
        index = round(self.scroll_y) + y - 1
        if index >= len(self._keys):
            return Strip.blank(width, self.rich_style)
        key = self._keys[index]
        state = 2 if index == self.cursor_row else index % 2
        cached = self._strips.get((key, state))
        if cached is None or cached.cell_length != width:
            cached = self._strips[(key, state)] = self._render_row(key, state, width)
        return cached

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._strips.clear()

    def _style(self, name: str) -> Style:
        """Component styles, looked up once per focus state rather than once per line."""
        key = (name, self.has_focus)
        style = self._styles.get(key)
        if style is None:
            style = self._styles[key] = self.rich_style if name == "base" else self.get_component_rich_style(name)
        return style

    def _header(self, width: int) -> Strip:
        cells: list[Cell] = [c.label for c in self.columns]
        return self._line(cells, [c.width for c in self.columns], width, self._style("job-table--header"))

    def _render_row(self, key: str, state: int, width: int) -> Strip:
        base = self._style("base")
        if key in self._groups:
            base += self._style("job-table--group")
        if state == 1:
            base += self._style("job-table--even")
        cursor = self._style("job-table--cursor") if state == 2 else None
        row = self._row_of(key)
        span = row.get(SPAN)
        cells: list[Cell] = []
        widths: list[int] = []
        for column in self.columns:
            cells.append(row.get(column.key, ""))
            if column.key == span:
                widths.append(width - sum(widths) - len(widths))
                break
            widths.append(column.width)
        return self._line(cells, widths, width, base, cursor)

    def _line(self, cells: list[Cell], widths: list[int], width: int, base: Style, over: Style | None = None) -> Strip:
        segments: list[Segment] = []
        for n, (cell, cell_width) in enumerate(zip(cells, widths)):
            if n:
                segments.append(_GAP)
            segments.extend(_fit(cell, max(cell_width, 0), self.app.console))
        segments = Segment.adjust_line_length(segments, width, pad=True)
        return Strip(Segment.apply_style(segments, base, over), width).simplify()


_GAP = Segment(" ")


def _fit(cell: Cell, width: int, console) -> list[Segment]:
    """One cell as segments exactly `width` cells wide; an ellipsis marks a cut."""
    if isinstance(cell, str):
        if cell_len(cell) > width:
            cell = set_cell_size(cell, width - 1) + "…" if width else ""
        return [Segment(set_cell_size(cell, width))]
    if cell.cell_len > width:
        cell = cell.copy()
        cell.truncate(width, overflow="ellipsis")
    return Segment.adjust_line_length(list(cell.render(console)), width, pad=True)
