"""`run --wait` ends when nothing more can happen to its jobs by themselves: every job final,
blocked by a failure, or queued for a local agent that is gone (status/outlook.py). The facts
come from the real merge of agent records (as tests/unit/test_agent_dead_status.py sets them up);
the e2e run with a killed agent is tests/e2e/test_wait_ends.py."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repx_tui.backend.events import JobState
from repx_tui.backend.events import JobStateKind as K
from repx_tui.backend.status import AgentJob, RemoteSnapshot, StatusInputs, merge_states
from repx_tui.backend.status.merge import NO_AGENT_REASON
from repx_tui.backend.status.outlook import can_still_change, nothing_more_can_happen, orphaned, outcome
from repx_tui.headless import run as headless_run

JOBS = ("a", "b", "c")
DEPS = {"a": (), "b": ("a",), "c": ("b",)}


def merged(snap: RemoteSnapshot) -> dict[str, JobState]:
    inputs = StatusInputs(jobs=JOBS, deps=DEPS, run_of=dict.fromkeys(JOBS, "r"), snapshot=snap, queue={}, acct={})
    return merge_states(inputs)


def test_jobs_queued_for_a_gone_agent_can_never_run():
    snap = RemoteSnapshot(
        markers={"a": "SUCCESS"},
        agent={"a": AgentJob("succeeded"), "b": AgentJob("queued"), "c": AgentJob("queued")},
        agent_gone=True,
    )
    states = merged(snap)
    assert [orphaned(states[j]) for j in JOBS] == [False, True, True]
    assert nothing_more_can_happen(states.values())
    assert outcome(states["b"]) == f"never ran: {NO_AGENT_REASON}"


def test_the_same_queue_with_a_live_agent_still_runs():
    snap = RemoteSnapshot(agent={"a": AgentJob("running"), "b": AgentJob("queued"), "c": AgentJob("queued")})
    assert not nothing_more_can_happen(merged(snap).values())


def test_a_running_job_whose_executor_outlives_the_agent_can_still_finish():
    snap = RemoteSnapshot(agent={"a": AgentJob("running"), "b": AgentJob("queued")}, agent_gone=True)
    states = merged(snap)
    assert states["a"].state is K.RUNNING and orphaned(states["b"])
    assert not nothing_more_can_happen(states.values())


def test_blocked_by_a_failed_upstream_is_the_end_and_says_why():
    snap = RemoteSnapshot(markers={"a": "FAIL"}, exit_codes={"a": 3})  # b, c never submitted
    states = merged(snap)
    assert [states[j].state for j in JOBS] == [K.FAILED, K.BLOCKED, K.BLOCKED]
    assert nothing_more_can_happen(states.values())
    assert outcome(states["a"]) == "failed (exit 3)"
    assert outcome(states["b"]) == "blocked: upstream failed: a"


def job(kind: K, *, reason: str | None = None, stale: bool = False) -> JobState:
    return JobState("j", "r", kind, reason=reason, stale=stale)


STILL_MOVING = [
    job(K.QUEUED),
    job(K.RUNNING),
    job(K.PENDING),  # perhaps queued from another Lab that shares the job
    job(K.UNKNOWN, reason="submitted, not in squeue or sacct"),
    job(K.QUEUED, reason=NO_AGENT_REASON, stale=True),  # unknown right now: the next poll may differ
    job(K.BLOCKED, stale=True),
    None,  # not seen yet
]
SETTLED = [
    *(job(kind) for kind in (K.SUCCEEDED, K.FAILED, K.CANCELLED, K.TIMEOUT, K.OUT_OF_MEMORY)),
    job(K.FAILED, stale=True),
    job(K.BLOCKED, reason="upstream failed: x"),
    job(K.QUEUED, reason=NO_AGENT_REASON),
]


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(settled=st.lists(st.sampled_from(SETTLED), max_size=6), moving=st.lists(st.sampled_from(STILL_MOVING)))
def test_one_job_that_can_still_change_keeps_the_wait_going(settled, moving):
    assert nothing_more_can_happen(settled)
    assert nothing_more_can_happen([*settled, *moving]) is (not moving)
    assert all(can_still_change(s) for s in moving) and not any(can_still_change(s) for s in settled)


class FakeSession:
    """poll() answers the given states in turn, the last one for ever."""

    scheduler = "local"

    def __init__(self, answers: list[dict[str, JobState]]) -> None:
        self.answers, self.polls = answers, 0

    async def poll(self) -> dict[str, JobState]:
        self.polls += 1
        return self.answers[min(self.polls, len(self.answers)) - 1]


def test_wait_outlasts_an_agent_not_yet_up_then_ends_on_one_that_stays_gone(monkeypatch):
    monkeypatch.setattr(headless_run, "LOCAL_POLL_SECONDS", 0.0)
    monkeypatch.setattr(headless_run, "AGENT_GONE_GRACE", 0.3)
    gone = job(K.QUEUED, reason=NO_AGENT_REASON)
    starting = {"a": gone, "b": gone}  # right after submit: the new agent has not taken its lock
    served = {"a": job(K.RUNNING), "b": job(K.QUEUED)}
    left = {"a": job(K.SUCCEEDED), "b": JobState("b", "r", K.QUEUED, reason=NO_AGENT_REASON)}
    session = FakeSession([starting, served, left])
    failed = asyncio.run(asyncio.wait_for(headless_run._wait(session, ["a", "b"]), timeout=10))  # type: ignore[arg-type]
    assert [s.job for s in failed] == ["b"] and session.polls > 3


def test_wait_returns_at_once_when_no_job_is_left_to_wait_for():
    # every job's submission failed: run leaves them out (they are its errors) and --wait ends
    session = FakeSession([{}])
    assert asyncio.run(asyncio.wait_for(headless_run._wait(session, []), timeout=10)) == []  # type: ignore[arg-type]
    assert session.polls == 1
