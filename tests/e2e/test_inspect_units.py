"""The job inspector's units of a scatter-gather job, from the REAL target's files: the demo Lab
run on the local target by the CLI, then `repx-tui show JOB --json` lists the job's own log,
scatter, every branch's steps and gather, each with its state and log sizes (what the TUI's
inspector lists and opens the logs of)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.demolab import SCATTER_ITEMS
from tests.labgen import job_ids, make_lab

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[2]


def cli(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "repx_tui", *argv], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "REPX_CONFIG": str(config)}, timeout=150)  # fmt: skip


def test_show_lists_a_scatter_gather_jobs_units_with_their_state_and_logs(tmp_path):
    lab = make_lab(tmp_path / "lab", "quick")
    config = tmp_path / "config.toml"
    config.write_text(f'[targets.local]\nbase_path = "{tmp_path / "store"}"\ndefault_scheduler = "local"\n')
    target = ["--lab", str(lab), "--target", "local"]
    ran = cli(config, "run", "simulation", *target, "--headless", "--wait")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    job = job_ids(lab, "stage-D-sum-squares")[0]

    shown = cli(config, "show", job[:12], *target, "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    answer = json.loads(shown.stdout.strip().splitlines()[-1])
    assert answer["job"] == job and answer["stage_type"] == "scatter-gather"
    branches = [f"branch-{i}/step-{step}" for i in range(SCATTER_ITEMS) for step in ("extract", "square")]
    units = {u["unit"]: u for u in answer["units"]}
    assert sorted(units) == sorted(["", "scatter", *branches, "gather"])
    for name, unit in units.items():
        assert unit["state"] == "succeeded" and unit["exit_code"] == 0, (name, unit)
        assert unit["stdout_bytes"], (name, unit)  # each unit wrote its own log
    human = cli(config, "show", job[:12], *target)
    assert human.returncode == 0 and all(b in human.stdout for b in branches), human.stdout
