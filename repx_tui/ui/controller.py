"""The only glue between the Textual app and the backend.

Backend coroutines run in Textual workers (never on the UI thread's critical path); each backend
event is forwarded into the app as a `BackendEventMessage`, so the screens — and Pilot tests via
`message_hook` — see exactly the event stream the headless CLI sees. Failures become
`BackendFailed` messages (shown as notifications), never tracebacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.worker import Worker

from repx_tui.backend.config import Config, Target
from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import Event

if TYPE_CHECKING:
    from textual.app import App

    from repx_tui.backend.lab import Lab
    from repx_tui.backend.session import TargetSession


class BackendEventMessage(Message):
    """One backend event, unchanged."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


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

    # --- event plumbing ---------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """The EventSink handed to the backend. post_message is thread-safe."""
        self.app.post_message(BackendEventMessage(event))

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
        self.target = self.config.target(name)
        return self.target

    def check_targets(self, names: Sequence[str] | None = None) -> Worker:
        from repx_tui.backend.health import check_targets

        targets = [self.config.targets[n] for n in (names or list(self.config.targets))]
        return self._start("health", lambda: check_targets(targets, self.emit))

    def load_lab(self, path: str) -> Worker:
        async def load() -> Lab:
            from repx_tui.backend.lab import Lab

            lab = await asyncio.to_thread(Lab.load, Path(path))
            self.lab, self.lab_path = lab, path
            self.app.post_message(LabLoaded(lab, path))
            return lab

        return self._start("lab", load)

    async def session(self) -> TargetSession:
        """One session per target for the whole app: switching back to a target reuses its
        connection (no second login); the session follows the Lab that is open."""
        from repx_tui.backend.session import TargetSession

        lab, target = self._require()
        async with self._session_lock:  # one connect at a time: the transport's connect is not re-entrant
            session = self._sessions.get(target.name)
            if session is None or session.target != target:
                from repx_tui.ui.screens.auth import ModalAuthenticator  # a code or password: asked in a modal

                session = TargetSession(target, self.emit, lab=lab,
                                        scheduler=target.scheduler(self.config.default_scheduler),
                                        authenticator=ModalAuthenticator(self.app))
                self._sessions[target.name] = session
            session.use_lab(lab)
            return await session.connect()

    def run(self, runs: Sequence[str], watch: bool = True, **options: Any) -> Worker:
        """Sync the Lab to the target, submit the runs, then (optionally) watch their states."""

        async def go() -> Any:
            lab, _target = self._require()
            session = await self.session()
            result = await session.run(lab.resolve(list(runs)), **options)
            for job, message in result.errors:
                self.app.post_message(BackendFailed("submit", RepxError(f"{job}: {message}")))
            if watch:
                self.watch_status()
            return result

        return self._start("run", go)

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

    def stop(self, group: str) -> None:
        self.app.workers.cancel_group(self.app, group)

    def _require(self) -> tuple[Lab, Target]:
        if self.target is None:
            raise RepxError("no target chosen", hint="pick one on the Targets screen (key 1)")
        if self.lab is None:
            raise RepxError("no Lab loaded", hint="start with: repx-tui --lab PATH")
        return self.lab, self.target
