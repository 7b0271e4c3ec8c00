"""`repx-tui run RUN... --lab PATH --target NAME --headless [--resources F] [--scheduler S] [--compress C] [--json] [--wait]`

Sync the Lab (host tools, Lab, images), then submit the jobs of the named runs (`@group` and
job-id prefixes work too) with SLURM or the target's detached agent. Prints one line per
event; with --json every line is a JSON event and the last line is
{"submitted": [{"job", "slurm_id"}], "skipped": [{"job", "reason"}], "errors": [...]} (plus
"failed": [job ids] with --wait).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from repx_tui.backend.config import Target, load_config
from repx_tui.backend.events import JobStateKind
from repx_tui.backend.lab import Lab
from repx_tui.backend.resources import Resources, load_resources
from repx_tui.backend.session import TargetSession
from repx_tui.backend.status import MIN_INTERVAL
from repx_tui.headless.render import renderer

LOCAL_POLL_SECONDS = 1.0  # the agent's files only; SLURM is never polled under status.MIN_INTERVAL


async def main(args: argparse.Namespace) -> int:
    config = load_config()
    target = config.target(args.target)
    scheduler = args.scheduler or target.scheduler(config.default_scheduler)
    resources = load_resources(args.resources) if scheduler == "slurm" else None
    lab = Lab.load(args.lab)
    return await run_jobs(
        target,
        lab,
        lab.resolve(args.runs),
        scheduler=scheduler,
        resources=resources,
        execution_type=args.execution_type,
        wait=args.wait,
        as_json=args.json,
        allow_missing_runs=args.allow_missing_runs,
        compress=getattr(args, "compress", "auto"),
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
    compress: str = "auto",
) -> int:
    """Sync, submit, optionally wait, and print it all; the exit code (1 if anything failed)."""
    async with TargetSession(target, renderer(as_json), lab=lab, scheduler=scheduler) as session:
        result = await session.run(
            job_ids,
            resources=resources,
            execution_type=execution_type,
            allow_missing_runs=allow_missing_runs,
            compress=compress,
        )
        failed = await _wait(session, job_ids) if wait else []
    if wait:  # the submission's line came before the job states: repeat it last, with the outcome
        if as_json:
            print(json.dumps({**result.to_json(), "failed": failed}), flush=True)
        else:
            for job in failed:
                print(f"  failed: {job}", file=sys.stderr)
    return 1 if result.errors or failed else 0


async def _wait(session: TargetSession, job_ids: list[str]) -> list[str]:
    """Poll job states (each change is rendered) until every job has finished or can never run;
    returns the failed/blocked ones."""
    while True:
        states = await session.poll()
        wanted = [states.get(j) for j in job_ids]
        if wanted and all(s is not None and (s.state.finished or s.state is JobStateKind.BLOCKED) for s in wanted):
            return [s.job for s in wanted if s and s.state is not JobStateKind.SUCCEEDED]
        pause = MIN_INTERVAL if session.scheduler == "slurm" else LOCAL_POLL_SECONDS
        await asyncio.sleep(pause)  # polling a remote target, not test synchronisation
