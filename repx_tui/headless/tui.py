"""`repx-tui [--lab PATH] [--target NAME]` and `repx-tui run RUN... --lab PATH --target NAME`."""

from __future__ import annotations

import argparse
from typing import Any

from repx_tui.backend.config import Config, load_config
from repx_tui.backend.resources import load_resources


async def main(args: argparse.Namespace) -> int:
    from repx_tui.ui.app import RepxApp

    config = load_config()
    if args.target:
        config.target(args.target)  # fail before the screen opens, as a one-line error
    runs = getattr(args, "runs", None) if getattr(args, "command", None) == "run" else None
    target = args.target or (config.target(None).name if runs else None)
    options = run_options(args, config, target) if runs else {}
    app = RepxApp(config, lab_path=getattr(args, "lab", None), target=target, runs=runs, run_options=options)
    await app.run_async()
    return app.return_code or 0


def run_options(args: argparse.Namespace, config: Config, target: str | None) -> dict[str, Any]:
    """`run`'s options, the same for the TUI as for --headless; files are read (and refused)
    before the screen opens."""
    scheduler = args.scheduler or config.target(target).scheduler(config.default_scheduler)
    return {
        "resources": load_resources(args.resources) if scheduler == "slurm" or args.resources else None,
        "execution_type": args.execution_type,
        "allow_missing_runs": args.allow_missing_runs,
        "compress": getattr(args, "compress", "auto"),
    }
