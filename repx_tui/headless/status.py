"""`repx-tui status --lab PATH --target NAME [--json] [--watch]`: job states of a Lab on a target."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

from repx_tui.backend.config import Target, load_config
from repx_tui.backend.events import Event, EventSink, JobsChanged, JobState, discard
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.status import StatusWatcher, states_json
from repx_tui.backend.transport import Transport, open_transport


@dataclass
class Session:
    target: Target
    lab: Any
    transport: Transport
    layout: RemoteLayout
    scheduler: str


@contextlib.asynccontextmanager
async def open_session(args: argparse.Namespace, emit: EventSink = discard) -> AsyncIterator[Session]:
    """Config -> target, Lab, one connected transport and the remote layout (shared by the
    status, cancel and logs commands)."""
    from repx_tui.backend.lab import Lab

    config = load_config()
    target = config.target(getattr(args, "target", None))
    lab = Lab.load(args.lab)
    transport = open_transport(target, emit)
    async with transport:
        base = await transport.resolve_path(target.base_path)
        node_local = await transport.resolve_path(target.node_local_path) if target.node_local_path else None
        layout = RemoteLayout(base=base, node_local=node_local)
        yield Session(target, lab, transport, layout, target.scheduler(config.default_scheduler))


async def main(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        watcher = StatusWatcher(session.transport, session.layout, session.lab, session.target, session.scheduler, discard)
        states = await watcher.poll_once()
        if args.json:
            print(json.dumps(status_json(watcher), indent=2))
        else:
            print_table(states, watcher)
        if getattr(args, "watch", False):
            await _watch(watcher, args.json)
    return 0


def status_json(watcher: StatusWatcher) -> dict[str, Any]:
    return {
        "jobs": states_json(watcher.states),
        "runs": [r.to_json() for r in watcher.runs()],
        "stale_since": watcher.stale_since,
        "error": watcher.error,
    }


def describe(state: JobState) -> str:
    """The detail column: what a person wants to know next to the state."""
    bits = []
    if state.slurm_id:
        bits.append(f"slurm {state.slurm_id}")
    if state.exit_code is not None and state.state.value != "succeeded":
        bits.append(f"exit {state.exit_code}")
    if state.elapsed:
        bits.append(state.elapsed)
    if state.node:
        bits.append(f"on {state.node}")
    if state.max_rss:
        bits.append(f"rss {state.max_rss}")
    if state.reason:
        bits.append(state.reason)
    return ", ".join(bits)


def print_table(states: dict[str, JobState], watcher: StatusWatcher) -> None:
    if watcher.error:
        age = time.time() - (watcher.stale_since or time.time())
        print(f"STALE ({age:.0f} s): {watcher.error}", file=sys.stderr)
    width = max((len(j) for j in states), default=3)
    for state in states.values():
        stale = " (stale)" if state.stale else ""
        print(f"{state.job:<{width}}  {state.run:<12} {state.state.value:<13} {describe(state)}{stale}")
    print()
    for run in watcher.runs():
        counts = ", ".join(f"{n} {k}" for k, n in sorted(run.counts.items()))
        print(f"{run.name:<{width}}  {'':<12} {run.state.value:<13} {counts}")


async def _watch(watcher: StatusWatcher, as_json: bool) -> None:
    def on_event(event: Event) -> None:
        if not isinstance(event, JobsChanged):
            return
        if as_json:
            print(json.dumps(event.to_json()), flush=True)
            return
        if event.error:
            print(f"STALE: {event.error}", file=sys.stderr, flush=True)
        for s in event.changed:
            print(f"{s.job}  {s.state.value}  {describe(s)}{' (stale)' if s.stale else ''}", flush=True)

    watcher.emit = on_event
    with contextlib.suppress(asyncio.CancelledError):
        await watcher.watch()
