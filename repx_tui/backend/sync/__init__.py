"""The phased sync of a Lab to a target: host tools, Lab tree, images (submission comes after).

Every phase is idempotent (it works out what is missing and sends only that), so a phase cut
short by a dropped connection is simply run again once the transport has reconnected.
"""

from __future__ import annotations

import time
from typing import Awaitable, Callable, Iterable

from repx_tui.backend.config import Target
from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import EventSink, Notice, Phase, PhaseFailed
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.sync.common import LayerResult, PhaseResult, SyncContext, SyncSummary
from repx_tui.backend.sync.hosttools import sync_host_tools
from repx_tui.backend.sync.images import ImageSync, images_for, sync_images
from repx_tui.backend.sync.lab import sync_lab_tree
from repx_tui.backend.transport.base import Transport

__all__ = [
    "sync_lab",
    "resolve_layout",
    "SyncSummary",
    "PhaseResult",
    "LayerResult",
    "SyncContext",
    "images_for",
    "sync_images",
    "ImageSync",
    "MAX_PHASE_ATTEMPTS",
]

MAX_PHASE_ATTEMPTS = 3


async def sync_lab(
    transport: Transport,
    lab: Lab,
    target: Target | RemoteLayout,
    emit: EventSink,
    *,
    runs: Iterable[str] | None = None,
) -> SyncSummary:
    """Run phases 1-3 in order; returns what each did. Raises RepxError after a PhaseFailed.

    `target` may be the Target (its "~" paths are resolved on it) or an already resolved layout.
    `runs` (run names or job ids) limits the image phase to the images those runs use.
    """
    started = time.monotonic()
    layout = target if isinstance(target, RemoteLayout) else await resolve_layout(transport, target)
    ctx = SyncContext(transport=transport, layout=layout, emit=emit)
    summary = SyncSummary()
    image_sync = ImageSync(ctx, lab, list(runs) if runs is not None else None)
    image_sync.start_listing()  # its round trip overlaps phases 1 and 2
    try:
        summary.phases.append(await _phase(ctx, Phase.HOST_TOOLS, lambda: sync_host_tools(ctx, lab)))
        summary.phases.append(await _phase(ctx, Phase.LAB, lambda: sync_lab_tree(ctx, lab)))
    except BaseException:
        await image_sync.discard()
        raise

    async def images() -> PhaseResult:
        result, layers = await image_sync.run()
        summary.layers = layers
        return result

    summary.phases.append(await _phase(ctx, Phase.IMAGES, images))
    summary.ssh_connections = transport.authentications
    summary.seconds = time.monotonic() - started
    return summary


async def resolve_layout(transport: Transport, target: Target) -> RemoteLayout:
    """The target's layout with "~" resolved on the target itself (one round trip, only if needed)."""
    base = await transport.resolve_path(target.base_path)
    node_local = await transport.resolve_path(target.node_local_path) if target.node_local_path else None
    return RemoteLayout(base=base, node_local=node_local)


async def _phase(ctx: SyncContext, phase: Phase, body: Callable[[], Awaitable[PhaseResult]]) -> PhaseResult:
    from repx_tui.backend.transport.ssh import ConnectionDropped

    for attempt in range(1, MAX_PHASE_ATTEMPTS + 1):
        try:
            return await body()
        except ConnectionDropped as exc:
            if attempt == MAX_PHASE_ATTEMPTS:
                _failed(ctx, phase, exc)
                raise
            ctx.emit(Notice("warning", f"{phase.value}: {exc.message}; reconnecting and resuming"))
        except RepxError as exc:
            _failed(ctx, phase, exc)
            raise
    raise AssertionError("unreachable")


def _failed(ctx: SyncContext, phase: Phase, exc: RepxError) -> None:
    ctx.emit(PhaseFailed(phase, exc.message, exc.hint))
