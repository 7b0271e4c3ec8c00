"""The phased sync of a Lab to a target: host tools, Lab tree, images (submission comes after).

Every phase is idempotent (it works out what is missing and sends only that), so a phase cut
short by a dropped connection is simply run again once the transport has reconnected.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Iterable

from repx_tui.backend.config import Target
from repx_tui.backend.errors import RepxError, SyncError
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
    """Run phases 1-3; returns what each did. Raises RepxError after a PhaseFailed.

    Round trips are what a sync costs on a far login host, so: phase 1's probe also answers
    phases 2 and 3 ("is this Lab there", "which layers are there"); then the Lab's content
    rsync and the layer uploads run at the same time; missing host tools are copied on the
    target out of the Lab's content once it is there (sent as a tar first, and waited for by
    the rsync, only when the target has no rsync of its own); the Lab's metadata goes last,
    once the tools and the images it names are complete.

    `target` may be the Target (its "~" paths are resolved on it) or an already resolved layout.
    `runs` (run names or job ids) limits the image phase to the images those runs use.
    """
    started = time.monotonic()
    layout = target if isinstance(target, RemoteLayout) else await resolve_layout(transport, target)
    ctx = SyncContext(transport=transport, layout=layout, emit=emit)
    layer_results: list[LayerResult] = []
    image_sync = ImageSync(ctx, lab, list(runs) if runs is not None else None)
    probed = asyncio.get_running_loop().create_future()

    def on_probed() -> None:
        if not probed.done():
            probed.set_result(None)

    content_placed = asyncio.Event()

    async def lab_content_placed() -> None:
        await content_placed.wait()

    tools_task = asyncio.create_task(_phase(
        ctx, Phase.HOST_TOOLS, lambda: sync_host_tools(ctx, lab, image_sync, on_probed, lab_content_placed)))
    await asyncio.wait([tools_task, probed], return_when=asyncio.FIRST_COMPLETED)
    if not probed.done():
        probed.cancel()
        await tools_task  # failed before the probe answered: raises its error
        raise AssertionError("phase 1 returned without probing")

    async def images() -> PhaseResult:
        result, layers = await image_sync.run()
        layer_results.extend(layers)
        return result

    images_task = asyncio.create_task(_phase(ctx, Phase.IMAGES, images))

    async def tools_installed() -> None:
        if ctx.target_rsync is None:  # the Lab's own rsync is needed on the target first
            await _succeeded(tools_task, f"{transport.name}: the Lab was not sent because the host tools phase failed")

    async def images_complete() -> None:
        await _succeeded(tools_task, f"{transport.name}: the Lab's metadata was not updated because the host tools phase failed")
        await _succeeded(images_task, f"{transport.name}: the Lab's metadata was not updated because the images phase failed")

    tasks = [tools_task, images_task]
    try:
        lab_result = await _phase(ctx, Phase.LAB, lambda: sync_lab_tree(ctx, lab, images_complete, tools_installed, content_placed.set))
        tools = await tools_task
        images_result = await images_task
    except BaseException:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:  # the root cause, not the Lab phase's follow-up
            if not task.cancelled() and task.exception() is not None:
                raise task.exception() from None
        raise
    summary = SyncSummary(
        phases=(tools, lab_result, images_result), layers=tuple(layer_results),
        ssh_connections=transport.authentications, seconds=time.monotonic() - started,
    )
    emit(summary)
    return summary


async def _succeeded(task: asyncio.Task, message: str) -> None:
    await asyncio.wait([task])
    if task.cancelled() or task.exception() is not None:
        raise SyncError(message)


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
