"""A run's progress: counts per state, throughput (jobs per minute) and an ETA (pure).

Throughput is measured from the jobs finished so far, on one clock at a time:
  * SLURM's: finished jobs with sacct start/end times -> n / (last end - first start);
  * else this client's: jobs seen finishing while watched (not those already finished when the
    watch began) -> n / (now - watch start).
The ETA is the jobs that can still finish (not finished, not blocked by a failed upstream) at
that rate, and only while something of the run is still queued, running or pending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from repx_tui.backend.events import JobState, JobStateKind
from repx_tui.backend.status.merge import blocked_by_failure

K = JobStateKind
_ACTIVE = frozenset({K.QUEUED, K.RUNNING, K.PENDING, K.BLOCKED})


@dataclass(frozen=True)
class RunProgress:
    run: str
    total: int
    counts: Mapping[JobStateKind, int]
    finished: int  # any outcome
    remaining: int  # can still finish
    rate_per_min: float | None = None
    eta_seconds: float | None = None
    basis: str = ""  # "sacct" | "seen" | "" (no rate yet)


def run_progress(
    run: str,
    states: Iterable[JobState],
    seen_finished: Mapping[str, float],
    watch_started: float | None,
    now: float,
) -> RunProgress:
    counts: dict[JobStateKind, int] = {}
    finished = blocked_for_good = 0
    starts: list[float] = []
    ends: list[float] = []
    seen = 0
    active = False
    for state in states:
        counts[state.state] = counts.get(state.state, 0) + 1
        if state.state.finished:
            finished += 1
            eff = state.efficiency
            if eff is not None and eff.end_epoch is not None and eff.start_epoch is not None:
                starts.append(eff.start_epoch)
                ends.append(eff.end_epoch)
            if state.job in seen_finished:
                seen += 1
        elif blocked_by_failure(state):
            blocked_for_good += 1
        elif state.state in _ACTIVE:
            active = True
    total = sum(counts.values())
    remaining = total - finished - blocked_for_good
    rate, basis = _rate(starts, ends, seen, watch_started, now)
    eta = remaining / rate * 60 if rate and remaining > 0 and active else None
    return RunProgress(run, total, counts, finished, remaining, rate, eta, basis)


def _rate(
    starts: list[float], ends: list[float], seen: int, watch_started: float | None, now: float
) -> tuple[float | None, str]:
    if ends:
        span = max(ends) - min(starts)
        if span > 0:
            return len(ends) / span * 60, "sacct"
    if seen and watch_started is not None and now > watch_started:
        return seen / (now - watch_started) * 60, "seen"
    return None, ""
