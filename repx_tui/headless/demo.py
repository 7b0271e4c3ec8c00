"""`repx-tui demo [--dir DIR] [--headless]`: a demo Lab run on this machine, no config needed.

Writes a small Lab (several runs, an image of several layers) under the XDG data dir, then runs
every run on the embedded default `local` target: in the TUI (sync, then jobs), or with
--headless through the same path as `repx-tui run --headless --wait`.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from repx_tui.backend.config import embedded_default, xdg_dir

DEMO_OPTIONS = {"image_layers": 3, "log_lines": 40, "log_delay": 0.05, "sleep_seconds": 1.0}


def demo_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir).expanduser().absolute() if getattr(args, "dir", None) else xdg_dir("data") / "repx-tui" / "demo"


async def write_lab(root: Path) -> Path:
    from repx_tui.backend.demolab import write_demo_lab

    lab = root / "lab"
    if lab.is_dir():
        return lab  # reuse: a second demo shows every layer as reused
    return await asyncio.to_thread(write_demo_lab, lab, **DEMO_OPTIONS)


async def main(args: argparse.Namespace) -> int:
    from repx_tui.backend.lab import Lab

    root = demo_dir(args)
    lab_path = await write_lab(root)
    lab = await asyncio.to_thread(Lab.load, lab_path)
    runs = list(lab.runs)
    if args.headless:
        from repx_tui.headless import run as headless_run

        run_args = argparse.Namespace(
            runs=runs, lab=str(lab_path), target="local", resources=None, scheduler="local",
            execution_type=None, headless=True, wait=True, json=False,
        )  # fmt: skip
        return await headless_run.main(run_args)
    app = demo_app(lab_path, runs)
    await app.run_async()
    return app.return_code or 0


def demo_app(lab_path: Path, runs: list[str]):
    """The TUI on the embedded default `local` target, going straight into sync then jobs."""
    from repx_tui.ui.app import RepxApp

    return RepxApp(embedded_default(), lab_path=str(lab_path), target="local", runs=runs)
