"""Can anything more happen to a set of jobs by itself? `run --wait` ends when nothing can.

A job can still change while it is queued or running (SLURM or a live agent will get to it),
pending (perhaps queued from another Lab that shares it), unknown, or stale (the next poll may
say more). It cannot once it is final, blocked (an upstream failed, so SLURM or the agent never
starts it), or queued for a local agent that is gone (nothing starts it until the next `run`).
Pure: decided from the merged JobStates alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from repx_tui.backend.events import JobState, JobStateKind
from repx_tui.backend.status.merge import NO_AGENT_REASON

K = JobStateKind


def orphaned(state: JobState) -> bool:
    """Queued for a local agent that no longer runs."""
    return state.state is K.QUEUED and not state.stale and state.reason == NO_AGENT_REASON


def can_still_change(state: JobState | None) -> bool:
    """Whether this job may still reach another state with nobody acting (None: not seen yet)."""
    if state is None:
        return True
    if state.state.finished:
        return False
    if state.stale:
        return True
    return not (state.state is K.BLOCKED or orphaned(state))


def nothing_more_can_happen(states: Iterable[JobState | None]) -> bool:
    """True when no job of the set can still change by itself (an empty set included)."""
    return not any(can_still_change(state) for state in states)


def outcome(state: JobState) -> str:
    """What became of a job that did not succeed, and why, on one line."""
    if orphaned(state):
        return f"never ran: {state.reason}"
    text = state.state.value
    if state.exit_code is not None and state.state is not K.SUCCEEDED:
        text += f" (exit {state.exit_code})"
    return f"{text}: {state.reason}" if state.reason else text


__all__ = ["can_still_change", "nothing_more_can_happen", "orphaned", "outcome"]
