"""Transports: how the backend reaches a target (this machine, or one SSH connection)."""

from __future__ import annotations

from repx_tui.backend.config import Target
from repx_tui.backend.events import EventSink, discard
from repx_tui.backend.transport.base import CommandResult, Transport, quote_argv
from repx_tui.backend.transport.local import LocalTransport

__all__ = ["CommandResult", "Transport", "LocalTransport", "open_transport", "quote_argv"]


def open_transport(target: Target, emit: EventSink = discard) -> Transport:
    """The transport for a target, not yet connected (use `async with` or `await connect()`)."""
    if target.is_local:
        return LocalTransport(target.name)
    from repx_tui.backend.transport.ssh import SshTransport  # asyncssh only when needed

    assert target.address is not None
    return SshTransport(target.name, target.address, emit)
