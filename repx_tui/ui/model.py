"""The UI's view of the world, fed only by backend events. No widgets here, so it is easy to test."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from repx_tui.backend.config import Target
from repx_tui.backend.events import (
    JobsChanged,
    JobState,
    JobStateKind,
    LayerAction,
    LayerProgress,
    Phase,
    PhaseDone,
    PhaseFailed,
    PhaseProgress,
    PhaseSkipped,
    PhaseStarted,
    TargetHealth,
)

if TYPE_CHECKING:
    from repx_tui.backend.lab import Lab

SYNC_EVENTS = (PhaseStarted, PhaseProgress, PhaseDone, PhaseSkipped, PhaseFailed, LayerProgress)
SyncEvent = PhaseStarted | PhaseProgress | PhaseDone | PhaseSkipped | PhaseFailed | LayerProgress


@dataclass
class JobInfo:
    """Static facts about a job (from the Lab) plus its latest state (from status events)."""

    id: str
    name: str
    run: str
    stage: str
    order: int
    state: JobState
    params: dict[str, Any] = field(default_factory=dict)  # the Lab's, for `key=value` filters


class JobsModel:
    """Jobs keyed by id. `apply` returns the ids whose row must be redrawn."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobInfo] = {}
        self.runs: dict[str, list[str]] = {}  # run -> job ids, Lab order
        self.counts: dict[str, Counter[JobStateKind]] = {}
        self.expand_cancel: Callable[[Iterable[str]], Iterable[str]] = lambda jobs: list(jobs)
        self.stale_since: float | None = None
        self.error: str | None = None
        # Throughput for the run overview: when each job was seen finishing (jobs already
        # finished at the first status event are not), and when status events began.
        self.now: Callable[[], float] = time.time
        self.finished_at: dict[str, float] = {}
        self.watch_started: float | None = None

    def add_job(self, job_id: str, name: str, run: str, stage: str, params: dict[str, Any] | None = None) -> None:
        if job_id in self.jobs:
            return
        state = JobState(job=job_id, run=run, state=JobStateKind.UNKNOWN)
        self.jobs[job_id] = JobInfo(job_id, name, run, stage, len(self.jobs), state, dict(params or {}))
        self.runs.setdefault(run, []).append(job_id)
        self.counts.setdefault(run, Counter())[JobStateKind.UNKNOWN] += 1

    def load_lab(self, lab: Lab) -> None:
        """Take job names, runs and stages from a loaded Lab."""
        for job_id, job in lab.jobs.items():
            self.add_job(job_id, job.name, job.run, job.stage_type, dict(job.params))
        self.expand_cancel = lab.with_dependants

    def apply(self, event: JobsChanged) -> tuple[set[str], set[str]]:
        """Fold one status event in. Returns (changed job ids, runs whose roll-up changed)."""
        changed: set[str] = set()
        runs: set[str] = set()
        self.stale_since = event.stale_since
        self.error = event.error
        now = self.now()
        if self.watch_started is None:
            self.watch_started = now
        for state in event.changed:
            info = self.jobs.get(state.job)
            if info is None:
                self.add_job(state.job, state.job, state.run, "")
                info = self.jobs[state.job]
            old = info.state.state
            info.state = state if state.run else replace(state, run=info.run)
            if old != state.state:
                if state.state.finished and not old.finished and old is not JobStateKind.UNKNOWN:
                    self.finished_at[state.job] = now
                self.counts[info.run][old] -= 1
                self.counts[info.run][state.state] += 1
                runs.add(info.run)
            changed.add(state.job)
        for job_id in event.removed:
            info = self.jobs.get(job_id)
            if info is not None and info.state.state != JobStateKind.UNKNOWN:
                self.counts[info.run][info.state.state] -= 1
                self.counts[info.run][JobStateKind.UNKNOWN] += 1
                info.state = JobState(job=job_id, run=info.run, state=JobStateKind.UNKNOWN)
                changed.add(job_id)
                runs.add(info.run)
        return changed, runs

    def with_dependants(self, job_ids: Iterable[str]) -> list[str]:
        """What a cancel covers (Lab.with_dependants, as in the CLI), in table order."""
        wanted = self.expand_cancel(job_ids)
        return sorted(wanted, key=lambda j: self.jobs[j].order if j in self.jobs else 1 << 30)


@dataclass
class LayerRow:
    image: str
    digest: str
    size: int
    sent: int = 0
    action: LayerAction = LayerAction.PENDING
    done: bool = False
    started_at: float | None = None  # when its first bytes were seen going
    sent_at_start: int = 0
    rate: float | None = None

    @property
    def waiting(self) -> bool:
        """To be sent, but no byte has gone yet (uploads run a few at a time)."""
        return self.action == LayerAction.TRANSFERRED and not self.done and self.sent == 0


@dataclass
class PhaseRow:
    phase: Phase
    state: str = "waiting"  # waiting | running | done | skipped | failed
    detail: str = ""
    bytes_done: int = 0
    total_bytes: int | None = None
    rate: float | None = None
    seconds: float | None = None
    hint: str | None = None
    wire_bytes: int | None = None  # what crossed the wire for bytes_done, when compressed
    compression: str = ""  # "zstd-6", "gzip-1", "rsync -z" once the phase is done
    files_done: int = 0  # a phase counted in items, not bytes (submit: jobs settled)
    total_files: int | None = None
    started_at: float | None = None  # for an items-per-second rate


SYNC_PHASES = (Phase.HOST_TOOLS, Phase.LAB, Phase.IMAGES)  # what a sync does (submit comes after)
FINISHED = ("done", "skipped", "failed")


@dataclass
class SyncModel:
    phases: dict[Phase, PhaseRow] = field(default_factory=lambda: {p: PhaseRow(p) for p in Phase})
    layers: dict[tuple[str, str], LayerRow] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    started_at: float | None = None  # the sync's first event
    ended_at: float | None = None  # its three phases all finished
    outcome: tuple[bool, str] | None = None  # (ok, what to say) once the sync (and submission) ended

    def reset(self) -> None:
        """A new sync: nothing shown of the last one."""
        self.phases = {p: PhaseRow(p) for p in Phase}
        self.layers = {}
        self.started_at = self.ended_at = None
        self.outcome = None

    @property
    def failed(self) -> bool:
        return any(row.state == "failed" for row in self.phases.values())

    def apply(self, event: SyncEvent) -> None:
        now = self.clock()
        if self.started_at is None:
            self.started_at = now
        if isinstance(event, LayerProgress):
            self._layer(event)
            return
        self._phase(event)
        if self.ended_at is None and all(self.phases[p].state in FINISHED for p in SYNC_PHASES):
            self.ended_at = now

    def _phase(self, event: PhaseStarted | PhaseProgress | PhaseDone | PhaseSkipped | PhaseFailed) -> None:
        row = self.phases[event.phase]
        if isinstance(event, PhaseStarted):
            row.state, row.detail, row.total_bytes = "running", event.detail, event.total_bytes
            row.total_files, row.started_at = event.total_files, self.clock()
        elif isinstance(event, PhaseProgress):
            row.state, row.bytes_done, row.rate = "running", event.bytes_done, event.rate
            row.files_done = event.files_done or row.files_done
            row.total_files = event.total_files or row.total_files
            row.wire_bytes = event.wire_bytes if event.wire_bytes is not None else row.wire_bytes
            row.total_bytes = event.total_bytes or row.total_bytes
            row.detail = event.detail or row.detail
        elif isinstance(event, PhaseDone):
            row.state, row.seconds = "done", event.seconds
            row.bytes_done = event.bytes_sent or row.bytes_done
            row.wire_bytes, row.compression = event.wire_bytes, event.compression
            row.detail = event.detail or row.detail
        elif isinstance(event, PhaseSkipped):
            row.state, row.detail = "skipped", event.reason
        elif isinstance(event, PhaseFailed):
            row.state, row.detail, row.hint = "failed", event.reason, event.hint

    def _layer(self, event: LayerProgress) -> None:
        key = (event.image, event.digest)
        row = self.layers.get(key)
        now = self.clock()
        if row is None:
            row = self.layers[key] = LayerRow(event.image, event.digest, event.size)
        if event.action == LayerAction.TRANSFERRED and row.started_at is None and event.sent:
            # from its first bytes on: the time it waited for an upload slot is not its rate
            row.started_at, row.sent_at_start = now, event.sent
        elif row.started_at is not None and now > row.started_at:
            row.rate = (event.sent - row.sent_at_start) / (now - row.started_at) or row.rate
        row.size, row.sent, row.action, row.done = event.size, event.sent, event.action, event.done

    def totals(self) -> dict[str, int]:
        """Bytes sent vs reused vs copied on the node, over all layers."""
        out = {"sent": 0, "reused": 0, "node_local": 0, "to_send": 0, "layers": len(self.layers)}
        seen: set[str] = set()
        for row in self.layers.values():
            if row.digest in seen:  # a layer shared by two images counts once
                continue
            seen.add(row.digest)
            if row.action == LayerAction.TRANSFERRED:
                out["sent"] += row.sent
            elif row.action == LayerAction.REUSED:
                out["reused"] += row.size
            elif row.action == LayerAction.NODE_LOCAL:
                out["node_local"] += row.size
            if row.action == LayerAction.TRANSFERRED:
                out["to_send"] += row.size
        return out

    def overall(self) -> tuple[int, float | None, int]:
        """(bytes sent over the connection by every phase, the overall rate or None, bytes known
        to be still on their way: layers to send, host tools being sent; 0 once it ended)."""
        totals = self.totals()
        tools, lab = self.phases[Phase.HOST_TOOLS], self.phases[Phase.LAB]
        sent = tools.bytes_done + lab.bytes_done + totals["sent"]
        left = totals["to_send"] - totals["sent"]
        if tools.state == "running" and tools.total_bytes:
            left += max(tools.total_bytes - tools.bytes_done, 0)
        if self.started_at is None:
            return sent, None, left
        elapsed = (self.ended_at if self.ended_at is not None else self.clock()) - self.started_at
        rate = sent / elapsed if elapsed > 0 and sent else None
        return sent, rate, 0 if self.ended_at is not None else max(left, 0)


@dataclass
class TargetsModel:
    """The configured targets, their latest health and which are being checked."""

    targets: dict[str, Target] = field(default_factory=dict)
    health: dict[str, TargetHealth] = field(default_factory=dict)
    checking: set[str] = field(default_factory=set)
    current: str | None = None  # the target picked (its jobs are the ones shown)

    @property
    def names(self) -> list[str]:
        return list(self.targets)

    def unchecked(self) -> list[str]:
        """Targets with no result and no check under way."""
        return [n for n in self.targets if n not in self.health and n not in self.checking]
