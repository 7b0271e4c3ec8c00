"""The TUI over the REAL sshd onto the REAL SLURM with slurmdbd: a job that holds ~200 MiB and
spins a CPU shows sacct's real numbers in the efficiency columns (e), the inspector (Enter) names
the resources.toml rule that set its memory, the overview (v) measures throughput from SLURM's
times, and the pull key (p) brings the run's outputs home."""

from __future__ import annotations

import pytest

from repx_tui.backend.config import load_config
from repx_tui.backend.events import JobStateKind, PullSummary
from repx_tui.backend.lab import Lab
from repx_tui.backend.resources import load_resources
from repx_tui.ui.app import RepxApp
from repx_tui.ui.screens.inspector import InspectorScreen
from repx_tui.ui.screens.jobs import RUN_KEY_PREFIX, JobsScreen
from repx_tui.ui.screens.overview import OverviewScreen
from repx_tui.ui.screens.pull import PullScreen
from tests.bedtargets import scancel_recorded, slurm_cluster
from tests.helpers import async_wait_until
from tests.hungrylab import make_hungry_lab
from tests.ui.helpers import Recorder, screen_text, table_cell

pytestmark = [pytest.mark.slurm, pytest.mark.sshd, pytest.mark.timeout(300)]


# --acctg-freq=1: memory sampled every second (see tests/hungrylab.py)
RULES = (
    '[[rules]]\njob_id_glob = "*"\nsbatch_opts = ["--acctg-freq=1"]\n'
    '[[rules]]\njob_id_glob = "*stage-B-producer*"\nmem = "700M"\n'
)


@pytest.fixture
def slurm_setup(tmp_path, monkeypatch, sshd_target, slurm_available):
    """The SLURM target `cluster`; its jobs are scancel'led after the test, passed or not."""
    partition = slurm_available["partition"]
    bed = slurm_cluster(tmp_path, sshd_target, partition, base=tmp_path / "store", cpus=1, mem="300M", rules=RULES)
    bed.use(monkeypatch)
    yield load_config(), load_resources(bed.resources)
    scancel_recorded(bed.base)


async def test_efficiency_inspector_overview_and_pull_on_real_slurm(slurm_setup, tmp_path):
    config, resources = slurm_setup
    lab_dir, hungry = make_hungry_lab(tmp_path / "lab")
    simulation = set(Lab.load(lab_dir).runs["simulation"].jobs)
    record = Recorder()
    app = RepxApp(config, lab_path=str(lab_dir), target="cluster", run_options={"resources": resources})
    async with app.run_test(size=(120, 36), message_hook=record) as pilot:
        await async_wait_until(lambda: app.controller.lab is not None, timeout=30, message="Lab loaded")
        app.controller.run(["simulation"], resources=resources)
        jobs = app.jobs_model.jobs

        def usage_in():
            done = all(jobs[j].state.state is JobStateKind.SUCCEEDED for j in simulation)
            eff = jobs[hungry].state.efficiency
            return done and eff is not None and eff.max_rss

        await async_wait_until(usage_in, timeout=180, interval=0.5,
                               message=f"sacct's usage in the table {record.failures()}")  # fmt: skip
        assert not record.failures()
        if not isinstance(app.screen, JobsScreen):
            app.switch_mode("jobs")
            await async_wait_until(lambda: isinstance(app.screen, JobsScreen), timeout=5)
        screen: JobsScreen = app.screen
        table = screen.query_one("#jobs")
        eff = jobs[hungry].state.efficiency
        assert eff is not None and eff.mem is not None and eff.cpu is not None

        await pilot.press("e")
        await async_wait_until(lambda: table_cell(table, hungry, "mem") != "", timeout=5, message="mem% cell")
        assert table_cell(table, hungry, "mem") == f"{eff.mem * 100:.0f}%"  # 200 MiB of the rule's 700M
        assert table_cell(table, hungry, "cpu") == f"{eff.cpu * 100:.0f}%"
        assert table_cell(table, hungry, "tlim").endswith("%")

        table.move_cursor(row=table.get_row_index(hungry))
        await pilot.press("enter")
        assert isinstance(app.screen, InspectorScreen)
        await async_wait_until(lambda: "resolves now" in screen_text(app), timeout=30, message="the target's answer")
        text = screen_text(app)
        assert "700M" in text and "[[rules]] entry 2" in text and "*stage-B-producer*" in text
        assert "started" in text and "ended" in text and f"slurm {jobs[hungry].state.slurm_id}" in text
        assert f"mem {eff.mem * 100:.0f}%" in text
        await pilot.press("escape")
        assert app.screen is screen and screen.cursor_key() == hungry

        await pilot.press("v")
        assert isinstance(app.screen, OverviewScreen)
        text = screen_text(app)
        assert f"{len(simulation)}/{len(simulation)} finished" in text and "jobs/min" in text
        assert "(from SLURM start/end times)" in text and "target cluster (slurm" in text and "git " in text
        await pilot.press("escape")

        table.move_cursor(row=table.get_row_index(RUN_KEY_PREFIX + "simulation"))
        await pilot.press("p")
        dialog = app.screen
        assert isinstance(dialog, PullScreen) and sorted(dialog.job_ids) == sorted(simulation)
        home = tmp_path / "home"
        dialog.query_one("#pull-dest").value = str(home)
        await pilot.press("enter")
        summary = await async_wait_until(lambda: record.events(PullSummary), timeout=60, message="the pull")
        assert {r.status for r in summary[0].jobs} == {"pulled"} and not record.failures()
        assert (home / "outputs" / hungry / "out" / "list_b.txt").exists()
        assert list((home / "artifacts" / "lab").glob("*-lab-metadata.json"))
        await async_wait_until(lambda: f"{len(simulation)} pulled" in screen_text(app), timeout=5)
        await pilot.press("escape", "q")
