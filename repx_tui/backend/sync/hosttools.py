"""Phase 1: the Lab's static host tools -> `<base>/host-tools/<hash>/bin`, content-addressed.

The sync's probe (plan.py) says whether they are complete. When they are missing they travel as
one tar (links dereferenced) to a staging directory, or are copied out of the Lab's content
already on the target, are checked with sha256sum, and the staging directory is renamed into
place, so `<hash>/` only ever exists complete.
"""

from __future__ import annotations

import asyncio
import io
import posixpath
import secrets
import tarfile
import tempfile
from pathlib import Path

from repx_tui.backend.errors import SyncError
from repx_tui.backend.events import Phase, PhaseDone, PhaseSkipped
from repx_tui.backend.hashing import sha256_file
from repx_tui.backend.lab import Lab
from repx_tui.backend.sync.common import (
    PhaseResult,
    RateMeter,
    SyncContext,
    Throttle,
    failure_reason,
    out_of_space,
    progress_event,
)
from repx_tui.backend.sync.plan import PhaseGates, SyncPlan

MARKER = ".repx-complete"  # sha256sum-format list of bin/<tool>; written last, inside the staging dir

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
INSTALL_SCRIPT = (
    r"""
rm -rf "$2"; mkdir -p "$2"
tar -xf "$1" -C "$2"
if [ "$1" != - ]; then rm -f "$1"; fi
"""
    + _PLACE
)

# $1 the Lab's host-tools bin dir as phase 2 placed it on the target (links into its store/),
# $2 staging dir, $3 final dir; the marker (sha256sum lines of bin/<tool>) on stdin. The
# tools are already on the target inside the Lab: copying them there saves sending them twice.
COPY_SCRIPT = (
    r"""
rm -rf "$2"; mkdir -p "$2/bin"
cat > "$2/.repx-complete"
sources=()
while read -r _sum name; do
  sources+=("$1/${name#bin/}")
done < "$2/.repx-complete"
if ((${#sources[@]})); then cp -L -- "${sources[@]}" "$2/bin/"; fi  # one cp for every tool
"""
    + _PLACE
)


async def sync_host_tools(ctx: SyncContext, lab: Lab, plan: SyncPlan, gates: PhaseGates) -> PhaseResult:
    """Phase 1: nothing when the probe found the tools complete. On a target with its own rsync
    the tools are copied out of the Lab's content once phase 2 placed it (nothing sent twice);
    otherwise they are sent as one tar, which phase 2 waits for (it needs the Lab's rsync)."""
    meter = RateMeter()
    tools_hash = lab.host_tools_dir
    dest = plan.tools_dir
    if plan.tools_complete:
        reason = f"host-tools/{tools_hash[:12]} already complete on the target"
        ctx.emit(PhaseSkipped(Phase.HOST_TOOLS, reason))
        return PhaseResult(Phase.HOST_TOOLS, "skipped", seconds=meter.elapsed, detail=reason)
    if plan.target_rsync and _inside(lab.host_tools_path, lab.root):
        await gates.lab_content_placed.wait()
        copied = await _copy_from_lab(ctx, lab, dest)
        if copied is not None:
            detail = f"{tools_hash} (copied from the Lab on the target: nothing sent twice)"
            ctx.emit(PhaseDone(Phase.HOST_TOOLS, files_sent=copied, bytes_sent=0, seconds=meter.elapsed, detail=detail))
            return PhaseResult(Phase.HOST_TOOLS, "done", copied, 0, meter.elapsed, detail)
    files, size = await _install(ctx, lab, dest, meter)
    ctx.emit(PhaseDone(Phase.HOST_TOOLS, files_sent=files, bytes_sent=size, seconds=meter.elapsed, detail=tools_hash))
    return PhaseResult(Phase.HOST_TOOLS, "done", files, size, meter.elapsed, tools_hash)


async def _install(ctx: SyncContext, lab: Lab, dest: str, meter: RateMeter) -> tuple[int, int]:
    with tempfile.TemporaryDirectory(prefix="repx-tools-") as tmp:
        bundle = Path(tmp) / "host-tools.tar"
        count = await asyncio.to_thread(_bundle, lab.host_tools_path, bundle)
        size = bundle.stat().st_size
        parent = posixpath.dirname(dest)
        token = secrets.token_hex(4)
        staging = posixpath.join(parent, f".staging-{posixpath.basename(dest)}-{token}")
        throttle = Throttle()

        def progress(done: int, total: int) -> None:
            if throttle.ready(done >= total):
                ctx.emit(progress_event(Phase.HOST_TOOLS, done, total, meter, total_files=count))

        # one channel: the tar streams straight into tar -x
        argv = ["bash", "-c", _with_preamble(INSTALL_SCRIPT), "repx", "-", staging, dest]
        result = await ctx.transport.run_with_file(argv, bundle, progress=progress, check=False)
        if not result.ok:
            raise SyncError(
                f"{ctx.transport.name}: installing host tools into {dest} failed: {failure_reason(result.stderr)}",
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
            raise SyncError(
                f"{ctx.transport.name}: installing host tools into {dest} failed: {failure_reason(result.stderr)}",
                hint=_install_hint(result.stderr),
            )
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


__all__ = ["sync_host_tools", "MARKER", "INSTALL_SCRIPT"]
