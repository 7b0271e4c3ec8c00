"""TargetSession: one target, ONE transport (one login), the resolved remote layout, and every
verb a front end needs, with the same meaning for every caller.

    async with TargetSession(target, emit, lab=lab, scheduler="slurm") as session:
        await session.run(lab.resolve(["simulation"]), resources=resources)
        await session.watch(stop)

Verbs report progress and results as events (emit); they also return what they report, for
callers that are not front ends (tests, benchmarks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from repx_tui.backend.auth import Authenticator
from repx_tui.backend.config import Target
from repx_tui.backend.errors import RepxError, TransportError
from repx_tui.backend.events import (
    CancelReport,
    ConnectionState,
    Event,
    EventSink,
    JobInspection,
    JobState,
    LabPresence,
    LogChunk,
    PullSummary,
    RunPlan,
    StatusReport,
    SubmitResult,
    SyncSummary,
    TargetHealth,
    discard,
)
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.logs import FOLLOW_TAIL_MAX_BYTES, LogFollower, Stream, list_log_units
from repx_tui.backend.resources import Resources
from repx_tui.backend.sync import resolve_layout, sync_lab
from repx_tui.backend.transport import Transport, open_transport

if TYPE_CHECKING:
    from repx_tui.backend.runtimes import RuntimeFact
    from repx_tui.backend.status import StatusWatcher
    from repx_tui.backend.status.merge import HintFor


class TargetSession:
    def __init__(
        self,
        target: Target,
        emit: EventSink = discard,
        *,
        lab: Lab | None = None,
        scheduler: str | None = None,
        transport: Transport | None = None,
        authenticator: Authenticator | None = None,
        resources: Resources | None = None,
    ) -> None:
        self.resources = resources  # what run/submit used last; inspect and OOM/TIMEOUT hints read it
        self.target = target
        self.authenticator = authenticator  # asked for a code/password/passphrase (None: never ask)
        self.emit = emit
        self.lab = lab
        self.scheduler = scheduler or target.scheduler()
        self._transport = transport
        self._layout: RemoteLayout | None = None
        self._watcher: StatusWatcher | None = None  # the one of this Lab, made on first use
        # container runtimes that answered on this connection: not asked again until it drops
        self._runtimes: dict[str, RuntimeFact] = {}

    # --- connection ---------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise TransportError(f"session for {self.target.name} is not connected")
        return self._transport

    @property
    def layout(self) -> RemoteLayout:
        if self._layout is None:
            raise TransportError(f"session for {self.target.name} is not connected")
        return self._layout

    async def connect(self) -> TargetSession:
        """Open the transport (idempotent) and resolve base_path/node_local_path on the target."""
        if self._transport is None:
            self._transport = open_transport(self.target, self._from_transport, self.authenticator)
        await self._transport.connect()
        if self._layout is None:
            self._layout = await resolve_layout(self._transport, self.target)
        return self

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher = None
        if self._transport is not None:
            await self._transport.close()
        self._layout = None
        self._runtimes.clear()

    def _from_transport(self, event: Event) -> None:
        if isinstance(event, ConnectionState) and event.state != "connected":
            self._runtimes.clear()  # lost or logging in again: the target may have changed meanwhile
        self.emit(event)

    async def _probe_runtimes(self, names: Sequence[str]) -> dict[str, RuntimeFact]:
        """What the target says of these container runtimes: one probe per connection for those
        that answered (a missing or silent one is asked again: the user may have fixed it)."""
        from repx_tui.backend.runtimes import probe_runtimes

        unknown = [n for n in names if n not in self._runtimes]
        facts = await probe_runtimes(self.transport, unknown) if unknown else {}
        self._runtimes.update({n: f for n, f in facts.items() if f.ok})
        return {**facts, **{n: self._runtimes[n] for n in names if n in self._runtimes}}

    async def __aenter__(self) -> TargetSession:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def use_lab(self, lab: Lab) -> None:
        """Switch the session to another Lab (the connection stays)."""
        if lab is not self.lab:
            self.lab = lab
            self._watcher = None

    def require_lab(self) -> Lab:
        if self.lab is None:
            raise RepxError("no Lab chosen", hint="give one with --lab PATH")
        return self.lab

    # --- verbs --------------------------------------------------------------------------

    async def health(self, timeout: float = 20.0) -> TargetHealth:
        """Can the target be reached, logged in to, scheduled on and written to; its container
        runtimes (emits TargetHealth). On this session's connection when it has one (no second
        login, nothing asked again); else on one of its own that never asks and is closed after."""
        from repx_tui.backend.health import check_target

        live = self._transport if self._transport is not None and self._transport.is_connected() else None
        return await check_target(self.target, self.emit, timeout, transport=live)

    async def sync(
        self, lab: Lab | None = None, runs: Iterable[str] | None = None, *, compress: str = "auto"
    ) -> SyncSummary:
        """Phases 1-3 for the Lab (the session's by default); `runs` limits the images sent;
        `compress` is auto, on or off (sync/compress.py)."""
        await self.connect()
        lab = lab or self.require_lab()
        summary = await sync_lab(self.transport, lab, self.layout, self.emit, runs=runs, compress=compress)
        if self.target.artifact_store == "node-local":
            from repx_tui.backend.labstore import place_lab_tar

            await place_lab_tar(self.transport, lab, self.layout, self.emit)
        return summary

    async def submit(
        self,
        job_ids: Sequence[str],
        *,
        resources: Resources | None = None,
        execution_type: str | None = None,
        allow_missing_runs: bool = False,
    ) -> SubmitResult:
        """Phase 4 alone: hand job_ids to the session's scheduler (the Lab must be synced)."""
        from repx_tui.backend.schedulers import submit

        await self.connect()
        if resources is not None:
            self.resources = resources
        return await submit(
            self.transport, self.layout, self.require_lab(), self.target, job_ids, scheduler=self.scheduler,
            resources=resources, execution_type=execution_type, allow_missing_runs=allow_missing_runs,
            emit=self.emit, probe=self._probe_runtimes,
        )  # fmt: skip

    async def run(
        self,
        job_ids: Sequence[str],
        *,
        resources: Resources | None = None,
        execution_type: str | None = None,
        allow_missing_runs: bool = False,
        compress: str = "auto",
    ) -> SubmitResult:
        """What `run` means everywhere: refuse a missing source run before anything is sent,
        sync what these jobs need, submit them."""
        from repx_tui.backend.schedulers import check_runtimes, check_source_runs

        lab = self.require_lab()
        await self.connect()
        await check_runtimes(
            self.transport, lab, self.target, self.scheduler, job_ids, execution_type, self._probe_runtimes
        )
        if not allow_missing_runs:
            await check_source_runs(self.transport, self.layout, lab, self.target, self.scheduler, job_ids)
        await self.sync(lab, runs=sorted({lab.run_of(j) for j in job_ids}), compress=compress)
        return await self.submit(
            job_ids, resources=resources, execution_type=execution_type, allow_missing_runs=allow_missing_runs
        )

    def watcher(self) -> StatusWatcher:
        """The status watcher of this session's Lab (one per Lab: polls never overlap)."""
        from repx_tui.backend.status import StatusWatcher

        if self._watcher is None:
            self._watcher = StatusWatcher(
                self.transport,
                self.layout,
                self.require_lab(),
                self.target,
                self.scheduler,
                lambda event: self.emit(event),
                hint_for=self._hint_for(),
            )
        return self._watcher

    def current_resources(self) -> Resources:
        """The resources of the last run/submit, else resources.toml as found now (XDG, ./)."""
        if self.resources is None:
            from repx_tui.backend.resources import load_resources

            try:
                self.resources = load_resources()
            except RepxError:
                return Resources()  # a broken file is reported by run; a hint is not worth failing for
        return self.resources

    def _hint_for(self) -> HintFor | None:
        """OUT_OF_MEMORY / TIMEOUT hints naming the resources.toml value to raise (SLURM only)."""
        if self.scheduler != "slurm":
            return None
        from repx_tui.backend.inspection import resource_hint_for

        lab, name = self.require_lab(), self.target.name
        return lambda state: resource_hint_for(self.current_resources(), lab, name)(state)

    async def inspect(self, job_id: str) -> JobInspection:
        """Everything about one job: the Lab's view (params, upstream, downstream), what it asks
        SLURM for and which resources.toml rule, Lab hint or default produced each value, its
        last state (a refresh first when there is none), its units and logs on the target."""
        from repx_tui.backend.inspection import inspect_job

        lab = self.require_lab()
        lab.job(job_id)
        await self.connect()
        watcher = self.watcher()
        if job_id not in watcher.states:
            await watcher.poll_once()
        sub = watcher.snapshot.submissions.get(job_id)
        state = watcher.states.get(job_id)
        ids = sub.all_slurm_ids if sub else ((state.slurm_id,) if state and state.slurm_id else ())
        inspection = await inspect_job(
            self.transport, self.layout, lab, job_id, scheduler=self.scheduler, target=self.target.name,
            resources=self.current_resources(), state=state, slurm_ids=ids,
        )  # fmt: skip
        self.emit(inspection)
        return inspection

    async def pull(self, job_ids: Sequence[str], dest: str | Path) -> PullSummary:
        """Bring outputs/<job>/ of job_ids into dest, laid out as on the target, with the Lab's
        metadata beside them: one rsync over this connection, incremental (emits PullProgress)."""
        from repx_tui.backend.pull import pull_outputs

        lab = self.require_lab()
        await self.connect()
        return await pull_outputs(self.transport, self.layout, lab, list(job_ids), Path(dest), self.emit)

    async def status(self) -> StatusReport:
        """One refresh, reported whole: every job's state and every run's roll-up."""
        await self.connect()
        watcher = self.watcher()
        await watcher.poll_once()
        report = watcher.report()
        self.emit(report)
        return report

    async def poll(self) -> dict[str, JobState]:
        """One status refresh (emits JobsChanged with what changed)."""
        await self.connect()
        return await self.watcher().poll_once()

    async def watch(self, stop: asyncio.Event | None = None) -> None:
        """Keep polling (never under the SLURM floor) until `stop` is set or the task is cancelled."""
        await self.connect()
        await self.watcher().watch(stop)

    def refresh_soon(self) -> None:
        if self._watcher is not None:
            self._watcher.refresh_soon()

    def forget_states(self) -> None:
        """The next poll reports every job again (a front end showed another target's states meanwhile)."""
        self._watcher = None

    async def presence(self, lab: Lab | None = None, runs: Iterable[str] | None = None) -> LabPresence:
        """How much of a Lab (the session's by default) is on the target: one probe round trip."""
        from repx_tui.backend.sync.presence import lab_presence

        await self.connect()
        report = await lab_presence(self.transport, self.layout, lab or self.require_lab(), self.target.name, runs)
        self.emit(report)
        return report

    async def plan_run(self, job_ids: Sequence[str]) -> RunPlan:
        """What `run` would do with these jobs, before anything is sent: one status poll (the jobs
        it would skip) and one probe (what the target lacks)."""
        from repx_tui.backend import runplan

        lab = self.require_lab()
        states = await self.poll()
        presence = await self.presence(lab, runs=sorted({lab.run_of(j) for j in job_ids}))
        lab_bytes = 0 if presence.current else await asyncio.to_thread(runplan.lab_files_size, lab)
        plan = runplan.build_plan(lab, job_ids, states, presence, lab_bytes, self.watcher().error)
        self.emit(plan)
        return plan

    async def cancel(self, job_ids: Sequence[str]) -> CancelReport:
        """Cancel exactly job_ids (front ends expand a choice with Lab.with_dependants and show
        that list first); a running watch is asked for a refresh right after."""
        from repx_tui.backend.cancel import cancel_jobs

        await self.connect()
        report = await cancel_jobs(
            self.transport, self.layout, self.require_lab(), self.target, self.scheduler, list(job_ids), self.emit
        )
        self.refresh_soon()
        return report

    async def log_units(self, job_id: str) -> list[str]:
        """The units of a job with a log on the target: "" (the job's own), then for a
        scatter-gather job "scatter", "branch-<i>/step-<name>"..., "gather". One round trip."""
        await self.connect()
        return await list_log_units(self.transport, self.layout, job_id)

    def log(self, job_id: str, stream: Stream = "stdout", sub: str | None = None) -> LogFollower:
        """A follower of one job's log (or a scatter-gather unit's, `sub` = `branch-0/step-x`)."""
        return LogFollower(self.transport, self.layout, job_id, stream, sub, emit=self.emit)

    async def tail_log(
        self, job_id: str, stream: Stream = "stdout", sub: str | None = None, lines: int = 50
    ) -> LogChunk | None:
        """The last `lines` lines, streamed as LogChunk events (memory: one read, whatever N)."""
        await self.connect()
        follower = self.log(job_id, stream, sub)
        chunk = await follower.tail(lines)
        if chunk is None and await self.transport.file_size(follower.path) is None:
            raise RepxError(f"no {stream} log yet for {job_id} ({follower.path})", hint="has the job started?")
        return chunk

    async def follow_log(
        self,
        job_id: str,
        stream: Stream = "stdout",
        sub: str | None = None,
        *,
        tail_lines: int | None = 50,
        tail_max_bytes: int | None = FOLLOW_TAIL_MAX_BYTES,
        stop: asyncio.Event | None = None,
    ) -> None:
        """The tail, then new text as it arrives (by byte offset), until stopped."""
        await self.connect()
        await self.log(job_id, stream, sub).follow(stop, tail_lines=tail_lines, tail_max_bytes=tail_max_bytes)
