"""Phase 2: the Lab tree -> `<base>/artifacts/` with real rsync, over the session's connection.

Two rsync passes on the same connection (rsync's remote shell is the session's bridge, so no
second login):
  1. everything except the metadata (`lab/`, `revision/`) and the image layers and image
     directories (phase 3 sends those, layer by layer);
  2. the metadata, with --delay-updates, so the new metadata appears only once everything it
     points at is in place and a reader never sees half a Lab.
Both use --checksum: Nix gives every file mtime 1, so size+mtime would miss a changed file of
the same size. Without -t, mtimes on the target never match anyway; --checksum is what decides.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from repx_tui.backend.errors import SyncError
from repx_tui.backend.events import Phase, PhaseDone, PhaseSkipped, PhaseStarted
from repx_tui.backend.lab import Lab
from repx_tui.backend.sync.hosttools import _sha256, lab_marker_path
from repx_tui.backend.sync.common import PhaseResult, RateMeter, SyncContext, Throttle, progress_event

BASE_FLAGS = ["-rlp", "--checksum", "--chmod=Du+w", "--no-human-readable", "--stats", "--info=progress2"]
# Pass 1 sends only content-addressed paths (jobs/, store/, host-tools/); the fixed-name files
# (lab/, revision/, readme/) go in pass 2, so a half-done sync never changes what they say.
CONTENT_EXCLUDES = [
    "--exclude=/lab/", "--exclude=/revision/", "--exclude=/readme/", "--exclude=/images/",
    "--exclude=/store/*-layer.tar",
]
METADATA_ONLY = ["--include=/lab/***", "--include=/revision/***", "--include=/readme/***", "--exclude=*"]

_PROGRESS_RE = re.compile(rb"^\s*(\d+)\s+(\d+)%\s+(\S+)\s+\S+(?:\s+\(xfr#(\d+))?")
_STAT_RE = {
    "files": re.compile(r"Number of regular files transferred:\s*([\d,]+)"),
    "size": re.compile(r"Total transferred file size:\s*([\d,]+)"),
    "wire": re.compile(r"Total bytes sent:\s*([\d,]+)"),
}


@dataclass
class RsyncStats:
    files: int = 0
    size: int = 0  # content bytes of the files that were (re)sent
    wire: int = 0  # bytes rsync wrote to the connection

    def __add__(self, other: "RsyncStats") -> "RsyncStats":
        return RsyncStats(self.files + other.files, self.size + other.size, self.wire + other.wire)


async def sync_lab_tree(ctx: SyncContext, lab: Lab) -> PhaseResult:
    meter = RateMeter()
    if ctx.lab_current:
        reason = f"the target already has this Lab ({lab.lab_id}) complete"
        ctx.emit(PhaseSkipped(Phase.LAB, reason))
        return PhaseResult(Phase.LAB, "skipped", seconds=meter.elapsed, detail=reason)
    ctx.emit(PhaseStarted(Phase.LAB, detail=str(lab.root)))
    content = await _rsync(ctx, lab.root, CONTENT_EXCLUDES, meter, done_before=0)
    metadata = await _rsync(ctx, lab.root, ["--delay-updates", f"--partial-dir=.repx-tmp-{secrets.token_hex(4)}", *METADATA_ONLY], meter, content.size)
    total = content + metadata
    manifest_sha = await asyncio.to_thread(_sha256, lab.root / lab.manifest_path)
    await ctx.transport.write_file(lab_marker_path(ctx), manifest_sha.encode())
    detail = f"{total.wire} bytes on the wire"
    ctx.emit(PhaseDone(Phase.LAB, files_sent=total.files, bytes_sent=total.size, seconds=meter.elapsed, detail=detail))
    return PhaseResult(Phase.LAB, "done", total.files, total.size, meter.elapsed, detail)


def rsync_argv(ctx: SyncContext, source: Path, extra: list[str]) -> list[str]:
    argv = [local_rsync(), *BASE_FLAGS, *extra]
    shell = ctx.transport.rsync_shell()
    if shell is not None:
        argv.append(f"--rsync-path={remote_rsync(ctx)}")
        argv += ["-e", shlex.join(shell)]
    dest = ctx.transport.rsync_destination(ctx.layout.artifacts.rstrip("/") + "/")
    return [*argv, f"{source}/", dest]


def local_rsync() -> str:
    found = shutil.which("rsync")
    if not found:
        raise SyncError("rsync is not installed on this machine", hint="install rsync (e.g. apt-get install rsync)")
    return found


def remote_rsync(ctx: SyncContext) -> str:
    """The target's own rsync when it has one, else the Lab's static one from phase 1."""
    if ctx.target_rsync:
        return ctx.target_rsync
    if not ctx.tools_bin:
        raise SyncError(f"{ctx.transport.name}: the target has no rsync and the host tools are not installed")
    return f"{ctx.tools_bin}/rsync"


async def _rsync(ctx: SyncContext, source: Path, extra: list[str], meter: RateMeter, done_before: int) -> RsyncStats:
    argv = rsync_argv(ctx, source, extra)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    output = bytearray()
    throttle = Throttle()

    def on_progress(done: int, files: int) -> None:
        if throttle.ready():
            ctx.emit(progress_event(Phase.LAB, done_before + done, None, meter, files_done=files))

    try:
        stderr, _ = await asyncio.gather(_read_all(proc.stderr), _read_progress(proc.stdout, output, on_progress))
        status = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if status != 0:
        _raise_rsync_failure(ctx, status, stderr.decode(errors="replace"))
    return parse_stats(output.decode(errors="replace"))


async def _read_all(stream: asyncio.StreamReader | None) -> bytes:
    return await stream.read() if stream is not None else b""


async def _read_progress(stream: asyncio.StreamReader | None, output: bytearray, on_progress) -> None:
    """Collect stdout; --info=progress2 rewrites one line with \\r, so split on both."""
    if stream is None:
        return
    pending = b""
    while chunk := await stream.read(65536):
        output += chunk
        pending += chunk
        *lines, pending = re.split(rb"[\r\n]", pending)
        for line in lines:
            match = _PROGRESS_RE.match(line)
            if match:
                on_progress(int(match.group(1)), int(match.group(4) or 0))


def parse_stats(text: str) -> RsyncStats:
    values = {}
    for key, pattern in _STAT_RE.items():
        match = pattern.search(text)
        values[key] = int(match.group(1).replace(",", "")) if match else 0
    return RsyncStats(**values)


def _raise_rsync_failure(ctx: SyncContext, status: int, stderr: str) -> None:
    connected = getattr(ctx.transport, "is_connected", lambda: True)()
    last = (stderr.strip().splitlines() or ["no output"])[-1]
    if not connected:
        from repx_tui.backend.transport.ssh import ConnectionDropped

        raise ConnectionDropped(f"{ctx.transport.name}: connection lost during rsync ({last})")
    raise SyncError(
        f"{ctx.transport.name}: rsync of the Lab failed (exit {status}): {last}",
        hint="check free space and permissions under base_path on the target",
    )
