"""`repx-tui lab PATH [--verify] [--json]`."""

from __future__ import annotations

import argparse
import sys
import time

import humanize

from repx_tui.backend.events import LabReport, Notice
from repx_tui.backend.lab import Lab
from repx_tui.headless.render import renderer


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
    warn = renderer(False, sys.stderr)  # on stderr: with --json, stdout is the one document
    for warning in lab.warnings:
        warn(Notice("warning", warning))
    if args.verify:
        progress = _VerifyProgress()
        try:
            lab.verify(progress)
        finally:
            progress.finish()
    renderer(args.json)(LabReport(root=str(lab.root), summary=lab.to_summary(), verified=args.verify))
    return 0
