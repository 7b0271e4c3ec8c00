"""Values in `#SBATCH` lines, read by the real SLURM of the test bed: a base_path with a space
and a `%` (in --output/--error and the script's interpreter), and an sbatch option whose value
has spaces, each stay one value; none adds an option."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.lab import Lab
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import labgen  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.sshd]
DEADLINE = 120


def scontrol_text(slurm_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", slurm_id], capture_output=True, text=True).stdout


def field(text: str, name: str) -> str | None:
    """One field of `scontrol show job`, values with spaces included (up to the next Key=)."""
    match = re.search(rf"(?:^|\s){name}=(.*?)(?=\s+[A-Z][A-Za-z/:]*=|\s*$)", text, re.MULTILINE)
    return match.group(1) if match else None


def test_base_path_with_a_space_and_an_option_value_with_spaces_on_real_slurm(tmp_path, sshd_target, slurm_available):
    base = tmp_path / "cluster store %u"  # %u would be the user name if SLURM expanded it
    config = tmp_path / "config.toml"
    config.write_text(
        f'[targets.cluster]\naddress = "{sshd_target["alias"]}"\nbase_path = "{base}"\n'
        'default_scheduler = "slurm"\n[targets.cluster.slurm]\nexecution_types = ["native"]\n'
    )
    resources = tmp_path / "resources.toml"
    resources.write_text(
        f'[defaults]\npartition = "{slurm_available["partition"]}"\ntime = "00:05:00"\n'
        '[[rules]]\njob_id_glob = "*"\nsbatch_opts = ["--comment=two words --partition=nope"]\n'
    )
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick")
    lab = Lab.load(lab_dir)
    result = subprocess.run(
        [sys.executable, "-m", "repx_tui", "run", "simulation", "--lab", str(lab_dir), "--target", "cluster",
         "--resources", str(resources), "--headless", "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=180,
        env={**os.environ, "REPX_CONFIG": str(config), "REPX_SSH_CONFIG": sshd_target["ssh_config"]},
    )  # fmt: skip
    answer = json.loads(result.stdout.strip().splitlines()[-1]) if result.stdout.strip() else {}
    ids = {s["job"]: s["slurm_id"] for s in answer.get("submitted", [])}
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        jobs = [j for j in lab.jobs if lab.jobs[j].run == "simulation"]
        assert set(ids) == set(jobs)
        consumer = labgen.job_ids(lab_dir, "stage-C-consumer")[0]
        info = scontrol_text(ids[consumer])
        assert field(info, "Comment") == "two words --partition=nope"
        assert field(info, "Partition") == slurm_available["partition"]

        def done() -> set[str]:
            return {j for j in jobs for m in ("SUCCESS", "FAIL") if (base / "outputs" / j / "repx" / m).exists()}

        wait_until(lambda: done() == set(jobs), timeout=DEADLINE, interval=0.5, message="every job's marker")
        assert all((base / "outputs" / j / "repx" / "SUCCESS").exists() for j in jobs)
        # SLURM's own log landed under the base_path as written (scontrol's StdOut display
        # expands %% itself, so the file is the proof)
        assert (base / "outputs" / consumer / "repx" / f"slurm-{ids[consumer]}.out").exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("cluster store")] == [base.name]
    finally:
        if ids:
            subprocess.run(["scancel", *ids.values()], capture_output=True)
