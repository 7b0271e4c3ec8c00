"""A DataTable that fits the width it is shown in, so no screen needs horizontal scrolling at 80 columns.

Cells are given in full; when the columns' contents are wider than the table, the table shows
them cut with an ellipsis: first the flexible column (an address, a path, a job id: the long
value) gives up what the others need, then the other cuttable columns share what is left,
smallest need first. Columns without a minimum are never cut. Hovering a row shows its cut
values in full as the tooltip. When everything fits (a wide terminal) nothing is cut.

Every column has a width set here (DataTable's `Column.width`, not its auto width): DataTable
measures auto widths only when idle and keeps rows drawn in between, and it never narrows an
auto column. A width changes on a resize or when an update changes how wide a column wants to
be, never per update; then that column's cells are written again, cut to the new width.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import count, zip_longest
from typing import Any, Self

from rich.text import Text
from textual import events
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

UNLIMITED = 1 << 30
_row_numbers = count()


def fit_widths(available: int, natural: Sequence[int], minimum: Sequence[int], flex: int | None = None) -> list[int]:
    """Content widths for columns that want `natural` cells and can do with `minimum` (a minimum
    at or above the natural width: never cut). All natural widths when they fit in `available`.
    Otherwise each column starts at its minimum, the flex column takes what is left up to its
    natural width, and the rest goes to the other columns, smallest need first, so short values
    show whole and the long ones share the cut."""
    if sum(natural) <= available:
        return list(natural)
    widths = [min(low, want) for low, want in zip(minimum, natural)]
    room = available - sum(widths)
    if flex is not None and room > 0:
        grow = min(natural[flex] - widths[flex], room)
        widths[flex] += grow
        room -= grow
    needy = sorted((i for i, want in enumerate(natural) if widths[i] < want), key=lambda i: natural[i] - widths[i])
    for taken, i in enumerate(needy):
        if room <= 0:
            break
        grow = min(natural[i] - widths[i], room // (len(needy) - taken))
        widths[i] += grow
        room -= grow
    return widths


def as_text(cell: object) -> Text:
    """A cell as DataTable shows it: a str is markup, a Text stays, anything else is its str."""
    if isinstance(cell, Text):
        return cell
    if isinstance(cell, str):
        return Text.from_markup(cell)
    return Text(str(cell))


def cell_width(cell: object) -> int:
    return 0 if cell is None else max((Text(line).cell_len for line in as_text(cell).plain.splitlines()), default=0)


def cut(cell: Any, width: int) -> Any:
    """The cell as it fits `width` cells: as it is when it fits, else cut with an ellipsis."""
    if cell is None or cell_width(cell) <= width:
        return "" if cell is None else cell
    text = as_text(cell).copy()
    text.truncate(width, overflow="ellipsis")
    return text


class FitTable(DataTable):
    """A DataTable that never needs horizontal scrolling (see the module's docstring).

    `flex` names the column that takes the width the others leave; `add_column(min_width=N)`
    makes a column cuttable down to N cells (its header always shows whole). `full_cell` gives
    a cell as it was given; `get_cell` as it is shown.
    """

    # Never a horizontal scrollbar, not even for the moment before the first fit: it would stay
    # (the table's size does not change when only its content gets narrower).
    DEFAULT_CSS = """
    FitTable { overflow-x: hidden; }
    """

    def __init__(self, *args: Any, flex: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flex = flex
        self._labels: dict[ColumnKey, Text] = {}
        self._minimum: dict[ColumnKey, int | None] = {}
        self._full: dict[RowKey, dict[ColumnKey, Any]] = {}
        self._cell_widths: dict[ColumnKey, dict[RowKey, int]] = {}
        self._natural: dict[ColumnKey, int] = {}

    # --- DataTable's calls, with the cells kept in full ---------------------------------------

    def add_column(
        self,
        label: str | Text,
        *,
        width: int | None = None,
        key: str | None = None,
        default: Any = None,
        min_width: int | None = None,
    ) -> ColumnKey:
        """A column; `width` is decided here (what the column's cells want, as far as it fits)."""
        text = as_text(label)
        column_key = super().add_column(label, width=text.cell_len, key=key, default=default)
        self._labels[column_key] = text
        self._minimum[column_key] = min_width
        self._cell_widths[column_key] = {}
        self._natural[column_key] = text.cell_len
        for row_key in self._full:
            self._store(row_key, column_key, default)
        self._refit()
        return column_key

    def add_row(
        self, *cells: Any, height: int | None = 1, key: str | None = None, label: str | Text | None = None
    ) -> RowKey:
        row_key = RowKey(key if key is not None else f"\x00row-{next(_row_numbers)}")
        if row_key in self._full:
            return super().add_row(*cells, key=key)  # raises DuplicateKey as DataTable does
        self._full[row_key] = {}
        for column_key, cell in zip_longest(list(self.columns), cells):
            self._store(row_key, column_key, cell)
        widths = self._refit(adding=row_key)
        cut_cells = [cut(self._full[row_key][key], widths[key]) for key in self.columns]
        return super().add_row(*cut_cells, height=height, key=row_key.value, label=label)

    def update_cell(
        self, row_key: RowKey | str, column_key: ColumnKey | str, value: Any, *, update_width: bool = False
    ) -> None:
        row, column = RowKey(str(row_key)), ColumnKey(str(column_key))
        if row not in self._full or column not in self._cell_widths:
            super().update_cell(row_key, column_key, value, update_width=update_width)  # raises as DataTable does
            return
        self._store(row, column, value)
        widths = self._refit()
        super().update_cell(row, column, cut(value, widths[column]))

    def remove_row(self, row_key: RowKey | str) -> None:
        row = RowKey(str(row_key))
        super().remove_row(row)
        self._full.pop(row, None)
        for column_key, widths in self._cell_widths.items():
            if widths.pop(row, -1) >= self._natural[column_key]:
                self._natural[column_key] = max([self._labels[column_key].cell_len, *widths.values()])
        self._refit()

    def clear(self, columns: bool = False) -> Self:
        super().clear(columns)
        self._full.clear()
        if columns:
            for store in (self._labels, self._minimum, self._cell_widths, self._natural):
                store.clear()
        for column_key, label in self._labels.items():
            self._cell_widths[column_key] = {}
            self._natural[column_key] = label.cell_len
        return self

    def full_cell(self, row_key: RowKey | str, column_key: ColumnKey | str) -> Any:
        """The cell as it was given, before any cut."""
        return self._full[RowKey(str(row_key))][ColumnKey(str(column_key))]

    def column_widths(self) -> dict[str, int]:
        """Each column's content width as shown now (padding excluded)."""
        return {str(key.value): column.width for key, column in self.columns.items()}

    # --- fitting --------------------------------------------------------------------------

    def _store(self, row: RowKey, column: ColumnKey, cell: Any) -> None:
        self._full[row][column] = cell
        width = cell_width(cell)
        widths = self._cell_widths[column]
        old = widths.get(row, 0)
        widths[row] = width
        if width >= self._natural[column]:
            self._natural[column] = width
        elif old >= self._natural[column]:  # the widest value got narrower
            self._natural[column] = max([self._labels[column].cell_len, *widths.values()])

    def _available(self) -> int | None:
        """Cells for the columns' contents: the width less padding, and less the vertical scrollbar
        when the rows will not fit the height (counted here: DataTable knows only once it drew)."""
        if not self.size.width:
            return None
        gutter = self.styles.gutter
        rows_shown = self.size.height - gutter.height - (1 if self.show_header else 0)
        scrollbar = self.styles.scrollbar_size_vertical if len(self._full) > rows_shown else 0
        return self.size.width - gutter.width - scrollbar - 2 * self.cell_padding * len(self.columns)

    def _widths(self) -> dict[ColumnKey, int]:
        keys = list(self.columns)
        natural = [self._natural[key] for key in keys]
        available = self._available()
        if available is None:  # not laid out yet: the first resize fits it
            return dict(zip(keys, natural))
        minimum = []
        for key, want in zip(keys, natural):
            low = self._minimum[key]
            minimum.append(want if low is None else max(low, self._labels[key].cell_len))
        flex = keys.index(ColumnKey(self.flex)) if self.flex is not None and self.flex in self.columns else None
        return dict(zip(keys, fit_widths(available, natural, minimum, flex)))

    def _refit(self, adding: RowKey | None = None) -> dict[ColumnKey, int]:
        """Set the columns' widths; a column whose width changed gets its cells written again,
        cut to it (`adding`: a row not in DataTable yet). Returns the widths."""
        widths = self._widths()
        changed = [key for key, width in widths.items() if self.columns[key].width != width]
        for key in changed:
            self.columns[key].width = widths[key]
            for row, cells in self._full.items():
                if row != adding:
                    super().update_cell(row, key, cut(cells[key], widths[key]))
        if changed and self.row_count:  # DataTable sums the widths again (the virtual width) once idle
            first = next(iter(self.rows))
            super().update_cell(first, changed[0], self.get_cell(first, changed[0]), update_width=True)
        elif changed:
            self.refresh()
        return widths

    def on_resize(self, _event: events.Resize) -> None:
        self._refit()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        """The hovered row's cut values in full, as the tooltip."""
        row = event.style.meta.get("row") if event.style.meta else None
        if not isinstance(row, int) or not 0 <= row < self.row_count:
            self.tooltip = None
            return
        cells = self._full.get(self.coordinate_to_cell_key(Coordinate(row, 0)).row_key, {})
        cut_values = [
            as_text(cells[key]).plain for key in self.columns if cell_width(cells.get(key)) > self.columns[key].width
        ]
        self.tooltip = "\n".join(cut_values) or None
