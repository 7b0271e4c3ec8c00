"""`repx-tui run RUN... --lab PATH --target NAME --headless [--resources F] [--scheduler S] [--compress C] [--json] [--wait]`

Sync the Lab (host tools, Lab, images), then submit the jobs of the named runs (`@group` and
job-id prefixes work too) with SLURM or the target's detached agent. Prints one line per
event; with --json every line is a JSON event and the last line is
{"submitted": [{"job", "slurm_id"}], "skipped": [{"job", "reason"}], "errors": [...]} (plus, with
--wait, "failed": [job ids] and "failures": [{"job", "state", "why"}] for the jobs that did not
succeed). --wait ends when nothing more can happen by itself (status/outlook.py): every job
final, blocked by a failure, or queued for a local agent that is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from repx_tui.backend.config import Target, load_config
from repx_tui.backend.events import JobState, JobStateKind
from repx_tui.backend.lab import Lab
from repx_tui.backend.resources import Resources, load_resources
from repx_tui.backend.session import TargetSession
from repx_tui.backend.status import MIN_INTERVAL
from repx_tui.backend.status.outlook import nothing_more_can_happen, orphaned, outcome
from repx_tui.headless.prompt import TerminalAuthenticator
from repx_tui.headless.render import renderer

LOCAL_POLL_SECONDS = 1.0  # the agent's files only; SLURM is never polled under status.MIN_INTERVAL
# The agent `run` just started takes its lock a moment later: "no agent" must last this long
# before --wait believes the queued jobs will never run.
AGENT_GONE_GRACE = 5.0


async def main(args: argparse.Namespace) -> int:
    config = load_config()
    target = config.target(args.target)
    scheduler = args.scheduler or target.scheduler(config.default_scheduler)
    # a file given is checked whatever the scheduler: a bad --resources is never silently ignored
    resources = load_resources(args.resources) if scheduler == "slurm" or args.resources else None
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
    asker = TerminalAuthenticator()  # a code, password or passphrase: asked on the terminal, as every command does
    async with TargetSession(target, renderer(as_json), lab=lab, scheduler=scheduler, authenticator=asker) as session:
        result = await session.run(
            job_ids,
            resources=resources,
            execution_type=execution_type,
            allow_missing_runs=allow_missing_runs,
            compress=compress,
        )
        errored = {job for job, _message in result.errors}
        waited = [j for j in job_ids if j not in errored]  # a job sbatch or the agent refused never runs
        failed = await _wait(session, waited) if wait else []
    if wait:  # the submission's line came before the job states: repeat it last, with the outcome
        if as_json:
            failures = [{"job": s.job, "state": s.state.value, "why": outcome(s)} for s in failed]
            print(json.dumps({**result.to_json(), "failed": [s.job for s in failed], "failures": failures}), flush=True)
        elif failed:
            print(f"{len(failed)} of {len(waited)} jobs did not succeed; nothing more will run:", file=sys.stderr)
            for state in failed:
                print(f"  {state.job}: {outcome(state)}", file=sys.stderr)
    return 1 if result.errors or failed else 0


async def _wait(session: TargetSession, job_ids: list[str]) -> list[JobState]:
    """Poll job states (each change is rendered) until nothing more can happen to them; returns
    the ones that did not succeed."""
    orphaned_since: float | None = None
    while True:
        states = await session.poll()
        wanted = [states.get(j) for j in job_ids]
        if nothing_more_can_happen(wanted):
            done = [s for s in wanted if s is not None and s.state is not JobStateKind.SUCCEEDED]
            if not any(orphaned(s) for s in done):
                return done
            orphaned_since = time.monotonic() if orphaned_since is None else orphaned_since
            if time.monotonic() - orphaned_since >= AGENT_GONE_GRACE:
                return done
        else:
            orphaned_since = None
        pause = MIN_INTERVAL if session.scheduler == "slurm" else LOCAL_POLL_SECONDS
        await asyncio.sleep(pause)  # polling a remote target, not test synchronisation
