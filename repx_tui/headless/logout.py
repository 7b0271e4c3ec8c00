"""`repx-tui logout [TARGET]`: end the kept login of a target, or of every target."""

from __future__ import annotations

import argparse

from repx_tui.backend.keeper.client import logout


async def main(args: argparse.Namespace) -> int:
    ended = await logout(args.target)
    if not ended:
        print(f"no kept login{f' for {args.target}' if args.target else ''}")
    for info in ended:
        print(f"logged out of {info['name']} ({info['address']}): keeper pid {info['pid']} ended")
    return 0
