"""The marker scan: ONE round trip that reads outcome markers, submission records and the agent's
state for a Lab (MARKER_SCRIPT), and its parsing into a RemoteSnapshot."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from repx_tui.backend.layout import RemoteLayout, safe_component
from repx_tui.backend.status.slurm import SEP, QueueEntry, owner_job
from repx_tui.backend.textnum import unsigned


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
            snap.dead_runs[parts[1]] = unsigned(parts[2])
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


def ours(entries: Iterable[QueueEntry], snapshot: RemoteSnapshot, jobs: Mapping[str, Any]) -> list[QueueEntry]:
    """Only the queue entries this Lab submitted from this base_path: the same Lab synced to
    another base_path (or by another client) runs jobs with the same names."""
    recorded = {sid for sub in snapshot.submissions.values() for sid in sub.all_slurm_ids}
    return [e for e in entries if e.slurm_id in recorded and owner_job(e.name, jobs) is not None]


def submissions_dir(layout: RemoteLayout, lab_id: str) -> str:
    return posixpath.join(layout.submissions, safe_component(lab_id, "lab id"))


def agent_dir(layout: RemoteLayout, lab_id: str) -> str:
    return posixpath.join(layout.base, "agents", safe_component(lab_id, "lab id"))
