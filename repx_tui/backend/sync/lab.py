"""Phase 2: the Lab tree -> `<base>/artifacts/` with real rsync, over the session's connection.

An rsync pass and a metadata swap on the same connection (rsync's remote shell is the session's bridge, so no
second login):
  1. everything except the metadata (`lab/`, `revision/`) and the image layers and image
     directories (phase 3 sends those, layer by layer, at the same time as this pass);
  2. once phases 1 and 3 are done (PhaseGates), the metadata: one small tar through one round
     trip (METADATA_SCRIPT), each changed file renamed into place, the manifest last, then the
     lab-synced marker, so the new metadata appears only once everything it points at is in
     place and a reader never sees half a Lab.
Both passes are skipped when the sync's probe (SyncPlan) found this very Lab complete there.
Both use --checksum: Nix gives every file mtime 1, so size+mtime would miss a changed file of
the same size. Without -t, mtimes on the target never match anyway; --checksum is what decides.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import posixpath
import re
import secrets
import shlex
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import humanize

from repx_tui.backend.errors import ConnectionDropped, SyncError
from repx_tui.backend.events import Phase, PhaseDone, PhaseSkipped, PhaseStarted
from repx_tui.backend.hashing import sha256_file
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import own_metadata_name
from repx_tui.backend.sync.common import (
    PhaseResult,
    RateMeter,
    SyncContext,
    Throttle,
    add_to_tar,
    failure_reason,
    progress_event,
)
from repx_tui.backend.sync.plan import PhaseGates, SyncPlan, lab_marker_path

BASE_FLAGS = ["-rlp", "--checksum", "--chmod=Du+w", "--no-human-readable", "--stats", "--info=progress2"]
# Pass 1 sends only content-addressed paths (jobs/, store/, host-tools/); the fixed-name files
# (lab/, revision/, readme/) go in pass 2, so a half-done sync never changes what they say.
CONTENT_EXCLUDES = [
    "--exclude=/lab/",
    "--exclude=/revision/",
    "--exclude=/readme/",
    "--exclude=/images/",
    "--exclude=/store/*-layer.tar",
]
METADATA_DIRS = ("lab", "revision", "readme")

# $1 artifacts dir, $2 staging dir (new), $3 the manifest's path relative to artifacts, $4 the
# lab-synced marker, $5 the manifest's sha256, $6 the Lab's own manifest (relative), then the
# files and links the tar holds (relative, manifests included); the metadata as a tar on stdin.
# Each changed file replaces the old one by a rename (the manifests last), then the marker is
# written: the whole metadata step, marker included, is one round trip instead of an rsync pass
# + a file write, and starts a process per changed file only for its rename. Refuses to write
# through a symlinked metadata dir (a hostile earlier sync could point it anywhere). Prints the
# files it changed, one per line.
METADATA_SCRIPT = r"""
art=$1 staging=$2 manifest=$3 marker=$4 sha=$5 own=$6
shift 6
for dir in lab revision readme; do
  if [ -L "$art/$dir" ]; then echo "refusing to write through the symlink $art/$dir" >&2; exit 1; fi
done
trap 'rm -rf -- "$staging"' EXIT
mkdir -p "$staging"
tar -xf - -C "$staging"
swap() {
  local new="$staging/$1" old="$art/$1" dir
  if [ -L "$new" ]; then
    if [ -L "$old" ] && [ "$(readlink -- "$new")" = "$(readlink -- "$old")" ]; then return 0; fi
  elif [ -f "$old" ] && [ ! -L "$old" ] && cmp -s -- "$new" "$old"; then
    return 0
  fi
  dir=${old%/*}
  [ -d "$dir" ] || mkdir -p -- "$dir"
  [ -w "$dir" ] || chmod u+w -- "$dir"
  mv -fT -- "$new" "$old"
  printf '%s\n' "$1"
}
for rel in "$@"; do
  if [ "$rel" != "$manifest" ] && [ "$rel" != "$own" ]; then swap "$rel"; fi
done
swap "$own"
if [ -e "$staging/$manifest" ] || [ -L "$staging/$manifest" ]; then swap "$manifest"; fi
[ -d "${marker%/*}" ] || mkdir -p -- "${marker%/*}"
printf '%s' "$sha" > "$marker.tmp-$$"
mv -f -- "$marker.tmp-$$" "$marker"
"""

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

    def __add__(self, other: RsyncStats) -> RsyncStats:
        return RsyncStats(self.files + other.files, self.size + other.size, self.wire + other.wire)


async def sync_lab_tree(ctx: SyncContext, lab: Lab, plan: SyncPlan, gates: PhaseGates) -> PhaseResult:
    """Phase 2. Opens gates.lab_content_placed once the target has the Lab's content (all but the
    metadata); swaps the metadata in only once phases 1 and 3 succeeded."""
    meter = RateMeter()
    if plan.lab_current:
        gates.lab_content_placed.set()
        reason = f"the target already has this Lab ({lab.lab_id}) complete"
        ctx.emit(PhaseSkipped(Phase.LAB, reason))
        return PhaseResult(Phase.LAB, "skipped", seconds=meter.elapsed, detail=reason)
    ctx.emit(PhaseStarted(Phase.LAB, detail=str(lab.root)))
    if plan.target_rsync is None:  # the Lab's own rsync is needed on the target first
        await gates.tools_installed(f"{ctx.transport.name}: the Lab was not sent")
    content = await _rsync(ctx, plan, lab.root, CONTENT_EXCLUDES, meter, done_before=0)
    gates.lab_content_placed.set()
    bundle = asyncio.create_task(asyncio.to_thread(metadata_tar, lab))
    manifest_sha = asyncio.create_task(asyncio.to_thread(sha256_file, lab.root / lab.manifest_path))
    not_updated = f"{ctx.transport.name}: the Lab's metadata was not updated"
    await gates.tools_installed(not_updated)
    await gates.images_installed(not_updated)
    metadata = await _swap_metadata(ctx, lab, await bundle, await manifest_sha)
    total = content + metadata
    detail = f"{total.files} files changed, {humanize.naturalsize(total.wire, binary=True)} on the wire"
    label = rsync_label(ctx.compression.rsync_flags)
    ctx.emit(
        PhaseDone(
            Phase.LAB,
            files_sent=total.files,
            bytes_sent=total.size,
            seconds=meter.elapsed,
            detail=detail,
            wire_bytes=total.wire,
            compression=label,
        )
    )
    return PhaseResult(Phase.LAB, "done", total.files, total.size, meter.elapsed, detail, total.wire, label)


def rsync_label(flags: tuple[str, ...]) -> str:
    """ "zstd-6" for --compress-choice=zstd --compress-level=6, "rsync -z" for -z alone, "off"."""
    if not flags:
        return "off"
    options = dict(flag.partition("=")[::2] for flag in flags)
    choice = options.get("--compress-choice")
    return f"{choice}-{options.get('--compress-level', '')}".rstrip("-") if choice else "rsync -z"


async def _swap_metadata(ctx: SyncContext, lab: Lab, bundle: bytes, manifest_sha: str) -> RsyncStats:
    staging = posixpath.join(ctx.layout.base, ".repx", f"metadata-staging-{secrets.token_hex(4)}")
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        sizes = {m.name: m.size for m in tar.getmembers() if m.isfile() or m.issym()}
    result = await ctx.run_script(
        METADATA_SCRIPT,
        ctx.layout.artifacts,
        staging,
        lab.manifest_path,
        lab_marker_path(ctx, lab),
        manifest_sha,
        own_metadata_name(lab.lab_id, "lab", "lab-metadata.json"),
        *sizes,
        input=bundle,
        check=False,
    )
    if not result.ok:
        raise SyncError(
            f"{ctx.transport.name}: updating the Lab's metadata failed: {failure_reason(result.stderr)}",
            hint="check free space and permissions under base_path on the target",
        )
    changed = [rel for rel in result.stdout.splitlines() if rel in sizes]
    return RsyncStats(len(changed), sum(sizes[rel] for rel in changed), len(bundle))


def metadata_tar(lab: Lab) -> bytes:
    """lab/, revision/, readme/ as a tar (links kept as links, dirs writable for the owner),
    plus the Lab's own copies of its metadata (own_metadata)."""
    root = lab.root
    own = own_metadata(lab)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for top in METADATA_DIRS:
            if not (root / top).exists():
                continue
            for path in [root / top, *sorted((root / top).rglob("*"))]:
                rel = path.relative_to(root).as_posix()
                if rel not in own:
                    add_to_tar(tar, path, rel)
        for rel, data in own.items():
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), 0o644, 1
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def own_metadata(lab: Lab) -> dict[str, bytes]:
    """The manifest, root and run metadata under names only this Lab uses (own_metadata_name),
    their pointers rewritten to each other, so upstream's loader and GC, given this manifest,
    see exactly this Lab whatever was synced to the fixed names since."""

    def name(directory: str, file: str) -> str:
        return own_metadata_name(lab.lab_id, directory, file)

    renamed = {run.metadata_path: name("revision", f"metadata-{run.name}.json") for run in lab.runs.values()}
    renamed[lab.metadata_path] = name("revision", "metadata-top.json")
    out: dict[str, bytes] = {}
    for run in lab.runs.values():
        meta = json.loads((lab.root / run.metadata_path).read_bytes())
        if isinstance(meta.get("dependencies"), dict):
            meta["dependencies"] = {renamed.get(k, k): v for k, v in meta["dependencies"].items()}
        out[renamed[run.metadata_path]] = _compact(meta)
    top = json.loads((lab.root / lab.metadata_path).read_bytes())
    top["runs"] = [renamed.get(p, p) for p in top.get("runs", [])]
    out[renamed[lab.metadata_path]] = _compact(top)
    manifest = json.loads((lab.root / lab.manifest_path).read_bytes())
    manifest["metadata"] = renamed[lab.metadata_path]
    files = [f for f in manifest.get("files", []) if f.get("path") not in renamed]
    files += [{"path": rel, "sha256": hashlib.sha256(data).hexdigest()} for rel, data in out.items()]
    manifest["files"] = sorted(files, key=lambda f: f["path"])
    out[name("lab", "lab-metadata.json")] = _compact(manifest)
    return out


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def rsync_argv(ctx: SyncContext, plan: SyncPlan, source: Path, extra: list[str]) -> list[str]:
    argv = [local_rsync(source), *BASE_FLAGS, *ctx.compression.rsync_flags, *extra]
    shell = ctx.transport.rsync_shell()
    if shell is not None:  # the target's own rsync, else the Lab's static one from phase 1
        argv.append(f"--rsync-path={plan.target_rsync or plan.tools_bin + '/rsync'}")
        argv += ["-e", shlex.join(shell)]
    dest = ctx.transport.rsync_destination(ctx.layout.artifacts.rstrip("/") + "/")
    return [*argv, f"{source}/", dest]


def local_rsync(lab_root: Path) -> str:
    """This machine's rsync, else the one the Lab ships among its host tools."""
    found = shutil.which("rsync")
    if found:
        return found
    for shipped in sorted(lab_root.glob("host-tools/*/bin/rsync")):
        if os.access(shipped, os.X_OK):
            return str(shipped)
    raise SyncError(
        "rsync is not installed on this machine and the Lab ships none",
        hint="install rsync (e.g. apt-get install rsync)",
    )


async def _rsync(
    ctx: SyncContext, plan: SyncPlan, source: Path, extra: list[str], meter: RateMeter, done_before: int
) -> RsyncStats:
    argv = rsync_argv(ctx, plan, source, extra)
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
    last = failure_reason(stderr)
    if not ctx.transport.is_connected():
        raise ConnectionDropped(f"{ctx.transport.name}: connection lost during rsync ({last})")
    raise SyncError(
        f"{ctx.transport.name}: rsync of the Lab failed (exit {status}): {last}",
        hint="check free space and permissions under base_path on the target",
    )
