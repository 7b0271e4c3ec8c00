"""Job status and cancel against the REAL single-node SLURM, through the REAL sshd.

Jobs are submitted the way remote/submit.sh does it (`sbatch --job-name=<job id>`, a submission
record under submissions/<lab_id>/), with a small script that leaves the executor's outputs
(repx/{stdout.log,exit_code,SUCCESS|FAIL,cancelled}), so status, cancel and logs are exercised
against real squeue/sacct/scancel without depending on a full Lab sync.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from repx_tui.backend.cancel import cancel_jobs
from repx_tui.backend.config import Target
from repx_tui.backend.events import JobsChanged
from repx_tui.backend.events import JobStateKind as K
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.status import LabView, StatusWatcher
from tests.helpers import async_wait_until, wait_until

pytestmark = [pytest.mark.sshd, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
E2E_ROOT = Path("/tmp/repx-e2e/status-tests")

# Emulates the executor's contract: outputs/<job>/repx/{stdout,stderr}.log, exit_code,
# SUCCESS|FAIL, and `cancelled` + FAIL when signalled. $1 base, $2 job id, $3 body.
JOB_SCRIPT = r"""#!/usr/bin/env bash
set -u
repx="$1/outputs/$2/repx"
mkdir -p "$repx"
rm -f "$repx/SUCCESS" "$repx/FAIL" "$repx/exit_code"
child=""
on_term() {
    [ -z "$child" ] || kill -TERM "$child" 2>/dev/null
    : >"$repx/cancelled"
    echo 143 >"$repx/exit_code"
    : >"$repx/FAIL"
    exit 143
}
trap on_term TERM
bash -c "$3" >>"$repx/stdout.log" 2>>"$repx/stderr.log" &
child=$!
wait "$child"
rc=$?
echo "$rc" >"$repx/exit_code"
if [ "$rc" = 0 ]; then : >"$repx/SUCCESS"; else : >"$repx/FAIL"; fi
exit "$rc"
"""


async def put(transport, path: str, data: bytes) -> None:
    """Write a file on the target the way a record is written there: complete, then renamed."""
    await transport.run(
        ["bash", "-c", 'mkdir -p "${1%/*}" && cat > "$1.tmp" && mv -f "$1.tmp" "$1"', "put", path], input=data
    )


class Remote:
    """A per-test base directory on the target, and helpers to put jobs into SLURM."""

    def __init__(self, transport, base: Path) -> None:
        self.transport = transport
        self.base = base
        self.layout = RemoteLayout(base=str(base))
        self.lab_id = "lab-" + uuid.uuid4().hex[:8]
        self.tag = uuid.uuid4().hex[:10]
        self.record: dict[str, str] = {}

    def job_id(self, name: str) -> str:
        return f"{self.tag}-{name}"

    async def submit(self, job: str, body: str, *, deps: tuple[str, ...] = (), record: bool = True) -> str:
        script = self.base / "scripts" / f"{job}.sh"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(JOB_SCRIPT)
        argv = ["sbatch", "--parsable", f"--job-name={job}", "--output=/dev/null", "--error=/dev/null", "--chdir=/tmp"]
        if deps:
            argv += ["--dependency=afterok:" + ":".join(deps), "--kill-on-invalid-dep=yes"]
        argv += [str(script), str(self.base), job, body]
        sid = (await self.transport.run(argv)).stdout.strip().split(";")[0]
        if record:
            self.record[job] = sid
            data = {"lab_id": self.lab_id, "user": "root", "host": "e2e", "time": "now", "jobs": self.record}
            await put(
                self.transport,
                f"{self.base}/submissions/{self.lab_id}/20260101T000000Z-1.json",
                json.dumps(data).encode(),
            )
        return sid

    def view(self, *jobs: str, deps: dict[str, tuple[str, ...]] | None = None) -> LabView:
        deps = deps or {}
        return LabView(self.lab_id, tuple(jobs), {j: deps.get(j, ()) for j in jobs}, {j: "run" for j in jobs}, {})

    def watcher(self, view: LabView, events: list | None = None) -> StatusWatcher:
        sink = events.append if events is not None else (lambda e: None)
        return StatusWatcher(self.transport, self.layout, view, _target(self.base), "slurm", sink)


def _target(base: Path) -> Target:
    return Target(name="e2e", base_path=str(base), address="e2e-cluster")


def squeue_state(sid: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", sid, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def sacct_state(sid: str) -> str:
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", sid, "-o", "State"], capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
async def ssh(sshd_target, slurm_available):
    from repx_tui.backend.transport.ssh import SshTransport

    transport = SshTransport("e2e", sshd_target["alias"], config_paths=[sshd_target["ssh_config"]])
    async with transport:
        yield transport


@pytest.fixture
async def remote(ssh):
    base = E2E_ROOT / uuid.uuid4().hex[:12]
    base.mkdir(parents=True)
    r = Remote(ssh, base)
    yield r
    live = [sid for sid in r.record.values() if squeue_state(sid)]
    if live:
        subprocess.run(["scancel", *live], capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


async def poll_until(watcher: StatusWatcher, job: str, predicate, timeout: float = 60.0, message: str = ""):
    async def check():
        states = await watcher.poll_once()
        return states[job] if predicate(states[job]) else None

    return await async_wait_until(check, timeout=timeout, interval=0.3, message=message or f"{job} state")


async def test_running_job_shows_running_within_one_refresh(remote):
    job = remote.job_id("runner")
    gate = remote.base / "gate"
    sid = await remote.submit(job, f"echo started; while [ ! -e {gate} ]; do sleep 0.1; done; echo done")
    events: list[JobsChanged] = []
    watcher = remote.watcher(remote.view(job), events)
    wait_until(lambda: squeue_state(sid) == "RUNNING", timeout=60, message="SLURM starts the job")
    state = (await watcher.poll_once())[job]  # ONE refresh after SLURM says running
    assert state.state is K.RUNNING
    assert state.slurm_id == sid and state.node and state.elapsed is not None
    assert not state.stale
    assert events and events[-1].changed[0].state is K.RUNNING
    gate.touch()
    done = await poll_until(watcher, job, lambda s: s.state.finished, message="job finishes")
    assert done.state is K.SUCCEEDED and done.exit_code == 0


async def test_cancel_shows_cancelled_in_view_and_sacct_and_reports_dependants(remote):
    gate = remote.base / "never"
    first, second, foreign = remote.job_id("first"), remote.job_id("second"), remote.job_id("foreign")
    sid = await remote.submit(first, f"while [ ! -e {gate} ]; do sleep 0.1; done")
    dep_sid = await remote.submit(second, "echo hi", deps=(sid,))
    foreign_sid = await remote.submit(foreign, f"while [ ! -e {gate} ]; do sleep 0.1; done", record=False)
    try:
        view = remote.view(first, second, foreign, deps={second: (first,)})
        watcher = remote.watcher(view)
        await poll_until(watcher, first, lambda s: s.state is K.RUNNING, message="first running")
        events: list = []
        report = await cancel_jobs(
            remote.transport, remote.layout, view, None, "slurm", [first, foreign], events.append
        )
        by_job = {r.job: r for r in report.results}
        assert by_job[first].ok and by_job[first].slurm_id == sid
        assert not by_job[foreign].ok and "not submitted by this Lab" in by_job[foreign].detail
        assert {e.job for e in events if type(e).__name__ == "JobCancelled"} == {first, foreign}
        cancelled = await poll_until(watcher, first, lambda s: s.state is K.CANCELLED, message="first cancelled")
        assert cancelled.slurm_id == sid
        wait_until(lambda: sacct_state(sid).startswith("CANCELLED"), timeout=30, message="sacct says cancelled")
        # SLURM removes the dependant itself (--kill-on-invalid-dep); the view shows it not running
        dependant = await poll_until(watcher, second, lambda s: s.state is K.CANCELLED, message="dependant cancelled")
        assert dependant.slurm_id == dep_sid
        assert squeue_state(foreign_sid) in ("RUNNING", "PENDING")  # never touched
    finally:
        subprocess.run(["scancel", foreign_sid], capture_output=True)


async def test_failed_jobs_show_their_exit_code(remote):
    marked, unmarked = remote.job_id("marked"), remote.job_id("unmarked")
    await remote.submit(marked, "echo boom >&2; exit 3")
    # A job whose runner died without leaving markers: sacct has the exit code.
    argv = ["sbatch", "--parsable", f"--job-name={unmarked}", "--output=/dev/null", "--chdir=/tmp", "--wrap", "exit 5"]
    raw_sid = (await remote.transport.run(argv)).stdout.strip()
    remote.record[unmarked] = raw_sid
    await put(
        remote.transport,
        f"{remote.base}/submissions/{remote.lab_id}/20260101T000000Z-2.json",
        json.dumps({"lab_id": remote.lab_id, "user": "root", "jobs": {unmarked: raw_sid}}).encode(),
    )
    watcher = remote.watcher(remote.view(marked, unmarked))
    failed = await poll_until(watcher, marked, lambda s: s.state.finished, message="marked job ends")
    assert failed.state is K.FAILED and failed.exit_code == 3
    lost = await poll_until(watcher, unmarked, lambda s: s.state.finished, message="unmarked job in sacct")
    assert lost.state is K.FAILED and lost.exit_code == 5 and lost.slurm_id == raw_sid


def _ctld(action: str) -> None:
    subprocess.run(["bash", str(REPO / "tests/infra/slurmctld-ctl.sh"), action], check=True, capture_output=True)


@pytest.mark.slow
async def test_stopped_slurmctld_makes_the_view_stale_and_it_recovers(remote):
    job = remote.job_id("survivor")
    gate = remote.base / "gate"
    await remote.submit(job, f"while [ ! -e {gate} ]; do sleep 0.1; done")
    events: list[JobsChanged] = []
    watcher = remote.watcher(remote.view(job), events)
    await poll_until(watcher, job, lambda s: s.state is K.RUNNING, message="running before the outage")
    _ctld("stop")
    try:
        states = await watcher.poll_once()  # must not raise
        assert states[job].stale and states[job].state is K.RUNNING  # last known state kept
        assert events[-1].error and "squeue" in events[-1].error
        assert events[-1].stale_since is not None and events[-1].changed[0].stale
        emitted = len(events)
        await watcher.poll_once()
        assert len(events) == emitted  # same outage, nothing new to say
    finally:
        _ctld("start")
    fresh = await poll_until(watcher, job, lambda s: not s.stale, message="fresh again")
    assert fresh.state is K.RUNNING
    assert events[-1].error is None and events[-1].stale_since is None
    gate.touch()


# --- headless, on a real Lab (nothing submitted: the DAG decides) -----------------------------


def test_headless_status_json_shape(tmp_path, sshd_target, slurm_available):
    sys.path.insert(0, str(REPO / "tests"))
    import labgen

    lab = labgen.make_lab(tmp_path / "lab")
    base = E2E_ROOT / uuid.uuid4().hex[:12]
    config = tmp_path / "config.toml"
    config.write_text(
        f'[targets.e2e]\naddress = "{sshd_target["alias"]}"\nbase_path = "{base}"\n'
        f'default_scheduler = "slurm"\n[targets.e2e.slurm]\nexecution_types = ["native"]\n'
    )
    env = {"REPX_CONFIG": str(config), "REPX_SSH_CONFIG": sshd_target["ssh_config"], "PATH": "/usr/bin:/bin"}
    import os

    out = subprocess.run(
        [sys.executable, "-m", "repx_tui", "status", "--lab", str(lab), "--target", "e2e", "--json"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, **env}, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["jobs"] and data["runs"]
    first = data["jobs"][0]
    assert set(first) >= {"job", "run", "state", "slurm_id", "exit_code", "elapsed", "node", "reason", "stale"}
    states = {j["state"] for j in data["jobs"]}
    assert states <= {"pending", "blocked"} and "pending" in states
    assert {r["run"] for r in data["runs"]} >= {"simulation", "analysis"}


# --- the local agent (a real Lab, run with `repx-tui run --headless`, scheduler local) ----------


async def test_local_agent_status_cancel_and_headless(tmp_path):
    import os

    sys.path.insert(0, str(REPO / "tests"))
    import labgen

    from repx_tui.backend.lab import Lab
    from repx_tui.backend.transport.local import LocalTransport

    lab_dir = labgen.make_lab(tmp_path / "lab", sleep_seconds=60)
    base = tmp_path / "store"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[targets.local]\nbase_path = "{base}"\ndefault_scheduler = "local"\n'
        '[targets.local.local]\nexecution_types = ["native"]\n'
    )
    env = {**os.environ, "REPX_CONFIG": str(config)}

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "repx_tui", *args, "--lab", str(lab_dir), "--target", "local"],
            capture_output=True, text=True, cwd=REPO, env=env, timeout=120, input=stdin,
        )  # fmt: skip

    run = cli("run", "simulation", "--headless")
    assert run.returncode == 0, run.stderr
    lab = Lab.load(lab_dir)
    target = Target(name="local", base_path=str(base), default_scheduler="local")
    layout = RemoteLayout(base=str(base))
    watcher = StatusWatcher(LocalTransport(), layout, lab, target, "local", lambda e: None)
    try:
        states = await async_wait_until(
            lambda: _running(watcher), timeout=60, interval=0.2, message="an agent job running"
        )
        victim = next(j for j, s in states.items() if s.state is K.RUNNING)
        waiting = sorted(lab.dependants(victim))
        assert waiting, "the demo DAG gives every producer a consumer"

        refused = cli("cancel", victim)  # no TTY, no --yes
        assert refused.returncode == 1 and "--yes" in refused.stderr
        assert (await watcher.poll_once())[victim].state is K.RUNNING

        report = await cancel_jobs(LocalTransport(), layout, lab, target, "local", [victim])
        assert report.results[0].ok and report.results[0].job == victim
        gone = await poll_until(watcher, victim, lambda s: s.state is K.CANCELLED, message="victim cancelled")
        assert gone.exit_code == 143
        blocked = await poll_until(watcher, waiting[0], lambda s: s.state is K.BLOCKED, message="dependant blocked")
        assert blocked.reason and "upstream" in blocked.reason

        again = await cancel_jobs(LocalTransport(), layout, lab, target, "local", [victim])
        assert not again.results[0].ok and "already cancelled" in again.results[0].detail

        status = cli("status", "--json")
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        assert {j["job"]: j["state"] for j in data["jobs"]}[victim] == "cancelled"
        assert {r["run"]: r["state"] for r in data["runs"]}["simulation"] in ("running", "queued", "cancelled")
    finally:
        cli("cancel", "simulation", "--yes")
        await async_wait_until(
            lambda: _nothing_active(watcher), timeout=60, interval=0.2, message="all agent jobs stopped"
        )


async def _running(watcher: StatusWatcher):
    states = await watcher.poll_once()
    return states if any(s.state is K.RUNNING for s in states.values()) else None


async def _nothing_active(watcher: StatusWatcher) -> bool:
    states = await watcher.poll_once()
    return not any(s.state.active for s in states.values())
