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

from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import LogChunk
from repx_tui.backend.logs import Stream
from repx_tui.headless.common import open_session
from repx_tui.headless.render import renderer


async def main(args: argparse.Namespace) -> int:
    if args.lines < 0:
        raise RepxError(f"-n {args.lines}: the number of lines cannot be negative")
    spec, _, sub = args.job.partition("/")
    render = renderer(False)
    # the log text itself, as it comes, and nothing else (a pipe gets exactly the log's lines)
    async with open_session(args, lambda event: render(event) if isinstance(event, LogChunk) else None) as session:
        jobs = session.require_lab().select([spec])
        if len(jobs) != 1:
            raise RepxError(f"'{spec}' names {len(jobs)} jobs; logs needs exactly one", hint="give a job id")
        stream: Stream = "stderr" if args.stderr else "stdout"
        if args.follow:
            with contextlib.suppress(asyncio.CancelledError):  # exactly N lines, streamed, then follow
                await session.follow_log(jobs[0], stream, sub or None, tail_lines=args.lines, tail_max_bytes=None)
            return 0
        await session.tail_log(jobs[0], stream, sub or None, lines=args.lines)
    return 0
