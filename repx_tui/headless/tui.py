"""`repx-tui [--lab PATH] [--target NAME]` and `repx-tui run RUN... --lab PATH --target NAME`."""

from __future__ import annotations

import argparse

from repx_tui.backend.config import load_config


async def main(args: argparse.Namespace) -> int:
    from repx_tui.ui.app import RepxApp

    config = load_config()
    if args.target:
        config.target(args.target)  # fail before the screen opens, as a one-line error
    runs = getattr(args, "runs", None) if getattr(args, "command", None) == "run" else None
    target = args.target or (config.target(None).name if runs else None)
    app = RepxApp(config, lab_path=getattr(args, "lab", None), target=target, runs=runs)
    await app.run_async()
    return app.return_code or 0
