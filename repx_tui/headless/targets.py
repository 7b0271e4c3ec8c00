"""`repx-tui targets [--check] [--json]`."""

from __future__ import annotations

import argparse
import asyncio

from repx_tui.backend.config import load_config
from repx_tui.backend.events import TargetsReport
from repx_tui.backend.session import TargetSession
from repx_tui.headless.render import renderer


async def main(args: argparse.Namespace) -> int:
    config = load_config()
    targets = tuple(config.targets.values())
    # every target at once; a check never asks for a code (a kept login is used when there is one)
    health = await asyncio.gather(*(TargetSession(t).health() for t in targets)) if args.check else []
    report = TargetsReport(config=str(config.source), targets=targets, health=tuple(health))
    renderer(args.json)(report)
    return 0 if report.ok else 1
