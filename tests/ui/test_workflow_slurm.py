"""`repx-tui` with no arguments over the REAL sshd onto the REAL single-node SLURM: pick the
target, pick the Lab, run it with a resources file typed in the Run dialog, a stage fails (its
dependants are cancelled by SLURM), retry the failed job after the fix, everything succeeds."""

from __future__ import annotations

import pytest

from repx_tui.backend.config import load_config
from repx_tui.ui.app import RepxApp
from tests.bedtargets import scancel_recorded, slurm_cluster
from tests.ui.helpers import Recorder
from tests.ui.workflow import failing_lab, pick_target_and_lab, run_then_retry

pytestmark = [pytest.mark.slurm, pytest.mark.sshd, pytest.mark.timeout(600)]


@pytest.fixture
def cluster(tmp_path, monkeypatch, sshd_target, slurm_available):
    """config.toml with the one SLURM target `cluster`, and a resources.toml (not in ./); its
    jobs are scancel'led after the test, passed or not."""
    bed = slurm_cluster(tmp_path, sshd_target, slurm_available["partition"], cpus=1, mem="100M")
    bed.use(monkeypatch)
    yield bed.resources
    scancel_recorded(bed.base)


async def test_from_nothing_to_jobs_then_retry_on_slurm(cluster, tmp_path, monkeypatch):
    lab, fixed, work = failing_lab(tmp_path)
    monkeypatch.chdir(work)
    record = Recorder()
    app = RepxApp(load_config())
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        await pick_target_and_lab(app, pilot, record, "cluster")
        assert app.screen.query_one("#run-scheduler").value == "slurm"
        await run_then_retry(app, pilot, record, fixed, resources=str(cluster))
        slurm_ids = [i.state.slurm_id for i in app.jobs_model.jobs.values()]
        assert all(sid and sid.split("_")[0].isdigit() for sid in slurm_ids), slurm_ids
        await pilot.press("q")
