"""The TUI over the REAL sshd onto the REAL single-node SLURM: run -> sync -> submit with sbatch,
jobs reach succeeded with their SLURM ids in the table; a running job is cancelled from the table."""

from __future__ import annotations

import subprocess

import pytest

from repx_tui.backend.config import load_config
from repx_tui.backend.events import JobCancelled, JobStateKind, Phase, PhaseDone
from repx_tui.backend.lab import Lab
from repx_tui.backend.resources import load_resources
from repx_tui.ui.app import RepxApp
from repx_tui.ui.screens.cancel import CancelScreen
from repx_tui.ui.screens.jobs import RUN_KEY_PREFIX, JobsScreen
from tests.bedtargets import scancel_recorded, slurm_cluster
from tests.helpers import async_wait_until
from tests.labgen import make_lab
from tests.ui.helpers import Recorder, table_cell

pytestmark = [pytest.mark.slurm, pytest.mark.sshd, pytest.mark.timeout(300)]
REPORT_SLEEP = 120  # the analysis job sleeps this long, so it is still running when cancelled


@pytest.fixture
def slurm_config(tmp_path, monkeypatch, sshd_target, slurm_available):
    """The SLURM target `cluster`; its jobs are scancel'led after the test, passed or not."""
    bed = slurm_cluster(tmp_path, sshd_target, slurm_available["partition"], cpus=1, mem="100M")
    bed.use(monkeypatch)
    yield load_config(), load_resources(bed.resources)
    scancel_recorded(bed.base)


async def test_slurm_run_shows_ids_and_cancels_from_the_table(slurm_config, tmp_path):
    config, resources = slurm_config
    lab_path = make_lab(tmp_path / "lab", "quick", sleep_seconds={"stage-E-report": REPORT_SLEEP})
    lab = Lab.load(lab_path)
    simulation = set(lab.runs["simulation"].jobs)
    (report,) = lab.runs["analysis"].jobs
    record = Recorder()
    app = RepxApp(config, lab_path=str(lab_path), target="cluster")
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        assert app.current_mode == "jobs"
        await async_wait_until(lambda: app.controller.lab is not None, timeout=30, message="Lab loaded")
        app.controller.run(["simulation", "analysis"], resources=resources)
        await async_wait_until(
            lambda: Phase.SUBMIT in {e.phase for e in record.events(PhaseDone)}, timeout=120, message="sync + sbatch"
        )
        assert not record.failures()
        table = app.screen.query_one("#jobs")
        states = app.jobs_model.jobs

        await async_wait_until(
            lambda: all(states[j].state.state == JobStateKind.SUCCEEDED for j in simulation),
            timeout=180,
            message=f"simulation on SLURM {[(j[-20:], states[j].state.state) for j in simulation]}",
        )
        for job in simulation:
            slurm_id = states[job].state.slurm_id
            assert slurm_id and slurm_id.split("_")[0].isdigit(), states[job].state
            await async_wait_until(
                lambda job=job: table_cell(table, job, "slurm") == states[job].state.slurm_id,
                timeout=5,
                message="SLURM id in the table",
            )
            assert "succeeded" in table_cell(table, job, "state")
        assert f"{len(simulation)}/{len(simulation)}" in table_cell(table, RUN_KEY_PREFIX + "simulation", "state")

        # the analysis job sleeps: cancel it from the table (cursor on its row, c, y)
        await async_wait_until(
            lambda: states[report].state.state == JobStateKind.RUNNING,
            timeout=90,
            message=f"report running ({states[report].state})",
        )
        slurm_id = states[report].state.slurm_id
        screen: JobsScreen = app.screen
        table.move_cursor(row=table.get_row_index(report))
        await pilot.press("c")
        assert isinstance(app.screen, CancelScreen)
        assert [k.value for k in app.screen.query_one("#cancel-jobs").rows] == [report]
        await pilot.press("y")
        await async_wait_until(lambda: record.events(JobCancelled), timeout=60, message="cancel outcome")
        assert record.events(JobCancelled)[0].ok, record.events(JobCancelled)
        await pilot.press("escape")
        assert app.screen is screen
        await async_wait_until(
            lambda: "cancelled" in table_cell(table, report, "state"),
            timeout=60,
            message=f"cancelled in the table ({states[report].state})",
        )
        queue = subprocess.run(["squeue", "-h", "-j", slurm_id, "-o", "%T"], capture_output=True, text=True)
        assert "RUNNING" not in queue.stdout  # really gone from SLURM, not only from the screen
        assert not record.failures()
        await pilot.press("q")
