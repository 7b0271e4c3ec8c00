"""Job status: one merged, change-only view of a Lab's jobs on a target.

Sources, per refresh:
  * outcome markers (`outputs/<job>/repx/{SUCCESS,FAIL}` + exit codes), the submission record
    and the local agent's state, all in ONE remote round trip (a small bash script);
  * `squeue` once, for this user only (the filter runs on the server), explicit format with the
    0x1F unit separator so no job name can break a line apart;
  * `sacct` once, only for jobs we know were submitted that left the queue without a marker.

Parsing and merging are pure functions (unit-tested without a target); `StatusWatcher` does
the I/O and the timing: polls are chained, never overlapping, and any failure (slurmctld down,
slurmdbd down, connection lost) marks the last known states stale instead of raising.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import EventSink, JobsChanged, JobState, JobStateKind
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout, safe_component

SEP = "\x1f"  # ASCII unit separator: cannot appear in a SLURM job name typed by a person
SQUEUE_FIELDS = ("%i", "%j", "%T", "%M", "%N", "%r", "%P")
SQUEUE_FORMAT = SEP.join(SQUEUE_FIELDS)
SACCT_FIELDS = "JobID,JobName,State,ExitCode,Elapsed,MaxRSS,NodeList"

DEFAULT_INTERVAL = 5.0
MIN_INTERVAL = 3.0  # squeue is an RPC to slurmctld: never poll it in a tight loop
COMMAND_TIMEOUT = 30.0  # a slurmctld that answers slower than this counts as down

K = JobStateKind


# --- parsed records ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueEntry:
    slurm_id: str
    name: str
    state: str  # squeue %T, e.g. RUNNING, PENDING
    elapsed: str
    node: str
    reason: str
    partition: str


@dataclass(frozen=True, slots=True)
class AcctEntry:
    slurm_id: str
    name: str
    state: str  # first word of sacct State ("CANCELLED by 0" -> CANCELLED)
    exit_code: int | None
    signal: int | None
    elapsed: str
    max_rss: str
    node: str


@dataclass(frozen=True, slots=True)
class AgentJob:
    """What the local agent knows about one job."""

    state: str  # "running" | "queued" | "cancelled" | "blocked" | "succeeded" | "failed"
    pid: int | None = None
    pgid: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    job: str
    slurm_id: str | None  # None: submitted to the local agent
    user: str | None = None
    extra_slurm_ids: tuple[str, ...] = ()  # SG anchor / workers, cancelled together with the job
    earlier_slurm_ids: tuple[str, ...] = ()  # ids of earlier submissions of the same job

    @property
    def all_slurm_ids(self) -> tuple[str, ...]:
        """Every id ever recorded for the job: a cancel must reach each one still queued."""
        first = (self.slurm_id,) if self.slurm_id else ()
        return first + self.extra_slurm_ids + self.earlier_slurm_ids


@dataclass(slots=True)
class RemoteSnapshot:
    """Everything the one-round-trip script reports."""

    user: str | None = None
    markers: dict[str, str] = field(default_factory=dict)  # job -> "SUCCESS" | "FAIL"
    exit_codes: dict[str, int] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)  # executor got SIGTERM/SIGINT
    submissions: dict[str, Submission] = field(default_factory=dict)
    agent: dict[str, AgentJob] = field(default_factory=dict)
    # agent says running, but no process of that run is left: job -> its recorded exit status
    dead_runs: dict[str, int | None] = field(default_factory=dict)
    agent_gone: bool = False  # the Lab has agent state and no agent serves it


# --- squeue / sacct parsing ----------------------------------------------------------------


def squeue_argv(user: str) -> list[str]:
    """One squeue call for all our jobs: user filter pushed to slurmctld, fixed format."""
    return ["squeue", "--noheader", "--array", "-u", user, "-o", SQUEUE_FORMAT]


def sacct_argv(slurm_ids: Iterable[str]) -> list[str]:
    # No -X: the allocation line has no MaxRSS, the `.batch` step line carries it.
    return [
        "sacct", "-n", "-P", "--delimiter", SEP, "-o", SACCT_FIELDS,
        "-j", ",".join(sorted(set(slurm_ids), key=_id_sort_key)),
    ]  # fmt: skip


def _id_sort_key(slurm_id: str) -> tuple[int, str]:
    head = slurm_id.split("_", 1)[0]
    return (int(head) if head.isdigit() else 0, slurm_id)


def parse_squeue(text: str) -> list[QueueEntry]:
    """Lines with the wrong number of fields are dropped (e.g. a warning on stdout)."""
    entries = []
    width = len(SQUEUE_FIELDS)
    for line in text.splitlines():
        parts = line.split(SEP)
        if len(parts) != width or not parts[0].strip():
            continue
        sid, name, state, elapsed, node, reason, partition = parts
        entries.append(QueueEntry(sid.strip(), name, state.strip(), elapsed.strip(), node.strip(), reason.strip(), partition.strip()))
    return entries


class SqueueParser:
    """parse_squeue with a cache of the previous refresh's lines: between two polls most lines
    are byte-identical, and an identical line yields the identical QueueEntry object (which
    lets merge_states reuse the job's previous state). Memory: one refresh's lines."""

    def __init__(self) -> None:
        self._cache: dict[str, QueueEntry] = {}

    def parse(self, text: str) -> list[QueueEntry]:
        old, new = self._cache, {}
        entries = []
        for line in text.splitlines():
            entry = old.get(line)
            if entry is None:
                parsed = parse_squeue(line)
                if not parsed:
                    continue
                entry = parsed[0]
            new[line] = entry
            entries.append(entry)
        self._cache = new
        return entries


def parse_sacct(text: str) -> dict[str, AcctEntry]:
    """sacct -P lines -> one entry per job allocation, MaxRSS taken from its steps."""
    allocations: dict[str, AcctEntry] = {}
    step_rss: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(SEP)
        if len(parts) != 7:
            continue
        sid, name, state, exit_code, elapsed, max_rss, node = parts
        if "." in sid:  # a step: 123.batch, 123.0, 123.extern
            parent = sid.split(".", 1)[0]
            if max_rss and _rss_bytes(max_rss) > _rss_bytes(step_rss.get(parent, "")):
                step_rss[parent] = max_rss
            continue
        code, signal = _parse_exit(exit_code)
        words = state.split()
        allocations[sid] = AcctEntry(sid, name, words[0] if words else "", code, signal, elapsed, max_rss, node)
    for sid, rss in step_rss.items():
        entry = allocations.get(sid)
        if entry is not None and not entry.max_rss:
            allocations[sid] = replace(entry, max_rss=rss)
    return allocations


def _parse_exit(text: str) -> tuple[int | None, int | None]:
    code, _, signal = text.partition(":")
    try:
        return int(code), (int(signal) if signal else None)
    except ValueError:
        return None, None


_RSS_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _rss_bytes(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)([KMGT]?)", text.strip())
    return float(m.group(1)) * _RSS_UNITS[m.group(2)] if m else -1.0


def slurm_error(stderr: str) -> str | None:
    """SLURM commands can exit 0 and still have failed ("Socket timed out"): read stderr."""
    for line in stderr.splitlines():
        low = line.lower()
        if "error" in low or "timed out" in low or "unable to contact" in low:
            return line.strip()
    return None


# --- the one-round-trip remote script ------------------------------------------------------

# Args: $1 outputs dir, $2 this Lab's submission records dir (submissions/<lab_id>, written by
# remote/submit.sh), $3 this Lab's agent dir (agents/<lab_id>, remote/agent.sh); either may be absent.
# Output: records, fields separated by 0x1F:
#   U user | M job SUCCESS|FAIL exit-code | C job (the executor was signalled)
#   | A job agent-state pgid reason | F record path, then that JSON flattened onto ONE line
#   | D job exit-status (a running agent job whose run.lock is free: no process of it is left)
#   | G (no agent holds agent.lock).
MARKER_SCRIPT = r"""set -euo pipefail
shopt -s nullglob
out=$1
subs=$2
agent=$3
us=$'\x1f'
printf 'U%s%s\n' "$us" "$(id -un)"
for f in "$out"/*/repx/SUCCESS "$out"/*/repx/FAIL; do
    j=${f#"$out"/}
    code=""
    [[ ! -e "${f%/*}/exit_code" ]] || read -r code <"${f%/*}/exit_code" || true
    printf 'M%s%s%s%s%s%s\n' "$us" "${j%%/*}" "$us" "${f##*/}" "$us" "$code"
done
for f in "$out"/*/repx/cancelled; do
    j=${f#"$out"/}
    printf 'C%s%s\n' "$us" "${j%%/*}"
done
for f in "$subs"/*.json; do
    printf 'F%s%s\n' "$us" "$f"
    tr '\n' ' ' <"$f" || true
    printf '\n'
done
for d in "$agent"/jobs/*/; do
    [[ -e "$d/state" ]] || continue
    j=${d%/}
    state="" reason="" pgid=""
    read -r state <"$d/state" || true
    [[ ! -e "$d/reason" ]] || read -r reason <"$d/reason" || true
    [[ ! -e "$d/pgid" ]] || read -r pgid <"$d/pgid" || true
    printf 'A%s%s%s%s%s%s%s%s\n' "$us" "${j##*/}" "$us" "$state" "$us" "$pgid" "$us" "$reason"
    if [[ $state == running && -e "$d/run.lock" ]] && flock -n "$d/run.lock" true; then
        rc="" owner=""
        [[ ! -e "$d/rc" ]] || read -r rc owner <"$d/rc" || true
        [[ "$owner" == "$pgid" ]] || rc=""
        printf 'D%s%s%s%s\n' "$us" "${j##*/}" "$us" "$rc"
    fi
done
if [[ -e "$agent/agent.lock" ]] && flock -n "$agent/agent.lock" true; then printf 'G\n'; fi
"""


def parse_snapshot(text: str) -> RemoteSnapshot:
    """Parse the marker script's output into a RemoteSnapshot (one pass, hot path first)."""
    snap = RemoteSnapshot()
    markers, exit_codes = snap.markers, snap.exit_codes
    file_path: str | None = None
    for line in text.split("\n"):
        if file_path is not None:  # the body line that follows an F record
            _absorb_state_file(snap, file_path, line)
            file_path = None
            continue
        parts = line.split(SEP)
        kind = parts[0]
        if kind == "M" and len(parts) == 4:
            job, marker, code = parts[1], parts[2], parts[3]
            # Both markers present is undefined upstream; SUCCESS wins (it is written last).
            if marker in ("SUCCESS", "FAIL") and markers.get(job) != "SUCCESS":
                markers[job] = marker
                if code:
                    try:
                        exit_codes[job] = int(code)
                    except ValueError:
                        exit_codes.pop(job, None)
        elif kind == "U" and len(parts) == 2:
            snap.user = parts[1]
        elif kind == "C" and len(parts) == 2:
            snap.cancelled.add(parts[1])
        elif kind == "A" and len(parts) == 5:
            _absorb_agent(snap, {"job": parts[1], "state": parts[2], "pgid": parts[3], "reason": parts[4] or None})
        elif kind == "F" and len(parts) == 2:
            file_path = parts[1]
        elif kind == "D" and len(parts) == 3:
            snap.dead_runs[parts[1]] = int(parts[2]) if parts[2].isdigit() else None
        elif kind == "G" and len(parts) == 1:
            snap.agent_gone = True
    return snap


def _absorb_state_file(snap: RemoteSnapshot, path: str, body: str) -> None:
    """Adapter for the submission record and agent state files (JSON or JSON lines)."""
    for record in _json_records(body):
        if "/agents/" in path:
            _absorb_agent(snap, record)
        else:
            _absorb_submission(snap, record)


def _json_records(body: str) -> list[dict[str, Any]]:
    body = body.strip()
    if not body:
        return []
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        # JSON lines were flattened to one line by `tr`: split on the record boundaries.
        value = []
        for chunk in re.split(r"(?<=\})\s+(?=\{)", body):
            try:
                value.append(json.loads(chunk))
            except json.JSONDecodeError:
                continue
    return _flatten_records(value)


def _flatten_records(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    if not isinstance(value, dict):
        return []
    for key in ("jobs", "submissions"):
        inner = value.get(key)
        if isinstance(inner, list):
            return [dict(value, **v) for v in inner if isinstance(v, dict)]
        if isinstance(inner, dict):
            return [dict(value, **_with_job(k, v)) for k, v in inner.items()]
    if "job" in value or "id" in value:
        return [value]
    # {"<job>": {...}} map, the shape of upstream's slurm map
    return [_with_job(k, v) for k, v in value.items() if isinstance(v, dict)]


def _with_job(job: str, value: Any) -> dict[str, Any]:
    record = dict(value) if isinstance(value, dict) else {"slurm_id": value}
    record.setdefault("job", job)
    return record


def _absorb_submission(snap: RemoteSnapshot, record: Mapping[str, Any]) -> None:
    job = record.get("job") or record.get("id")
    if not isinstance(job, str):
        return
    sid = record.get("slurm_id")
    slurm_id = None if sid in (None, "") else str(sid)
    extras = [record.get("anchor_id"), *(record.get("worker_slurm_ids") or ())]
    earlier = snap.submissions.get(job)
    snap.submissions[job] = Submission(
        job=job,
        slurm_id=slurm_id,
        user=record.get("user"),
        extra_slurm_ids=tuple(str(x) for x in extras if x not in (None, "")),
        earlier_slurm_ids=tuple(i for i in earlier.all_slurm_ids if i != slurm_id) if earlier else (),
    )


def _absorb_agent(snap: RemoteSnapshot, record: Mapping[str, Any]) -> None:
    job = record.get("job") or record.get("id")
    state = record.get("state") or record.get("status")
    if not isinstance(job, str) or not isinstance(state, str):
        return
    snap.agent[job] = AgentJob(
        state=state.lower(),
        pid=_int_or_none(record.get("pid")),
        pgid=_int_or_none(record.get("pgid")),
        reason=record.get("reason"),
    )
    snap.submissions.setdefault(job, Submission(job=job, slurm_id=None, user=record.get("user")))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- state mapping and merge ---------------------------------------------------------------

_QUEUE_STATES = {
    "RUNNING": K.RUNNING, "COMPLETING": K.RUNNING, "CONFIGURING": K.RUNNING, "SIGNALING": K.RUNNING,
    "STAGE_OUT": K.RUNNING, "RESIZING": K.RUNNING,
    "PENDING": K.QUEUED, "REQUEUED": K.QUEUED, "REQUEUE_HOLD": K.QUEUED, "REQUEUE_FED": K.QUEUED,
    "SUSPENDED": K.QUEUED, "STOPPED": K.QUEUED, "RESV_DEL_HOLD": K.QUEUED,
}  # fmt: skip
_FINAL_STATES = {
    "COMPLETED": K.SUCCEEDED, "FAILED": K.FAILED, "NODE_FAIL": K.FAILED, "BOOT_FAIL": K.FAILED,
    "SPECIAL_EXIT": K.FAILED, "PREEMPTED": K.CANCELLED, "REVOKED": K.CANCELLED,
    "CANCELLED": K.CANCELLED, "DEADLINE": K.TIMEOUT, "TIMEOUT": K.TIMEOUT,
    "OUT_OF_MEMORY": K.OUT_OF_MEMORY,
}  # fmt: skip
_AGENT_STATES = {
    "running": K.RUNNING, "queued": K.QUEUED, "waiting": K.QUEUED, "pending": K.QUEUED,
    "cancelled": K.CANCELLED, "canceled": K.CANCELLED, "blocked": K.BLOCKED,
    "succeeded": K.SUCCEEDED, "failed": K.FAILED,
}  # fmt: skip
# A FAIL marker written by a job that the scheduler killed: the scheduler's reason says more.
_EXPLAINS_FAILURE = frozenset({K.CANCELLED, K.TIMEOUT, K.OUT_OF_MEMORY})


def slurm_kind(state: str) -> JobStateKind:
    return _QUEUE_STATES.get(state) or _FINAL_STATES.get(state) or K.UNKNOWN


_SG_UNIT = re.compile(r"^(?:anchor-(?P<a>.+)|(?P<g>.+)-gather|(?P<s>.+)-scatter|(?P<b>.+)-b\d+-.+)$")


def owner_job(name: str, jobs: Mapping[str, Any]) -> str | None:
    """The Lab job a SLURM job name belongs to: the id itself, or a scatter-gather unit of it."""
    if name in jobs:
        return name
    m = _SG_UNIT.match(name)
    if m:
        owner = next(g for g in m.groups() if g)
        if owner in jobs:
            return owner
    return None


def queue_by_job(entries: Iterable[QueueEntry], jobs: Mapping[str, Any]) -> dict[str, QueueEntry]:
    """Our jobs' queue entries; when a job has several (SG units), a running one represents it."""
    found: dict[str, QueueEntry] = {}
    for entry in entries:
        job = owner_job(entry.name, jobs)
        if job is None:
            continue
        have = found.get(job)
        if have is None or _queue_rank(entry, job) > _queue_rank(have, job):
            found[job] = entry
    return found


def ours(entries: Iterable[QueueEntry], snapshot: RemoteSnapshot, jobs: Mapping[str, Any]) -> list[QueueEntry]:
    """Only the queue entries this Lab submitted from this base_path: the same Lab synced to
    another base_path (or by another client) runs jobs with the same names."""
    recorded = {sid for sub in snapshot.submissions.values() for sid in sub.all_slurm_ids}
    return [e for e in entries if e.slurm_id in recorded and owner_job(e.name, jobs) is not None]


def _queue_rank(entry: QueueEntry, job: str) -> tuple[int, int]:
    return (slurm_kind(entry.state) is K.RUNNING, entry.name == job)


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
    signatures = {} if cache is not None else None
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
        reason = ("agent and executor are gone; last state running" if snap.agent_gone
                  else "executor is gone; the agent is recording its outcome")
    elif kind is K.QUEUED and snap.agent_gone:
        reason = "no agent is running; `repx-tui run` starts one that resumes the queue"
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
    if acct is not None and slurm_kind(acct.state) in _EXPLAINS_FAILURE:
        kind = slurm_kind(acct.state)
    if code is None and acct is not None:
        code = acct.exit_code
    return _with_acct(JobState(job, run, kind, slurm_id=slurm_id, exit_code=code), acct)


def _with_acct(state: JobState, acct: AcctEntry | None) -> JobState:
    if acct is None:
        return state
    return replace(state, elapsed=acct.elapsed or None, node=acct.node or None, max_rss=acct.max_rss or None)


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
    kind = slurm_kind(acct.state)
    # Left the queue as COMPLETED but wrote no SUCCESS marker: the runner died before the end.
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


def _with_waiting_runs(
    state: JobState, runs: Mapping[str, tuple[str, ...]], states: Mapping[str, JobState]
) -> JobState:
    """A job that reads other runs and cannot start yet says which runs it waits on (unless an
    upstream failure already explains why it never will)."""
    if state.state not in _WAITING or (state.reason or "").startswith("upstream failed"):
        return state
    waiting = tuple(run for run, finals in runs.items()
                    if any((s := states.get(f)) is None or s.state is not K.SUCCEEDED for f in finals))
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


@dataclass(frozen=True)
class RollUp:
    name: str
    state: JobStateKind
    counts: Mapping[str, int]  # state value -> number of jobs
    total: int
    stale: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.name, "state": self.state.value, "counts": dict(self.counts),
            "total": self.total, "stale": self.stale,
        }  # fmt: skip


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
    def of(cls, lab: Lab) -> "LabView":
        return cls(
            lab_id=lab.lab_id,
            jobs=tuple(lab.topological_order(lab.jobs)),
            deps={jid: lab.upstream(jid) for jid in lab.jobs},
            run_of={jid: job.run for jid, job in lab.jobs.items()},
            groups=dict(lab.groups),
            source_runs={jid: lab.run_upstream(jid) for jid, job in lab.jobs.items() if job.source_runs},
        )


def submissions_dir(layout: RemoteLayout, lab_id: str) -> str:
    return posixpath.join(layout.submissions, safe_component(lab_id, "lab id"))


def agent_dir(layout: RemoteLayout, lab_id: str) -> str:
    return posixpath.join(layout.base, "agents", safe_component(lab_id, "lab id"))


# --- the watcher (I/O) ---------------------------------------------------------------------


class StatusWatcher:
    """Polls one target for one Lab's job states and emits JobsChanged with changes only."""

    def __init__(
        self,
        transport: Any,
        layout: RemoteLayout,
        lab: Any,
        target: Any,
        scheduler: str,
        emit: EventSink,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.transport = transport
        self.layout = layout
        self.view = lab if isinstance(lab, LabView) else LabView.of(lab)
        self.target = target
        self.scheduler = scheduler
        self.emit = emit
        self.interval = max(MIN_INTERVAL, interval)
        self._clock = clock
        self.states: dict[str, JobState] = {}
        self.snapshot = RemoteSnapshot()
        self.last_good: float | None = None
        self.stale_since: float | None = None
        self.error: str | None = None
        self._known_slurm_ids: dict[str, str] = {}
        self._acct_cache: dict[str, AcctEntry] = {}  # finished allocations never change
        self._acct_fresh: dict[str, AcctEntry] = {}  # not final yet: used once, asked again
        self._refresh_now = asyncio.Event()
        self._squeue = SqueueParser()
        self._merge_cache = MergeCache()
        self._snapshot_text: str | None = None

    # ---- public ----

    async def poll_once(self) -> dict[str, JobState]:
        """One refresh: fetch, merge, emit the changes. Never raises for remote trouble."""
        errors: list[str] = []
        try:
            snapshot = await self._fetch_snapshot()
        except (RepxError, OSError, asyncio.TimeoutError) as exc:
            return self._go_stale(_message(exc))
        queue = await self._fetch_queue(snapshot, errors)
        acct = await self._fetch_acct(snapshot, queue, errors)
        self.snapshot = snapshot
        new = merge_states(
            StatusInputs(
                jobs=self.view.jobs, deps=self.view.deps, run_of=self.view.run_of, snapshot=snapshot,
                queue=queue, acct=acct, known_slurm_ids=self._known_slurm_ids, source_runs=self.view.source_runs,
            ),
            self.states,
            self._merge_cache,
        )  # fmt: skip
        self._publish(new, "; ".join(errors) or None)
        return new

    async def watch(self, stop: asyncio.Event | None = None) -> None:
        """Poll until `stop` is set (or the task is cancelled). The next poll is scheduled
        only after the previous one finished, so a slow slurmctld slows us down, not up."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await self.poll_once()
            self._refresh_now.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._refresh_now.wait())]
            try:
                await asyncio.wait(waiters, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    def refresh_soon(self) -> None:
        """Ask a running watch() loop for a poll now (e.g. right after a cancel)."""
        self._refresh_now.set()

    def runs(self) -> list[RollUp]:
        return roll_up_runs(self.states, self.view.groups)

    # ---- fetching ----

    async def _fetch_snapshot(self) -> RemoteSnapshot:
        lab_id = self.view.lab_id or "_"
        result = await self.transport.run_script(
            MARKER_SCRIPT, self.layout.outputs, submissions_dir(self.layout, lab_id), agent_dir(self.layout, lab_id),
            timeout=COMMAND_TIMEOUT, check=True,
        )  # fmt: skip
        if result.stdout == self._snapshot_text:  # nothing moved on the target: skip the parse
            return self.snapshot
        self._snapshot_text = result.stdout
        return parse_snapshot(result.stdout)

    def uses_slurm(self, snapshot: RemoteSnapshot) -> bool:
        return self.scheduler == "slurm" or any(s.slurm_id for s in snapshot.submissions.values())

    async def _fetch_queue(self, snapshot: RemoteSnapshot, errors: list[str]) -> dict[str, QueueEntry] | None:
        if not self.uses_slurm(snapshot):
            return {}
        output = await self._slurm_query("squeue", squeue_argv(snapshot.user or "-"), errors)
        if output is None:
            return None
        queue = queue_by_job(ours(self._squeue.parse(output), snapshot, self.view.run_of), self.view.run_of)
        for job, entry in queue.items():
            if entry.name == job:
                self._known_slurm_ids[job] = entry.slurm_id
        return queue

    async def _slurm_query(self, name: str, argv: list[str], errors: list[str]) -> str | None:
        """stdout of a SLURM command, or None with the reason in `errors`. SLURM commands can
        exit 0 and still have failed ("Socket timed out"), so stderr is read either way."""
        try:
            result = await self.transport.run(argv, timeout=COMMAND_TIMEOUT, check=False)
        except (RepxError, OSError, asyncio.TimeoutError) as exc:
            errors.append(f"{name}: {_message(exc)}")
            return None
        problem = slurm_error(result.stderr) or (None if result.ok else f"exit {result.exit_status}")
        if problem:
            errors.append(f"{name}: {problem}")
            return None
        return result.stdout

    async def _fetch_acct(
        self, snapshot: RemoteSnapshot, queue: Mapping[str, QueueEntry] | None, errors: list[str]
    ) -> dict[str, AcctEntry] | None:
        if not self.uses_slurm(snapshot):
            return {}
        if queue is None:
            return None
        wanted = needs_sacct(self.view.jobs, snapshot, queue, self._known_slurm_ids)
        missing = {sid for sid in wanted.values() if sid not in self._acct_cache}
        if missing:
            output = await self._slurm_query("sacct", sacct_argv(missing), errors)
            if output is None:
                return None
            for sid, entry in parse_sacct(output).items():
                if slurm_kind(entry.state) not in (K.RUNNING, K.QUEUED, K.UNKNOWN):
                    self._acct_cache[sid] = entry
                else:  # just left squeue, accounting not final yet: ask again next time
                    self._acct_cache.pop(sid, None)
                    self._acct_fresh[sid] = entry
        acct = {sid: self._acct_cache[sid] for sid in wanted.values() if sid in self._acct_cache}
        for sid in wanted.values():
            if sid not in acct and sid in self._acct_fresh:
                acct[sid] = self._acct_fresh.pop(sid)
        return acct

    # ---- publishing ----

    def _publish(self, new: dict[str, JobState], error: str | None) -> None:
        """Emit what changed. While any source fails every job is marked stale (the view as a
        whole is only as fresh as its oldest part); the error itself is emitted when it changes."""
        news = error is not None and error != self.error
        if error is None:
            self.last_good, self.stale_since = self._clock(), None
        else:
            self.stale_since = self.stale_since or self.last_good or self._clock()
            new = {job: s if s.stale else replace(s, stale=True) for job, s in new.items()}
        self.error = error
        changed, removed = diff_states(self.states, new)
        self.states = new
        if changed or removed or news:
            self.emit(JobsChanged(changed=changed, removed=removed, stale_since=self.stale_since, error=error))

    def _go_stale(self, error: str) -> dict[str, JobState]:
        """The target cannot be read at all: every last known state, marked stale."""
        base = self.states or {
            job: JobState(job, self.view.run_of.get(job, ""), K.UNKNOWN) for job in self.view.jobs
        }
        self._publish(dict(base), error)
        return self.states


def _message(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, RepxError):
        return exc.message
    return str(exc) or type(exc).__name__


def states_json(states: Mapping[str, JobState]) -> list[dict[str, Any]]:
    """The headless `jobs` list shape."""
    return [
        {
            "job": s.job, "run": s.run, "state": s.state.value, "slurm_id": s.slurm_id,
            "exit_code": s.exit_code, "elapsed": s.elapsed, "node": s.node, "reason": s.reason,
            "waiting_on_runs": list(s.waiting_on), "stale": s.stale,
        }  # fmt: skip
        for s in states.values()
    ]
