"""Phase 1: the Lab's static host tools -> `<base>/host-tools/<hash>/bin`, content-addressed.

One round trip decides: it also creates base_path (failing clearly when it cannot) and finds
the target's own rsync. When the tools are missing they travel as one tar (links
dereferenced) to a staging directory, are checked with sha256sum, and the staging directory
is renamed into place, so `<hash>/` only ever exists complete.
"""

from __future__ import annotations

import asyncio
import io
import posixpath
import secrets
import tarfile
import tempfile
from pathlib import Path
from typing import Awaitable, Callable

from repx_tui.backend.errors import SyncError
from repx_tui.backend.events import Phase, PhaseDone, PhaseSkipped, PhaseStarted
from repx_tui.backend.hashing import sha256_file
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import safe_component
from repx_tui.backend.sync.common import (
    PhaseResult,
    RateMeter,
    SyncContext,
    Throttle,
    failure_reason,
    out_of_space,
    progress_event,
)
from repx_tui.backend.sync.images import LIST_FUNCTION, ImageSync

MARKER = ".repx-complete"  # sha256sum-format list of bin/<tool>; written last, inside the staging dir

# $1 base, $2 host-tools dir, $3 the Lab manifest on the target, $4 the lab-synced marker,
# then (optional) the image listing's arguments (see layerstore.LIST_FUNCTION).
# Prints "complete" or "missing" (or "unwritable <user>"), the target's rsync (or "-"), the
# sha256 of the target's Lab manifest and of the marker's content (or "-"), for phase 2, then
# phase 3's listing: the whole "what is there" of a sync is ONE round trip.
PROBE_SCRIPT = LIST_FUNCTION + r"""
if ! mkdir -p "$1/artifacts" "$1/host-tools" 2>/dev/null || [ ! -w "$1" ]; then
  echo "unwritable $(id -un 2>/dev/null || echo '?')"
  exit 0
fi
if [ -f "$2/.repx-complete" ]; then echo complete; else echo missing; fi
command -v rsync || echo -
manifest=- marker=-
if [ -f "$3" ]; then manifest=$(sha256sum < "$3"); manifest=${manifest%% *}; fi
if [ -f "$4" ]; then marker=$(cat "$4"); fi
echo "$manifest $marker"
shift 4
if [ "$#" -gt 0 ]; then list_images "$@"; fi
"""

# The end of both installs: $2 a complete staging dir (checked here), $3 the final dir.
_PLACE = r"""
(cd "$2" && sha256sum -c --quiet .repx-complete)
if [ -d "$3" ] && [ ! -f "$3/.repx-complete" ]; then rm -rf "$3"; fi
if ! mv -T "$2" "$3" 2>/dev/null; then
  # another client placed a complete copy first: ours is redundant
  [ -f "$3/.repx-complete" ] || { echo "cannot install $3" >&2; exit 1; }
  rm -rf "$2"
fi
"""

# $1 uploaded tar ("-": the tar comes on stdin), $2 staging dir, $3 final dir.
INSTALL_SCRIPT = r"""
rm -rf "$2"; mkdir -p "$2"
tar -xf "$1" -C "$2"
if [ "$1" != - ]; then rm -f "$1"; fi
""" + _PLACE

# $1 the Lab's host-tools bin dir as phase 2 placed it on the target (links into its store/),
# $2 staging dir, $3 final dir; the marker (sha256sum lines of bin/<tool>) on stdin. The
# tools are already on the target inside the Lab: copying them there saves sending them twice.
COPY_SCRIPT = r"""
rm -rf "$2"; mkdir -p "$2/bin"
cat > "$2/.repx-complete"
while read -r _sum name; do
  cp -L -- "$1/${name#bin/}" "$2/$name"
done < "$2/.repx-complete"
""" + _PLACE


async def sync_host_tools(
    ctx: SyncContext,
    lab: Lab,
    image_sync: ImageSync | None = None,
    on_probed: Callable[[], None] | None = None,
    lab_content_placed: Callable[[], Awaitable[None]] | None = None,
) -> PhaseResult:
    """Phase 1; its probe also answers phase 2's "is this Lab already there" and, given
    `image_sync`, phase 3's listing, all in one round trip. `on_probed` is called once that
    answer is in (the other phases may start then, while the tools are still installing).
    Given `lab_content_placed` (returns once phase 2 put the Lab's content, tools included,
    on the target) and a target with its own rsync, missing tools are copied from there
    instead of being sent a second time."""
    meter = RateMeter()
    tools_hash = lab.host_tools_dir
    dest = ctx.layout.host_tools(tools_hash)
    ctx.emit(PhaseStarted(Phase.HOST_TOOLS, detail=tools_hash))
    state = await _probe(ctx, lab, dest, image_sync)
    ctx.tools_bin = posixpath.join(dest, "bin")
    if on_probed is not None:
        on_probed()
    if state == "complete":
        reason = f"host-tools/{tools_hash[:12]} already complete on the target"
        ctx.emit(PhaseSkipped(Phase.HOST_TOOLS, reason))
        return PhaseResult(Phase.HOST_TOOLS, "skipped", seconds=meter.elapsed, detail=reason)
    if lab_content_placed is not None and ctx.target_rsync and _inside(lab.host_tools_path, lab.root):
        await lab_content_placed()
        copied = await _copy_from_lab(ctx, lab, dest)
        if copied is not None:
            detail = f"{tools_hash} (copied from the Lab on the target: nothing sent twice)"
            ctx.emit(PhaseDone(Phase.HOST_TOOLS, files_sent=copied, bytes_sent=0, seconds=meter.elapsed, detail=detail))
            return PhaseResult(Phase.HOST_TOOLS, "done", copied, 0, meter.elapsed, detail)
    files, size = await _install(ctx, lab, dest, meter)
    ctx.emit(PhaseDone(Phase.HOST_TOOLS, files_sent=files, bytes_sent=size, seconds=meter.elapsed, detail=tools_hash))
    return PhaseResult(Phase.HOST_TOOLS, "done", files, size, meter.elapsed, tools_hash)


async def _probe(ctx: SyncContext, lab: Lab, dest: str, image_sync: ImageSync | None) -> str:
    """One round trip: base_path writable, host tools complete, the target's rsync,
    whether the target's Lab tree is the one phase 2 last completed for this very Lab, and
    which image layers and image directories the target already has."""
    manifest = ctx.layout.lab_manifest(lab.lab_id)  # the Lab's own copy: no other Lab replaces it
    listing = image_sync.listing_args() if image_sync is not None else []
    local_manifest = asyncio.create_task(asyncio.to_thread(sha256_file, lab.root / lab.manifest_path))
    result = await ctx.run_script(PROBE_SCRIPT, ctx.layout.base, dest, manifest, lab_marker_path(ctx, lab), *listing)
    lines = result.stdout.splitlines()[:3] + ["-", "- -"]
    first = lines[0].split() if lines else ["?"]
    if first[0] == "unwritable":
        local_manifest.cancel()
        user = first[1] if len(first) > 1 else "the login user"
        raise SyncError(
            f"{ctx.transport.name}: base_path {ctx.layout.base} cannot be created or written by {user}",
            hint="fix the directory's permissions, or set another base_path for this target in config.toml",
        )
    ctx.target_rsync = lines[1].strip() if lines[1].startswith("/") else None
    remote_manifest, marker = (lines[2].split() + ["-", "-"])[:2]
    ctx.lab_current = remote_manifest != "-" and marker == await local_manifest
    if image_sync is not None:
        image_sync.use_listing("\n".join(result.stdout.splitlines()[3:]))
    return first[0]


def lab_marker_path(ctx: SyncContext, lab: Lab) -> str:
    """Holds the sha256 of this Lab's manifest once phase 2 completed its tree on this base."""
    return posixpath.join(ctx.layout.base, ".repx", "synced", safe_component(lab.lab_id, "lab id"))


async def _install(ctx: SyncContext, lab: Lab, dest: str, meter: RateMeter) -> tuple[int, int]:
    with tempfile.TemporaryDirectory(prefix="repx-tools-") as tmp:
        bundle = Path(tmp) / "host-tools.tar"
        count = await asyncio.to_thread(_bundle, lab.host_tools_path, bundle)
        size = bundle.stat().st_size
        parent = posixpath.dirname(dest)
        token = secrets.token_hex(4)
        remote_tar = posixpath.join(parent, f".upload-{token}.tar")
        staging = posixpath.join(parent, f".staging-{posixpath.basename(dest)}-{token}")
        throttle = Throttle()

        def progress(done: int, total: int) -> None:
            if throttle.ready(done >= total):
                ctx.emit(progress_event(Phase.HOST_TOOLS, done, total, meter, total_files=count))

        send_to_command = getattr(ctx.transport, "run_with_file", None)
        if send_to_command is not None:  # one channel: the tar streams straight into tar -x
            argv = ["bash", "-c", _with_preamble(INSTALL_SCRIPT), "repx", "-", staging, dest]
            result = await send_to_command(argv, bundle, progress=progress, check=False)
        else:
            await ctx.transport.upload(bundle, remote_tar, progress=progress)
            result = await ctx.transport.run_script(_with_preamble(INSTALL_SCRIPT), remote_tar, staging, dest, check=False)
        if not result.ok:
            raise SyncError(
                f"{ctx.transport.name}: installing host tools into {dest} failed: "
                f"{failure_reason(result.stderr)}",
                hint=_install_hint(result.stderr),
            )
    return count, size


async def _copy_from_lab(ctx: SyncContext, lab: Lab, dest: str) -> int | None:
    """Tool count when copied and checked; None when that failed (the caller sends them)."""
    source = ctx.layout.artifact(lab.host_tools_path.relative_to(lab.root).as_posix())
    sums, count = await asyncio.to_thread(_marker, lab.host_tools_path)
    staging = posixpath.join(posixpath.dirname(dest), f".staging-{posixpath.basename(dest)}-{secrets.token_hex(4)}")
    result = await ctx.transport.run_script(_with_preamble(COPY_SCRIPT), source, staging, dest, input=sums, check=False)
    if not result.ok:
        await ctx.transport.run(["rm", "-rf", "--", staging], check=False)
        if out_of_space(result.stderr):  # sending them instead would fail the same way
            raise SyncError(f"{ctx.transport.name}: installing host tools into {dest} failed: "
                            f"{failure_reason(result.stderr)}", hint=_install_hint(result.stderr))
        return None
    return count


def _install_hint(stderr: str) -> str:
    if out_of_space(stderr):
        return "free space under base_path on the target (or use another base_path), then sync again"
    return "the target needs tar and sha256sum for the first install of the host tools"


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _marker(bin_dir: Path) -> tuple[bytes, int]:
    """The sha256sum-format marker of bin/<tool> (links followed), and the tool count."""
    lines = [f"{sha256_file(tool)}  bin/{tool.name}\n" for tool in sorted(bin_dir.iterdir()) if tool.is_file()]
    return "".join(lines).encode(), len(lines)


def _with_preamble(body: str) -> str:
    return "set -euo pipefail\n" + body


def _bundle(bin_dir: Path, out: Path) -> int:
    """tar of bin/<tool> with links followed, plus the sha256sum marker as the last member."""
    sums = io.StringIO()
    count = 0
    with tarfile.open(out, "w", dereference=True) as tar:
        for tool in sorted(bin_dir.iterdir()):
            if not tool.is_file():
                continue
            tar.add(tool, arcname=f"bin/{tool.name}", recursive=False)
            sums.write(f"{sha256_file(tool)}  bin/{tool.name}\n")
            count += 1
        data = sums.getvalue().encode()
        info = tarfile.TarInfo(MARKER)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return count




__all__ = ["sync_host_tools", "MARKER", "PROBE_SCRIPT", "INSTALL_SCRIPT"]
