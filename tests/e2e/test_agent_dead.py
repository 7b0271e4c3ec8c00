"""The local agent killed (kill -9) while jobs run, on this machine and through the real sshd:
a re-run adopts executors that still live (never a second one), `cancel` still reaches them,
a job whose agent and executor are both gone is shown failed (not `running` forever), and the
next `run` starts an agent that runs the queue the dead one left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.schedulers import agent
from repx_tui.backend.transport.local import LocalTransport
from tests.e2e.test_run_agent import agent_alive, agent_states, cli_run, write_config
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import labgen  # noqa: E402

DEADLINE = 60


@pytest.fixture
def gated(tmp_path):
    lab = GatedLab(tmp_path)
    yield lab
    lab.gate.touch()  # a failed test leaves no job waiting


class GatedLab:
    """The quick demo Lab whose stage-A producers log each start, then wait for a gate file."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = labgen.make_lab(tmp_path / "lab", "quick")
        self.producers = labgen.job_ids(self.dir, "stage-A-producer")
        self.gate = tmp_path / "gate"
        self.starts = tmp_path / "starts"
        self.starts.mkdir()
        labgen.make_writable(self.dir)
        for job in self.producers:
            script = self.dir / "jobs" / job / "bin" / "stage-A-producer"
            # (the loop also ends when the test's directory is gone: nothing is left behind)
            script.write_text(
                script.read_text() + f'echo "$$" >> "{self.starts / job}"\n'
                f'while [ ! -e "{self.gate}" ] && [ -d "{self.starts}" ]; do sleep 0.05; done\n'
            )
        labgen.rewrite_manifest(self.dir)
        self.lab = Lab.load(self.dir)

    def start_count(self, job: str) -> int:
        path = self.starts / job
        return len(path.read_text().splitlines()) if path.exists() else 0


class AgentFiles:
    """The agent's state files for one Lab under a base path (the target is this machine)."""

    def __init__(self, base: Path, lab: Lab) -> None:
        self.base, self.lab = base, lab
        self.dir = base / "agents" / lab.lab_id

    def pid(self) -> int:
        return int((self.dir / "agent.pid").read_text())

    def pgid(self, job: str) -> int:
        return int((self.dir / "jobs" / job / "pgid").read_text())

    def run_lock_free(self, job: str) -> bool:
        return subprocess.run(["flock", "-n", str(self.dir / "jobs" / job / "run.lock"), "true"]).returncode == 0

    def states(self) -> dict[str, str]:
        return agent_states(self.base, self.lab)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_running(gated: GatedLab, files: AgentFiles) -> None:
    """Both producers' scripts have started (their executors hold run.lock and wrote pgid)."""
    wait_until(
        lambda: all(
            gated.start_count(j) == 1
            and (files.dir / "jobs" / j / "pgid").exists()
            and files.states().get(j) == "running"
            for j in gated.producers
        ),
        timeout=DEADLINE,
        interval=0.1,
        message="producers running",
    )


def wait_run_succeeded(gated: GatedLab, files: AgentFiles) -> set[str]:
    """The simulation run's jobs, once the agent has run every one of them to success."""
    simulation = set(gated.lab.runs["simulation"].jobs)
    wait_until(
        lambda: all(files.states().get(j) == "succeeded" for j in simulation),
        timeout=DEADLINE,
        interval=0.2,
        message="the whole run succeeded",
    )
    return simulation


def kill_agent(files: AgentFiles, whole_group: bool) -> None:
    """kill -9 the agent: its pid only (its rc watchers live on), or its whole process group."""
    pid = files.pid()
    if whole_group:
        os.killpg(pid, signal.SIGKILL)  # serve runs under setsid: pid == pgid
    else:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not agent_alive(files.base, files.lab), timeout=DEADLINE, message="agent gone")


def cli_status(config: Path, lab_dir: Path, target: str, env: dict | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "repx_tui", "status", "--lab", str(lab_dir), "--target", target, "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "REPX_CONFIG": str(config), **(env or {})},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def by_job(status: dict) -> dict[str, dict]:
    return {j["job"]: j for j in status["jobs"]}


async def test_rerun_adopts_live_executors_and_cancel_still_reaches_them(tmp_path, gated):
    base = tmp_path / "store"
    config = write_config(tmp_path / "config.toml", "local", base)
    files = AgentFiles(base, gated.lab)
    cli_run(config, gated.dir, "local", "simulation")
    wait_running(gated, files)
    first_agent = files.pid()
    pgids = {j: files.pgid(j) for j in gated.producers}

    kill_agent(files, whole_group=False)
    status = by_job(cli_status(config, gated.dir, "local"))
    assert {status[j]["state"] for j in gated.producers} == {"running"}  # their executors live

    again = cli_run(config, gated.dir, "local", "simulation")
    skipped = {s["job"]: s for s in again["skipped"]}
    assert set(gated.producers) <= set(skipped), again
    assert not {s["job"] for s in again["submitted"]} & set(gated.producers)
    wait_until(
        lambda: agent_alive(base, gated.lab) and files.pid() != first_agent, timeout=DEADLINE, message="a new agent"
    )
    assert {j: files.pgid(j) for j in gated.producers} == pgids  # the same executors, adopted

    doomed, survivor = gated.producers
    outcomes = await agent.cancel_jobs(
        LocalTransport(), RemoteLayout(base=str(base)), gated.lab, [doomed], emit=lambda e: None
    )
    assert [(job, ok) for job, ok, _ in outcomes] == [(doomed, True)]
    wait_until(lambda: files.states()[doomed] == "cancelled", timeout=DEADLINE, message="adopted job cancelled")
    assert not group_alive(pgids[doomed])

    gated.gate.touch()
    wait_until(lambda: files.states()[survivor] == "succeeded", timeout=DEADLINE, message="adopted job done")
    assert (base / "outputs" / survivor / "repx" / "SUCCESS").exists()
    assert gated.start_count(survivor) == 1 and gated.start_count(doomed) == 1  # never a second executor


@pytest.mark.parametrize("whole_group", [False, True], ids=["agent-pid", "agent-group"])
def test_agent_and_job_killed_show_failed_then_run_resumes_the_queue(tmp_path, gated, whole_group):
    base = tmp_path / "store"
    config = write_config(tmp_path / "config.toml", "local", base)
    files = AgentFiles(base, gated.lab)
    cli_run(config, gated.dir, "local", "simulation")
    wait_running(gated, files)
    kill_agent(files, whole_group)
    for job in gated.producers:
        os.killpg(files.pgid(job), signal.SIGKILL)
    # with the agent's own watchers alive, each records its executor's exit status (137)
    wait_until(
        lambda: all(
            files.run_lock_free(j) and (whole_group or (files.dir / "jobs" / j / "rc").exists())
            for j in gated.producers
        ),
        timeout=DEADLINE,
        message="executors gone",
    )

    status = cli_status(config, gated.dir, "local")
    jobs = by_job(status)
    for job in gated.producers:
        assert jobs[job]["state"] == "failed", jobs[job]
        assert jobs[job]["reason"] == "agent and executor are gone; last state running"
        assert jobs[job]["exit_code"] == (None if whole_group else 137)
    consumers = labgen.job_ids(gated.dir, "stage-C-consumer")
    assert {jobs[j]["state"] for j in consumers} == {"queued"}
    assert all("resumes the queue" in jobs[j]["reason"] for j in consumers)
    assert {r["run"]: r["state"] for r in status["runs"]}["simulation"] != "running"

    # The next run names only the producers; the new agent also runs what the dead one queued.
    gated.gate.touch()
    again = cli_run(config, gated.dir, "local", *gated.producers)
    assert {s["job"] for s in again["submitted"]} == set(gated.producers)  # a re-run
    simulation = wait_run_succeeded(gated, files)
    assert all(gated.start_count(j) == 2 for j in gated.producers)
    final = by_job(cli_status(config, gated.dir, "local"))
    assert {final[j]["state"] for j in simulation} == {"succeeded"}


@pytest.mark.sshd
def test_over_ssh_a_dead_agent_and_job_show_failed_and_run_again(tmp_path, gated, sshd_target):
    base = tmp_path / "remote-store"
    config = write_config(tmp_path / "config.toml", "cluster", base, address=sshd_target["alias"])
    env = {"REPX_SSH_CONFIG": sshd_target["ssh_config"]}
    files = AgentFiles(base, gated.lab)
    cli_run(config, gated.dir, "cluster", "simulation", env=env)
    wait_running(gated, files)
    kill_agent(files, whole_group=True)
    (doomed, survivor) = gated.producers
    os.killpg(files.pgid(doomed), signal.SIGKILL)
    wait_until(lambda: files.run_lock_free(doomed), timeout=DEADLINE, message="executor gone")

    jobs = by_job(cli_status(config, gated.dir, "cluster", env))
    assert jobs[doomed]["state"] == "failed" and "gone" in jobs[doomed]["reason"]
    assert jobs[survivor]["state"] == "running"

    again = cli_run(config, gated.dir, "cluster", "simulation", env=env)
    assert doomed in {s["job"] for s in again["submitted"]}
    assert survivor in {s["job"] for s in again["skipped"]}
    gated.gate.touch()
    wait_run_succeeded(gated, files)
    assert gated.start_count(doomed) == 2 and gated.start_count(survivor) == 1
