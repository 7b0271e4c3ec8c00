"""`repx-tui pull [RUN|JOB ...] --lab PATH --target NAME [--to DIR] [--json]`: results back home.

Brings `outputs/<job>/` of the named runs (`@group`, job ids or prefixes; every job of the Lab
when none is named) into DIR (default ./repx-results/<target>), laid out as on the target, with
the Lab's metadata under DIR/artifacts/ so upstream's repx-py reads it. One rsync over the
session's one connection; incremental: an unchanged re-pull transfers nothing. With --json the
last line is {"dest", "jobs": [{"job", "status": pulled|unchanged|missing, "files", "bytes"}],
"counts", "bytes", "files", "seconds"}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from repx_tui.backend.config import load_config
from repx_tui.backend.events import ConnectionState, Event, PullProgress, PullSummary
from repx_tui.backend.pull import default_dest, prepare_dest
from repx_tui.headless.common import open_session
from repx_tui.headless.render import renderer


async def main(args: argparse.Namespace) -> int:
    render = renderer(args.json)
    target = load_config().target(args.target)
    dest = prepare_dest(Path(args.to) if args.to else default_dest(target.name))  # before connecting

    def shown(event: Event) -> None:
        if isinstance(event, (PullProgress, PullSummary, ConnectionState)):
            render(event)

    async with open_session(args, shown) as session:
        lab = session.require_lab()
        jobs = lab.select(args.specs) if args.specs else lab.topological_order(lab.jobs)
        await session.pull(jobs, dest)
    return 0
