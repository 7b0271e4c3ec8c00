"""The typed events the backend emits: the whole contract between backend and front ends.

The Textual UI and the headless CLI both consume these and nothing else. Every event is a
small frozen dataclass; `to_json()` gives the CLI's `--json` line for it.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Phase(str, enum.Enum):
    HOST_TOOLS = "host-tools"
    LAB = "lab"
    IMAGES = "images"
    SUBMIT = "submit"


class LayerAction(str, enum.Enum):
    """What the image phase did with one layer."""

    PENDING = "pending"  # not decided yet
    REUSED = "reused"  # already complete in the target's layer store
    NODE_LOCAL = "node-local"  # copied on the target from node_local_path, no network
    TRANSFERRED = "transferred"  # sent over the connection


class JobStateKind(str, enum.Enum):
    BLOCKED = "blocked"
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out-of-memory"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        return self in _FINISHED

    @property
    def active(self) -> bool:
        return self in (JobStateKind.QUEUED, JobStateKind.RUNNING)


_FINISHED = frozenset(
    {
        JobStateKind.SUCCEEDED,
        JobStateKind.FAILED,
        JobStateKind.CANCELLED,
        JobStateKind.TIMEOUT,
        JobStateKind.OUT_OF_MEMORY,
    }
)


@dataclass(frozen=True)
class Event:
    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["event"] = type(self).__name__
        return _plain(data)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --- sync phases -------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseStarted(Event):
    phase: Phase
    detail: str = ""
    total_bytes: int | None = None
    total_files: int | None = None


@dataclass(frozen=True)
class PhaseProgress(Event):
    phase: Phase
    bytes_done: int
    total_bytes: int | None = None
    files_done: int = 0
    total_files: int | None = None
    rate: float | None = None  # bytes per second
    detail: str = ""
    wire_bytes: int | None = None  # bytes on the wire so far, when compressed (bytes_done is content)


@dataclass(frozen=True)
class PhaseDone(Event):
    phase: Phase
    files_sent: int = 0
    bytes_sent: int = 0  # content bytes
    seconds: float = 0.0
    detail: str = ""
    wire_bytes: int | None = None  # what crossed the wire for them (None: not known, or the same)
    compression: str = ""  # "zstd-3", "gzip-1", "rsync -z" or "" / "off"


@dataclass(frozen=True)
class PhaseSkipped(Event):
    phase: Phase
    reason: str


@dataclass(frozen=True)
class PhaseFailed(Event):
    phase: Phase
    reason: str
    hint: str | None = None


@dataclass(frozen=True)
class LayerProgress(Event):
    image: str  # image tag, e.g. "<hash>-repx-shared-image"
    digest: str  # the 64-hex layer digest
    size: int
    sent: int
    action: LayerAction
    done: bool = False


@dataclass(frozen=True)
class PhaseResult:
    name: Phase
    status: str  # "done" | "skipped" | "failed"
    files_sent: int = 0
    bytes_sent: int = 0  # content bytes
    seconds: float = 0.0
    detail: str = ""
    wire_bytes: int | None = None  # None: as many as bytes_sent (nothing compressed)
    compression: str = ""

    @property
    def wire(self) -> int:
        return self.bytes_sent if self.wire_bytes is None else self.wire_bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name.value,
            "status": self.status,
            "files_sent": self.files_sent,
            "bytes_sent": self.bytes_sent,
            "seconds": round(self.seconds, 3),
            "wire_bytes": self.wire,
            "compression": self.compression or "off",
        }


@dataclass(frozen=True)
class LayerResult:
    image: str
    digest: str
    size: int
    action: LayerAction
    bytes_sent: int = 0  # content bytes
    wire_bytes: int | None = None  # None: as many as bytes_sent
    encoding: str = ""  # "raw", "zstd", "gzip" for a layer sent; "" otherwise

    def to_json(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "digest": self.digest,
            "size": self.size,
            "action": self.action.value,
            "bytes_sent": self.bytes_sent,
            "wire_bytes": self.bytes_sent if self.wire_bytes is None else self.wire_bytes,
            "encoding": self.encoding,
        }


@dataclass(frozen=True)
class SyncSummary(Event):
    """The end of a sync: what each phase and each layer did. Its JSON is the `sync --json` summary."""

    phases: tuple[PhaseResult, ...] = ()
    layers: tuple[LayerResult, ...] = ()
    ssh_connections: int = 0
    seconds: float = 0.0
    compression: str = ""  # the session's choice: "zstd-6", "gzip-1", "rsync -z", "off"
    compression_reason: str = ""  # why (auto: the link, both ends on this machine...)

    @property
    def bytes_sent(self) -> int:  # content bytes (what the files hold)
        return sum(p.bytes_sent for p in self.phases)

    @property
    def wire_bytes(self) -> int:  # what crossed the wire for them (fewer when compressed)
        return sum(p.wire for p in self.phases)

    @property
    def ratio(self) -> float | None:  # content / wire; None when nothing was sent
        return self.bytes_sent / self.wire_bytes if self.wire_bytes else None

    def phase(self, name: Phase | str) -> PhaseResult | None:
        key = name.value if isinstance(name, Phase) else name
        return next((p for p in self.phases if p.name.value == key), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "phases": [p.to_json() for p in self.phases],
            "layers": [layer.to_json() for layer in self.layers],
            "bytes_sent": self.bytes_sent,
            "ssh_connections": self.ssh_connections,
            "seconds": round(self.seconds, 3),
            "content_bytes": self.bytes_sent,
            "wire_bytes": self.wire_bytes,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "compression": self.compression or "off",
            "compression_reason": self.compression_reason,
        }


@dataclass(frozen=True)
class LabPresence(Event):
    """How much of a Lab a target already has, from the sync's one probe round trip."""

    target: str
    lab_id: str
    current: bool  # the Lab's tree was completed there from this very manifest
    layers_there: int  # image layers in the target's store or node_local_path, of the right size
    layers_total: int
    bytes_to_send: int  # bytes of the layers that are not there


@dataclass(frozen=True)
class RunPlan(Event):
    """What a run would do, said before anything is sent: one status poll and one probe."""

    target: str
    submit: tuple[str, ...]  # jobs that would be submitted, upstream first
    skipped: tuple[tuple[str, str], ...]  # (job, state) already succeeded, queued or running
    presence: LabPresence
    lab_bytes: int  # the Lab's own files when its tree is not current there (rsync sends at most this), else 0
    missing_runs: tuple[str, ...] = ()  # runs these jobs read that are neither included, queued nor done
    status_error: str | None = None  # the status poll could not read everything: skips may be missing


# --- connection and targets ---------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionState(Event):
    target: str
    state: str  # "connecting" | "connected" | "lost" | "reconnecting" | "closed"
    detail: str = ""
    attempt: int = 0


@dataclass(frozen=True)
class HealthCheck:
    name: str  # "reachable", "scheduler", "base_path", "free_space"
    ok: bool
    detail: str
    hint: str | None = None


@dataclass(frozen=True)
class TargetHealth(Event):
    target: str
    checks: tuple[HealthCheck, ...]
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


# --- jobs, status, logs -------------------------------------------------------------------


@dataclass(frozen=True)
class Efficiency:
    """What a finished SLURM job used against what it asked for, from sacct (like `seff`).

    Ratios are None when a side is unknown: no MaxRSS sample (SLURM samples every
    JobAcctGatherFrequency seconds, so a job shorter than that has none), no memory request,
    an unlimited time limit."""

    elapsed_s: float | None = None
    cpu_s: float | None = None  # TotalCPU: user + system time of every step
    cpus: int | None = None  # AllocCPUS
    max_rss: int | None = None  # bytes, the largest step's peak
    req_mem: int | None = None  # bytes for the whole allocation
    time_limit_s: float | None = None
    submit: str | None = None  # times as the target's sacct prints them (its local time)
    start: str | None = None
    end: str | None = None
    start_epoch: float | None = None
    end_epoch: float | None = None

    @property
    def cpu(self) -> float | None:
        """CPU time / (elapsed x CPUs): 1.0 = every allocated CPU busy all the time."""
        if self.cpu_s is None or not self.elapsed_s or not self.cpus:
            return None
        return self.cpu_s / (self.elapsed_s * self.cpus)

    @property
    def mem(self) -> float | None:
        """Peak RSS / requested memory."""
        if self.max_rss is None or not self.req_mem:
            return None
        return self.max_rss / self.req_mem

    @property
    def time(self) -> float | None:
        """Elapsed / time limit."""
        if self.elapsed_s is None or not self.time_limit_s:
            return None
        return self.elapsed_s / self.time_limit_s

    def to_json(self) -> dict[str, Any]:
        def ratio(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "cpu_efficiency": ratio(self.cpu), "mem_efficiency": ratio(self.mem),
            "time_efficiency": ratio(self.time), "elapsed_seconds": self.elapsed_s, "cpu_seconds": self.cpu_s,
            "cpus": self.cpus, "max_rss_bytes": self.max_rss, "req_mem_bytes": self.req_mem,
            "time_limit_seconds": self.time_limit_s, "submit": self.submit, "start": self.start, "end": self.end,
        }  # fmt: skip


@dataclass(frozen=True)
class JobState:
    job: str
    run: str
    state: JobStateKind
    slurm_id: str | None = None
    exit_code: int | None = None
    elapsed: str | None = None
    node: str | None = None
    reason: str | None = None  # SLURM pending reason, blocking upstream, failure detail
    max_rss: str | None = None
    stale: bool = False
    waiting_on: tuple[str, ...] = ()  # runs whose results this job reads and that have not succeeded
    efficiency: Efficiency | None = None  # finished SLURM jobs: usage vs request (sacct)
    hint: str | None = None  # OUT_OF_MEMORY / TIMEOUT: which resources.toml value to raise


@dataclass(frozen=True)
class JobsChanged(Event):
    """Only the jobs whose state differs from the last event; `removed` lists dropped ids."""

    changed: tuple[JobState, ...]
    removed: tuple[str, ...] = ()
    stale_since: float | None = None  # epoch seconds of the last good poll when stale
    error: str | None = None


@dataclass(frozen=True)
class JobSubmitted(Event):
    job: str
    slurm_id: str | None = None


@dataclass(frozen=True)
class JobSkipped(Event):
    job: str
    reason: str


@dataclass(frozen=True)
class JobCancelled(Event):
    job: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class LogChunk(Event):
    job: str
    stream: str  # "stdout" | "stderr"
    offset: int  # byte offset of `text` in the remote file
    text: str


@dataclass(frozen=True)
class Notice(Event):
    """Something a user should read that is not tied to one phase (a warning, a hint)."""

    level: str  # "info" | "warning" | "error"
    message: str
    at: float = field(default_factory=time.time)


EventSink = Callable[[Event], None]


def discard(_event: Event) -> None:
    """An EventSink that drops everything."""


# --- results of the job verbs --------------------------------------------------------------


@dataclass(frozen=True)
class SubmitResult(Event):
    """The end of a submission. Its JSON is the last line of `run --json`."""

    submitted: tuple[tuple[str, str | None], ...] = ()  # (job, SLURM id or None for the agent)
    skipped: tuple[tuple[str, str], ...] = ()  # (job, reason)
    errors: tuple[tuple[str, str], ...] = ()  # (job, message)

    def to_json(self) -> dict[str, Any]:
        return {
            "submitted": [{"job": j, "slurm_id": s} for j, s in self.submitted],
            "skipped": [{"job": j, "reason": r} for j, r in self.skipped],
            "errors": [{"job": j, "error": e} for j, e in self.errors],
        }


@dataclass(frozen=True)
class CancelResult:
    job: str
    ok: bool
    detail: str
    slurm_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job, "ok": self.ok, "detail": self.detail, "slurm_id": self.slurm_id}


@dataclass(frozen=True)
class CancelReport(Event):
    """The end of a cancel: one outcome per job asked for. Its JSON is `cancel --json`."""

    results: tuple[CancelResult, ...] = ()

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {"results": [r.to_json() for r in self.results]}


@dataclass(frozen=True)
class RollUp:
    """One run's (or `@group`'s) state over its jobs."""

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


def job_state_json(s: JobState) -> dict[str, Any]:
    return {
        "job": s.job, "run": s.run, "state": s.state.value, "slurm_id": s.slurm_id,
        "exit_code": s.exit_code, "elapsed": s.elapsed, "node": s.node, "reason": s.reason,
        "waiting_on_runs": list(s.waiting_on), "stale": s.stale, "max_rss": s.max_rss,
        "efficiency": s.efficiency.to_json() if s.efficiency else None, "hint": s.hint,
    }  # fmt: skip


@dataclass(frozen=True)
class StatusReport(Event):
    """Every job's state and every run's roll-up at one refresh. Its JSON is `status --json`."""

    jobs: tuple[JobState, ...] = ()
    runs: tuple[RollUp, ...] = ()
    stale_since: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": [job_state_json(s) for s in self.jobs],
            "runs": [r.to_json() for r in self.runs],
            "stale_since": self.stale_since,
            "error": self.error,
        }


# The inspector's and pull's events live in jobevents.py, the answers of targets, lab, login and
# logout in infoevents.py (this module stays short); they are events like these, importable from here.
from repx_tui.backend.infoevents import (  # noqa: E402, F401
    KeeperEnded,
    LabReport,
    LoggedOut,
    LoginKept,
    TargetsReport,
)
from repx_tui.backend.jobevents import (  # noqa: E402, F401
    JobInspection,
    PullProgress,
    PullResult,
    PullSummary,
    ResourceValue,
    UnitState,
)
