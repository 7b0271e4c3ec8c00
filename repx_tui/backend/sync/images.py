"""Phase 3: container image layers, incrementally, then each image directory last.

1. ONE round trip lists which layers the target already has (with sizes) in its layer store
   `<base>/artifacts/store/` and in `<node_local_path>/store/`, and the state of each image dir.
2. Layers found in node_local_path are copied on the target (one more round trip, no network).
3. Missing layers go up in parallel (bounded), each to a temporary name; the target checks
   size and sha256, then renames it into the store. A partial file is never under a final name.
4. Each image directory (manifest, config, `<digest>/layer.tar -> ../../../store/...` links,
   like upstream) is unpacked into a staging dir and renamed, then the `images/<tag>` link.
"""

from __future__ import annotations

import asyncio
import io
import posixpath
import secrets
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from repx_tui.backend.errors import SyncError
from repx_tui.backend.events import LayerAction, LayerProgress, Phase, PhaseDone, PhaseSkipped, PhaseStarted
from repx_tui.backend.hashing import sha256_file
from repx_tui.backend.lab import Image, Lab, Layer
from repx_tui.backend.layout import safe_component
from repx_tui.backend.sync.common import (
    add_to_tar,
    LayerResult,
    PhaseResult,
    RateMeter,
    SyncContext,
    Throttle,
    failure_reason,
    progress_event,
)

PARALLEL_UPLOADS = 4

# A function, so phase 1's probe can run it in the same round trip: $1 store, $2 node-local
# store ("" = none), $3 images dir, $4 number of images, then (dir, tag) per image, then layer
# digests. One line per image and per layer.
LIST_FUNCTION = r"""
list_images() {
  local store=$1 nl=$2 images=$3 n=$4 dir tag sum link d s l
  shift 4
  mkdir -p "$store" "$images"
  # temp files of uploads cut off long ago (a dead connection cannot clean up after itself)
  find "$store" -maxdepth 1 -name '.*-layer.tar.*' -mmin +120 -delete 2>/dev/null || true
  while [ "$n" -gt 0 ]; do
    dir=$1 tag=$2
    shift 2
    n=$((n - 1))
    sum=- link=-
    if [ -f "$images/$dir/manifest.json" ]; then
      sum=$(sha256sum < "$images/$dir/manifest.json")
      sum=${sum%% *}
    fi
    if [ -L "$images/$tag" ]; then link=$(readlink "$images/$tag"); fi
    printf 'I %s %s %s\n' "$dir" "$sum" "$link"
  done
  for d in "$@"; do
    s=$(stat -c %s -- "$store/$d-layer.tar" 2>/dev/null || echo -)
    l=-
    if [ -n "$nl" ]; then l=$(stat -c %s -- "$nl/$d-layer.tar" 2>/dev/null || echo -); fi
    printf 'L %s %s %s\n' "$d" "$s" "$l"
  done
}
"""
LIST_SCRIPT = LIST_FUNCTION + 'list_images "$@"\n'

# $1 store, $2 node-local store, then (digest, size, sha256) triples. Prints "OK <digest>"
# for each layer copied and verified; a bad node-local copy is skipped (it will be uploaded).
NODE_LOCAL_SCRIPT = r"""
store=$1 nl=$2
shift 2
while [ "$#" -ge 3 ]; do
  d=$1 size=$2 sha=$3
  shift 3
  tmp="$store/.$d-layer.tar.nl-$$"
  if cp -- "$nl/$d-layer.tar" "$tmp" 2>/dev/null \
    && [ "$(stat -c %s -- "$tmp")" = "$size" ] \
    && [ "$(sha256sum < "$tmp" | cut -d' ' -f1)" = "$sha" ]; then
    chmod 0444 "$tmp"
    mv -f -- "$tmp" "$store/$d-layer.tar"
    echo "OK $d"
  else
    rm -f -- "$tmp"
  fi
done
"""

# Shared tail: $got_sha computed by the caller; check size and sha256, then place the layer.
_CHECK_AND_PLACE = r"""
got_size=$(stat -c %s -- "$1")
if [ "$got_size" != "$3" ] || [ "$got_sha" != "$4" ]; then
  rm -f -- "$1"
  echo "layer $2 arrived corrupt: size $got_size (want $3), sha256 $got_sha (want $4)" >&2
  exit 4
fi
chmod 0444 "$1"
mv -f -- "$1" "$2"
"""

# $1 uploaded temp file, $2 final name, $3 size, $4 sha256.
VERIFY_SCRIPT = r"""
got_sha=$(sha256sum < "$1" | cut -d' ' -f1)
""" + _CHECK_AND_PLACE

# $1 temp name, $2 final name, $3 size, $4 sha256; the layer itself on stdin. Hashing while
# writing (tee) checks the bytes as they arrive: no second read of the file, no second channel.
RECEIVE_SCRIPT = r"""
if ! got_sha=$(tee -- "$1" | sha256sum); then
  rm -f -- "$1"
  echo "layer $2: writing $1 failed" >&2
  exit 4
fi
got_sha=${got_sha%% *}
""" + _CHECK_AND_PLACE

# $1 images dir, $2 image dir name, $3 tag, $4 unique token; the image dir as a tar on stdin.
IMAGE_SCRIPT = r"""
images=$1 dir=$2 tag=$3 token=$4
staging="$images/.staging-$dir-$token"
old="$images/.old-$dir-$token"
mkdir -p "$staging"
tar -xf - -C "$staging"
if [ -e "$images/$dir" ]; then mv -T "$images/$dir" "$old" 2>/dev/null || true; fi
# if another client placed the same (content-addressed) image meanwhile, keep theirs
mv -T "$staging" "$images/$dir" 2>/dev/null || rm -rf "$staging"
rm -rf "$old"
ln -sfn "$dir" "$images/.tag-$token"
mv -T "$images/.tag-$token" "$images/$tag"
"""


@dataclass
class RemoteState:
    images: dict[str, tuple[str | None, str | None]]  # dir -> (manifest sha256, tag link)
    store: dict[str, int | None]  # digest -> size in the layer store
    node_local: dict[str, int | None]  # digest -> size in node_local_path


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


async def sync_images(ctx: SyncContext, lab: Lab, runs: Iterable[str] | None = None) -> tuple[PhaseResult, list[LayerResult]]:
    return await ImageSync(ctx, lab, runs).run()


class ImageSync:
    """Phase 3 for a set of images. Its listing normally rides on phase 1's probe (one round
    trip for both: `listing_args()` in, `use_listing(stdout)` out); without it, `run` lists."""

    def __init__(self, ctx: SyncContext, lab: Lab, runs: Iterable[str] | None = None) -> None:
        images = images_for(lab, runs)
        self.impl = _ImageSync(ctx, lab, images) if images else None
        self.ctx = ctx
        self.lab = lab
        self._state: RemoteState | None = None

    def listing_args(self) -> list[str]:
        """Arguments of LIST_FUNCTION for these images ([] when there is nothing to list)."""
        return self.impl.listing_args() if self.impl is not None else []

    def use_listing(self, stdout: str) -> None:
        if self.impl is not None:
            self._state = parse_listing(stdout)

    async def run(self) -> tuple[PhaseResult, list[LayerResult]]:
        if self.impl is None:
            reason = "the Lab has no container images" if not self.lab.images else "the selected runs use no image"
            self.ctx.emit(PhaseSkipped(Phase.IMAGES, reason))
            return PhaseResult(Phase.IMAGES, "skipped", detail=reason), []
        state, self._state = self._state, None  # a retry after a dropped connection lists afresh
        return await self.impl.run(state)


def parse_listing(stdout: str) -> RemoteState:
    state = RemoteState({}, {}, {})
    for line in stdout.splitlines():
        kind, name, a, b = (line.split() + ["-", "-", "-"])[:4]
        if kind == "I":
            state.images[name] = (_opt(a), _opt(b))
        elif kind == "L":
            state.store[name] = _opt_int(a)
            state.node_local[name] = _opt_int(b)
    return state


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
        self.images_dir = posixpath.join(ctx.layout.artifacts, "images")
        self.node_local = posixpath.join(ctx.layout.node_local, "store") if ctx.layout.node_local else ""
        self.meter = RateMeter()
        self.total = sum(layer.size for layer in self.layers.values())
        self.sent: dict[str, int] = {}
        self.throttle = Throttle()

    async def run(self, state: RemoteState | None = None) -> tuple[PhaseResult, list[LayerResult]]:
        ctx = self.ctx
        self.meter = RateMeter()
        ctx.emit(PhaseStarted(Phase.IMAGES, detail=", ".join(i.tag for i in self.images),
                              total_bytes=self.total, total_files=len(self.layers)))
        if state is None:
            state = await self.list_remote()
        actions = self._decide(state)
        await self._copy_node_local(actions)
        await self._upload_missing(actions)
        written = await self._write_image_dirs(state)
        results = self._results(actions)
        sent = sum(self.sent.values())
        files = sum(1 for a in actions.values() if a is LayerAction.TRANSFERRED) + written
        counts = {a: sum(1 for x in actions.values() if x is a) for a in LayerAction}
        detail = (f"{counts[LayerAction.TRANSFERRED]} transferred, {counts[LayerAction.NODE_LOCAL]} node-local, "
                  f"{counts[LayerAction.REUSED]} reused")
        ctx.emit(PhaseDone(Phase.IMAGES, files_sent=files, bytes_sent=sent, seconds=self.meter.elapsed, detail=detail))
        return PhaseResult(Phase.IMAGES, "done", files, sent, self.meter.elapsed, detail), results

    # --- one round trip: what is there ----------------------------------------------------

    def listing_args(self) -> list[str]:
        pairs = [x for image in self.images for x in (self._dir_name(image), safe_component(image.tag, "image tag"))]
        return [self.store, self.node_local, self.images_dir, str(len(self.images)), *pairs, *self.layers]

    async def list_remote(self) -> RemoteState:
        result = await self.ctx.run_script(LIST_SCRIPT, *self.listing_args())
        return parse_listing(result.stdout)

    @staticmethod
    def _dir_name(image: Image) -> str:
        return safe_component(posixpath.basename(image.path), "image directory")

    def _decide(self, state: RemoteState) -> dict[str, LayerAction]:
        actions = {}
        for digest, layer in self.layers.items():
            if state.store.get(digest) == layer.size:
                actions[digest] = LayerAction.REUSED
            elif state.node_local.get(digest) == layer.size:
                actions[digest] = LayerAction.NODE_LOCAL
            else:
                actions[digest] = LayerAction.TRANSFERRED
            self.sent[digest] = 0
            self._layer_event(digest, actions[digest], done=actions[digest] is LayerAction.REUSED)
        return actions

    # --- node-local copies, on the target -------------------------------------------------

    async def _copy_node_local(self, actions: dict[str, LayerAction]) -> None:
        digests = [d for d, a in actions.items() if a is LayerAction.NODE_LOCAL]
        if not digests:
            return
        args: list[str] = []
        for digest in digests:
            layer = self.layers[digest]
            args += [digest, str(layer.size), await self._sha256(layer)]
        result = await self.ctx.run_script(NODE_LOCAL_SCRIPT, self.store, self.node_local, *args)
        copied = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("OK ")}
        for digest in digests:
            if digest in copied:
                self._layer_event(digest, LayerAction.NODE_LOCAL, done=True)
            else:  # a bad or vanished node-local copy: send it instead
                actions[digest] = LayerAction.TRANSFERRED

    # --- uploads ----------------------------------------------------------------------------

    async def _upload_missing(self, actions: dict[str, LayerAction]) -> None:
        limit = asyncio.Semaphore(PARALLEL_UPLOADS)

        async def one(digest: str) -> None:
            async with limit:
                await self._upload(digest)

        missing = [d for d, a in actions.items() if a is LayerAction.TRANSFERRED]
        await _gather_all([one(d) for d in missing])

    async def _upload(self, digest: str) -> None:
        layer = self.layers[digest]
        sha = await self._sha256(layer)
        final = posixpath.join(self.store, f"{digest}-layer.tar")
        tmp = posixpath.join(self.store, f".{digest}-layer.tar.part-{secrets.token_hex(4)}")
        throttle = Throttle()

        def progress(done: int, total: int) -> None:
            self.sent[digest] = done
            if throttle.ready(done >= total):
                self._layer_event(digest, LayerAction.TRANSFERRED)
            if self.throttle.ready():
                self._phase_progress()

        self.sent[digest] = 0
        source = self.lab.root / layer.store_path
        send_to_command = getattr(self.ctx.transport, "run_with_file", None)
        if send_to_command is not None:
            # one channel: the bytes stream into tee | sha256sum on the target, which checks and renames
            argv = self.ctx.script_argv(RECEIVE_SCRIPT, tmp, final, str(layer.size), sha)
            result = await send_to_command(argv, source, progress=progress, check=False)
            if not result.ok:
                raise SyncError(f"{self.ctx.transport.name}: {failure_reason(result.stderr)}",
                                hint="check free space under base_path on the target, then sync again")
        else:
            await self.ctx.transport.upload(source, tmp, progress=progress)
            await self.ctx.run_script(VERIFY_SCRIPT, tmp, final, str(layer.size), sha)
        self.sent[digest] = layer.size
        self._layer_event(digest, LayerAction.TRANSFERRED, done=True)
        self._phase_progress()

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
        self.ctx.emit(progress_event(Phase.IMAGES, done, self.total, self.meter, total_files=len(self.layers)))

    def _results(self, actions: dict[str, LayerAction]) -> list[LayerResult]:
        results: list[LayerResult] = []
        seen: set[str] = set()
        for image in self.images:
            for layer in image.layers:
                first = layer.digest not in seen
                seen.add(layer.digest)
                action = actions[layer.digest] if first else LayerAction.REUSED
                sent = self.sent.get(layer.digest, 0) if first else 0
                results.append(LayerResult(image.tag, layer.digest, layer.size, action, sent))
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




def _opt(value: str) -> str | None:
    return None if value == "-" else value


def _opt_int(value: str) -> int | None:
    return int(value) if value.isdigit() else None
