"""The only glue between the Textual app and the backend.

Backend coroutines run in Textual workers (never on the UI thread's critical path); each backend
event is forwarded into the app as a `BackendEventMessage`, so the screens — and Pilot tests via
`message_hook` — see exactly the event stream the headless CLI sees. Failures become
`BackendFailed` messages (shown as notifications), never tracebacks.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.worker import Worker

from repx_tui.backend.config import Config, Target
from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import Event, JobState, Notice
from repx_tui.ui.messages import Down, LabDescribed, LabInfo, RunPlanned, RunRequest

if TYPE_CHECKING:
    from textual.app import App

    from repx_tui.backend.lab import Lab
    from repx_tui.backend.resources import Resources
    from repx_tui.backend.session import TargetSession


class BackendEventMessage(Message):
    """One backend event, unchanged. `generation` says which target and Lab it was about: the
    App drops job states of an earlier one (still on their way when the user switched)."""

    def __init__(self, event: Event, generation: int = 0) -> None:
        super().__init__()
        self.event = event
        self.generation = generation


class BackendFailed(Message):
    """A backend task ended with an error a user can read."""

    def __init__(self, task: str, error: RepxError) -> None:
        super().__init__()
        self.task = task
        self.error = error


class LabLoaded(Message):
    def __init__(self, lab: Lab, path: str) -> None:
        super().__init__()
        self.lab = lab
        self.path = path


class LogUnitsFound(Message):
    """The units of a job that have a log on the target ("" is the job's own log)."""

    def __init__(self, job_id: str, units: list[str]) -> None:
        super().__init__()
        self.job_id = job_id
        self.units = units


class ToScreens(Message):
    """Tell every mounted screen: the App posts kind(*args) to each (a down message)."""

    def __init__(self, kind: type[Down], *args: Any) -> None:
        super().__init__()
        self.kind = kind
        self.args = args


class TaskDone(Message):
    """A backend task finished without error (e.g. "run" after sync + submit)."""

    def __init__(self, task: str, result: Any = None) -> None:
        super().__init__()
        self.task = task
        self.result = result


class Controller:
    """Starts backend work for the app and turns its events into Textual messages."""

    def __init__(self, app: App, config: Config) -> None:
        self.app = app
        self.config = config
        self.lab: Lab | None = None
        self.lab_path: str | None = None
        self.target: Target | None = None
        self._sessions: dict[str, TargetSession] = {}  # target name -> its one session
        self._session_lock = asyncio.Lock()  # status, run, cancel and logs may all connect at once
        self.generation = 0  # bumped when the target or Lab shown changes (see BackendEventMessage)
        self._labs: dict[str, Lab] = {}  # real path -> Lab read for the picker (opening it reads it no more)
        self.last_request: dict[str, RunRequest] = {}  # target -> the options of its last run (the dialog's defaults)

    # --- event plumbing ---------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """The EventSink handed to the backend. post_message is thread-safe."""
        self.app.post_message(BackendEventMessage(event, self.generation))

    feed = emit  # tests and demos push constructed events through the same path

    def _start(self, task: str, make: Callable[[], Awaitable[Any]], group: str | None = None) -> Worker:
        return self.app.run_worker(
            self._guarded(task, make), name=task, group=group or task, exclusive=True, exit_on_error=False
        )

    async def _guarded(self, task: str, make: Callable[[], Awaitable[Any]]) -> Any:
        try:
            result = await make()
        except asyncio.CancelledError:
            raise
        except RepxError as exc:
            self.app.post_message(BackendFailed(task, exc))
            return None
        except Exception as exc:  # an unexpected bug still must not paint a traceback
            self.app.post_message(BackendFailed(task, RepxError(f"{task} failed: {type(exc).__name__}: {exc}")))
            return None
        self.app.post_message(TaskDone(task, result))
        return result

    # --- operations -------------------------------------------------------------------

    def pick_target(self, name: str) -> Target:
        target = self.config.target(name)
        if self.target is not None and target.name != self.target.name:
            self.forget_states()
        self.target = target
        return target

    def forget_states(self) -> None:
        """The jobs shown are about to be another target's or Lab's: stop the status watch, drop
        its events still on their way, and have each session's next poll report every job."""
        self.stop("status")
        self.generation += 1
        for session in self._sessions.values():
            session.forget_states()

    def check_targets(self, names: Sequence[str] | None = None) -> Worker:
        """Every target's health at once: on its session's connection when the app logged in to
        it (no second login, no code asked again), else on one that never asks."""
        from repx_tui.backend.session import TargetSession

        def session_of(target: Target) -> TargetSession:
            kept = self._sessions.get(target.name)
            return kept if kept is not None and kept.target == target else TargetSession(target, self.emit)

        targets = [self.config.targets[n] for n in (names or list(self.config.targets))]
        return self._start("health", lambda: asyncio.gather(*(session_of(t).health() for t in targets)))

    def load_lab(self, path: str) -> Worker:
        """Open a Lab (read once: the picker may have read it already), remember it as recent."""

        async def load() -> Lab:
            lab = await self._read_lab(path)
            await self._remember(path, lab)
            if self.lab is not None:
                self.forget_states()
            self.lab, self.lab_path = lab, path
            self._labs = {k: v for k, v in self._labs.items() if v is lab}
            self.app.post_message(LabLoaded(lab, path))
            return lab

        return self._start("lab", load)

    async def _read_lab(self, path: str) -> Lab:
        from repx_tui.backend.lab import Lab

        key = os.path.realpath(os.path.expanduser(path))
        lab = self._labs.get(key)
        if lab is None:
            if _is_unwritten_demo(path):  # the picker's offer when it found no Lab: `repx-tui demo`'s
                from repx_tui.headless.demo import write_lab

                await write_lab(Path(path).parent)
            lab = self._labs[key] = await asyncio.to_thread(Lab.load, Path(path))
        return lab

    async def _remember(self, path: str, lab: Lab) -> None:
        from repx_tui.ui.labsources import remember

        try:
            await asyncio.to_thread(remember, path, lab.lab_id)
        except OSError as exc:  # a read-only home must not keep anyone from working
            self.emit(Notice(level="warning", message=f"could not remember the Lab in the recent list: {exc}"))

    def describe_labs(self, paths: Sequence[str], group: str = "describe") -> Worker:
        """For the Lab picker: read each Lab, then ask the target how much of it is there (one
        probe round trip each); each answer comes down as LabDescribed."""
        limit = asyncio.Semaphore(4)

        async def one(path: str) -> None:
            if _is_unwritten_demo(path):
                return  # written only if picked
            async with limit:
                try:
                    lab = await self._read_lab(path)
                except RepxError as exc:
                    self._tell(LabDescribed, path, None, exc.message)
                    return
                info = LabInfo(lab.lab_id, lab.git_hash, {n: len(r.jobs) for n, r in lab.runs.items()},
                               dict(lab.groups), len(lab.jobs))  # fmt: skip
                self._tell(LabDescribed, path, info)
                if self.target is None:
                    return
                try:
                    session = await self.session(need_lab=False)
                    presence = await session.presence(lab)
                except RepxError as exc:
                    self._tell(LabDescribed, path, info, None, None, exc.message)
                    return
                self._tell(LabDescribed, path, info, None, presence)

        async def go() -> None:
            await asyncio.gather(*(one(p) for p in paths))

        return self._start("describe", go, group)

    def _tell(self, kind: type[Down], *args: Any) -> None:
        self.app.post_message(ToScreens(kind, *args))

    async def session(self, need_lab: bool = True) -> TargetSession:
        """One session per target for the whole app: switching back to a target reuses its
        connection (no second login); the session follows the Lab that is open."""
        from repx_tui.backend.session import TargetSession

        target = self._require_target()
        lab = self._require()[0] if need_lab else self.lab
        async with self._session_lock:  # one connect at a time: the transport's connect is not re-entrant
            session = self._sessions.get(target.name)
            if session is None or session.target != target:
                from repx_tui.ui.screens.auth import ModalAuthenticator  # a code or password: asked in a modal

                session = TargetSession(
                    target,
                    self.emit,
                    lab=lab,
                    scheduler=target.scheduler(self.config.default_scheduler),
                    authenticator=ModalAuthenticator(self.app),
                )
                self._sessions[target.name] = session
            if lab is not None:
                session.use_lab(lab)
            return await session.connect()

    def run(
        self, runs: Sequence[str], watch: bool = True, *, scheduler: str | None = None,
        resources_file: str | None = None, **options: Any,
    ) -> Worker:  # fmt: skip
        """Sync the Lab to the target, submit the runs, then (optionally) watch their states.
        `options`: resources (already read), execution_type, allow_missing_runs."""

        async def go() -> Any:
            lab, _target = self._require()
            session = await self._session_for(scheduler, resources_file, options)
            result = await session.run(lab.resolve(list(runs)), **options)
            self._submit_errors(result)
            if watch:
                self.watch_status()
            return result

        return self._start("run", go)

    def submit(
        self, job_ids: Sequence[str], *, scheduler: str | None = None, resources_file: str | None = None,
        **options: Any,
    ) -> Worker:  # fmt: skip
        """Submit exactly these jobs (a retry: the Lab is on the target already); the watch then
        polls at once."""

        async def go() -> Any:
            session = await self._session_for(scheduler, resources_file, options)
            result = await session.submit(list(job_ids), **options)
            self._submit_errors(result)
            self.watch_status()
            return result

        return self._start("submit", go)

    def sync_only(self) -> Worker:
        """Phases 1-3 for the whole Lab, nothing submitted."""

        async def go() -> Any:
            lab, _target = self._require()
            session = await self.session()
            return await session.sync(lab)

        return self._start("sync", go)

    def start(self, request: RunRequest, job_ids: Sequence[str]) -> Worker:
        """What the Run dialog confirmed: a run (sync + submit) or a retry (submit only)."""
        self.last_request[self._require_target().name] = request
        go = self.submit if request.mode == "retry" else self.run
        return go(
            job_ids, scheduler=request.scheduler, resources_file=request.resources,
            execution_type=request.execution_type, allow_missing_runs=request.allow_missing_runs,
        )  # fmt: skip

    def plan_run(self, request: RunRequest, token: int) -> Worker:
        """What the request would do (RunPlanned with the token): its jobs, which are skipped,
        what the target lacks. A bad resources file is said before the target is asked."""

        async def go() -> None:
            try:
                lab, _target = self._require()
                retry = request.mode == "retry"  # exactly the jobs shown; a run's specs bring their dependencies
                job_ids = lab.topological_order(request.specs) if retry else lab.resolve(request.specs)
                if not job_ids:
                    raise RepxError("nothing chosen", hint="tick a run or a group, or type job ids")
                await self._resources(request.scheduler, request.resources)
                session = await self.session()
                plan = await session.plan_run(job_ids)
            except RepxError as exc:
                self._tell(RunPlanned, token, [], None, str(exc))
                return
            self._tell(RunPlanned, token, job_ids, plan)

        return self._start("plan", go)

    def retry_jobs(self, chosen: Sequence[str], states: Mapping[str, JobState]) -> list[str]:
        """The failed or cancelled jobs among `chosen`, their dependants and what those need."""
        from repx_tui.backend.runplan import retry_jobs

        lab, _target = self._require()
        return retry_jobs(lab, chosen, states)

    async def _resources(self, scheduler: str, path: str | None) -> Resources | None:
        """resources.toml (XDG, ./, then `path`) for SLURM, as `run --resources` reads them."""
        from repx_tui.backend.resources import load_resources

        if scheduler != "slurm":
            return None
        return await asyncio.to_thread(load_resources, path)

    async def _session_for(
        self, scheduler: str | None, resources_file: str | None, options: dict[str, Any]
    ) -> TargetSession:
        """The session, using `scheduler` from now on; resources read first (a bad file is said
        before the target is contacted) unless the caller read them already."""
        target = self._require_target()
        chosen = scheduler or target.scheduler(self.config.default_scheduler)
        if options.get("resources") is None:
            options["resources"] = await self._resources(chosen, resources_file)
        session = await self.session()
        session.scheduler = chosen
        return session

    def _submit_errors(self, result: Any) -> None:
        for job, message in result.errors:
            self.app.post_message(BackendFailed("submit", RepxError(f"{job}: {message}")))

    def watch_status(self) -> Worker:
        async def go() -> None:
            session = await self.session()
            await session.watch()

        return self._start("status", go)

    def cancel(self, job_ids: Sequence[str]) -> Worker:
        """Cancel exactly job_ids: the cancel dialog already expanded and showed them."""

        async def go() -> Any:
            session = await self.session()
            return await session.cancel(list(job_ids))

        return self._start("cancel", go)

    def follow_log(self, job_id: str, stream: str = "stdout", sub: str | None = None) -> Worker:
        async def go() -> None:
            session = await self.session()
            await session.follow_log(job_id, stream, sub)  # type: ignore[arg-type]

        return self._start("logs", go)

    def log_units(self, job_id: str) -> Worker:
        """Which units of a job have a log on the target (answered with LogUnitsFound)."""

        async def go() -> list[str]:
            session = await self.session()
            units = await session.log_units(job_id)
            self.app.post_message(LogUnitsFound(job_id, units))
            return units

        return self._start("log-units", go)

    def inspect(self, job_id: str) -> Worker:
        """Everything about one job (answered by a JobInspection event); a newer ask replaces it."""

        if self.lab is not None and job_id in self.lab.jobs:  # the Lab's part at once, the target's later
            from repx_tui.backend.inspection import lab_part

            scheduler = self.target.scheduler(self.config.default_scheduler) if self.target else "local"
            self.emit(lab_part(self.lab, job_id, scheduler))

        async def go() -> Any:
            session = await self.session()
            return await session.inspect(job_id)

        return self._start("inspect", go)

    def pull(self, job_ids: Sequence[str], dest: str) -> Worker:
        """Bring these jobs' outputs into dest (PullProgress events, then a PullSummary)."""

        async def go() -> Any:
            session = await self.session()
            return await session.pull(list(job_ids), dest)

        return self._start("pull", go)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    def busy(self) -> str | None:
        """The run, retry or sync still under way (a second one would cancel it), if any."""
        for worker in self.app.workers:
            if worker.group in ("run", "submit", "sync") and not worker.is_finished:
                return worker.group
        return None

    def stop(self, group: str) -> None:
        self.app.workers.cancel_group(self.app, group)

    def _require_target(self) -> Target:
        if self.target is None:
            raise RepxError("no target chosen", hint="pick one on the Targets screen (key 1)")
        return self.target

    def _require(self) -> tuple[Lab, Target]:
        target = self._require_target()
        if self.lab is None:
            raise RepxError("no Lab loaded", hint="press L to pick one (or start with: repx-tui --lab PATH)")
        return self.lab, target


def _is_unwritten_demo(path: str) -> bool:
    from repx_tui.ui.labsources import demo_lab_path

    return Path(path) == demo_lab_path() and not Path(path).exists()
