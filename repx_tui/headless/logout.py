"""`repx-tui logout [TARGET]`: end the kept login of a target, or of every target."""

from __future__ import annotations

import argparse

from repx_tui.backend.events import KeeperEnded, LoggedOut
from repx_tui.backend.keeper.client import logout
from repx_tui.headless.render import renderer


async def main(args: argparse.Namespace) -> int:
    ended = await logout(args.target)
    keepers = tuple(KeeperEnded(info["name"], info["address"], info["pid"]) for info in ended)
    renderer(False)(LoggedOut(ended=keepers, target=args.target))
    return 0
