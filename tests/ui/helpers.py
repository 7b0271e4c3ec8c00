"""Helpers for Pilot tests: recorded backend events, screen text, waiting on app state."""

from __future__ import annotations

from textual.message import Message

from repx_tui.ui.controller import BackendEventMessage, BackendFailed


class Recorder:
    """A message_hook that keeps every message; filters for backend events and failures."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        self.messages.append(message)

    def events(self, kind: type | tuple[type, ...] = object) -> list:
        return [m.event for m in self.messages if isinstance(m, BackendEventMessage) and isinstance(m.event, kind)]

    def failures(self) -> list[str]:
        return [str(m.error) for m in self.messages if isinstance(m, BackendFailed)]


def screen_text(app) -> str:
    """What the terminal shows right now, as plain text."""
    return "\n".join(strip.text.rstrip() for strip in app.screen._compositor.render_strips())


def table_cell(table, row_key: str, column: str) -> str:
    cell = table.get_cell(row_key, column)
    return getattr(cell, "plain", str(cell))
