"""Status: squeue/sacct parsing, the one-round-trip marker script, merge rules, roll-ups, changes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from repx_tui.backend.events import JobsChanged
from repx_tui.backend.events import JobStateKind as K
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.status import (
    MARKER_SCRIPT,
    SEP,
    AcctEntry,
    LabView,
    QueueEntry,
    RemoteSnapshot,
    StatusInputs,
    StatusWatcher,
    Submission,
    diff_states,
    merge_states,
    needs_sacct,
    owner_job,
    parse_sacct,
    parse_snapshot,
    parse_squeue,
    queue_by_job,
    roll_up_kind,
    roll_up_runs,
    sacct_argv,
    slurm_error,
    squeue_argv,
)
from repx_tui.backend.transport.local import LocalTransport


def sq(*fields: str) -> str:
    return SEP.join(fields)


# --- squeue --------------------------------------------------------------------------------


def test_squeue_argv_pushes_user_and_uses_unit_separator():
    argv = squeue_argv("alice")
    assert argv[argv.index("-u") + 1] == "alice"
    assert "--noheader" in argv
    fmt = argv[argv.index("-o") + 1]
    assert fmt.split(SEP) == ["%i", "%j", "%T", "%M", "%N", "%r", "%P"]


def test_parse_squeue_names_with_spaces_and_odd_characters():
    text = "\n".join(
        [
            sq("12", "job with  spaces|and;semi", "RUNNING", "1:02", "node1", "None", "debug"),
            sq("13", "tab\tname %x", "PENDING", "0:00", "", "Dependency", "long"),
            "slurm_load_jobs: a warning line without separators",
            sq("14", "too", "few"),
            "",
        ]
    )
    entries = parse_squeue(text)
    assert [e.slurm_id for e in entries] == ["12", "13"]
    assert entries[0].name == "job with  spaces|and;semi"
    assert entries[0].node == "node1" and entries[0].elapsed == "1:02"
    assert entries[1].name == "tab\tname %x" and entries[1].reason == "Dependency"


def test_parse_squeue_10000_jobs():
    lines = [
        sq(str(1000 + i), f"{i:064x}-job-{i}", "RUNNING" if i % 3 else "PENDING", "0:01", "n1", "None", "p")
        for i in range(10_000)
    ]
    entries = parse_squeue("\n".join(lines) + "\n")
    assert len(entries) == 10_000
    assert entries[9_999].name == f"{9_999:064x}-job-9999"
    assert sum(e.state == "PENDING" for e in entries) == 3334


def test_slurm_error_is_read_even_on_exit_zero():
    assert slurm_error("slurm_load_jobs error: Socket timed out on send/recv operation") is not None
    assert slurm_error("squeue: error: Unable to contact slurm controller (connect failure)")
    assert slurm_error("") is None


# --- sacct ---------------------------------------------------------------------------------


def test_parse_sacct_states_exit_codes_and_step_rss():
    text = "\n".join(
        [
            sq("7", "jobA", "CANCELLED by 0", "0:0", "00:00:03", "", "localhost"),
            sq("7.batch", "batch", "CANCELLED", "0:15", "00:00:03", "2048K", "localhost"),
            sq("8", "jobB", "FAILED", "3:0", "00:00:01", "", "localhost"),
            sq("8.batch", "batch", "FAILED", "3:0", "00:00:01", "1G", "localhost"),
            sq("8.extern", "extern", "COMPLETED", "0:0", "00:00:01", "512K", "localhost"),
            sq("9", "jobC", "OUT_OF_MEMORY", "0:125", "00:01:00", "", "n2"),
            sq("10", "jobD", "TIMEOUT", "0:0", "00:10:00", "", "n2"),
        ]
    )
    acct = parse_sacct(text)
    assert set(acct) == {"7", "8", "9", "10"}
    assert acct["7"].state == "CANCELLED" and acct["7"].max_rss == "2048K"
    assert acct["8"].exit_code == 3 and acct["8"].max_rss == "1G"  # the largest step wins
    assert acct["9"].state == "OUT_OF_MEMORY" and acct["9"].signal == 125
    assert acct["10"].state == "TIMEOUT"


def test_sacct_argv_one_call_for_all_ids():
    argv = sacct_argv(["12", "3", "12"])
    assert argv[argv.index("-j") + 1] == "3,12"
    assert argv[argv.index("--delimiter") + 1] == SEP


# --- the marker script, run for real -------------------------------------------------------


def _touch(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_marker_script_is_shellcheck_clean(tmp_path):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed")
    script = tmp_path / "markers.sh"
    script.write_text("#!/usr/bin/env bash\n" + MARKER_SCRIPT)
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def _remote_tree(base: Path) -> None:
    out = base / "outputs"
    _touch(out / "a-ok" / "repx" / "SUCCESS")
    _touch(out / "a-ok" / "repx" / "exit_code", "0")
    _touch(out / "b-fail" / "repx" / "FAIL")
    _touch(out / "b-fail" / "repx" / "exit_code", "3")
    _touch(out / "c-killed" / "repx" / "FAIL")
    _touch(out / "c-killed" / "repx" / "cancelled")
    _touch(out / "c-killed" / "repx" / "exit_code", "143")
    # SG sub-markers must not count as the job's outcome
    _touch(out / "d-sg" / "scatter" / "repx" / "SUCCESS")
    _touch(out / "d-sg" / "branch-0" / "step-sq" / "repx" / "SUCCESS")
    _touch(out / "completions.jsonl", '{"id":"a-ok","s":"ok"}\n')
    subs = base / "submissions" / "lab1"
    _touch(subs / "20260101T000000Z-1.json", json.dumps({"lab_id": "lab1", "user": "u", "jobs": {"e-sub": "41"}}))
    _touch(subs / "20260102T000000Z-2.json", json.dumps({"lab_id": "lab1", "user": "u", "jobs": {"e-sub": "42"}}))
    agent = base / "agents" / "lab1" / "jobs"
    _touch(agent / "f-local" / "state", "running\n")
    _touch(agent / "f-local" / "pgid", "4242\n")
    _touch(agent / "g-block" / "state", "blocked\n")
    _touch(agent / "g-block" / "reason", "upstream b-fail failed\n")


def _run_marker_script(base: Path) -> RemoteSnapshot:
    result = subprocess.run(
        ["bash", "-c", MARKER_SCRIPT, "repx", str(base / "outputs"), str(base / "submissions" / "lab1"),
         str(base / "agents" / "lab1")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return parse_snapshot(result.stdout)


def test_marker_script_reports_markers_exit_codes_records_and_agent(tmp_path):
    _remote_tree(tmp_path)
    snap = _run_marker_script(tmp_path)
    assert snap.user
    assert snap.markers == {"a-ok": "SUCCESS", "b-fail": "FAIL", "c-killed": "FAIL"}
    assert snap.exit_codes == {"a-ok": 0, "b-fail": 3, "c-killed": 143}
    assert snap.cancelled == {"c-killed"}
    assert snap.submissions["e-sub"].slurm_id == "42"  # the later record wins
    assert snap.submissions["e-sub"].user == "u"
    assert snap.agent["f-local"].state == "running" and snap.agent["f-local"].pgid == 4242
    assert snap.agent["g-block"].reason == "upstream b-fail failed"


def test_marker_script_on_an_empty_target(tmp_path):
    snap = _run_marker_script(tmp_path / "nothing-here")
    assert snap.markers == {} and snap.submissions == {} and snap.agent == {}


# --- merge rules ---------------------------------------------------------------------------

DEPS = {"a": (), "b": ("a",), "c": ("b",), "d": ()}
RUNS = {"a": "r1", "b": "r1", "c": "r1", "d": "r2"}


_EMPTY: dict = {}


def merged(snapshot=None, queue=_EMPTY, acct=_EMPTY, known=None, previous=None, jobs=("a", "b", "c", "d")):
    """queue/acct None mean "that source is unavailable" (as in merge_states)."""
    inputs = StatusInputs(
        jobs=jobs, deps=DEPS, run_of=RUNS, snapshot=snapshot or RemoteSnapshot(),
        queue=queue, acct=acct, known_slurm_ids=known or {},
    )  # fmt: skip
    return merge_states(inputs, previous)


def qe(sid, name, state, reason="None", node="n1", elapsed="0:05"):
    return QueueEntry(sid, name, state, elapsed, node, reason, "p")


def ae(sid, state, code=0, rss=""):
    return AcctEntry(sid, "x", state, code, 0, "00:00:09", rss, "n1")


def test_nothing_submitted_gives_pending_roots_and_blocked_dependants():
    states = merged()
    assert states["a"].state is K.PENDING and states["d"].state is K.PENDING
    assert states["b"].state is K.BLOCKED and "a" in states["b"].reason
    assert states["c"].state is K.BLOCKED and "b" in states["c"].reason


def test_failed_upstream_is_named_in_blocked_reason():
    snap = RemoteSnapshot(markers={"a": "FAIL"}, exit_codes={"a": 2})
    states = merged(snap)
    assert states["a"].state is K.FAILED and states["a"].exit_code == 2
    assert states["b"].state is K.BLOCKED and states["b"].reason == "upstream failed: a"
    assert states["c"].reason == "waiting for: b"


def test_markers_win_over_the_queue():
    snap = RemoteSnapshot(markers={"a": "SUCCESS"})
    states = merged(snap, queue={"a": qe("5", "a", "COMPLETING")})
    assert states["a"].state is K.SUCCEEDED
    assert states["b"].state is K.PENDING


def test_queue_states_running_and_queued_with_reason():
    snap = RemoteSnapshot(markers={"a": "SUCCESS"})
    states = merged(snap, queue={"b": qe("6", "b", "RUNNING"), "c": qe("7", "c", "PENDING", "Dependency", node="")})
    assert states["b"].state is K.RUNNING and states["b"].node == "n1" and states["b"].elapsed == "0:05"
    assert states["c"].state is K.QUEUED and states["c"].reason == "Dependency" and states["c"].node is None


def test_sacct_for_jobs_that_left_the_queue():
    snap = RemoteSnapshot(
        markers={"a": "SUCCESS"},
        submissions={j: Submission(j, sid) for j, sid in {"b": "6", "c": "7", "d": "8"}.items()},
    )
    acct = {"6": ae("6", "TIMEOUT"), "7": ae("7", "CANCELLED"), "8": ae("8", "OUT_OF_MEMORY", 0, "3G")}
    assert needs_sacct("abcd", snap, {}, {}) == {"b": "6", "c": "7", "d": "8"}
    states = merged(snap, acct=acct)
    assert states["b"].state is K.TIMEOUT
    assert states["c"].state is K.CANCELLED
    assert states["d"].state is K.OUT_OF_MEMORY and states["d"].max_rss == "3G"


def test_fail_marker_explained_by_the_scheduler_and_cancel_marker():
    snap = RemoteSnapshot(
        markers={"a": "FAIL", "d": "FAIL"}, exit_codes={"a": 143, "d": 143}, cancelled={"d"},
        submissions={"a": Submission("a", "6")},
    )  # fmt: skip
    states = merged(snap, acct={"6": ae("6", "OUT_OF_MEMORY", 0, "9G")})
    assert states["a"].state is K.OUT_OF_MEMORY and states["a"].exit_code == 143 and states["a"].max_rss == "9G"
    assert states["d"].state is K.CANCELLED


def test_submitted_job_invisible_everywhere_is_unknown():
    snap = RemoteSnapshot(submissions={"d": Submission("d", "99")})
    assert merged(snap)["d"].state is K.UNKNOWN


def test_unavailable_queue_keeps_previous_state_marked_stale():
    snap = RemoteSnapshot(submissions={"d": Submission("d", "8")})
    before = merged(snap, queue={"d": qe("8", "d", "RUNNING")})
    assert before["d"].state is K.RUNNING and not before["d"].stale
    after = merged(snap, queue=None, acct=None, previous=before)
    assert after["d"].state is K.RUNNING and after["d"].stale
    assert not after["a"].stale  # not submitted: derived from the DAG, needs no queue


def test_agent_states_and_requeue_after_failure():
    from repx_tui.backend.status import AgentJob

    snap = RemoteSnapshot(
        markers={"a": "FAIL"},
        agent={"a": AgentJob("queued"), "d": AgentJob("running", pgid=5)},
    )
    states = merged(snap)
    assert states["a"].state is K.QUEUED  # the old FAIL marker is history
    assert states["d"].state is K.RUNNING


def test_scatter_gather_units_belong_to_their_job():
    jobs = {"abc-sg": 1, "abc": 1}
    assert owner_job("abc-sg", jobs) == "abc-sg"
    assert owner_job("anchor-abc-sg", jobs) == "abc-sg"
    assert owner_job("abc-sg-b3-square", jobs) == "abc-sg"
    assert owner_job("abc-sg-gather", jobs) == "abc-sg"
    assert owner_job("other", jobs) is None
    queue = queue_by_job([qe("1", "anchor-abc-sg", "PENDING", "JobHeldUser"), qe("2", "abc-sg-b0-sq", "RUNNING")], jobs)
    assert queue["abc-sg"].slurm_id == "2"  # a running unit represents the job


# --- roll-ups and change detection ---------------------------------------------------------


def test_roll_up_precedence():
    assert roll_up_kind([K.SUCCEEDED, K.SUCCEEDED]) is K.SUCCEEDED
    assert roll_up_kind([K.SUCCEEDED, K.RUNNING, K.FAILED]) is K.RUNNING
    assert roll_up_kind([K.FAILED, K.QUEUED, K.PENDING]) is K.FAILED
    assert roll_up_kind([K.QUEUED, K.BLOCKED]) is K.QUEUED
    assert roll_up_kind([K.BLOCKED, K.PENDING]) is K.PENDING
    assert roll_up_kind([]) is K.UNKNOWN


def test_roll_up_runs_and_groups():
    states = merged(RemoteSnapshot(markers={"a": "SUCCESS", "b": "SUCCESS", "c": "SUCCESS"}))
    runs = {r.name: r for r in roll_up_runs(states, {"all": ("r1", "r2")})}
    assert runs["r1"].state is K.SUCCEEDED and runs["r1"].total == 3
    assert runs["r2"].state is K.PENDING
    assert runs["@all"].state is K.PENDING and runs["@all"].counts == {"succeeded": 3, "pending": 1}


def test_diff_states_reports_only_changes():
    old = merged()
    new = merged(RemoteSnapshot(markers={"a": "SUCCESS"}))
    changed, removed = diff_states(old, new)
    assert {s.job for s in changed} == {"a", "b"}  # a succeeded, b became pending; c, d unchanged
    assert removed == ()
    assert diff_states(new, dict(new)) == ((), ())
    changed, removed = diff_states(new, {k: v for k, v in new.items() if k != "d"})
    assert removed == ("d",)


# --- the watcher, on this machine ----------------------------------------------------------


def _view() -> LabView:
    return LabView(lab_id="lab1", jobs=("a", "b", "c", "d"), deps=DEPS, run_of=RUNS, groups={})


async def test_watcher_emits_changes_only(tmp_path):
    events: list[JobsChanged] = []
    layout = RemoteLayout(base=str(tmp_path))
    watcher = StatusWatcher(LocalTransport(), layout, _view(), None, "local", events.append)
    await watcher.poll_once()
    assert len(events) == 1 and len(events[0].changed) == 4
    await watcher.poll_once()
    assert len(events) == 1  # nothing changed, nothing emitted
    _touch(tmp_path / "outputs" / "a" / "repx" / "SUCCESS")
    states = await watcher.poll_once()
    assert states["a"].state is K.SUCCEEDED
    assert {s.job for s in events[-1].changed} == {"a", "b"}


async def test_watcher_goes_stale_instead_of_raising(tmp_path):
    class Broken(LocalTransport):
        async def run(self, argv, **kwargs):
            from repx_tui.backend.errors import TransportError

            raise TransportError("connection lost")

    events: list[JobsChanged] = []
    layout = RemoteLayout(base=str(tmp_path))
    good = StatusWatcher(LocalTransport(), layout, _view(), None, "local", events.append)
    await good.poll_once()
    good.transport = Broken()
    states = await good.poll_once()
    assert all(s.stale for s in states.values())
    assert events[-1].error == "connection lost" and events[-1].stale_since is not None
    assert len(events[-1].changed) == 4
    await good.poll_once()
    assert len(events) == 2  # still stale, same error: nothing new to say
    good.transport = LocalTransport()
    states = await good.poll_once()
    assert not any(s.stale for s in states.values())
    assert events[-1].error is None and events[-1].stale_since is None


async def test_watch_loop_never_overlaps_and_floors_the_interval(tmp_path):
    import asyncio

    layout = RemoteLayout(base=str(tmp_path))
    watcher = StatusWatcher(LocalTransport(), layout, _view(), None, "local", lambda e: None, interval=0.01)
    assert watcher.interval == 3.0
    watcher.interval = 0.01  # the floor is for users; a test may poll faster
    active = 0
    most = 0
    polls = 0
    real = watcher.poll_once

    async def counting():
        nonlocal active, most, polls
        active += 1
        most = max(most, active)
        try:
            return await real()
        finally:
            active -= 1
            polls += 1

    watcher.poll_once = counting
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.watch(stop))
    from tests.helpers import async_wait_until

    await async_wait_until(lambda: polls >= 5, timeout=10, message="five polls")
    stop.set()
    await asyncio.wait_for(task, 5)
    assert most == 1


# --- cancel helpers ------------------------------------------------------------------------


def test_parse_scancel_errors_per_job():
    from repx_tui.backend.cancel import parse_scancel_errors

    stderr = (
        "scancel: error: Kill job error on job id 5: Job/step already completing or completed\n"
        "scancel: error: Kill job error on job id 7: Invalid job id specified\n"
    )
    assert parse_scancel_errors(stderr) == {
        "5": "Job/step already completing or completed",
        "7": "Invalid job id specified",
    }
    assert parse_scancel_errors("") == {}


def test_cached_merge_equals_a_full_merge_and_reuses_unchanged_objects():
    import random

    from repx_tui.backend.status import MergeCache, SqueueParser

    rng = random.Random(7)
    jobs = tuple(f"j{i:03d}" for i in range(300))
    deps = {j: ((jobs[i - 1],) if i % 5 else ()) for i, j in enumerate(jobs)}
    run_of = {j: "r" for j in jobs}
    cache, parser, previous = MergeCache(), SqueueParser(), {}
    markers: dict[str, str] = {}
    for tick in range(12):
        for j in rng.sample(jobs, 20):
            markers[j] = rng.choice(["SUCCESS", "FAIL"])
        queue_text = "\n".join(
            sq(str(i), j, rng.choice(["RUNNING", "PENDING"]) if i % 3 == 0 else "PENDING", "0:01", "n", "None", "p")
            for i, j in enumerate(jobs)
            if j not in markers
        )
        snap = RemoteSnapshot(markers=dict(markers), exit_codes={j: 0 for j in markers})
        queue = queue_by_job(parser.parse(queue_text), run_of)
        inputs = StatusInputs(jobs, deps, run_of, snap, queue, {}, {})
        cached = merge_states(inputs, previous, cache)
        assert cached == merge_states(inputs)  # same answer as from scratch
        if tick:
            changed, _ = diff_states(previous, cached)
            unchanged = [j for j in jobs if previous[j] == cached[j]]
            assert len(changed) == len(jobs) - len(unchanged)
            reused = sum(cached[j] is previous[j] for j in unchanged)
            assert reused >= len(unchanged) // 2  # most unchanged jobs keep their object
        previous = cached
    parser_before = len(parser._cache)
    assert parser_before <= len(jobs)  # the line cache holds one refresh, not history
