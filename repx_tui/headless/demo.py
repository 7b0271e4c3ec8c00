"""`repx-tui demo [--dir DIR] [--headless]`: a demo Lab run on this machine, no config needed.

Writes a small Lab (several runs, an image of several layers) under the XDG data dir (or DIR),
then runs every run on the embedded default `local` target, whose store is put next to the Lab:
in the TUI (sync, then jobs), or with --headless the steps of `repx-tui run --headless --wait`.
The user's config file is never read: the demo must work whatever targets it has (or lacks).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from repx_tui.backend.config import Config, embedded_default, xdg_dir

DEMO_OPTIONS: dict[str, Any] = {"image_layers": 3, "log_lines": 40, "log_delay": 0.05, "sleep_seconds": 1.0}


def demo_dir(args: argparse.Namespace) -> Path:
    return (
        Path(args.dir).expanduser().absolute() if getattr(args, "dir", None) else xdg_dir("data") / "repx-tui" / "demo"
    )


async def write_lab(root: Path) -> Path:
    from repx_tui.demolab import write_demo_lab

    lab = root / "lab"
    if lab.is_dir():
        return lab  # reuse: a second demo shows every layer as reused
    return await asyncio.to_thread(write_demo_lab, lab, **DEMO_OPTIONS)


def demo_config(root: Path) -> Config:
    """The embedded default config, its `local` target storing under the demo directory."""
    config = embedded_default()
    local = dataclasses.replace(config.targets["local"], base_path=str(root / "store"))
    return dataclasses.replace(config, targets={"local": local})


async def main(args: argparse.Namespace) -> int:
    from repx_tui.backend.lab import Lab

    root = demo_dir(args)
    lab_path = await write_lab(root)
    lab = await asyncio.to_thread(Lab.load, lab_path)
    runs = list(lab.runs)
    config = demo_config(root)
    if args.headless:
        return await run_headless(config, lab, runs)
    app = demo_app(lab_path, runs, config)
    await app.run_async()
    return app.return_code or 0


async def run_headless(config: Config, lab, runs: list[str]) -> int:
    """What `repx-tui run RUNS --headless --wait` does, on the demo's own config."""
    from repx_tui.headless.run import run_jobs

    return await run_jobs(config.target("local"), lab, lab.resolve(runs), scheduler="local", wait=True)


def demo_app(lab_path: Path, runs: list[str], config: Config | None = None):
    """The TUI on the embedded default `local` target, going straight into sync then jobs."""
    from repx_tui.ui.app import RepxApp

    config = config or demo_config(lab_path.parent)
    return RepxApp(config, lab_path=str(lab_path), target="local", runs=runs)
