"""How much of a Lab a target already has, from the sync's own probe (one round trip).

The Lab picker shows it for each Lab and the run confirmation says what a sync would send: the
probe answers whether this very Lab's tree is complete there and which image layers (in the
store or in node_local_path) are there already, so nothing here asks the target twice.
"""

from __future__ import annotations

from collections.abc import Iterable

from repx_tui.backend.events import LabPresence, discard
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.sync.common import SyncContext
from repx_tui.backend.sync.images import ImageSync, images_for
from repx_tui.backend.sync.layerstore import RemoteState
from repx_tui.backend.sync.plan import probe
from repx_tui.backend.transport.base import Transport


async def lab_presence(
    transport: Transport, layout: RemoteLayout, lab: Lab, target: str, runs: Iterable[str] | None = None
) -> LabPresence:
    """`runs` limits the layers counted to the images those runs use (all of the Lab's by default)."""
    ctx = SyncContext(transport=transport, layout=layout, emit=discard)
    wanted = list(runs) if runs is not None else None
    plan = await probe(ctx, lab, ImageSync(ctx, lab, wanted).listing_args())
    sizes = layer_sizes(lab, wanted)
    there = layers_there(sizes, plan.images)
    return LabPresence(
        target=target,
        lab_id=lab.lab_id,
        current=plan.lab_current,
        layers_there=len(there),
        layers_total=len(sizes),
        bytes_to_send=sum(size for digest, size in sizes.items() if digest not in there),
    )


def layer_sizes(lab: Lab, runs: list[str] | None) -> dict[str, int]:
    """digest -> size of every layer of the images these runs use (a shared layer once)."""
    return {layer.digest: layer.size for image in images_for(lab, runs) for layer in image.layers}


def layers_there(sizes: dict[str, int], state: RemoteState | None) -> set[str]:
    """Layers the sync would not send: of the right size in the store or in node_local_path.
    (A store file with no valid record is still hashed on the target before it is reused.)"""
    if state is None:
        return set()
    return {d for d, size in sizes.items() if size in (state.store.get(d), state.node_local.get(d))}
