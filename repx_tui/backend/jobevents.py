"""The events of the job inspector and of pulling results (re-exported by events.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from repx_tui.backend.events import Event, JobState, job_state_json


@dataclass(frozen=True)
class UnitState:
    """One unit of a job with its own outcome and logs: the job itself (""), or a scatter-gather
    job's `scatter`, `branch-<i>/step-<name>`, `gather`."""

    unit: str
    state: str  # "succeeded" | "failed" | "cancelled" | "running" | "not started"
    exit_code: int | None = None
    stdout_bytes: int | None = None
    stderr_bytes: int | None = None
    started: float | None = None  # epoch seconds on the target's clock (file times)
    ended: float | None = None


@dataclass(frozen=True)
class ResourceValue:
    """One value a job asks SLURM for, and what produced it (resources.Provenance)."""

    key: str  # partition | cpus_per_task | mem | time | sbatch_opts
    value: str | None
    source: str  # Provenance.describe()
    kind: str  # Provenance.kind: default | hint | sink-hint | rule | worker | unset
    rule: int | None = None


@dataclass(frozen=True)
class JobInspection(Event):
    """Everything about one job: from the Lab, the last status, resources.toml and one round trip."""

    job: str
    name: str
    run: str
    stage_type: str
    scheduler: str
    params: Mapping[str, Any] = field(default_factory=dict)
    upstream: tuple[str, ...] = ()  # jobs it reads from (inter-run sources' final jobs too)
    downstream: tuple[str, ...] = ()  # jobs that read from it
    source_runs: tuple[str, ...] = ()
    state: JobState | None = None
    resources: tuple[ResourceValue, ...] = ()
    resources_note: str = ""
    slurm_ids: tuple[str, ...] = ()
    submit: str | None = None
    start: str | None = None
    end: str | None = None
    out_path: str = ""
    stdout_path: str = ""
    stderr_path: str = ""
    units: tuple[UnitState, ...] = ()
    error: str | None = None  # the target could not be read: what is shown comes from the Lab only

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["state"] = job_state_json(self.state) if self.state else None
        return data


@dataclass(frozen=True)
class PullProgress(Event):
    """One job's outputs coming back: files and bytes received so far; `done` once complete."""

    job: str
    files: int
    bytes: int
    done: bool = False


@dataclass(frozen=True)
class PullResult:
    job: str
    status: str  # "pulled" | "unchanged" | "missing" (nothing on the target yet)
    files: int = 0
    bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job, "status": self.status, "files": self.files, "bytes": self.bytes}


@dataclass(frozen=True)
class PullSummary(Event):
    """The end of a pull. Its JSON is the last line of `pull --json`."""

    dest: str
    jobs: tuple[PullResult, ...] = ()
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        return sum(j.bytes for j in self.jobs)

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for result in self.jobs:
            counts[result.status] = counts.get(result.status, 0) + 1
        return {
            "dest": self.dest, "jobs": [j.to_json() for j in self.jobs], "counts": counts,
            "bytes": self.bytes, "files": sum(j.files for j in self.jobs), "seconds": round(self.seconds, 3),
        }  # fmt: skip
