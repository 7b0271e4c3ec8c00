"""`repx-tui logs JOB --lab PATH --target NAME [-f] [--stderr] [-n N]`.

JOB may be a job id, a unique prefix, or `<job>/<sub>` for a scatter-gather unit
(e.g. `<job>/branch-0/step-square`). `-n N` finds the start of the last N lines by reading
backwards from the end, then prints them as they are read: memory stays at one read (1 MiB)
whatever N and the size of the log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import Event, LogChunk
from repx_tui.backend.logs import LogFollower
from repx_tui.headless.status import open_session


def _write(event: Event) -> None:
    if isinstance(event, LogChunk):
        sys.stdout.write(event.text)
        sys.stdout.flush()


async def main(args: argparse.Namespace) -> int:
    if args.lines < 0:
        raise RepxError(f"-n {args.lines}: the number of lines cannot be negative")
    spec, _, sub = args.job.partition("/")
    async with open_session(args) as session:
        jobs = session.lab.select([spec])
        if len(jobs) != 1:
            raise RepxError(f"'{spec}' names {len(jobs)} jobs; logs needs exactly one", hint="give a job id")
        stream = "stderr" if args.stderr else "stdout"
        follower = LogFollower(session.transport, session.layout, jobs[0], stream, sub or None, emit=_write)
        if args.follow:
            with contextlib.suppress(asyncio.CancelledError):
                await follower.follow(tail_lines=args.lines, tail_max_bytes=None)  # exactly N lines, streamed
            return 0
        chunk = await follower.tail(args.lines)
        if chunk is None and await session.transport.file_size(follower.path) is None:
            raise RepxError(f"no {stream} log yet for {jobs[0]} ({follower.path})", hint="has the job started?")
    return 0
