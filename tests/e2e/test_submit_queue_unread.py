"""One job, one submission even when squeue does not answer (issue 9), on the real SLURM over the
real sshd: submit.sh tells queued jobs from unsubmitted ones by the queue, so a squeue that fails
(slurmctld busy: "Socket timed out") must stop the batch, not let it submit every queued job again.

The failure comes from a `squeue` wrapper shipped as one of the Lab's host tools (first on
submit.sh's PATH, as in test_submit_cut.py) that fails while a flag file exists."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.lab import Lab
from tests.bedtargets import last_json, recorded_ids, scancel_recorded, slurm_cluster, wrapped_tool

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import labgen  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.sshd]

WRAPPER = r"""#!/bin/bash
if [ -e @FLAG@ ]; then
    echo "squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation" >&2
    exit 1
fi
exec @SQUEUE@ "$@"
"""


SQUEUE = shutil.which("squeue") or "/usr/bin/squeue"  # the real one, found before the wrapper is on PATH


def queued_names() -> list[str]:
    out = subprocess.run([SQUEUE, "-h", "-o", "%j"], capture_output=True, text=True, check=True).stdout
    return out.split()


def test_a_failing_squeue_stops_the_batch_instead_of_submitting_queued_jobs_again(
    tmp_path, monkeypatch, sshd_target, slurm_available
):
    flag = tmp_path / "squeue-fails"
    wrapped_tool(tmp_path, monkeypatch, "squeue", WRAPPER.replace("@FLAG@", str(flag)).replace("@SQUEUE@", SQUEUE))
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", host_tools=(*labgen.SCRIPT_TOOLS, "squeue"))
    lab = Lab.load(lab_dir)
    held = '[[rules]]\njob_id_glob = "*"\nsbatch_opts = ["--hold"]\n'  # everything stays queued
    bed = slurm_cluster(tmp_path, sshd_target, slurm_available["partition"], mem="64M", rules=held)
    try:
        first = last_json(bed.run(lab_dir, "simulation"))
        simulation = set(lab.runs["simulation"].jobs)
        assert {s["job"] for s in first["submitted"]} == simulation

        flag.touch()
        again = bed.run(lab_dir, "simulation")
        assert again.returncode == 1, again.stdout + again.stderr
        errors = [line for line in again.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "cannot read the SLURM queue" in errors[0], again.stderr
        assert "Traceback" not in again.stderr
        names = queued_names()
        assert all(names.count(job) == 1 for job in simulation), names  # nothing submitted twice
        assert all(len(ids) == 1 for ids in recorded_ids(bed.base, lab.lab_id).values())

        flag.unlink()  # squeue answers again: the queued jobs are seen and skipped
        third = last_json(bed.run(lab_dir, "simulation"))
        assert third["submitted"] == [] and {s["job"] for s in third["skipped"]} == simulation
    finally:
        scancel_recorded(bed.base)
