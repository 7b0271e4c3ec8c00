"""`repx-tui sync --lab PATH --target NAME [--json]`: sync a Lab (host tools, Lab, images).

People get one line per step; `--json` gives one JSON object per event, then the summary:
{"phases": [...], "layers": [...], "bytes_sent", "ssh_connections", "seconds"}.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

import humanize

from repx_tui.backend.config import load_config
from repx_tui.backend.events import (
    ConnectionState,
    Event,
    LayerAction,
    LayerProgress,
    Notice,
    PhaseDone,
    PhaseFailed,
    PhaseProgress,
    PhaseSkipped,
    PhaseStarted,
)
from repx_tui.backend.lab import Lab
from repx_tui.backend.session import TargetSession
from repx_tui.backend.sync import SyncSummary


def size(n: float) -> str:
    return humanize.naturalsize(n, binary=True)


class HumanPrinter:
    """Readable progress lines; rewrites one progress line in place on a terminal."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.live = out.isatty()
        self.pending_progress = False

    def __call__(self, event: Event) -> None:
        line = self.describe(event)
        if line is None:
            return
        if isinstance(event, (PhaseProgress, LayerProgress)) and not getattr(event, "done", False):
            if self.live:
                self.out.write(f"\r{line}\x1b[K")
                self.pending_progress = True
                self.out.flush()
            return
        if self.pending_progress:
            self.out.write("\r\x1b[K")
            self.pending_progress = False
        self.out.write(line + "\n")
        self.out.flush()

    @staticmethod
    def describe(event: Event) -> str | None:
        if isinstance(event, PhaseStarted):
            return f"[{event.phase.value}] started{': ' + event.detail if event.detail else ''}"
        if isinstance(event, PhaseProgress):
            total = f" of {size(event.total_bytes)}" if event.total_bytes else ""
            rate = f" at {size(event.rate)}/s" if event.rate else ""
            return f"[{event.phase.value}] {size(event.bytes_done)}{total}{rate}"
        if isinstance(event, PhaseDone):
            return (f"[{event.phase.value}] done: {event.files_sent} files, {size(event.bytes_sent)} sent "
                    f"in {event.seconds:.2f} s{' (' + event.detail + ')' if event.detail else ''}")
        if isinstance(event, PhaseSkipped):
            return f"[{event.phase.value}] skipped: {event.reason}"
        if isinstance(event, PhaseFailed):
            return f"[{event.phase.value}] FAILED: {event.reason}" + (f"\n  hint: {event.hint}" if event.hint else "")
        if isinstance(event, LayerProgress):
            return _layer_line(event)
        if isinstance(event, ConnectionState):
            return f"[ssh] {event.target}: {event.state}{' ' + event.detail if event.detail else ''}"
        if isinstance(event, Notice):
            return f"{event.level}: {event.message}"
        return None


def _layer_line(event: LayerProgress) -> str | None:
    digest = event.digest[:12]
    if event.action is LayerAction.PENDING:
        return None
    if event.action is LayerAction.TRANSFERRED and not event.done:
        if event.sent == 0:
            return None
        return f"  layer {digest} sending {size(event.sent)} of {size(event.size)}"
    if not event.done:
        return None
    return f"  layer {digest} {event.action.value} ({size(event.size)})"


def summary_line(summary: SyncSummary) -> str:
    sent = sum(layer.bytes_sent for layer in summary.layers)
    reused = sum(1 for layer in summary.layers if layer.action is LayerAction.REUSED)
    return (f"synced in {summary.seconds:.2f} s: {size(summary.bytes_sent)} sent "
            f"({size(sent)} of image layers, {reused} of {len(summary.layers)} layers reused), "
            f"{summary.ssh_connections} SSH connection(s)")


async def main(args: argparse.Namespace) -> int:
    config = load_config()
    target = config.target(args.target)
    lab = Lab.load(args.lab)
    emit = _json_printer if args.json else HumanPrinter()
    async with TargetSession(target, emit) as session:
        summary = await session.sync(lab)
    if args.json:
        print(json.dumps(summary.to_json()), flush=True)
    else:
        print(summary_line(summary), flush=True)
    return 0


def _json_printer(event: Event) -> None:
    print(json.dumps(event.to_json()), flush=True)
