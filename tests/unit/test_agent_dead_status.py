"""Status of local-agent jobs whose agent or executor died: the marker script tells a live run
from a dead one by its run.lock (held with flock by a real process here), and the merge shows a
dead run as failed with the reason, never `running` forever."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from repx_tui.backend.events import JobStateKind as K
from repx_tui.backend.status import (
    MARKER_SCRIPT,
    SEP,
    AgentJob,
    MergeCache,
    RemoteSnapshot,
    StatusInputs,
    merge_states,
    parse_snapshot,
)

JOBS = ("a", "b")
DEPS = {"a": (), "b": ("a",)}


def merged(snap: RemoteSnapshot, previous=None, cache=None):
    inputs = StatusInputs(jobs=JOBS, deps=DEPS, run_of={"a": "r", "b": "r"}, snapshot=snap, queue={}, acct={})
    return merge_states(inputs, previous, cache)


def _touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _snapshot(base: Path) -> RemoteSnapshot:
    result = subprocess.run(
        ["bash", "-c", MARKER_SCRIPT, "repx", str(base / "outputs"), str(base / "subs"), str(base / "agent")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return parse_snapshot(result.stdout)


@pytest.fixture
def agent_tree(tmp_path: Path) -> Path:
    jobs = tmp_path / "agent" / "jobs"
    _touch(tmp_path / "agent" / "agent.lock")
    _touch(jobs / "a" / "state", "running\n")
    _touch(jobs / "a" / "pgid", "4242\n")
    _touch(jobs / "a" / "run.lock")
    _touch(jobs / "b" / "state", "queued\n")
    return tmp_path


def _hold(lock: Path) -> subprocess.Popen:
    """A real process holding lock (like an executor) until its stdin closes; flock runs the
    command only once it holds the lock, so the first line read means "held"."""
    proc = subprocess.Popen(
        ["flock", "-x", str(lock), "bash", "-c", "echo held; exec cat >/dev/null"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_run_that_holds_its_lock_is_running_and_no_agent_is_reported(agent_tree):
    holder = _hold(agent_tree / "agent" / "jobs" / "a" / "run.lock")
    try:
        snap = _snapshot(agent_tree)
    finally:
        holder.stdin.close()
        holder.wait()
    assert snap.dead_runs == {} and snap.agent_gone
    states = merged(snap)
    assert states["a"].state is K.RUNNING
    assert states["b"].state is K.QUEUED and "resumes the queue" in states["b"].reason


def test_a_run_with_its_lock_free_is_dead_with_the_exit_status_of_that_run(agent_tree):
    jobs = agent_tree / "agent" / "jobs"
    _touch(jobs / "a" / "rc", "137 4242\n")
    snap = _snapshot(agent_tree)
    assert snap.dead_runs == {"a": 137}
    state = merged(snap)["a"]
    assert state.state is K.FAILED and state.exit_code == 137
    assert state.reason == "agent and executor are gone; last state running"

    _touch(jobs / "a" / "rc", "0 1111\n")  # written by the watcher of an earlier run
    assert _snapshot(agent_tree).dead_runs == {"a": None}


def test_a_live_agent_with_a_dead_run_says_it_is_recording_the_outcome(agent_tree):
    holder = _hold(agent_tree / "agent" / "agent.lock")
    try:
        snap = _snapshot(agent_tree)
    finally:
        holder.stdin.close()
        holder.wait()
    assert not snap.agent_gone and "a" in snap.dead_runs
    states = merged(snap)
    assert states["a"].state is K.FAILED and "recording" in states["a"].reason
    assert states["b"].reason is None


def test_a_run_from_before_run_lock_is_taken_at_its_word(tmp_path):
    _touch(tmp_path / "agent" / "jobs" / "a" / "state", "running\n")
    assert _snapshot(tmp_path).dead_runs == {}


def test_fail_marker_of_a_dead_run_is_its_outcome():
    snap = RemoteSnapshot(
        markers={"a": "FAIL"},
        exit_codes={"a": 3},
        agent={"a": AgentJob("running")},
        dead_runs={"a": None},
        agent_gone=True,
    )
    state = merged(snap)["a"]
    assert state.state is K.FAILED and state.exit_code == 3


def test_parse_dead_and_gone_records():
    text = f"D{SEP}a{SEP}137\nD{SEP}b{SEP}\nG\nD{SEP}bad\n"
    snap = parse_snapshot(text)
    assert snap.dead_runs == {"a": 137, "b": None} and snap.agent_gone


def test_cached_merge_notices_a_run_dying():
    cache = MergeCache()
    alive = RemoteSnapshot(agent={"a": AgentJob("running"), "b": AgentJob("queued")})
    first = merged(alive, cache=cache)
    assert first["a"].state is K.RUNNING
    dead = RemoteSnapshot(agent=dict(alive.agent), dead_runs={"a": None}, agent_gone=True)
    second = merged(dead, previous=first, cache=cache)
    assert second["a"].state is K.FAILED and "gone" in second["a"].reason
    assert second["b"].reason and "resumes" in second["b"].reason
