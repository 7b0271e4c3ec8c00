"""`repx-tui run RUN... --lab PATH --target NAME --headless [--resources F] [--scheduler S] [--json] [--wait]`

Sync the Lab (host tools, Lab, images), then submit the jobs of the named runs (`@group` and
job-id prefixes work too) with SLURM or the target's detached agent. Prints one line per
event; with --json every line is a JSON event and the last line is
{"submitted": [{"job", "slurm_id"}], "skipped": [{"job", "reason"}], "errors": [...]}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from repx_tui.backend.config import Target, load_config
from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import (
    Event, JobsChanged, JobSkipped, JobStateKind, JobSubmitted, Notice, PhaseDone, PhaseFailed, PhaseSkipped, PhaseStarted,
)
from repx_tui.backend.lab import Lab
from repx_tui.backend.resources import Resources, load_resources
from repx_tui.backend.schedulers import SubmitResult, check_source_runs, submit
from repx_tui.backend.session import TargetSession

LOCAL_POLL_SECONDS = 1.0  # the agent's files only; SLURM is never polled under status.MIN_INTERVAL


def _human(event: Event) -> str | None:
    if isinstance(event, PhaseStarted):
        return f"{event.phase.value}: started {event.detail}".rstrip()
    if isinstance(event, PhaseDone):
        return f"{event.phase.value}: done in {event.seconds:.1f}s {event.detail}".rstrip()
    if isinstance(event, PhaseSkipped):
        return f"{event.phase.value}: skipped ({event.reason})"
    if isinstance(event, PhaseFailed):
        return f"{event.phase.value}: FAILED: {event.reason}"
    if isinstance(event, JobSubmitted):
        return f"submitted {event.job}" + (f" (slurm {event.slurm_id})" if event.slurm_id else "")
    if isinstance(event, JobSkipped):
        return f"skipped {event.job}: {event.reason}"
    if isinstance(event, Notice):
        return f"{event.level}: {event.message}"
    if isinstance(event, JobsChanged):
        return "\n".join(_job_line(state) for state in event.changed) or None
    return None


def _job_line(state) -> str:
    detail = state.reason or ("" if not state.exit_code else f"exit {state.exit_code}")
    return f"{state.state.value:>10}  {state.job}" + (f"  ({detail})" if detail else "")


def _printer(as_json: bool):
    def emit(event: Event) -> None:
        line = json.dumps(event.to_json()) if as_json else _human(event)
        if line:
            print(line, flush=True)

    return emit


async def main(args: argparse.Namespace) -> int:
    config = load_config()
    target = config.target(args.target)
    scheduler = args.scheduler or target.scheduler(config.default_scheduler)
    resources = load_resources(args.resources) if scheduler == "slurm" else None
    lab = Lab.load(args.lab)
    return await run_jobs(
        target, lab, lab.resolve(args.runs), scheduler=scheduler, resources=resources,
        execution_type=args.execution_type, wait=args.wait, as_json=args.json,
        allow_missing_runs=args.allow_missing_runs,
    )


async def run_jobs(
    target: Target,
    lab: Lab,
    job_ids: list[str],
    *,
    scheduler: str,
    resources: Resources | None = None,
    execution_type: str | None = None,
    wait: bool = False,
    as_json: bool = False,
    allow_missing_runs: bool = False,
) -> int:
    """Sync, submit, optionally wait, and print it all; the exit code (1 if anything failed)."""
    emit = _printer(as_json)
    async with TargetSession(target, emit) as session:
        if not allow_missing_runs:
            await check_source_runs(session.transport, session.layout, lab, target, scheduler, job_ids)
        await session.sync(lab, runs=sorted({lab.run_of(j) for j in job_ids}))
        result = await submit(
            session.transport, session.layout, lab, target, job_ids, scheduler=scheduler, resources=resources,
            execution_type=execution_type, allow_missing_runs=allow_missing_runs, emit=emit,
        )
        failed = await _wait(session, lab, target, scheduler, job_ids, emit) if wait else []
    _summary(result, failed, as_json)
    return 1 if result.errors or failed else 0


def _summary(result: SubmitResult, failed: list[str], as_json: bool) -> None:
    if as_json:
        data = result.to_json()
        if failed:
            data["failed"] = failed
        print(json.dumps(data), flush=True)
        return
    print(f"{len(result.submitted)} submitted, {len(result.skipped)} skipped, {len(result.errors)} not submitted")
    for job, message in result.errors:
        print(f"  {job}: {message}", file=sys.stderr)
    for job in failed:
        print(f"  failed: {job}", file=sys.stderr)


async def _wait(session: TargetSession, lab: Lab, target, scheduler: str, job_ids: list[str], emit) -> list[str]:
    """Poll job states, printing each change, until every job has finished or can never run;
    returns the failed/blocked ones."""
    from repx_tui.backend.status import MIN_INTERVAL, StatusWatcher

    watcher = StatusWatcher(session.transport, session.layout, lab, target, scheduler, emit)
    done = {JobStateKind.BLOCKED}
    while True:
        try:
            states = await watcher.poll_once()
        except RepxError as exc:
            print(f"warning: status poll failed: {exc}", file=sys.stderr)
            states = {}
        wanted = [states.get(j) for j in job_ids]
        if wanted and all(s is not None and (s.state.finished or s.state in done) for s in wanted):
            return [s.job for s in wanted if s and s.state != JobStateKind.SUCCEEDED]
        pause = MIN_INTERVAL if watcher.uses_slurm(watcher.snapshot) else LOCAL_POLL_SECONDS
        await asyncio.sleep(pause)  # polling a remote target, not test synchronisation
