"""StatusWatcher: the I/O and timing of status (chained polls, never overlapping; stale, never raising)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import EventSink, JobsChanged, JobState, JobStateKind, StatusReport
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.status.efficiency import record_complete
from repx_tui.backend.status.merge import (
    HintFor,
    LabView,
    MergeCache,
    RollUp,
    StatusInputs,
    diff_states,
    merge_states,
    needs_sacct,
    roll_up_runs,
)
from repx_tui.backend.status.slurm import (
    AcctEntry,
    QueueEntry,
    SqueueParser,
    parse_sacct,
    queue_by_job,
    sacct_argv,
    slurm_error,
    slurm_kind,
    squeue_argv,
)
from repx_tui.backend.status.snapshot import (
    MARKER_SCRIPT,
    RemoteSnapshot,
    agent_dir,
    ours,
    parse_snapshot,
    submissions_dir,
)

DEFAULT_INTERVAL = 5.0
MIN_INTERVAL = 3.0  # squeue is an RPC to slurmctld: never poll it in a tight loop
COMMAND_TIMEOUT = 30.0  # a slurmctld that answers slower than this counts as down
ASKS_FOR_A_PARTIAL_RECORD = 4  # a final record still partial after this many asks ...
PARTIAL_RECORD_PATIENCE_S = 60.0  # ... and this long since its first answer is taken as it is

K = JobStateKind


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
        hint_for: HintFor | None = None,
    ) -> None:
        self.transport = transport
        self.layout = layout
        self.view = lab if isinstance(lab, LabView) else LabView.of(lab)
        self.target = target
        self.scheduler = scheduler
        self.emit = emit
        self.interval = max(MIN_INTERVAL, interval)
        self._clock = clock
        self.hint_for = hint_for
        self.states: dict[str, JobState] = {}
        self.snapshot = RemoteSnapshot()
        self.last_good: float | None = None
        self.stale_since: float | None = None
        self.error: str | None = None
        self._known_slurm_ids: dict[str, str] = {}
        self._acct_cache: dict[str, AcctEntry] = {}  # finished allocations never change
        self._acct_fresh: dict[str, AcctEntry] = {}  # not final yet: used once, asked again
        self._acct_asks: dict[str, int] = {}  # how often sacct was asked for an unsettled record
        self._acct_first: dict[str, float] = {}  # when sacct first answered it (self._clock)
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
        except (TimeoutError, RepxError, OSError) as exc:
            return self._go_stale(_message(exc))
        queue = await self._fetch_queue(snapshot, errors)
        acct = await self._fetch_acct(snapshot, queue, errors)
        self.snapshot = snapshot
        new = merge_states(
            StatusInputs(
                jobs=self.view.jobs, deps=self.view.deps, run_of=self.view.run_of, snapshot=snapshot,
                queue=queue, acct=acct, known_slurm_ids=self._known_slurm_ids, source_runs=self.view.source_runs,
                hint_for=self.hint_for,
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

    def report(self) -> StatusReport:
        """Every job's last known state and every run's roll-up, as one event."""
        return StatusReport(tuple(self.states.values()), tuple(self.runs()), self.stale_since, self.error)

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
        except (TimeoutError, RepxError, OSError) as exc:
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
                self._acct_asks[sid] = self._acct_asks.get(sid, 0) + 1
                self._acct_first.setdefault(sid, self._clock())
                if self._settled(sid, entry):
                    self._acct_cache[sid] = entry
                else:  # just left squeue, accounting not final yet: ask again next time
                    self._acct_cache.pop(sid, None)
                    self._acct_fresh[sid] = entry
        acct = {sid: self._acct_cache[sid] for sid in wanted.values() if sid in self._acct_cache}
        for sid in wanted.values():
            if sid not in acct and sid in self._acct_fresh:
                acct[sid] = self._acct_fresh.pop(sid)
        return acct

    def _settled(self, sid: str, entry: AcctEntry) -> bool:
        """A record that will not change any more (see record_complete); one still partial
        after a few asks over a minute is taken as it is (a busy slurmdbd may lag for seconds)."""
        if slurm_kind(entry.state) in (K.RUNNING, K.QUEUED, K.UNKNOWN) or entry.steps_open:
            return False
        if record_complete(entry):
            return True
        waited = self._clock() - self._acct_first.get(sid, self._clock())
        return self._acct_asks.get(sid, 0) >= ASKS_FOR_A_PARTIAL_RECORD and waited >= PARTIAL_RECORD_PATIENCE_S

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
        base = self.states or {job: JobState(job, self.view.run_of.get(job, ""), K.UNKNOWN) for job in self.view.jobs}
        self._publish(dict(base), error)
        return self.states


def _message(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, RepxError):
        return exc.message
    return str(exc) or type(exc).__name__
