"""Every screen at 80x24 (the terminal SSH and HPC users very often have): no table and no
scrolling box is wider than what it shows, so nothing needs horizontal scrolling; the target
picker keeps each target's health and scheduler in sight and its address whole somewhere.

Each screen is driven exactly as in the snapshot tests (fixed state fed through the controller).
"""

from __future__ import annotations

import pytest
from textual.widget import Widget
from textual.widgets import DataTable, Footer

from repx_tui.ui.widgets.fittable import FitTable
from tests.helpers import async_wait_until
from tests.ui.fixed import LONG_ADDRESS, PICKER_CONFIG, fixed_app, picker_app, picker_health_events
from tests.ui.helpers import screen_text
from tests.ui.test_snapshots import SCREENS
from tests.ui.test_workflow_snapshots import SCREENS as WORKFLOW_SCREENS
from tests.ui.test_workflow_snapshots import workspace

CHECK_COLUMNS = ("reachable", "scheduler", "base_path", "free_space")


def too_wide(app) -> list[str]:
    """Every scrollable widget of the screens shown whose content is wider than its visible region
    (the footer excepted: Textual's key bar scrolls by design, `?` lists every key)."""
    found = []
    for screen in app.screen_stack:
        for widget in screen.query(Widget):
            if not widget.is_scrollable or not widget.display or isinstance(widget, Footer):
                continue
            if widget.virtual_size.width > widget.scrollable_content_region.width:
                found.append(f"{type(screen).__name__} #{widget.id}: {widget.virtual_size.width} cells in "
                             f"{widget.scrollable_content_region.width}")  # fmt: skip
    return found


def tables(app) -> list[DataTable]:
    return [table for screen in app.screen_stack for table in screen.query(DataTable)]


async def _first_screen(pilot):
    """`repx-tui` with no target: the target picker, three targets checked (one unreachable)."""
    for event in picker_health_events():
        pilot.app.controller.feed(event)
    await async_wait_until(lambda: len(pilot.app.targets_model.health) == 3, timeout=5)
    await pilot.pause()


ALL_SCREENS = {**SCREENS, **WORKFLOW_SCREENS, "first-screen": _first_screen}


@pytest.mark.parametrize("screen", list(ALL_SCREENS))
async def test_screen_fits_80_columns(screen, tmp_path, monkeypatch):
    workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    app = picker_app() if screen == "first-screen" else fixed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ALL_SCREENS[screen](pilot)
        await pilot.pause()
        assert too_wide(app) == []
        for table in tables(app):
            assert table.virtual_size.width <= table.scrollable_content_region.width, table.id


def column_end(table: DataTable, key: str) -> int:
    """Where the column ends, in cells from the table's left edge as shown."""
    end = 0
    for column in table.ordered_columns:
        end += column.get_render_width(table)
        if column.key.value == key:
            return end - int(table.scroll_x)
    raise KeyError(key)


def shown(table: DataTable, row: str, column: str) -> str:
    cell = table.get_cell(row, column)
    return getattr(cell, "plain", str(cell))


async def test_target_picker_at_80x24_shows_health_scheduler_and_address():
    app = picker_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _first_screen(pilot)
        table = app.screen.query_one("#targets", FitTable)
        visible = table.scrollable_content_region.width
        for name, target in PICKER_CONFIG.targets.items():
            for check in CHECK_COLUMNS:
                assert column_end(table, check) <= visible, f"{name}: {check} is past the edge"
                assert shown(table, name, check)[:1] in "✓✗–…", f"{name}: {check} shows no mark"
            assert target.scheduler() in shown(table, name, "scheduler")  # whole, even when not checked
        assert shown(table, "local", "free_space") == "✓ 120.0 GiB"
        assert shown(table, "cluster", "reachable").startswith("✗")
        # the long address is cut in the table, whole in the tooltip of its row and in the panel
        assert shown(table, "hpc", "where").endswith("…") and LONG_ADDRESS.startswith(shown(table, "hpc", "where")[:-1])
        assert table.full_cell("hpc", "where") == LONG_ADDRESS
        await pilot.hover("#targets", offset=(20, 1 + table.get_row_index("hpc")))
        assert table.tooltip is not None and LONG_ADDRESS in str(table.tooltip)
        table.move_cursor(row=table.get_row_index("hpc"))
        await pilot.pause()
        assert LONG_ADDRESS in screen_text(app) and "/scratch/researcher/repx" in screen_text(app)


async def test_target_picker_keeps_the_wide_layout_and_follows_resizes():
    app = picker_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await _first_screen(pilot)
        table = app.screen.query_one("#targets", FitTable)
        headers = [column.label.plain for column in table.ordered_columns]
        assert headers == ["target", "where", "reachable", "scheduler", "base path", "free space"]
        assert shown(table, "hpc", "where") == f"{LONG_ADDRESS} (slurm)"  # nothing cut when it fits
        await pilot.resize_terminal(80, 24)
        await async_wait_until(lambda: table.ordered_columns[2].label.plain == "reach", timeout=5)
        await pilot.pause()
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert shown(table, "hpc", "scheduler") == "✓ slurm"
        await pilot.resize_terminal(120, 30)
        await async_wait_until(lambda: table.ordered_columns[2].label.plain == "reachable", timeout=5)
        await pilot.pause()
        assert shown(table, "hpc", "where") == f"{LONG_ADDRESS} (slurm)"
        assert shown(table, "hpc", "free_space").startswith("✓ 2.1 TiB")


async def test_inspector_at_80x24_shows_paths_and_links_whole():
    """Paths and the job id wrap in the details (they were cut with "…"); the links pane shows
    job names on one line each (a hash-prefixed id wrapped there, its glyph alone on a line)."""
    app = fixed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await SCREENS["inspector"](pilot)
        await pilot.press(*["ctrl+d"] * 6)  # the details to their end
        await pilot.pause()
        lines = screen_text(app).splitlines()
        details = [line.split("│")[0] for line in lines if "│" in line]
        assert not [line for line in details if "…" in line]
        folded = "".join(line[17:].rstrip(" ▁▂▃▄▅▆▇█") for line in details)  # the values, lines joined
        assert "0003aaaabbbbccccddddeeeeffff0000-stage-C-consumer/repx/stdout.log" in folded
        links = [line.split("│")[1].strip() for line in lines if "│" in line]
        for name in ("stage-A-producer-1", "stage-B-producer", "stage-D-sum-squares"):
            assert any(line.endswith(name) and line[:1] in "✓▶◌" for line in links), name
