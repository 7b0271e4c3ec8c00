"""The phased sync of a Lab to a target: host tools, Lab tree, images (submission comes after).

Every phase is idempotent (it works out what is missing and sends only that), so a phase cut
short by a dropped connection is simply run again once the transport has reconnected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from repx_tui.backend.config import Target
from repx_tui.backend.errors import ConnectionDropped, RepxError
from repx_tui.backend.events import EventSink, Notice, Phase, PhaseFailed, PhaseStarted
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.sync.common import LayerResult, PhaseResult, SyncContext, SyncSummary
from repx_tui.backend.sync.compress import check_mode, decide
from repx_tui.backend.sync.hosttools import sync_host_tools
from repx_tui.backend.sync.images import ImageSync, images_for
from repx_tui.backend.sync.lab import local_rsync, sync_lab_tree
from repx_tui.backend.sync.plan import PhaseGates, SyncPlan, probe
from repx_tui.backend.transport.base import Transport

__all__ = [
    "sync_lab",
    "resolve_layout",
    "SyncSummary",
    "PhaseResult",
    "LayerResult",
    "SyncContext",
    "images_for",
    "ImageSync",
    "SyncPlan",
    "MAX_PHASE_ATTEMPTS",
]

MAX_PHASE_ATTEMPTS = 3
T = TypeVar("T")


async def sync_lab(
    transport: Transport,
    lab: Lab,
    target: Target | RemoteLayout,
    emit: EventSink,
    *,
    runs: Iterable[str] | None = None,
    compress: str = "auto",
) -> SyncSummary:
    """Run phases 1-3 and emit (and return) what each did. Raises RepxError after a PhaseFailed.

    ONE probe (plan.py) says what the target has; then the three phases run at once, waiting
    for each other only through PhaseGates: the Lab's content rsync and the layer uploads
    overlap; missing host tools are copied on the target out of the Lab's content once it is
    there (sent as a tar first, and waited for by the rsync, only when the target has no rsync
    of its own); the Lab's metadata goes last, once the tools and the images it names are
    complete.

    `target` may be the Target (its "~" paths are resolved on it) or an already resolved layout.
    `runs` (run names or job ids) limits the image phase to the images those runs use.
    `compress` is auto, on or off (compress.py): chosen once, from the probe and the link.
    """
    check_mode(compress)
    started = time.monotonic()
    layout = target if isinstance(target, RemoteLayout) else await resolve_layout(transport, target)
    ctx = SyncContext(transport=transport, layout=layout, emit=emit)
    image_sync = ImageSync(ctx, lab, list(runs) if runs is not None else None)
    emit(PhaseStarted(Phase.HOST_TOOLS, detail=lab.host_tools_dir))  # the probe is phase 1's first step
    plan = await _step(ctx, Phase.HOST_TOOLS, lambda: probe(ctx, lab, image_sync.listing_args()))
    ctx.tools_bin = plan.tools_bin
    ctx.codecs = plan.codecs
    ctx.compression = await _step(ctx, Phase.HOST_TOOLS, lambda: _compression(ctx, compress, plan, lab, image_sync))
    if ctx.compression.label != "off":
        emit(Notice("info", f"compression: {ctx.compression.label} ({ctx.compression.reason})"))
    gates = PhaseGates()
    layer_results: list[LayerResult] = []
    listing = [plan.images]

    async def images() -> PhaseResult:
        state, listing[0] = listing[0], None  # the plan's listing serves the first attempt; a retry lists afresh
        result, layers = await image_sync.run(state)
        layer_results[:] = layers
        return result

    tools_task = asyncio.create_task(_step(ctx, Phase.HOST_TOOLS, lambda: sync_host_tools(ctx, lab, plan, gates)))
    images_task = asyncio.create_task(_step(ctx, Phase.IMAGES, images))
    gates.started(tools_task, images_task)
    tasks = [tools_task, images_task]
    try:
        lab_result = await _step(ctx, Phase.LAB, lambda: sync_lab_tree(ctx, lab, plan, gates))
        tools = await tools_task
        images_result = await images_task
    except BaseException:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:  # the root cause, not the Lab phase's follow-up
            cause = None if task.cancelled() else task.exception()
            if cause is not None:
                raise cause from None
        raise
    summary = SyncSummary(
        phases=(tools, lab_result, images_result),
        layers=tuple(layer_results),
        ssh_connections=transport.authentications,
        seconds=time.monotonic() - started,
        compression=ctx.compression.label,
        compression_reason=ctx.compression.reason,
    )
    emit(summary)
    return summary


async def _compression(ctx: SyncContext, mode: str, plan: SyncPlan, lab: Lab, image_sync: ImageSync):
    try:
        rsync = local_rsync(lab.root)
    except RepxError:
        rsync = None  # the Lab phase says so, if it has anything to send
    return await decide(
        mode,
        ctx.transport,
        plan.codecs,
        same_host=plan.same_host,
        local_rsync=rsync,
        target_rsync=plan.target_rsync or (plan.tools_bin + "/rsync" if plan.tools_complete else None),
        lab_to_send=not plan.lab_current,
        lab_cold=not plan.lab_present,
        layers_to_send=image_sync.missing(plan.images),
    )


async def resolve_layout(transport: Transport, target: Target) -> RemoteLayout:
    """The target's layout with "~" resolved on the target itself (one round trip, only if needed)."""
    base = await transport.resolve_path(target.base_path)
    node_local = await transport.resolve_path(target.node_local_path) if target.node_local_path else None
    return RemoteLayout(base=base, node_local=node_local)


async def _step(ctx: SyncContext, phase: Phase, body: Callable[[], Awaitable[T]]) -> T:
    """Run one phase's body; a dropped connection is retried (the transport reconnects), any
    other failure is reported as the phase's PhaseFailed and raised."""
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
