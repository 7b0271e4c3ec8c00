"""`repx-tui demo`: the demo Lab under XDG data, run on the embedded `local` target in the TUI."""

from __future__ import annotations

import argparse

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
        await async_wait_until(lambda: app.current_mode == "jobs", timeout=90, message=f"demo submitted {record.failures()}")
        assert {e.phase for e in record.events(PhaseDone)} == set(Phase)
        assert len({e.digest for e in record.events(LayerProgress)}) >= 3
        await async_wait_until(lambda: app.screen.query_one("#jobs").row_count == len(lab.jobs) + len(lab.runs), timeout=10)
        await pilot.press("q")
