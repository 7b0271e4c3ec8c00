"""`repx-tui sync --lab PATH --target NAME [--json]`: sync a Lab (host tools, Lab, images).

People get one line per step; `--json` gives one JSON object per event, the last one the summary:
{"phases": [...], "layers": [...], "bytes_sent", "ssh_connections", "seconds"}.
"""

from __future__ import annotations

import argparse

from repx_tui.headless.common import open_session
from repx_tui.headless.render import renderer


async def main(args: argparse.Namespace) -> int:
    async with open_session(args, renderer(args.json)) as session:
        await session.sync()
    return 0
