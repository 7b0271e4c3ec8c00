"""`repx-tui cancel JOB_OR_RUN... --lab PATH --target NAME [--yes] [--json]`."""

from __future__ import annotations

import argparse
import json
import sys

from repx_tui.backend.cancel import cancel_jobs
from repx_tui.backend.errors import RepxError
from repx_tui.headless.status import open_session


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
    print(f"Cancel {len(jobs)} job(s) on {target} ({len(chosen)} chosen + {dependants} dependant(s))?\n{shown}",
          file=sys.stderr)
    answer = input("type 'yes' to cancel: ")
    return answer.strip().lower() in ("y", "yes")


async def main(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        chosen = session.lab.select(args.jobs)
        jobs = session.lab.with_dependants(chosen)  # the same list the TUI's dialog shows
        if not args.yes and not confirm(jobs, set(chosen), session.target.name):
            print("nothing cancelled", file=sys.stderr)
            return 1
        report = await cancel_jobs(
            session.transport, session.layout, session.lab, session.target, session.scheduler, jobs
        )
    if getattr(args, "json", False):
        print(json.dumps(report.to_json(), indent=2))
    else:
        for r in report.results:
            mark = "cancelled" if r.ok else "not cancelled"
            sid = f" (slurm {r.slurm_id})" if r.slurm_id else ""
            print(f"{r.job}{sid}: {mark}: {r.detail}")
    # a dependant that was never submitted or already finished is nothing to worry about
    return 0 if all(r.ok for r in report.results if r.job in chosen) else 1
