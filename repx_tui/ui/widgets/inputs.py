"""Opening a hidden input box (filter, search) so that no typed key goes astray."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Input


def open_box(screen: Screen, box: Input) -> None:
    """Show `box` and focus it at once, not via focus() (a call_later): keys typed right after
    the opening key are already queued and would otherwise reach the table (a typed `2`
    switched to the Sync screen). Typing replaces the old text."""
    box.display = True
    screen.set_focus(box)
    box.select_all()
