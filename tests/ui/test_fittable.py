"""FitTable and fit_widths: columns cut to the width shown, the long (flex) column first given
what the others leave, full values kept (tooltip, full_cell) and shown again when there is room."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.text import Text
from textual.app import App, ComposeResult

from repx_tui.ui.widgets.fittable import FitTable, fit_widths
from tests.helpers import async_wait_until

columns = st.lists(st.tuples(st.integers(1, 60), st.integers(1, 60)), min_size=1, max_size=8)


@settings(deadline=None, max_examples=300)
@given(columns, st.integers(0, 200), st.data())
def test_fit_widths_stays_between_minimum_and_natural_and_fits_when_it_can(spec, available, data):
    natural = [want for want, _ in spec]
    minimum = [low for _, low in spec]
    flex = data.draw(st.none() | st.integers(0, len(spec) - 1))
    widths = fit_widths(available, natural, minimum, flex)
    floor = [min(low, want) for low, want in zip(minimum, natural)]
    assert all(low <= got <= want for low, got, want in zip(floor, widths, natural))
    if sum(natural) <= available:
        assert widths == natural
    elif sum(floor) <= available:
        assert sum(widths) <= available
        # no cell is wasted while a column is still cut (up to the rounding of equal shares)
        assert available - sum(widths) < len(spec) or widths == natural
    else:
        assert widths == floor  # too narrow for the minimums: nothing is cut below them
    if flex is not None and sum(floor) <= available and sum(natural) > available:
        # the flex column got what the others' minimums leave, up to what it wants
        assert widths[flex] == min(natural[flex], available - (sum(floor) - floor[flex]))


def test_fit_widths_gives_the_flex_column_the_rest():
    # an address (flex) and three checks of which two are long: the address is whole, the
    # short check too, the long ones share the rest
    assert fit_widths(60, [20, 7, 30, 30], [10, 7, 9, 9], flex=0) == [20, 7, 16, 17]
    assert fit_widths(40, [30, 7, 30, 30], [10, 7, 9, 9], flex=0) == [15, 7, 9, 9]


class OneTable(App):
    def compose(self) -> ComposeResult:
        yield FitTable(id="t", flex="path", cursor_type="row")


async def test_fit_table_cuts_keeps_and_restores_full_values():
    app = OneTable()
    async with app.run_test(size=(40, 10)) as pilot:
        table = app.query_one(FitTable)
        table.add_column("name", key="name")
        table.add_column("path", key="path", min_width=6)
        table.add_column("note", key="note", min_width=4)
        table.add_row("a", "/short", "ok", key="a")
        await pilot.pause()
        assert table.get_cell("a", "path") == "/short" and table.virtual_size.width <= 40
        long_path = "/scratch/researcher/repx/outputs/0003-stage-C/out"
        table.add_row("b", long_path, Text("✓ fine", style="green"), key="b")
        await pilot.pause()
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert str(table.get_cell("b", "path")).endswith("…") and table.full_cell("b", "path") == long_path
        # 40 cells less 2 of padding per column: the name whole, the note at its minimum, the path the rest
        assert table.column_widths() == {"name": 4, "path": 26, "note": 4}
        assert table.get_cell("b", "note").plain == "✓ f…"
        table.move_cursor(row=1)
        table.update_cell("b", "name", "bbbbbbbb")  # a wider name: the path gives the room up (a rebuild)
        await pilot.pause()
        assert table.column_widths() == {"name": 8, "path": 22, "note": 4} and table.cursor_row == 1
        assert table.virtual_size.width <= table.scrollable_content_region.width
        await pilot.hover(FitTable, offset=(10, 2))
        assert table.tooltip is not None and long_path in str(table.tooltip)
        table.remove_row("b")
        await async_wait_until(lambda: table.get_cell("a", "path") == "/short", timeout=5)
        await pilot.resize_terminal(120, 10)
        table.add_row("c", long_path, "", key="c")
        await pilot.pause()
        assert table.get_cell("c", "path") == long_path  # room enough: as given
