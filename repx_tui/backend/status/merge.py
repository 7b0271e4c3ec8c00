"""Merging the sources into one JobState per job (pure), change detection and roll-ups."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from repx_tui.backend.events import JobState, JobStateKind, RollUp, job_state_json
from repx_tui.backend.lab import Lab
from repx_tui.backend.status.efficiency import efficiency_of, killed_for_memory
from repx_tui.backend.status.slurm import AcctEntry, QueueEntry, slurm_kind
from repx_tui.backend.status.snapshot import AgentJob, RemoteSnapshot

K = JobStateKind

_AGENT_STATES = {
    "running": K.RUNNING, "queued": K.QUEUED, "waiting": K.QUEUED, "pending": K.QUEUED,
    "cancelled": K.CANCELLED, "canceled": K.CANCELLED, "blocked": K.BLOCKED,
    "succeeded": K.SUCCEEDED, "failed": K.FAILED,
}  # fmt: skip
# A FAIL marker written by a job that the scheduler killed: the scheduler's reason says more.
_EXPLAINS_FAILURE = frozenset({K.CANCELLED, K.TIMEOUT, K.OUT_OF_MEMORY})
# States a bigger request would have avoided: they carry a hint naming the value to raise.
NEEDS_HINT = frozenset({K.TIMEOUT, K.OUT_OF_MEMORY})
HintFor = Callable[[JobState], "str | None"]
# A queued local-agent job that no agent serves: nothing runs it until the next `run` (outlook.py).
NO_AGENT_REASON = "no agent is running; `repx-tui run` starts one that resumes the queue"


@dataclass(frozen=True)
class StatusInputs:
    """Everything one merge needs. `queue`/`acct` None: that source is unavailable right now."""

    jobs: Sequence[str]  # in topological order (dependencies first)
    deps: Mapping[str, Sequence[str]]
    run_of: Mapping[str, str]
    snapshot: RemoteSnapshot
    queue: Mapping[str, QueueEntry] | None
    acct: Mapping[str, AcctEntry] | None
    known_slurm_ids: Mapping[str, str] = field(default_factory=dict)  # job -> id seen in squeue
    source_runs: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)  # job -> run -> finals
    hint_for: HintFor | None = None  # OUT_OF_MEMORY / TIMEOUT -> "raise mem in resources.toml rule 2"


class MergeCache:
    """What the last merge saw per job, so an unchanged job keeps its JobState object."""

    def __init__(self) -> None:
        self.signatures: dict[str, tuple] = {}


def _signature(job: str, inputs: StatusInputs) -> tuple:
    """Everything _observed_state reads for this job (hot: called once per job per refresh)."""
    snap = inputs.snapshot
    marker = snap.markers.get(job)
    if marker is not None:
        extra: tuple = (snap.exit_codes.get(job), job in snap.cancelled)
    else:
        extra = ()
    queue = inputs.queue
    agent = snap.agent.get(job) if snap.agent else None
    sub = snap.submissions.get(job) if snap.submissions else None
    sid = (sub.slurm_id if sub else None) or (inputs.known_slurm_ids.get(job) if inputs.known_slurm_ids else None)
    acct = inputs.acct
    return (
        marker,
        extra,
        queue.get(job) if queue is not None else _UNAVAILABLE,
        None if agent is None else (agent.state, agent.reason, snap.dead_runs.get(job, -1), snap.agent_gone),
        sid,
        None if not sid else (_UNAVAILABLE if acct is None else acct.get(sid)),
    )


def merge_states(
    inputs: StatusInputs, previous: Mapping[str, JobState] | None = None, cache: MergeCache | None = None
) -> dict[str, JobState]:
    """One JobState per Lab job. Precedence: markers, queue, agent, sacct, then the DAG.

    A job whose deciding source is unavailable keeps its previous state, marked stale. With a
    cache, a job whose inputs and upstream states did not change keeps its previous object.
    """
    previous = previous or {}
    states: dict[str, JobState] = {}
    signatures: dict[str, tuple] | None = {} if cache is not None else None
    old_signatures = cache.signatures if cache is not None else {}
    for job in inputs.jobs:
        deps = inputs.deps.get(job, ())
        prev = previous.get(job)
        if signatures is not None:
            sig = _signature(job, inputs)
            signatures[job] = sig
            if (
                prev is not None
                and not prev.stale
                and old_signatures.get(job) == sig
                and _same_upstream(deps, states, previous)
            ):
                states[job] = prev
                continue
        run = inputs.run_of.get(job, "")
        state = _observed_state(job, run, inputs)
        if state is _UNAVAILABLE:
            state = replace(prev, stale=True) if prev else JobState(job, run, K.UNKNOWN, stale=True)
        elif state is None:
            state = _derived_state(job, run, deps, states)
        elif inputs.hint_for is not None and state.state in NEEDS_HINT and state.hint is None:
            state = replace(state, hint=inputs.hint_for(state))
        if job in inputs.source_runs:
            state = _with_waiting_runs(state, inputs.source_runs[job], states)
        states[job] = state
    if cache is not None and signatures is not None:
        cache.signatures = signatures
    return states


def _same_upstream(deps: Sequence[str], states: Mapping[str, JobState], previous: Mapping[str, JobState]) -> bool:
    for dep in deps:
        if states.get(dep) is not previous.get(dep):
            return False
    return True


_UNAVAILABLE: Any = object()


def _observed_state(job: str, run: str, inputs: StatusInputs) -> JobState | None:
    snap = inputs.snapshot
    sub = snap.submissions.get(job)
    slurm_id = (sub.slurm_id if sub else None) or inputs.known_slurm_ids.get(job)
    acct = inputs.acct.get(slurm_id) if (inputs.acct is not None and slurm_id) else None
    agent = snap.agent.get(job)
    marker = snap.markers.get(job)
    if marker == "FAIL" and agent is not None and agent.state in ("queued", "running") and job not in snap.dead_runs:
        marker = None  # re-queued after a failure: the old marker is history
    if marker == "SUCCESS":
        return _with_acct(JobState(job, run, K.SUCCEEDED, slurm_id=slurm_id, exit_code=0), acct)
    if marker == "FAIL":
        return _failed_state(job, run, slurm_id, snap.exit_codes.get(job), acct, agent, job in snap.cancelled)
    if inputs.queue is not None and job in inputs.queue:
        return _queue_state(job, run, inputs.queue[job])
    if agent is not None and agent.state in _AGENT_STATES:
        return _agent_state(job, run, agent, snap)
    if slurm_id is None:
        return None
    if inputs.queue is None:
        return _UNAVAILABLE  # submitted, no marker, and we cannot see the queue
    if acct is not None:
        return _acct_state(job, run, acct)
    if inputs.acct is None:
        return _UNAVAILABLE
    return JobState(job, run, K.UNKNOWN, slurm_id=slurm_id, reason="submitted, not in squeue or sacct")


def _agent_state(job: str, run: str, agent: AgentJob, snap: RemoteSnapshot) -> JobState:
    """The agent's record, checked against what is left on the target: a run with no process
    left is failed (never `running` forever), a queue that no agent serves says so."""
    kind, reason, code = _AGENT_STATES[agent.state], agent.reason, snap.exit_codes.get(job)
    if job in snap.dead_runs:
        kind = K.FAILED
        code = snap.dead_runs[job] if snap.dead_runs[job] is not None else code
        reason = (
            "agent and executor are gone; last state running"
            if snap.agent_gone
            else "executor is gone; the agent is recording its outcome"
        )
    elif kind is K.QUEUED and snap.agent_gone:
        reason = NO_AGENT_REASON
    return JobState(job, run, kind, reason=reason, exit_code=code)


def _failed_state(
    job: str,
    run: str,
    slurm_id: str | None,
    code: int | None,
    acct: AcctEntry | None,
    agent: AgentJob | None,
    signalled: bool,
) -> JobState:
    kind = K.CANCELLED if signalled else K.FAILED
    if agent is not None and _AGENT_STATES.get(agent.state) is K.CANCELLED:
        kind = K.CANCELLED
    if acct is not None and killed_for_memory(acct):
        kind = K.OUT_OF_MEMORY
    elif acct is not None and slurm_kind(acct.state) in _EXPLAINS_FAILURE:
        kind = slurm_kind(acct.state)
    if code is None and acct is not None:
        code = acct.exit_code
    return _with_acct(JobState(job, run, kind, slurm_id=slurm_id, exit_code=code), acct)


def _with_acct(state: JobState, acct: AcctEntry | None) -> JobState:
    if acct is None:
        return state
    # Efficiency only from a final record: a job that just left the queue is asked again.
    final = slurm_kind(acct.state).finished
    return replace(
        state,
        elapsed=acct.elapsed or None,
        node=acct.node or None,
        max_rss=acct.max_rss or None,
        efficiency=efficiency_of(acct) if final else None,
    )


def _queue_state(job: str, run: str, entry: QueueEntry) -> JobState:
    kind = slurm_kind(entry.state)
    running = kind is K.RUNNING
    return JobState(
        job, run, kind,
        slurm_id=entry.slurm_id,
        elapsed=entry.elapsed or None,
        node=(entry.node or None) if running else None,
        reason=None if running or entry.reason in ("", "None") else entry.reason,
    )  # fmt: skip


def _acct_state(job: str, run: str, acct: AcctEntry) -> JobState:
    kind = K.OUT_OF_MEMORY if killed_for_memory(acct) else slurm_kind(acct.state)
    # Left the queue as COMPLETED but wrote no SUCCESS marker: the runner died before the end.
    reason: str | None
    if kind is K.SUCCEEDED:
        kind, reason = K.UNKNOWN, "SLURM job completed without an outcome marker"
    else:
        reason = acct.state.lower() if kind is K.UNKNOWN else None
    code = acct.exit_code if kind is not K.UNKNOWN else None
    return _with_acct(JobState(job, run, kind, slurm_id=acct.slurm_id, exit_code=code, reason=reason), acct)


def _derived_state(job: str, run: str, deps: Sequence[str], states: Mapping[str, JobState]) -> JobState:
    """Not submitted, nothing observed: pending when every upstream succeeded, else blocked."""
    failed, missing = [], []
    for dep in deps:
        dep_state = states.get(dep)
        if dep_state is None or dep_state.state is K.BLOCKED:
            missing.append(dep)
        elif dep_state.state in (K.FAILED, K.CANCELLED, K.TIMEOUT, K.OUT_OF_MEMORY):
            failed.append(dep)
        elif dep_state.state is not K.SUCCEEDED:
            missing.append(dep)
    if failed:
        return JobState(job, run, K.BLOCKED, reason="upstream failed: " + ", ".join(failed))
    if missing:
        return JobState(job, run, K.BLOCKED, reason="waiting for: " + ", ".join(missing))
    return JobState(job, run, K.PENDING)


_WAITING = frozenset({K.PENDING, K.QUEUED, K.BLOCKED})


def blocked_by_failure(state: JobState) -> bool:
    """Blocked behind an upstream that failed: nothing starts it until a retry. The DAG says
    "upstream failed: <jobs>", the local agent "upstream <job> failed|blocked|cancelled"."""
    return state.state is K.BLOCKED and (state.reason or "").startswith("upstream ")


def _with_waiting_runs(
    state: JobState, runs: Mapping[str, tuple[str, ...]], states: Mapping[str, JobState]
) -> JobState:
    """A job that reads other runs and cannot start yet says which runs it waits on (unless an
    upstream failure already explains why it never will)."""
    if state.state not in _WAITING or blocked_by_failure(state):
        return state
    waiting = tuple(
        run
        for run, finals in runs.items()
        if any((s := states.get(f)) is None or s.state is not K.SUCCEEDED for f in finals)
    )
    if not waiting:
        return state
    return replace(state, waiting_on=waiting, reason=f"waiting on run {', '.join(waiting)}")


def needs_sacct(
    jobs: Iterable[str], snapshot: RemoteSnapshot, queue: Mapping[str, QueueEntry], known_slurm_ids: Mapping[str, str]
) -> dict[str, str]:
    """job -> SLURM id for submitted jobs that left the queue: without a marker sacct decides
    their state; with one it still adds elapsed, max RSS and node (final, so asked once)."""
    wanted = {}
    for job in jobs:
        if job in queue:
            continue
        sub = snapshot.submissions.get(job)
        sid = (sub.slurm_id if sub else None) or known_slurm_ids.get(job)
        if sid:
            wanted[job] = sid
    return wanted


# --- change detection and roll-ups ---------------------------------------------------------


def diff_states(
    old: Mapping[str, JobState], new: Mapping[str, JobState]
) -> tuple[tuple[JobState, ...], tuple[str, ...]]:
    """(changed or new states, removed ids). Unchanged jobs cost one comparison each."""
    get = old.get
    changed = tuple(state for job, state in new.items() if (prev := get(job)) is not state and prev != state)
    removed = tuple(job for job in old if job not in new)
    return changed, removed


_ROLLUP_ORDER = (
    K.RUNNING, K.FAILED, K.OUT_OF_MEMORY, K.TIMEOUT, K.QUEUED, K.CANCELLED, K.PENDING, K.BLOCKED, K.UNKNOWN,
)  # fmt: skip


def roll_up_kind(kinds: Iterable[JobStateKind]) -> JobStateKind:
    """A run's (or group's) state: running > failed > ... > blocked; succeeded only if all did."""
    present = set(kinds)
    if not present:
        return K.UNKNOWN
    if present == {K.SUCCEEDED}:
        return K.SUCCEEDED
    for kind in _ROLLUP_ORDER:
        if kind in present:
            return kind
    return K.UNKNOWN


def roll_up(name: str, states: Iterable[JobState]) -> RollUp:
    counts: dict[str, int] = {}
    kinds = []
    stale = False
    for s in states:
        counts[s.state.value] = counts.get(s.state.value, 0) + 1
        kinds.append(s.state)
        stale = stale or s.stale
    return RollUp(name, roll_up_kind(kinds), counts, len(kinds), stale)


def roll_up_runs(states: Mapping[str, JobState], groups: Mapping[str, Iterable[str]] | None = None) -> list[RollUp]:
    """One RollUp per run, then one per group (`@name`) when a group -> runs map is given."""
    by_run: dict[str, list[JobState]] = {}
    for s in states.values():
        by_run.setdefault(s.run, []).append(s)
    result = [roll_up(run, by_run[run]) for run in sorted(by_run)]
    for group, runs in sorted((groups or {}).items()):
        members = [s for run in runs for s in by_run.get(run, ())]
        result.append(roll_up(f"@{group}", members))
    return result


# --- Lab adapter ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LabView:
    """The part of a Lab status needs: job ids in dependency order, their upstream jobs (inter-run
    sources included, as Lab.upstream says), their runs, and the runs each job reads."""

    lab_id: str | None
    jobs: tuple[str, ...]
    deps: Mapping[str, tuple[str, ...]]
    run_of: Mapping[str, str]
    groups: Mapping[str, tuple[str, ...]]
    source_runs: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)  # job -> run -> finals

    @classmethod
    def of(cls, lab: Lab) -> LabView:
        return cls(
            lab_id=lab.lab_id,
            jobs=tuple(lab.topological_order(lab.jobs)),
            deps={jid: lab.upstream(jid) for jid in lab.jobs},
            run_of={jid: job.run for jid, job in lab.jobs.items()},
            groups=dict(lab.groups),
            source_runs={jid: lab.run_upstream(jid) for jid, job in lab.jobs.items() if job.source_runs},
        )


def states_json(states: Mapping[str, JobState]) -> list[dict[str, Any]]:
    """The headless `jobs` list shape."""
    return [job_state_json(s) for s in states.values()]
