"""What every headless command starts with: config -> target, Lab and scheduler -> one session."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

from repx_tui.backend.config import load_config
from repx_tui.backend.events import EventSink, discard
from repx_tui.backend.lab import Lab
from repx_tui.backend.session import TargetSession
from repx_tui.headless.prompt import TerminalAuthenticator


@contextlib.asynccontextmanager
async def open_session(args: argparse.Namespace, emit: EventSink = discard) -> AsyncIterator[TargetSession]:
    """Everything is read and checked before the target is contacted; the session is closed
    (one logout) when the command ends, whatever happened."""
    config = load_config()
    target = config.target(getattr(args, "target", None))
    lab = Lab.load(args.lab) if getattr(args, "lab", None) else None
    scheduler = getattr(args, "scheduler", None) or target.scheduler(config.default_scheduler)
    async with TargetSession(
        target, emit, lab=lab, scheduler=scheduler, authenticator=TerminalAuthenticator()
    ) as session:
        yield session
