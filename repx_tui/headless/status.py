"""`repx-tui status --lab PATH --target NAME [--json] [--watch]`: job states of a Lab on a target."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable

from repx_tui.backend.events import Event, JobsChanged, StatusReport
from repx_tui.backend.resources import load_resources
from repx_tui.headless.common import open_session
from repx_tui.headless.render import renderer


async def main(args: argparse.Namespace) -> int:
    render = renderer(args.json)
    resources = load_resources(args.resources) if getattr(args, "resources", None) else None  # before connecting

    def only(kind: type) -> Callable[[Event], None]:
        return lambda event: render(event) if isinstance(event, kind) else None

    async with open_session(args, only(StatusReport)) as session:
        if resources is not None:
            session.resources = resources  # what OUT_OF_MEMORY / TIMEOUT hints name
        await session.status()
        if getattr(args, "watch", False):
            session.emit = only(JobsChanged)  # from now on, the changes only
            with contextlib.suppress(asyncio.CancelledError):
                await session.watch()
    return 0
