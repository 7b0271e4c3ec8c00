"""`repx-tui` with no arguments over the REAL sshd onto the REAL single-node SLURM: pick the
target, pick the Lab, run it with a resources file typed in the Run dialog, a stage fails (its
dependants are cancelled by SLURM), retry the failed job after the fix, everything succeeds."""

from __future__ import annotations

import subprocess

import pytest

from repx_tui.backend.config import load_config
from repx_tui.ui.app import RepxApp
from tests.ui.helpers import Recorder
from tests.ui.workflow import failing_lab, pick_target_and_lab, run_then_retry

pytestmark = [pytest.mark.slurm, pytest.mark.sshd, pytest.mark.timeout(600)]


@pytest.fixture
def cluster(tmp_path, monkeypatch, sshd_target, slurm_available):
    """config.toml with the one SLURM target `cluster`, and a resources.toml (not in ./)."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'[targets.cluster]\naddress = "{sshd_target["alias"]}"\nbase_path = "{tmp_path / "cluster-store"}"\n'
        'default_scheduler = "slurm"\n[targets.cluster.slurm]\nexecution_types = ["native"]\n'
    )
    resources = tmp_path / "resources.toml"
    resources.write_text(
        f'[defaults]\npartition = "{slurm_available["partition"]}"\ncpus-per-task = 1\nmem = "100M"\ntime = "00:05:00"\n'
    )
    monkeypatch.setenv("REPX_CONFIG", str(config))
    monkeypatch.setenv("REPX_SSH_CONFIG", sshd_target["ssh_config"])
    return resources


async def test_from_nothing_to_jobs_then_retry_on_slurm(cluster, tmp_path, monkeypatch):
    lab, fixed, work = failing_lab(tmp_path)
    monkeypatch.chdir(work)
    record = Recorder()
    app = RepxApp(load_config())
    try:
        async with app.run_test(size=(100, 30), message_hook=record) as pilot:
            await pick_target_and_lab(app, pilot, record, "cluster")
            assert app.screen.query_one("#run-scheduler").value == "slurm"
            await run_then_retry(app, pilot, record, fixed, resources=str(cluster))
            slurm_ids = [i.state.slurm_id for i in app.jobs_model.jobs.values()]
            assert all(sid and sid.split("_")[0].isdigit() for sid in slurm_ids), slurm_ids
            await pilot.press("q")
    finally:
        ids = [i.state.slurm_id for i in app.jobs_model.jobs.values() if i.state.slurm_id]
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True)
