"""`repx-tui run --headless --scheduler slurm` over the real sshd onto the real single-node SLURM:
the whole test Lab (simple, scatter-gather, inter-run, a group) runs to completion."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.lab import Lab
from tests.bedtargets import cli, last_json, scancel_recorded, scontrol, slurm_cluster, write_config
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import labgen  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.sshd]
DEADLINE = 120


# rules come after the Lab's hints, so they win for every job
RULES = (
    '[[rules]]\njob_id_glob = "*"\nmem = "100M"\ntime = "00:07:00"\nsbatch_opts = ["--comment=repx-e2e"]\n'
    '[[rules]]\njob_id_glob = "*stage-D-*"\n[rules.worker_resources]\ncpus-per-task = 2\n'
)


@pytest.fixture
def cluster(tmp_path, sshd_target, slurm_available):
    bed = slurm_cluster(tmp_path, sshd_target, slurm_available["partition"], cpus=1, rules=RULES)

    def run(lab_dir: Path, *runs: str) -> dict:
        return last_json(bed.run(lab_dir, *runs, timeout=120))

    yield bed.base, run, slurm_available
    scancel_recorded(bed.base)


def in_queue(slurm_ids: list[str]) -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", ",".join(slurm_ids)], capture_output=True, text=True)
    return set(out.stdout.split())


def markers(base: Path, jobs) -> dict[str, str]:
    found = {}
    for job in jobs:
        repx = base / "outputs" / job / "repx"
        for name in ("SUCCESS", "FAIL"):
            if (repx / name).exists():
                found[job] = name
    return found


def test_whole_lab_runs_on_slurm_with_resolved_resources(cluster, tmp_path):
    base, run, slurm = cluster
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick")
    lab = Lab.load(lab_dir)

    first = run(lab_dir, "@all")
    ids = {s["job"]: s["slurm_id"] for s in first["submitted"]}
    assert set(ids) == set(lab.jobs) and all(sid.isdigit() for sid in ids.values())
    # running twice never duplicates work: everything is queued, running or done by now
    again = run(lab_dir, "@all")
    assert again["submitted"] == [] and {s["job"] for s in again["skipped"]} == set(lab.jobs)

    (consumer, *_) = labgen.job_ids(lab_dir, "stage-C-consumer")
    info = scontrol(ids[consumer])
    assert info["JobName"] == consumer and info["Partition"] == slurm["partition"]
    assert info["MinMemoryNode"] == "100M" and info["TimeLimit"] == "00:07:00"
    assert info["Comment"] == "repx-e2e" and info["CPUs/Task"] == "1"
    deps = lab.jobs[consumer].dependencies
    # SLURM lists only the afterok ids not satisfied yet: each dependency is listed or already left PENDING
    shown = set(re.findall(r"afterok:(\d+)", info["Dependency"]))
    assert shown <= {ids[d] for d in deps}
    assert all(ids[d] in shown or scontrol(ids[d]).get("JobState") != "PENDING" for d in deps)
    sg = labgen.job_ids(lab_dir, "stage-D-sum-squares")[0]
    assert scontrol(ids[sg])["CPUs/Task"] == "2"  # the allocation fits a worker

    wait_until(
        lambda: len(markers(base, lab.jobs)) == len(lab.jobs),
        timeout=DEADLINE,
        interval=0.5,
        message="every job's marker",
    )
    assert set(markers(base, lab.jobs).values()) == {"SUCCESS"}
    for job in labgen.job_ids(lab_dir, "stage-D-sum-squares"):
        root = base / "outputs" / job
        assert (root / "out" / "total.txt").read_text().strip() == "14"
        assert (root / "gather" / "repx" / "SUCCESS").exists()
        assert len(list(root.glob("branch-*/step-square/repx/SUCCESS"))) == 3
    (report,) = labgen.job_ids(lab_dir, "stage-E-report")
    assert (base / "outputs" / report / "out" / "report.txt").read_text() == (
        "demo-report: run simulation has 7 jobs; 2 sums, total 28\n"
    )
    assert list((base / "outputs" / consumer / "repx").glob("slurm-*.out"))

    # one JSON line per SLURM id, appended as sbatch answered
    records = [
        json.loads(line)
        for p in (base / "submissions" / lab.lab_id).glob("*.json")
        for line in p.read_text().splitlines()
    ]
    assert {"lab_id", "user", "host", "time", "job", "slurm_id"} <= set(records[0])
    assert {r["job"]: r["slurm_id"] for r in records} == ids and all(r["user"] == "root" for r in records)


def test_failed_job_gives_fail_and_its_dependants_never_run(cluster, tmp_path):
    base, run, _ = cluster
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", fail_job="stage-C-consumer")
    answer = run(lab_dir, "simulation")
    ids = {s["job"]: s["slurm_id"] for s in answer["submitted"]}
    failing = labgen.job_ids(lab_dir, "stage-C-consumer")
    downstream = labgen.job_ids(lab_dir, "stage-D-sum-squares")

    wait_until(
        lambda: set(markers(base, failing).values()) == {"FAIL"} and not in_queue([ids[j] for j in downstream]),
        timeout=DEADLINE,
        interval=0.5,
        message="consumers failed and dependants left the queue",
    )
    for job in downstream:
        assert scontrol(ids[job]).get("JobState") == "CANCELLED"  # --kill-on-invalid-dep
        assert not (base / "outputs" / job / "repx" / "job-spec.json").exists()  # the executor never ran
        assert job not in markers(base, downstream)
    assert all((base / "outputs" / j / "repx" / "exit_code").read_text() == "3" for j in failing)


def test_the_same_lab_in_another_base_path_is_not_mistaken_for_ours(cluster, tmp_path, sshd_target):
    """Job names are the Lab's job ids, so the same Lab under two base_paths has queue entries of
    the same names: only the SLURM ids this base_path recorded count as ours."""
    base, run, _ = cluster
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", sleep_seconds=30)
    lab = Lab.load(lab_dir)
    first = run(lab_dir, "@all")
    first_ids = [s["slurm_id"] for s in first["submitted"]]
    assert set(s["job"] for s in first["submitted"]) == set(lab.jobs)

    other = write_config(tmp_path / "other-config.toml", sshd_target, tmp_path / "other-store")
    env = {"REPX_SSH_CONFIG": sshd_target["ssh_config"]}
    status = cli(other, "status", "--lab", str(lab_dir), "--target", "cluster", "--json", env=env, timeout=120)
    assert status.returncode == 0, status.stderr
    states = {j["job"]: j for j in json.loads(status.stdout)["jobs"]}
    assert {j["state"] for j in states.values()} <= {"pending", "blocked"}
    assert all(j["slurm_id"] is None for j in states.values())
    cancel = cli(other, "cancel", "@all", "--lab", str(lab_dir), "--target", "cluster", "--yes", env=env, timeout=120)
    assert in_queue(first_ids) == set(first_ids), cancel.stdout + cancel.stderr  # the other base touched nothing
