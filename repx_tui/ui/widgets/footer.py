"""A Footer that rebuilds its key widgets only when the keys it shows change.

Textual's Footer recomposes on every bindings refresh, and the screen refreshes bindings on each
focus change: opening the filter box (focus moves to the Input) cost 50–75 ms of removing and
mounting the same key widgets again, while the table with 10,000 jobs stayed put.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer

Shown = tuple[tuple[str, str, str, bool], ...]


class StableFooter(Footer):
    """Skips the recompose when the shown (key, description, action, enabled) set is unchanged."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown: Shown | None = None

    def _shown_bindings(self, screen: Screen) -> Shown:
        return tuple(
            (binding.key, binding.description, binding.action, enabled)
            for _node, binding, enabled, _tooltip in screen.active_bindings.values()
            if binding.show or binding.action == "command_palette"
        )

    def bindings_changed(self, screen: Screen) -> None:
        if not (self.is_attached and screen is self.screen):
            return
        shown = self._shown_bindings(screen)
        if shown == self._shown and self._bindings_ready:
            return
        if screen.app.app_focus:  # Footer does not recompose without focus: try again later
            self._shown = shown
        super().bindings_changed(screen)
