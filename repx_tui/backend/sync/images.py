"""Phase 3: container image layers, incrementally, then each image directory last.

1. ONE round trip lists which layers the target already has in its layer store
   `<base>/artifacts/store/` (with sizes and the sha256 a valid record vouches for, see
   layerstore.py) and in `<node_local_path>/store/`, and the state of each image dir.
2. A layer is reused as is only when its record matches the Lab's sha256. One more round trip
   (no network) checks the others on the target: a store file of the right size is hashed and
   recorded, or removed; a node-local copy is copied to a temp name, checked and renamed.
3. Missing layers go up in parallel (bounded), each to a temporary name; the target checks
   size and sha256, renames it into the store and records it. A partial file is never under a
   final name.
4. Each image directory (manifest, config, `<digest>/layer.tar -> ../../../store/...` links,
   like upstream) is unpacked into a staging dir and renamed, then the `images/<tag>` link.
"""

from __future__ import annotations

import asyncio
import io
import os
import posixpath
import secrets
import tarfile
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from repx_tui.backend.errors import SyncError
from repx_tui.backend.events import LayerAction, LayerProgress, Phase, PhaseDone, PhaseSkipped, PhaseStarted
from repx_tui.backend.hashing import sha256_file
from repx_tui.backend.lab import Image, Lab, Layer
from repx_tui.backend.layout import safe_component
from repx_tui.backend.sync.common import (
    LayerResult,
    PhaseResult,
    RateMeter,
    SyncContext,
    Throttle,
    add_to_tar,
    failure_reason,
    progress_event,
)
from repx_tui.backend.sync.compress import MIN_RATIO, Compression, TargetCodecs, encode, read_chunks, sample_ratio
from repx_tui.backend.sync.layerstore import (  # noqa: F401  (the scripts are part of this phase's API)
    IMAGE_SCRIPT,
    LANE_SCRIPT,
    LIST_FUNCTION,
    LIST_SCRIPT,
    PLACE_SCRIPT,
    RemoteState,
    parse_listing,
    records_dir,
    refuse_links,
)
from repx_tui.backend.transport.base import StdinWriter

LANES_MAX = 4  # at most this many lanes (channels) receive layers at once
OPENSSL_FROM = 64 << 20  # bytes of layers to send from which the lanes hash with the target's openssl

NODE_LOCAL_SCRIPT = PLACE_SCRIPT  # the name phase 3 has always used for "place without sending"


def images_for(lab: Lab, runs: Iterable[str] | None) -> list[Image]:
    """The images needed by the given runs (run names or job ids); all of them for None."""
    if runs is None:
        return list(lab.images.values())
    wanted: list[str] = []
    for name in runs:
        run = lab.runs.get(name) or (lab.runs[lab.run_of(name)] if name in lab.jobs else None)
        if run is None:
            raise SyncError(f"'{name}' is not a run or job of this Lab")
        if run.image and run.image not in wanted:
            wanted.append(run.image)
    return [lab.images[path] for path in wanted]


class ImageSync:
    """Phase 3 for a set of images. What the target already has comes from the sync's one probe
    (`listing_args()` go into it, SyncPlan.images comes out); `run(None)` lists by itself."""

    def __init__(self, ctx: SyncContext, lab: Lab, runs: Iterable[str] | None = None) -> None:
        images = images_for(lab, runs)
        self.impl = _ImageSync(ctx, lab, images) if images else None
        self.ctx = ctx
        self.lab = lab

    def listing_args(self) -> list[str]:
        """Arguments of LIST_FUNCTION for these images ([] when there is nothing to list)."""
        return self.impl.listing_args() if self.impl is not None else []

    def missing(self, state: RemoteState | None) -> list[Path]:
        """Local paths of the layers the listing says must be sent."""
        return self.impl.missing(state) if self.impl is not None else []

    async def run(self, state: RemoteState | None = None) -> tuple[PhaseResult, list[LayerResult]]:
        if self.impl is None:
            reason = "the Lab has no container images" if not self.lab.images else "the selected runs use no image"
            self.ctx.emit(PhaseSkipped(Phase.IMAGES, reason))
            return PhaseResult(Phase.IMAGES, "skipped", detail=reason), []
        return await self.impl.run(state)


class _ImageSync:
    def __init__(self, ctx: SyncContext, lab: Lab, images: list[Image]) -> None:
        self.ctx = ctx
        self.lab = lab
        self.images = images
        self.layers: dict[str, Layer] = {}
        for image in images:
            for layer in image.layers:
                self.layers.setdefault(safe_component(layer.digest, "layer digest"), layer)
        self.store = posixpath.join(ctx.layout.artifacts, "store")
        self.records = records_dir(ctx.layout.base)
        self.images_dir = posixpath.join(ctx.layout.artifacts, "images")
        self.node_local = posixpath.join(ctx.layout.node_local, "store") if ctx.layout.node_local else ""
        self.meter = RateMeter()
        self.total = sum(layer.size for layer in self.layers.values())
        self.sent: dict[str, int] = {}  # content bytes sent, per layer
        self.wire: dict[str, int] = {}  # bytes on the wire for it, per layer sent
        self.codec_used: dict[str, str] = {}  # "raw" | "zstd" | "gzip", per layer sent
        self.verdicts: dict[str, str] = {}  # the lane's answer per layer sent: "OK" | "BAD <sha256>"
        self.throttle = Throttle()

    @property
    def compression(self) -> Compression:
        return self.ctx.compression

    @property
    def codecs(self) -> TargetCodecs:
        return self.ctx.codecs

    def missing(self, state: RemoteState | None) -> list[Path]:
        """The layers the listing says must be sent (not in the store, not node-local)."""
        listed = state or RemoteState({}, {}, {}, {}, [])
        return [
            self.lab.root / layer.store_path
            for digest, layer in self.layers.items()
            if layer.size not in (listed.store.get(digest), listed.node_local.get(digest))
        ]

    async def run(self, state: RemoteState | None = None) -> tuple[PhaseResult, list[LayerResult]]:
        ctx = self.ctx
        self.meter = RateMeter()
        ctx.emit(
            PhaseStarted(
                Phase.IMAGES,
                detail=", ".join(i.tag for i in self.images),
                total_bytes=self.total,
                total_files=len(self.layers),
            )
        )
        if state is None:
            state = await self.list_remote()
        actions = await self._decide(state)
        await self._place_on_target(actions)
        await self._upload_missing(actions)
        written = await self._write_image_dirs(state)
        results = self._results(actions)
        sent, wire = sum(self.sent.values()), sum(self.wire.values())
        files = sum(1 for a in actions.values() if a is LayerAction.TRANSFERRED) + written
        counts = {a: sum(1 for x in actions.values() if x is a) for a in LayerAction}
        detail = (
            f"{counts[LayerAction.TRANSFERRED]} transferred, {counts[LayerAction.NODE_LOCAL]} node-local, "
            f"{counts[LayerAction.REUSED]} reused"
        )
        label = self.compression.label if any(c != "raw" for c in self.codec_used.values()) else "off"
        ctx.emit(
            PhaseDone(
                Phase.IMAGES,
                files_sent=files,
                bytes_sent=sent,
                seconds=self.meter.elapsed,
                detail=detail,
                wire_bytes=wire,
                compression=label,
            )
        )
        return PhaseResult(Phase.IMAGES, "done", files, sent, self.meter.elapsed, detail, wire, label), results

    # --- one round trip: what is there ----------------------------------------------------

    def listing_args(self) -> list[str]:
        pairs = [x for image in self.images for x in (self._dir_name(image), safe_component(image.tag, "image tag"))]
        return [self.store, self.records, self.node_local, self.images_dir, str(len(self.images)), *pairs, *self.layers]

    async def list_remote(self) -> RemoteState:
        result = await self.ctx.run_script(LIST_SCRIPT, *self.listing_args())
        state = parse_listing(result.stdout)
        refuse_links(self.ctx.transport.name, state)
        return state

    @staticmethod
    def _dir_name(image: Image) -> str:
        return safe_component(posixpath.basename(image.path), "image directory")

    async def _decide(self, state: RemoteState) -> dict[str, LayerAction]:
        """REUSED only where a record vouches for the Lab's sha256; PENDING where the target must
        check (a store file of the right size with no valid record, or a node-local copy)."""
        actions = {}
        for digest, layer in self.layers.items():
            in_store = state.store.get(digest) == layer.size
            recorded = state.recorded.get(digest)
            if in_store and recorded is not None and recorded == await self._sha256(layer):
                actions[digest] = LayerAction.REUSED
            elif in_store or state.node_local.get(digest) == layer.size:
                actions[digest] = LayerAction.PENDING
            else:
                actions[digest] = LayerAction.TRANSFERRED
            self.sent[digest] = 0
            shown = LayerAction.REUSED if in_store else LayerAction.NODE_LOCAL
            self._layer_event(
                digest,
                shown if actions[digest] is LayerAction.PENDING else actions[digest],
                done=actions[digest] is LayerAction.REUSED,
            )
        return actions

    # --- checks and node-local copies, on the target ------------------------------------------

    async def _place_on_target(self, actions: dict[str, LayerAction]) -> None:
        digests = [d for d, a in actions.items() if a is LayerAction.PENDING]
        if not digests:
            return
        args: list[str] = []
        for digest in digests:
            layer = self.layers[digest]
            args += [digest, str(layer.size), await self._sha256(layer)]
        result = await self.ctx.run_script(PLACE_SCRIPT, self.store, self.records, self.node_local, *args)
        outcome = {}
        for line in result.stdout.splitlines():
            word, _, digest = line.partition(" ")
            outcome[digest] = word
        for digest in digests:
            found = outcome.get(digest)
            if found in ("REUSED", "NODE_LOCAL"):
                actions[digest] = LayerAction.REUSED if found == "REUSED" else LayerAction.NODE_LOCAL
                self._layer_event(digest, actions[digest], done=True)
            else:  # wrong bytes, cut short or vanished: send it instead
                actions[digest] = LayerAction.TRANSFERRED

    # --- uploads: a few lanes, each one channel that receives layer after layer --------------

    async def _upload_missing(self, actions: dict[str, LayerAction]) -> None:
        missing = [d for d, a in actions.items() if a is LayerAction.TRANSFERRED]
        if not missing:
            return
        queue = deque(sorted(missing, key=lambda d: -self.layers[d].size))  # biggest first: lanes end together
        await _gather_all([self._lane(queue) for _ in range(min(len(queue), self._lane_count()))])
        for digest in missing:
            verdict = self.verdicts.get(digest)
            if verdict != "OK":
                got = f"sha256 {verdict[4:]}" if verdict else "no answer"
                raise SyncError(
                    f"{self.ctx.transport.name}: layer {digest[:12]} arrived corrupt ({got}, want "
                    f"{await self._sha256(self.layers[digest])})",
                    hint="sync again; if it happens again, check the network and the target's disk",
                )

    def _lane_count(self) -> int:
        """One more lane than the CPUs both ends share (a lane waits on the wire, the disk or
        the hash in turn), at least 2, at most LANES_MAX."""
        cpus = min(os.cpu_count() or 1, self.codecs.cpus or 2)
        return max(2, min(LANES_MAX, cpus + 1))

    async def _lane(self, queue: deque[str]) -> None:
        codecs = self.codecs
        # openssl hashes several times faster, but checking that it works costs its start: worth it
        # only for a big transfer
        big = sum(self.layers[d].size for d in queue) >= OPENSSL_FROM
        openssl = codecs.openssl if big and codecs.openssl else "-"
        argv = self.ctx.script_argv(
            LANE_SCRIPT, self.store, self.records, codecs.zstd or "-", codecs.gzip or "-", openssl
        )

        async def feed(stdin: StdinWriter) -> None:
            while queue:
                await self._send(stdin, queue.popleft())

        def answer(line: str) -> None:
            word, _, rest = line.strip().partition(" ")
            digest = rest.split(" ", 1)[0]
            if word in ("OK", "BAD") and digest in self.layers:
                self.verdicts[digest] = "OK" if word == "OK" else f"BAD {rest.partition(' ')[2]}"
                if word == "OK":
                    self._layer_event(digest, LayerAction.TRANSFERRED, done=True)
                    self._phase_progress()

        result = await self.ctx.transport.run_streaming(argv, feed, on_line=answer, check=False)
        if not result.ok:
            raise SyncError(
                f"{self.ctx.transport.name}: {failure_reason(result.stderr)}",
                hint="check free space under base_path on the target, then sync again",
            )

    async def _send(self, stdin: StdinWriter, digest: str) -> None:
        """One layer down a lane: its header, then its bytes as they are or in compressed frames."""
        layer = self.layers[digest]
        source = self.lab.root / layer.store_path
        codec = await self._codec_for(source)
        self.codec_used[digest] = codec or "raw"
        await stdin.write(f"{digest} {layer.size} {await self._sha256(layer)} {codec or 'raw'}\n".encode())
        throttle = Throttle()
        self.sent[digest] = self.wire[digest] = 0

        def progress(content: int, wire: int) -> None:
            self.sent[digest] = content
            self.wire[digest] += wire
            if throttle.ready():
                self._layer_event(digest, LayerAction.TRANSFERRED)
            if self.throttle.ready():
                self._phase_progress()

        if codec is None:
            async for chunk in read_chunks(source):
                await stdin.write(chunk)
                progress(self.sent[digest] + len(chunk), len(chunk))
        else:
            c = self.compression
            async for frame, content in encode(source, codec, c.level, c.threads):
                await stdin.write(b"%d\n" % len(frame) + frame)
                progress(content, len(frame))
            await stdin.write(b"0\n")
        self.sent[digest] = layer.size

    async def _codec_for(self, source: Path) -> str | None:
        """The session's codec, unless this layer's sample says it would not shrink."""
        if self.compression.codec is None:
            return None
        ratio = await asyncio.to_thread(sample_ratio, source)
        return self.compression.codec if ratio >= MIN_RATIO else None

    async def _sha256(self, layer: Layer) -> str:
        if layer.sha256:
            return layer.sha256
        return await asyncio.to_thread(sha256_file, self.lab.root / layer.store_path)

    # --- image directories, last --------------------------------------------------------------

    async def _write_image_dirs(self, state: RemoteState) -> int:
        written = 0
        for image in self.images:
            dir_name = self._dir_name(image)
            manifest = self.lab.root / image.path / "manifest.json"
            remote_sum, link = state.images.get(dir_name, (None, None))
            if remote_sum == sha256_file(manifest) and link == dir_name:
                continue
            bundle = await asyncio.to_thread(_image_tar, self.lab.root / image.path)
            await self.ctx.run_script(
                IMAGE_SCRIPT, self.images_dir, dir_name, image.tag, secrets.token_hex(4), input=bundle
            )
            written += 1
        return written

    # --- events -------------------------------------------------------------------------------

    def _layer_event(self, digest: str, action: LayerAction, done: bool = False) -> None:
        layer = self.layers[digest]
        image = next(i.tag for i in self.images if any(x.digest == digest for x in i.layers))
        self.ctx.emit(LayerProgress(image, digest, layer.size, self.sent.get(digest, 0), action, done))

    def _phase_progress(self) -> None:
        done = sum(self.sent.values())
        self.ctx.emit(
            progress_event(
                Phase.IMAGES,
                done,
                self.total,
                self.meter,
                total_files=len(self.layers),
                wire_bytes=sum(self.wire.values()),
            )
        )

    def _results(self, actions: dict[str, LayerAction]) -> list[LayerResult]:
        results: list[LayerResult] = []
        seen: set[str] = set()
        for image in self.images:
            for layer in image.layers:
                first = layer.digest not in seen
                seen.add(layer.digest)
                action = actions[layer.digest] if first else LayerAction.REUSED
                sent = self.sent.get(layer.digest, 0) if first else 0
                wire = self.wire.get(layer.digest, 0) if first else 0
                encoding = self.codec_used.get(layer.digest, "") if first else ""
                results.append(LayerResult(image.tag, layer.digest, layer.size, action, sent, wire, encoding))
        return results


async def _gather_all(coros: list) -> None:
    """Run all; on the first failure cancel the rest and raise it."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _image_tar(image_dir: Path) -> bytes:
    """The image directory as a tar, links kept as links (they point into ../../../store)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(image_dir.rglob("*")):
            add_to_tar(tar, path, path.relative_to(image_dir).as_posix())
    return buf.getvalue()
