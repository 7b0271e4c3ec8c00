"""Phase 1: the Lab's static host tools -> `<base>/host-tools/<hash>/bin`, content-addressed.

One round trip decides: it also creates base_path (failing clearly when it cannot) and finds
the target's own rsync. When the tools are missing they travel as one tar (links
dereferenced) to a staging directory, are checked with sha256sum, and the staging directory
is renamed into place, so `<hash>/` only ever exists complete.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import posixpath
import secrets
import tarfile
import tempfile
from pathlib import Path

from repx_tui.backend.errors import SyncError
from repx_tui.backend.events import Phase, PhaseDone, PhaseSkipped, PhaseStarted
from repx_tui.backend.lab import Lab
from repx_tui.backend.sync.common import PhaseResult, RateMeter, SyncContext, Throttle, progress_event

MARKER = ".repx-complete"  # sha256sum-format list of bin/<tool>; written last, inside the staging dir

# $1 base, $2 host-tools dir, $3 the Lab manifest on the target, $4 the lab-synced marker.
# Prints "complete" or "missing" (or "unwritable <user>"), the target's rsync (or "-"), and the
# sha256 of the target's Lab manifest and of the marker's content (or "-"), for phase 2.
PROBE_SCRIPT = r"""
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
"""

# $1 uploaded tar, $2 staging dir, $3 final dir.
INSTALL_SCRIPT = r"""
rm -rf "$2"; mkdir -p "$2"
tar -xf "$1" -C "$2"
rm -f "$1"
(cd "$2" && sha256sum -c --quiet .repx-complete)
if [ -d "$3" ] && [ ! -f "$3/.repx-complete" ]; then rm -rf "$3"; fi
if ! mv -T "$2" "$3" 2>/dev/null; then
  # another client placed a complete copy first: ours is redundant
  [ -f "$3/.repx-complete" ] || { echo "cannot install $3" >&2; exit 1; }
  rm -rf "$2"
fi
"""


async def sync_host_tools(ctx: SyncContext, lab: Lab) -> PhaseResult:
    meter = RateMeter()
    tools_hash = lab.host_tools_dir
    dest = ctx.layout.host_tools(tools_hash)
    ctx.emit(PhaseStarted(Phase.HOST_TOOLS, detail=tools_hash))
    state = await _probe(ctx, lab, dest)
    ctx.tools_bin = posixpath.join(dest, "bin")
    if state == "complete":
        reason = f"host-tools/{tools_hash[:12]} already complete on the target"
        ctx.emit(PhaseSkipped(Phase.HOST_TOOLS, reason))
        return PhaseResult(Phase.HOST_TOOLS, "skipped", seconds=meter.elapsed, detail=reason)
    files, size = await _install(ctx, lab, dest, meter)
    ctx.emit(PhaseDone(Phase.HOST_TOOLS, files_sent=files, bytes_sent=size, seconds=meter.elapsed, detail=tools_hash))
    return PhaseResult(Phase.HOST_TOOLS, "done", files, size, meter.elapsed, tools_hash)


async def _probe(ctx: SyncContext, lab: Lab, dest: str) -> str:
    """One round trip: base_path writable, host tools complete, the target's rsync, and
    whether the target's Lab tree is the one phase 2 last completed for this very Lab."""
    manifest = ctx.layout.artifact(lab.manifest_path)
    result = await ctx.run_script(PROBE_SCRIPT, ctx.layout.base, dest, manifest, lab_marker_path(ctx))
    lines = result.stdout.splitlines() + ["-", "- -"]
    first = lines[0].split() if lines else ["?"]
    if first[0] == "unwritable":
        user = first[1] if len(first) > 1 else "the login user"
        raise SyncError(
            f"{ctx.transport.name}: base_path {ctx.layout.base} cannot be created or written by {user}",
            hint="fix the directory's permissions, or set another base_path for this target in config.toml",
        )
    ctx.target_rsync = lines[1].strip() if lines[1].startswith("/") else None
    remote_manifest, marker = (lines[2].split() + ["-", "-"])[:2]
    local_manifest = _sha256(lab.root / lab.manifest_path)
    ctx.lab_current = remote_manifest == marker == local_manifest
    return first[0]


def lab_marker_path(ctx: SyncContext) -> str:
    """Holds the sha256 of the Lab manifest whose tree phase 2 last completed on this base."""
    return posixpath.join(ctx.layout.base, ".repx", "lab-synced")


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

        await ctx.transport.upload(bundle, remote_tar, progress=progress)
        result = await ctx.transport.run_script(_with_preamble(INSTALL_SCRIPT), remote_tar, staging, dest, check=False)
        if not result.ok:
            raise SyncError(
                f"{ctx.transport.name}: installing host tools into {dest} failed: "
                f"{(result.stderr.strip().splitlines() or ['no output'])[-1]}",
                hint="the target needs tar and sha256sum for the first install of the host tools",
            )
    return count, size


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
            sums.write(f"{_sha256(tool)}  bin/{tool.name}\n")
            count += 1
        data = sums.getvalue().encode()
        info = tarfile.TarInfo(MARKER)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return count


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["sync_host_tools", "MARKER", "PROBE_SCRIPT", "INSTALL_SCRIPT"]
