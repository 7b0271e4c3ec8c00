"""`repx-tui login [TARGET] [--idle 10m]`: log in once and keep that login for later commands.

Starts the target's keeper (repx_tui/backend/keeper), which logs in, asking this terminal for
a one-time code, password or key passphrase when the target wants one. Until it has been idle
for the given time (default 10 min, or $REPX_KEEPER_IDLE), every command for the target, the
TUI included, uses that connection and asks nothing.
"""

from __future__ import annotations

import argparse

from repx_tui.backend.config import load_config
from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import LoginKept
from repx_tui.backend.keeper.client import find_keeper, start_keeper
from repx_tui.backend.keeper.paths import idle_seconds
from repx_tui.headless.prompt import TerminalAuthenticator
from repx_tui.headless.render import renderer


async def main(args: argparse.Namespace) -> int:
    config = load_config()
    target = config.target(args.target)
    if target.address is None:
        raise RepxError(f"target {target.name} is this machine: there is no login to keep")
    idle = idle_seconds(args.idle)
    before = find_keeper(target.name, target.address)
    kept = before or await start_keeper(target.name, target.address, idle)
    info = await kept.login(TerminalAuthenticator())
    kept_info = LoginKept(target.name, target.address, info["pid"], info["idle"], already=before is not None)
    renderer(False)(kept_info)
    return 0
