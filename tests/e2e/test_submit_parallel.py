"""Several sbatch at once (issue 15) on the real SLURM over the real sshd: a held DAG goes up with
sbatch calls side by side, each job exactly once, and every job's afterok names exactly the SLURM
ids recorded for its dependencies."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repx_tui.backend.config import load_config
from repx_tui.backend.events import JobSubmitted, Phase, PhaseProgress
from repx_tui.backend.lab import Lab
from repx_tui.backend.resources import load_resources
from repx_tui.backend.schedulers import upstream_for_submit
from repx_tui.backend.schedulers.slurm import STREAM_FROM
from repx_tui.backend.session import TargetSession
from tests.bedtargets import recorded_ids, scancel, slurm_cluster, wrapped_tool

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import labgen  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.sshd]

# The real sbatch, with one line per call at its start and its end (appends of one short line
# each: whole even when several calls write at once).
WRAPPER = r"""#!/bin/bash
log=@LOG@
printf 'start %s %s\n' "$$" "$(date +%s%N)" >> "$log"
/usr/bin/sbatch "$@"
status=$?
printf 'end %s %s\n' "$$" "$(date +%s%N)" >> "$log"
exit "$status"
"""


def most_at_once(log: Path) -> int:
    """The most sbatch calls that were running at the same moment."""
    moments = []
    for line in log.read_text().splitlines():
        kind, _, stamp = line.split()
        moments.append((int(stamp), 1 if kind == "start" else -1))
    running = most = 0
    for _, step in sorted(moments, key=lambda m: (m[0], m[1])):  # an end before a start at the same ns
        running += step
        most = max(most, running)
    return most


def scontrol_dependency(slurm_id: str) -> set[str]:
    out = subprocess.run(["scontrol", "show", "job", slurm_id], capture_output=True, text=True, check=True).stdout
    found = re.search(r"Dependency=(\S+)", out)
    return set(re.findall(r"afterok:(\d+)", found.group(1))) if found else set()


def test_a_held_dag_goes_up_several_sbatch_at_once_with_every_afterok_right(
    tmp_path, monkeypatch, sshd_target, slurm_available
):
    log = tmp_path / "sbatch.log"
    wrapped_tool(tmp_path, monkeypatch, "sbatch", WRAPPER.replace("@LOG@", str(log)))
    lab_dir = labgen.make_lab(tmp_path / "lab", "big_dag", host_tools=(*labgen.SCRIPT_TOOLS, "sbatch"), scale=40)
    lab = Lab.load(lab_dir)
    held = '[[rules]]\njob_id_glob = "*"\nsbatch_opts = ["--hold"]\n'  # nothing runs: every afterok stays listed
    bed = slurm_cluster(tmp_path, sshd_target, slurm_available["partition"], mem="64M", rules=held)
    recorded: dict[str, list[str]] = {}
    try:
        answer = bed.run(lab_dir, "@all")
        assert answer.returncode == 0, answer.stdout + answer.stderr
        result = json.loads(answer.stdout.strip().splitlines()[-1])
        recorded = recorded_ids(bed.base, lab.lab_id)
        assert sorted(s["job"] for s in result["submitted"]) == sorted(lab.jobs)
        assert set(recorded) == set(lab.jobs) and all(len(ids) == 1 for ids in recorded.values()), recorded
        assert log.read_text().count("start ") == len(lab.jobs)  # one sbatch per job, none again
        assert most_at_once(log) >= 2, log.read_text()
        for job_id in lab.jobs:
            required, after = upstream_for_submit(lab, job_id, set(lab.jobs), allow_missing_runs=False)
            want = {recorded[dep][0] for dep in (*required, *after)}
            assert scontrol_dependency(recorded[job_id][0]) == want, job_id
    finally:
        scancel(sid for ids in recorded.values() for sid in ids)


async def test_a_big_batch_reports_each_job_as_sbatch_answers_it(tmp_path, monkeypatch, sshd_target, slurm_available):
    """From STREAM_FROM jobs on, the answers stream: the first job is reported while later ones are
    still going to sbatch, and the submit phase counts the jobs settled so far."""
    log = tmp_path / "sbatch.log"
    wrapped_tool(tmp_path, monkeypatch, "sbatch", WRAPPER.replace("@LOG@", str(log)))
    lab_dir = labgen.make_lab(tmp_path / "lab", "big_dag", host_tools=(*labgen.SCRIPT_TOOLS, "sbatch"), scale=60)
    lab = Lab.load(lab_dir)
    assert len(lab.jobs) >= STREAM_FROM
    held = '[[rules]]\njob_id_glob = "*"\nsbatch_opts = ["--hold"]\n'
    bed = slurm_cluster(tmp_path, sshd_target, slurm_available["partition"], mem="64M", rules=held)
    bed.use(monkeypatch)
    seen: list[tuple[float, object]] = []
    ids: list[str] = []
    try:
        target = load_config().target("cluster")
        record = lambda e: seen.append((time.time(), e))  # noqa: E731
        async with TargetSession(target, record, lab=lab, scheduler="slurm") as session:
            await session.sync(lab)
            result = await session.submit(list(lab.jobs), resources=load_resources(bed.resources))
        ids = [sid for _, sid in result.submitted if sid]
        assert len(ids) == len(lab.jobs)
        starts = [int(line.split()[2]) / 1e9 for line in log.read_text().splitlines() if line.startswith("start ")]
        first_report = min(t for t, e in seen if isinstance(e, JobSubmitted))
        assert first_report < max(starts), "the first job was reported only after the last sbatch began"
        counts = [e.files_done for _, e in seen if isinstance(e, PhaseProgress) and e.phase is Phase.SUBMIT]
        assert counts == sorted(counts) and counts[-1] == len(lab.jobs), counts
    finally:
        scancel(ids)
