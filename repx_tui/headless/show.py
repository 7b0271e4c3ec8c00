"""`repx-tui show JOB --lab PATH --target NAME [--resources FILE] [--json]`: the job inspector.

JOB is a job id or a unique prefix. Prints the job's parameters, the jobs it reads from and
that read from it, what it asks SLURM for and which resources.toml rule, Lab hint or default
produced each value, its state (with efficiency once finished on SLURM), SLURM ids, node,
times, exit code, reason, the remote paths of out/ and its logs, and a scatter-gather job's
units with their own state and logs. --json prints the JobInspection event as one object.
"""

from __future__ import annotations

import argparse

from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import JobInspection
from repx_tui.backend.resources import load_resources
from repx_tui.headless.common import open_session
from repx_tui.headless.render import renderer


async def main(args: argparse.Namespace) -> int:
    resources = load_resources(args.resources) if args.resources else None  # checked before connecting
    render = renderer(args.json)
    async with open_session(args, lambda event: render(event) if isinstance(event, JobInspection) else None) as session:
        jobs = session.require_lab().select([args.job])
        if len(jobs) != 1:
            raise RepxError(f"'{args.job}' names {len(jobs)} jobs; show needs exactly one", hint="give a job id")
        if resources is not None:
            session.resources = resources
        await session.inspect(jobs[0])
    return 0
