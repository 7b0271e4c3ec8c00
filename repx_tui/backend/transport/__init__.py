"""Transports: how the backend reaches a target (this machine, or one SSH connection)."""

from __future__ import annotations

from repx_tui.backend.auth import Authenticator
from repx_tui.backend.config import Target
from repx_tui.backend.events import EventSink, discard
from repx_tui.backend.transport.base import CommandResult, Transport, quote_argv
from repx_tui.backend.transport.local import LocalTransport

__all__ = ["CommandResult", "Transport", "LocalTransport", "open_transport", "quote_argv"]


def open_transport(target: Target, emit: EventSink = discard, authenticator: Authenticator | None = None) -> Transport:
    """The transport for a target, not yet connected (use `async with` or `await connect()`):
    the kept login of `repx-tui login` when one is alive for it, else a new SSH connection
    that asks `authenticator` for what the login needs beyond a key."""
    if target.is_local:
        return LocalTransport(target.name)
    assert target.address is not None
    from repx_tui.backend.keeper.client import find_keeper  # no asyncssh on this path

    kept = find_keeper(target.name, target.address)
    if kept is not None:
        return kept
    from repx_tui.backend.transport.ssh import SshTransport  # asyncssh only when needed

    return SshTransport(target.name, target.address, emit, authenticator=authenticator)
