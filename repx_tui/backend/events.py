"""The typed events the backend emits: the whole contract between backend and front ends.

The Textual UI and the headless CLI both consume these and nothing else. Every event is a
small frozen dataclass; `to_json()` gives the CLI's `--json` line for it.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Union


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


@dataclass(frozen=True)
class PhaseDone(Event):
    phase: Phase
    files_sent: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    detail: str = ""


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


BackendEvent = Union[
    PhaseStarted,
    PhaseProgress,
    PhaseDone,
    PhaseSkipped,
    PhaseFailed,
    LayerProgress,
    ConnectionState,
    TargetHealth,
    JobsChanged,
    JobSubmitted,
    JobSkipped,
    JobCancelled,
    LogChunk,
    Notice,
]

EventSink = Callable[[Event], None]


def discard(_event: Event) -> None:
    """An EventSink that drops everything."""
