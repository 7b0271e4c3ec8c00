"""`repx-tui sync --lab PATH --target NAME [--compress auto|on|off] [--json]`: sync a Lab (host tools, Lab, images).

People get one line per step; `--json` gives one JSON object per event, the last one the summary:
{"phases": [...], "layers": [...], "bytes_sent", "ssh_connections", "seconds", "content_bytes",
"wire_bytes", "ratio", "compression", "compression_reason"}.
"""

from __future__ import annotations

import argparse

from repx_tui.headless.common import open_session
from repx_tui.headless.render import renderer


async def main(args: argparse.Namespace) -> int:
    async with open_session(args, renderer(args.json)) as session:
        await session.sync(compress=getattr(args, "compress", "auto"))
    return 0
