"""`repx-tui cancel JOB_OR_RUN... --lab PATH --target NAME [--yes] [--json]`.

Cancels what was named and every job that can only run after it (Lab.with_dependants), the same
list the TUI's cancel dialog shows.
"""

from __future__ import annotations

import argparse
import sys

from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import CancelReport
from repx_tui.headless.common import open_session
from repx_tui.headless.render import renderer


def confirm(jobs: list[str], chosen: set[str], target: str) -> bool:
    """Ask on a terminal; without one, refuse unless --yes was given (never cancel silently)."""
    if not sys.stdin.isatty():
        raise RepxError(
            f"refusing to cancel {len(jobs)} job(s) without confirmation (stdin is not a terminal)",
            hint="add --yes to cancel without asking",
        )
    lines = [f"  {j}{'' if j in chosen else '  (dependant)'}" for j in jobs[:20]]
    shown = "\n".join(lines) + (f"\n  ... and {len(jobs) - 20} more" if len(jobs) > 20 else "")
    dependants = len(jobs) - len(chosen)
    print(
        f"Cancel {len(jobs)} job(s) on {target} ({len(chosen)} chosen + {dependants} dependant(s))?\n{shown}",
        file=sys.stderr,
    )
    answer = input("type 'yes' to cancel: ")
    return answer.strip().lower() in ("y", "yes")


async def main(args: argparse.Namespace) -> int:
    render = renderer(args.json)
    async with open_session(args) as session:
        lab = session.require_lab()
        chosen = lab.select(args.jobs)
        jobs = lab.with_dependants(chosen)
        if not args.yes and not confirm(jobs, set(chosen), session.target.name):
            print("nothing cancelled", file=sys.stderr)
            return 1
        session.emit = lambda event: render(event) if isinstance(event, CancelReport) else None
        report = await session.cancel(jobs)
    # a dependant that was never submitted or already finished is nothing to worry about
    return 0 if all(r.ok for r in report.results if r.job in chosen) else 1
