"""Pull results back: `outputs/<job>/` trees from the target into a local tree laid out as there.

    <dest>/outputs/<job>/{out,repx}/...           as on the target (rsync: incremental, -t kept,
                                                  each file written under a temp name, renamed)
    <dest>/artifacts/lab/<labId>-lab-metadata.json  the Lab's own metadata, as sync puts it on
    <dest>/artifacts/revision/<labId>-metadata-*.json the target (written here from the local Lab)

so upstream's repx-py reads the pulled tree as it reads a target's: the Lab from
`<dest>/artifacts` (lab/*.json -> metadata -> runs -> jobs), each job's results from
`<dest>/outputs/<job>/out/` (its LocalCacheResolver layout), and `Experiment.from_run_metadata`
with store_base `<dest>`.

One probe round trip (which jobs have outputs there, which rsync to run there), then ONE rsync
for every job over the session's connection (the rsync bridge, as the Lab sync does): its
per-file lines give per-job progress. An unchanged re-pull transfers nothing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

from repx_tui.backend.errors import ConnectionDropped, RepxError, SyncError
from repx_tui.backend.events import EventSink, PullProgress, PullResult, PullSummary
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout, safe_component
from repx_tui.backend.sync.common import Throttle, failure_reason
from repx_tui.backend.sync.lab import local_rsync, own_metadata
from repx_tui.backend.textnum import unsigned
from repx_tui.backend.transport.base import Transport

# $1 outputs dir, $2 the Lab's host-tools bin; job ids on stdin, one a line. Prints the rsync to
# run on the target (its own, else the Lab's static one, else "-"), then each job with a dir.
PROBE_SCRIPT = r"""set -uo pipefail
out=$1
tools=$2
if command -v rsync; then :
elif [[ -x "$tools/rsync" ]]; then printf '%s\n' "$tools/rsync"
else echo -
fi
while IFS= read -r job; do
    if [[ -d "$out/$job" ]]; then printf '%s\n' "$job"; fi
done
"""
FLAGS = ["-rlpt", "--no-human-readable", "--out-format=%l %n"]
PROGRESS_SECONDS = 0.2


def default_dest(target: str, cwd: Path | None = None) -> Path:
    """Where a pull goes without --to: ./repx-results/<target>."""
    return (cwd or Path.cwd()) / "repx-results" / safe_component(target, "target name")


def prepare_dest(dest: Path) -> Path:
    """The local tree's root, created; refuses a path that exists and is not a directory."""
    dest = dest.expanduser().absolute()
    if dest.exists() and not dest.is_dir():
        raise RepxError(f"{dest} exists and is not a directory", hint="give another path with --to")
    try:
        (dest / "outputs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RepxError(f"cannot create {dest}: {exc.strerror or exc}", hint="give another path with --to") from None
    return dest


def write_metadata(lab: Lab, dest: Path) -> None:
    """The Lab's own metadata under <dest>/artifacts/, each file written whole, then renamed."""
    for rel, data in own_metadata(lab).items():
        path = dest / "artifacts" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.read_bytes() == data:
            continue
        tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
        tmp.write_bytes(data)
        os.replace(tmp, path)


async def probe(
    transport: Transport, layout: RemoteLayout, lab: Lab, job_ids: Sequence[str]
) -> tuple[str | None, list[str]]:
    """(the target's rsync or None, the jobs that have an outputs dir there): one round trip."""
    tools = layout.host_tools_bin(lab.host_tools_dir)
    result = await transport.run_script(
        PROBE_SCRIPT, layout.outputs, tools, input="".join(f"{j}\n" for j in job_ids).encode(), check=True
    )
    lines = result.stdout.splitlines()
    rsync = lines[0].strip() if lines and lines[0].startswith("/") else None
    wanted = set(job_ids)
    return rsync, [j for j in lines[1:] if j in wanted]


def rsync_argv(transport: Transport, layout: RemoteLayout, lab: Lab, dest: Path, remote_rsync: str | None) -> list[str]:
    argv = [local_rsync(lab.root), *FLAGS, "--files-from=-"]
    shell = transport.rsync_shell()
    if shell is not None:
        if remote_rsync is None:
            raise SyncError(
                f"{transport.name}: no rsync on the target and the Lab's host tools are not there",
                hint="sync the Lab first (repx-tui sync), or install rsync on the target",
            )
        argv += [f"--rsync-path={remote_rsync}", "-e", shlex.join(shell)]
    source = transport.rsync_destination(layout.outputs.rstrip("/") + "/")
    return [*argv, source, f"{dest / 'outputs'}/"]


class _Tally:
    """Files and bytes per job from rsync's `%l %n` lines; throttled progress events."""

    def __init__(self, jobs: Sequence[str], emit: EventSink) -> None:
        self.files = dict.fromkeys(jobs, 0)
        self.bytes = dict.fromkeys(jobs, 0)
        self.emit = emit
        self.throttle = Throttle(PROGRESS_SECONDS)
        self.current: str | None = None

    def line(self, text: str) -> None:
        size, _, name = text.partition(" ")
        job, _, rest = name.partition("/")
        if job not in self.files or unsigned(size) is None or not rest or name.endswith("/"):
            return  # a directory, or a line that is not a transferred file
        self.files[job] += 1
        self.bytes[job] += int(size)
        if job != self.current and self.current is not None:
            self._progress(self.current)
        self.current = job
        if self.throttle.ready():
            self._progress(job)

    def _progress(self, job: str) -> None:
        self.emit(PullProgress(job, self.files[job], self.bytes[job]))


async def pull_outputs(
    transport: Transport, layout: RemoteLayout, lab: Lab, job_ids: Sequence[str], dest: Path, emit: EventSink
) -> PullSummary:
    started = time.monotonic()
    for job_id in job_ids:
        lab.job(job_id)
        safe_component(job_id, "job id")
    dest = prepare_dest(dest)
    await asyncio.to_thread(write_metadata, lab, dest)
    remote_rsync, present = await probe(transport, layout, lab, job_ids)
    tally = _Tally(present, emit)
    if present:
        await _rsync(transport, rsync_argv(transport, layout, lab, dest, remote_rsync), present, tally)
    results = []
    for job in job_ids:
        if job not in tally.files:
            results.append(PullResult(job, "missing"))
            continue
        files, size = tally.files[job], tally.bytes[job]
        emit(PullProgress(job, files, size, done=True))
        results.append(PullResult(job, "pulled" if files else "unchanged", files, size))
    summary = PullSummary(str(dest), tuple(results), time.monotonic() - started)
    emit(summary)
    return summary


async def _rsync(transport: Transport, argv: list[str], jobs: Sequence[str], tally: _Tally) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write("".join(f"{job}/\n" for job in jobs).encode())
        await proc.stdin.drain()
        proc.stdin.close()
        stderr_task = asyncio.create_task(proc.stderr.read())
        while line := await proc.stdout.readline():
            tally.line(line.decode(errors="replace").rstrip("\n"))
        stderr = (await stderr_task).decode(errors="replace")
        status = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if status != 0:
        reason = failure_reason(stderr)
        if not transport.is_connected():
            raise ConnectionDropped(f"{transport.name}: connection lost during the pull ({reason})")
        raise SyncError(
            f"{transport.name}: pulling outputs failed (rsync exit {status}): {reason}",
            hint="check free space and permissions where the results go (--to)",
        )
