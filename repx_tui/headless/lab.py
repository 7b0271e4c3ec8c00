"""`repx-tui lab PATH [--verify] [--json]`."""

from __future__ import annotations

import argparse
import json
import sys
import time

import humanize

from repx_tui.backend.lab import Lab


class _VerifyProgress:
    """One status line, rewritten at most every 0.2 s, only on a terminal."""

    def __init__(self) -> None:
        self.last = 0.0
        self.started = time.monotonic()
        self.live = sys.stderr.isatty()

    def __call__(self, done: int, total: int, path: str) -> None:
        now = time.monotonic()
        if not self.live or (now - self.last < 0.2 and done < total):
            return
        self.last = now
        rate = done / max(now - self.started, 1e-6)
        pct = 100.0 * done / total if total else 100.0
        sys.stderr.write(
            f"\rverifying {pct:5.1f}%  {humanize.naturalsize(done, binary=True)} of "
            f"{humanize.naturalsize(total, binary=True)}  {humanize.naturalsize(rate, binary=True)}/s\x1b[K"
        )
        sys.stderr.flush()

    def finish(self) -> None:
        if self.live:
            sys.stderr.write("\r\x1b[K")


async def main(args: argparse.Namespace) -> int:
    lab = Lab.load(args.path)
    for warning in lab.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.verify:
        progress = _VerifyProgress()
        try:
            lab.verify(progress)
        finally:
            progress.finish()
    summary = lab.to_summary()
    if args.json:
        if args.verify:
            summary["verified"] = True
        print(json.dumps(summary, indent=2))
        return 0
    print(f"Lab {summary['lab_id']}  ({lab.root})")
    for run in summary["runs"]:
        print(f"  run {run['name']}: {len(run['jobs'])} jobs")
    for group, runs in summary["groups"].items():
        print(f"  group @{group}: {', '.join(runs)}")
    for image in summary["images"]:
        size = sum(layer["size"] for layer in image["layers"])
        print(f"  image {image['tag']}: {len(image['layers'])} layers, {humanize.naturalsize(size, binary=True)}")
    print(f"  host tools: {summary['host_tools']}")
    print(f"  {summary['jobs']} jobs in all" + ("; every file verified" if args.verify else ""))
    return 0
