"""`repx-tui demo`: the demo Lab under XDG data, run on the embedded `local` target in the TUI."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.events import LayerProgress, Phase, PhaseDone
from repx_tui.backend.lab import Lab
from repx_tui.headless.demo import demo_app, demo_dir, write_lab
from tests.helpers import async_wait_until
from tests.ui.helpers import Recorder

pytestmark = pytest.mark.timeout(180)


async def test_demo_runs_every_run_through_sync_into_jobs(isolated_xdg):
    root = demo_dir(argparse.Namespace(dir=None))
    assert str(root).startswith(str(isolated_xdg))  # under XDG data, no config needed
    lab_path = await write_lab(root)
    lab = Lab.load(lab_path)
    assert len(lab.images) >= 1 and any(len(i.layers) >= 3 for i in lab.images.values())
    record = Recorder()
    app = demo_app(lab_path, list(lab.runs))
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        assert app.current_mode == "sync"
        await async_wait_until(
            lambda: app.current_mode == "jobs", timeout=90, message=f"demo submitted {record.failures()}"
        )
        assert {e.phase for e in record.events(PhaseDone)} == set(Phase)
        assert len({e.digest for e in record.events(LayerProgress)}) >= 3
        await async_wait_until(
            lambda: app.screen.query_one("#jobs").row_count == len(lab.jobs) + len(lab.runs), timeout=10
        )
        await pilot.press("q")


def test_headless_demo_ignores_a_user_config_without_local(isolated_xdg, tmp_path):
    """The demo runs on its own embedded `local` target even when the user's config has none."""
    config = tmp_path / "config.toml"
    config.write_text('[targets.cluster]\naddress = "nowhere.invalid"\nbase_path = "/nope"\n')
    env = {**os.environ, "REPX_CONFIG": str(config)}
    result = subprocess.run(
        [sys.executable, "-m", "repx_tui", "demo", "--headless", "--dir", str(tmp_path / "demo")],
        capture_output=True, text=True, env=env, timeout=150, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "submitted" in result.stdout and "0 not submitted" in result.stdout
    assert (tmp_path / "demo" / "store" / "outputs").is_dir()  # the demo's store, next to its Lab
