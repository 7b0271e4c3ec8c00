"""TargetSession: one target, ONE transport (one SSH login), the resolved remote layout.

Everything a front end does with a target goes through a session: sync now; submit, status,
cancel and logs are added by their own modules on top of `transport` and `layout`.

    async with TargetSession(target, emit) as session:
        summary = await session.sync(lab)
"""

from __future__ import annotations

from typing import Iterable

from repx_tui.backend.config import Target
from repx_tui.backend.errors import TransportError
from repx_tui.backend.events import EventSink, discard
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.sync import SyncSummary, resolve_layout, sync_lab
from repx_tui.backend.transport import Transport, open_transport


class TargetSession:
    def __init__(self, target: Target, emit: EventSink = discard, *, transport: Transport | None = None) -> None:
        self.target = target
        self.emit = emit
        self._transport = transport
        self._layout: RemoteLayout | None = None

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise TransportError(f"session for {self.target.name} is not connected")
        return self._transport

    @property
    def layout(self) -> RemoteLayout:
        if self._layout is None:
            raise TransportError(f"session for {self.target.name} is not connected")
        return self._layout

    @property
    def connected(self) -> bool:
        return self._layout is not None

    async def connect(self) -> "TargetSession":
        """Open the transport (idempotent) and resolve base_path/node_local_path on the target."""
        if self._transport is None:
            self._transport = open_transport(self.target, self.emit)
        await self._transport.connect()
        if self._layout is None:
            self._layout = await resolve_layout(self._transport, self.target)
        return self

    async def close(self) -> None:
        if self._transport is not None:
            await self._transport.close()
        self._layout = None

    async def sync(self, lab: Lab, runs: Iterable[str] | None = None) -> SyncSummary:
        await self.connect()
        return await sync_lab(self.transport, lab, self.layout, self.emit, runs=runs)

    async def __aenter__(self) -> "TargetSession":
        return await self.connect()

    async def __aexit__(self, *exc_info) -> None:
        await self.close()
