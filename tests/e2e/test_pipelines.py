"""Results you can trust on a shared target (issue 9), on the real SLURM over the real sshd and on
the local agent: run-to-run inputs wait for their source run, one SLURM id per job whatever the
number of clients, a cancel reaches every id recorded for a job, and Labs sharing one base_path
never read each other's run metadata."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from repx_tui.backend.lab import Lab
from tests.bedtargets import cli, last_json, recorded_ids, scancel_recorded, scontrol, slurm_cluster
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import labgen  # noqa: E402

DEADLINE = 150
REPORT = "stage-E-report"
EXPECTED_REPORT = "demo-report: run simulation has {jobs} jobs; 2 sums, total 28\n"


def marker(base: Path, job: str) -> str | None:
    repx = base / "outputs" / job / "repx"
    return next((m for m in ("SUCCESS", "FAIL") if (repx / m).exists()), None)


def queued_names() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True, check=True).stdout
    return out.split()


@pytest.fixture
def cluster(tmp_path, sshd_target, slurm_available):
    """A SLURM target over sshd; every SLURM job submitted under its base_path is cancelled at the end."""
    bed = slurm_cluster(tmp_path, sshd_target, slurm_available["partition"], mem="64M")

    def status(lab_dir: Path) -> dict:
        result = bed.cli("status", "--lab", str(lab_dir), "--target", "cluster", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    yield bed.base, bed.run, status, bed.config, bed.env
    scancel_recorded(bed.base)


@pytest.fixture
def local(tmp_path):
    base = tmp_path / "local-store"
    config = tmp_path / "local.toml"
    config.write_text(f'[targets.local]\nbase_path = "{base}"\ndefault_scheduler = "local"\n')

    def run(lab_dir: Path, *args: str) -> subprocess.CompletedProcess:
        return cli(config, "run", *args, "--lab", str(lab_dir), "--target", "local", "--headless", "--json")

    yield base, run, config
    cli(config, "cancel", "@all", "--lab", str(next(tmp_path.glob("lab*"), tmp_path)), "--target", "local", "--yes")


def report_of(base: Path, lab_dir: Path) -> str:
    (report,) = labgen.job_ids(lab_dir, REPORT)
    return (base / "outputs" / report / "out" / "report.txt").read_text()


# --- 1. run-to-run dependencies -------------------------------------------------------------


def test_analysis_alone_is_refused_before_anything_is_sent(cluster, tmp_path):
    base, run, _status, _config, _env = cluster
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick")
    refused = run(lab_dir, "analysis")
    assert refused.returncode == 1
    (line,) = [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")]
    assert "reads run 'simulation'" in line and "Traceback" not in refused.stderr
    assert "repx-tui run simulation analysis" in refused.stderr and "--allow-missing-runs" in refused.stderr
    assert not (base / "artifacts").exists() and not (base / "submissions").exists()  # nothing sent


def test_analysis_submitted_with_its_source_run_waits_for_all_of_it(cluster, tmp_path):
    base, run, status, _config, _env = cluster
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", sleep_seconds={"stage-D-sum-squares": 2})
    lab = Lab.load(lab_dir)
    answer = last_json(run(lab_dir, "simulation", "analysis"))
    ids = {s["job"]: s["slurm_id"] for s in answer["submitted"]}
    (report,) = labgen.job_ids(lab_dir, REPORT)
    finals = lab.final_jobs("simulation")
    dependency = scontrol(ids[report])["Dependency"]
    assert all(ids[f] in dependency for f in finals), dependency  # afterok on the run's final jobs
    waiting = {j["job"]: j for j in status(lab_dir)["jobs"]}[report]
    assert waiting["waiting_on_runs"] == ["simulation"] and "waiting on run simulation" in waiting["reason"]
    wait_until(lambda: marker(base, report), timeout=DEADLINE, interval=0.5, message="the report finished")
    assert marker(base, report) == "SUCCESS"
    assert report_of(base, lab_dir) == EXPECTED_REPORT.format(jobs=7)


def test_analysis_submitted_while_its_source_run_is_queued_waits_on_the_queued_ids(cluster, tmp_path):
    base, run, _status, _config, _env = cluster
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", sleep_seconds={"stage-D-sum-squares": 3})
    lab = Lab.load(lab_dir)
    first = last_json(run(lab_dir, "simulation"))
    queued = {s["job"]: s["slurm_id"] for s in first["submitted"]}
    second = last_json(run(lab_dir, "analysis"))
    (report,) = labgen.job_ids(lab_dir, REPORT)
    assert [s["job"] for s in second["submitted"]] == [report]
    dependency = scontrol(second["submitted"][0]["slurm_id"])["Dependency"]
    assert all(queued[f] in dependency for f in lab.final_jobs("simulation")), dependency
    wait_until(lambda: marker(base, report), timeout=DEADLINE, interval=0.5, message="the report finished")
    assert report_of(base, lab_dir) == EXPECTED_REPORT.format(jobs=7)


def test_agent_runs_the_analysis_only_after_the_simulation(local, tmp_path):
    base, run, _config = local
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", sleep_seconds={"stage-D-sum-squares": 1})
    last_json(run(lab_dir, "simulation"))
    second = last_json(run(lab_dir, "analysis"))  # the simulation is queued on the agent: accepted
    (report,) = labgen.job_ids(lab_dir, REPORT)
    assert [s["job"] for s in second["submitted"]] == [report]
    wait_until(lambda: marker(base, report), timeout=DEADLINE, interval=0.3, message="the report finished")
    assert report_of(base, lab_dir) == EXPECTED_REPORT.format(jobs=7)


def test_allow_missing_runs_goes_anyway(local, tmp_path):
    base, run, _config = local
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick")
    answer = last_json(run(lab_dir, "analysis", "--allow-missing-runs"))
    (report,) = labgen.job_ids(lab_dir, REPORT)
    assert [s["job"] for s in answer["submitted"]] == [report]
    wait_until(lambda: marker(base, report), timeout=DEADLINE, interval=0.3, message="the report ran")
    assert marker(base, report) == "FAIL"  # as asked: it ran, and found no simulation results


def test_allow_missing_runs_still_waits_for_a_queued_source_run_on_the_agent(local, tmp_path):
    base, run, _config = local
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", sleep_seconds={"stage-D-sum-squares": 1})
    last_json(run(lab_dir, "simulation"))
    last_json(run(lab_dir, "analysis", "--allow-missing-runs"))
    (report,) = labgen.job_ids(lab_dir, REPORT)
    wait_until(lambda: marker(base, report), timeout=DEADLINE, interval=0.3, message="the report finished")
    assert report_of(base, lab_dir) == EXPECTED_REPORT.format(jobs=7)


# --- 2. one job, one submission ---------------------------------------------------------------


def at_once(clients: int, command: Callable[[], subprocess.CompletedProcess]) -> list[subprocess.CompletedProcess]:
    """`command` run by that many threads released together by a barrier; their results."""
    results: list[subprocess.CompletedProcess] = []
    start = threading.Barrier(clients)

    def client() -> None:
        start.wait()
        results.append(command())

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_clients_submitting_at_once_give_one_slurm_id_per_job(cluster, tmp_path):
    base, run, _status, config, env = cluster
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", sleep_seconds=20)
    lab = Lab.load(lab_dir)
    # the Lab is synced once first so the race is about the submission, not about the sync
    cli_sync = cli(config, "sync", "--lab", str(lab_dir), "--target", "cluster", env=env)
    assert cli_sync.returncode == 0, cli_sync.stderr
    answers = [last_json(r) for r in at_once(5, lambda: run(lab_dir, "@all"))]
    submitted = [s["job"] for a in answers for s in a["submitted"]]
    assert sorted(submitted) == sorted(lab.jobs)  # every job submitted by exactly one client
    assert all(len(ids) == 1 for ids in recorded_ids(base, lab.lab_id).values())
    names = queued_names()
    assert all(names.count(job) <= 1 for job in lab.jobs)


def test_cancel_reaches_every_id_recorded_for_a_job(cluster, tmp_path):
    """A duplicate left by an older client (recorded, still queued) is cancelled too."""
    base, run, _status, config, env = cluster
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", sleep_seconds=30)
    lab = Lab.load(lab_dir)
    answer = last_json(run(lab_dir, "simulation"))
    (producer,) = labgen.job_ids(lab_dir, "stage-B-producer")
    first = next(s["slurm_id"] for s in answer["submitted"] if s["job"] == producer)
    dup = subprocess.run(
        ["sbatch", "--parsable", f"--job-name={producer}", "--output=/dev/null", "--wrap=sleep 60"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    record = base / "submissions" / lab.lab_id / "0-older-client.json"
    record.write_text(json.dumps({"job": producer, "slurm_id": dup, "user": "root"}) + "\n")
    cancelled = cli(
        config, "cancel", producer, "--lab", str(lab_dir), "--target", "cluster", "--yes", "--json", env=env
    )
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    data = json.loads(cancelled.stdout)
    by_job = {r["job"]: r for r in data["results"]}
    # the CLI cancels the job's dependants too, as the TUI's dialog does
    assert set(by_job) == {producer, *lab.dependants(producer)} and by_job[producer]["ok"]
    wait_until(
        lambda: (
            not (
                {first, dup}
                & set(subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.split())
            )
        ),
        timeout=30,
        interval=0.3,
        message="both copies left the queue",
    )


def test_clients_running_at_once_on_the_agent_queue_and_run_each_job_once(local, tmp_path):
    """The first client starts the agent before it lets the next one look: the next must not take
    the jobs just queued for a dead agent's queue and report them submitted a second time."""
    base, run, _config = local
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", sleep_seconds=1)
    lab = Lab.load(lab_dir)
    submitted = [s["job"] for r in at_once(5, lambda: run(lab_dir, "@all")) for s in last_json(r)["submitted"]]
    assert sorted(submitted) == sorted(lab.jobs)  # every job queued by exactly one client
    (report,) = labgen.job_ids(lab_dir, REPORT)
    wait_until(lambda: marker(base, report), timeout=DEADLINE, interval=0.3, message="the report finished")
    assert report_of(base, lab_dir) == EXPECTED_REPORT.format(jobs=7)
    completions = (base / "outputs" / "completions.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in completions) == sorted(lab.jobs)  # each ran once


# --- 4. Labs do not interfere -----------------------------------------------------------------


def test_two_labs_on_one_base_path_each_read_their_own_run_metadata(cluster, tmp_path):
    base, run, _status, _config, _env = cluster
    lab_a = labgen.make_lab(tmp_path / "lab-a", "quick", sleep_seconds={"stage-D-sum-squares": 4})
    lab_b = labgen.make_lab(tmp_path / "lab-b", "quick", scale=2)  # two more simulation jobs
    a, b = Lab.load(lab_a), Lab.load(lab_b)
    assert a.lab_id != b.lab_id and set(a.jobs) & set(b.jobs)  # different Labs sharing jobs
    last_json(run(lab_a, "@all"))  # A's report waits for A's simulation...
    answer_b = last_json(run(lab_b, "@all"))  # ...while B is synced over the fixed-name metadata
    skipped = {s["job"] for s in answer_b["skipped"]}
    assert set(a.jobs) & set(b.jobs) <= skipped  # jobs both Labs share are not submitted twice
    reports = [labgen.job_ids(d, REPORT)[0] for d in (lab_a, lab_b)]
    wait_until(
        lambda: all(marker(base, r) for r in reports), timeout=DEADLINE, interval=0.5, message="both reports finished"
    )
    assert report_of(base, lab_a) == EXPECTED_REPORT.format(jobs=7)
    assert report_of(base, lab_b) == EXPECTED_REPORT.format(jobs=9)
    for lab in (a, b):
        own = json.loads((base / "artifacts" / "lab" / f"{lab.lab_id}-lab-metadata.json").read_text())
        assert own["labId"] == lab.lab_id
