"""The Textual app: screens (Targets, Sync, Jobs as modes; Logs, Cancel, Help, menus pushed).

The App is the one router (see messages.py): screens post messages up and the App hands them to
the Controller (one TargetSession per target); each backend event reaches the App as a
`BackendEventMessage`, is applied to the models here, and goes down to the screens as a message.
"""

from __future__ import annotations

import gc
import posixpath
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Input

from repx_tui.backend.config import Config
from repx_tui.backend.events import (
    ConnectionState,
    JobCancelled,
    JobInspection,
    JobsChanged,
    LogChunk,
    Notice,
    PhaseFailed,
    PullProgress,
    PullSummary,
    SubmitResult,
    TargetHealth,
)
from repx_tui.ui.controller import BackendEventMessage, BackendFailed, Controller, LabLoaded, LogUnitsFound, TaskDone
from repx_tui.ui.messages import (
    BackendUpdate,
    CancelRequested,
    CancelSelection,
    CheckTargets,
    CopyOutputPaths,
    Down,
    FollowLog,
    InspectJob,
    JobsUpdated,
    ListLogUnits,
    LogFollowing,
    LogUnitsListed,
    OpenLog,
    PullRequested,
    TargetPicked,
    TargetsChecking,
)
from repx_tui.ui.model import SYNC_EVENTS, JobsModel, SyncEvent, SyncModel, TargetsModel
from repx_tui.ui.screens.help import HelpScreen
from repx_tui.ui.screens.jobs import JobsScreen
from repx_tui.ui.screens.logs import LogsScreen
from repx_tui.ui.screens.sync import SyncScreen
from repx_tui.ui.screens.targets import TargetsScreen
from repx_tui.ui.workflow import WorkflowMixin

NOTICE_SEVERITY: dict[str, SeverityLevel] = {"error": "error", "warning": "warning"}
# Events a screen shows as they are (after the App applied them to its models).
SCREEN_EVENTS = (*SYNC_EVENTS, TargetHealth, JobCancelled, LogChunk, JobInspection, PullProgress, PullSummary)


class RepxCommands(Provider):
    """Command palette entries (Ctrl+P) for every screen and action."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app: RepxApp = self.app  # type: ignore[assignment]
        return [
            ("Go to Targets", "target list with health checks", partial(app.switch_mode, "targets")),
            ("Go to Sync", "sync phases and image layers", partial(app.switch_mode, "sync")),
            ("Go to Jobs", "the live job table", partial(app.switch_mode, "jobs")),
            ("Open a Lab…", "recent Labs, ./result links, or browse to one", partial(app.action_workflow, "open-lab")),
            ("Run… (sync + submit)", "choose runs; see what happens first", partial(app.action_workflow, "run")),
            ("Sync only", "send the Lab to the target, submit nothing", partial(app.action_workflow, "sync-only")),
            ("Retry failed or cancelled jobs", "the selection, with dependants", partial(app.action_workflow, "retry")),
            ("Switch target", "each target keeps its connection", partial(app.action_workflow, "switch-target")),
            ("Re-check targets", "run every target's health checks again", app.check_targets),
            ("Cancel selected jobs", "with confirmation, dependants included", app.cancel_selected),
            ("Show keys", "every key binding", app.action_help),
            ("Quit", "leave repx-tui (stops following, closes the connection)", app.action_quit),
        ]

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class RepxApp(WorkflowMixin, App):
    CSS_PATH = "app.tcss"
    # Screens narrower than 90 cells get the class -narrow: dialogs then take the whole width (app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (90, "-wide")]
    TITLE = "repx-tui"
    MODES = {"targets": TargetsScreen, "sync": SyncScreen, "jobs": JobsScreen}
    COMMANDS = App.COMMANDS | {RepxCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("1", "switch_mode('targets')", "Targets", show=False),
        Binding("2", "switch_mode('sync')", "Sync", show=False),
        Binding("3", "switch_mode('jobs')", "Jobs", show=False),
        Binding("L", "workflow('open-lab')", "Lab"),
        Binding("R", "workflow('run')", "Run"),
        Binding("S", "workflow('sync-only')", "Sync only", show=False),
        Binding("F", "workflow('retry')", "Retry failed", show=False),
        Binding("ctrl+p", "command_palette", "Commands", show=False),
    ]

    def __init__(
        self,
        config: Config,
        lab_path: str | None = None,
        target: str | None = None,
        runs: Sequence[str] | None = None,
        *,
        run_options: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        autostart: bool = True,
    ) -> None:
        super().__init__()
        self.controller = Controller(self, config)
        self.lab_path = lab_path
        self.initial_target = target
        self.runs = list(runs or [])
        self.run_options = dict(run_options or {})  # resources, execution type, allow_missing_runs
        self.autostart = autostart  # tests that feed events by hand turn the backend off
        self.jobs_model = JobsModel()
        self.sync_model = SyncModel(clock=clock)
        self.targets_model = TargetsModel(targets=dict(config.targets))
        self._last_stale_error: str | None = None
        self._gc_frozen = False
        self._lab_shown = False  # a Lab's jobs are in the jobs model (another one replaces them)
        self._offer_run = False  # a Lab was picked in the picker: open the Run dialog once it is read

    # --- startup ----------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.initial_target:
            self.controller.pick_target(self.initial_target)
            self.targets_model.current = self.initial_target
        if self.runs and self.initial_target:
            self.switch_mode("sync")
        elif self.initial_target and self.lab_path:
            self.switch_mode("jobs")
        else:
            self.switch_mode("targets")
        if not self.autostart:
            return
        if self.current_mode == "targets":
            self.check_unchecked_targets()
        if self.lab_path:
            self.controller.load_lab(self.lab_path)

    def on_lab_loaded(self, message: LabLoaded) -> None:
        self.lab_path = message.path
        if self._lab_shown:  # another Lab: its jobs replace the table, the last sync is not its own
            self.reset_sync_view()
        self.show_lab_jobs(message.lab)
        gc.freeze()  # the Lab lives as long as the app: keep full collections from re-scanning it
        if self.controller.target is None or not self.autostart:
            return
        if self.runs:
            self.controller.run(self.runs, **self.run_options)
        else:
            self.controller.watch_status()
            self.lab_opened_from_picker()

    def check_targets(self) -> None:
        names = self.targets_model.names
        self.targets_model.checking = set(names)
        self._tell_screens(TargetsChecking, names)
        self.controller.check_targets(names)

    def check_unchecked_targets(self) -> None:
        """Check the targets with no result and no check under way (the demo and `run` start on
        other screens, so the Targets screen can be opened before anything was checked)."""
        if self.autostart and self.targets_model.unchecked():
            self.check_targets()

    def pick_target(self, name: str) -> None:
        previous = self.controller.target
        self.controller.pick_target(name)
        self.targets_model.current = name
        self.sub_title = f"target: {name}"
        if self.controller.lab is None and not self.lab_path:
            self.open_lab_picker()  # a new user's next step: which Lab to run there
            return
        if previous is not None and previous.name != name and self.controller.lab is not None:
            self.show_lab_jobs(self.controller.lab)  # that target's states, not the last one's
        self.switch_mode("jobs")
        if self.controller.lab is not None and self.autostart:
            self.controller.watch_status()

    def cancel_selected(self) -> None:
        """Command palette: the Jobs screen knows the selection and asks for the confirmation."""
        screen = self._screen_of(JobsScreen)
        if screen is None:
            self.notify("Nothing to cancel: move to a job or mark some with x", severity="warning")
        else:
            screen.post_message(CancelSelection())

    # --- what the screens ask for (messages up) -------------------------------------------

    def on_target_picked(self, message: TargetPicked) -> None:
        self.pick_target(message.name)

    def on_check_targets(self, message: CheckTargets) -> None:
        if message.only_unchecked:
            self.check_unchecked_targets()
        else:
            self.check_targets()

    def on_cancel_requested(self, message: CancelRequested) -> None:
        if self.autostart:
            self.controller.cancel(message.job_ids)

    def on_open_log(self, message: OpenLog) -> None:
        # Leaving the Logs screen (Esc) stops following its log.
        screen = LogsScreen(message.job_id, message.stream, message.sub)
        self.push_screen(screen, lambda _result: self.controller.stop("logs"))

    def on_follow_log(self, message: FollowLog) -> None:
        if self.autostart:  # starting it cancels the follow it replaces (one "logs" worker)
            self.controller.follow_log(message.job_id, message.stream, message.sub)
        # Queued behind every LogChunk already posted: the replaced follow emits none after this
        # point, so the Logs screen knows where the old log's text ends.
        self.call_later(self._tell_screens, LogFollowing, message.token)

    def on_list_log_units(self, message: ListLogUnits) -> None:
        if self.autostart:
            self.controller.log_units(message.job_id)

    def on_log_units_found(self, message: LogUnitsFound) -> None:
        self._tell_screens(LogUnitsListed, message.job_id, message.units)

    def on_inspect_job(self, message: InspectJob) -> None:
        if self.autostart:
            self.controller.inspect(message.job_id)

    def on_pull_requested(self, message: PullRequested) -> None:
        if self.autostart:
            self.controller.pull(message.job_ids, message.dest)

    def on_copy_output_paths(self, message: CopyOutputPaths) -> None:
        target = self.controller.target
        if not message.job_ids or target is None:
            self.notify("Pick a target and a job first", severity="warning")
            return
        paths = [posixpath.join(target.base_path, "outputs", j, "out") for j in message.job_ids]
        self.copy_to_clipboard("\n".join(paths))
        self.notify(f"copied {paths[0]}" + (f" (+{len(paths) - 1})" if len(paths) > 1 else ""))

    # --- backend events (applied to the models, then down to the screens) -----------------

    def on_backend_event_message(self, message: BackendEventMessage) -> None:
        event = message.event
        if isinstance(event, JobsChanged) and message.generation != self.controller.generation:
            return  # about the target or Lab shown before a switch
        if isinstance(event, SYNC_EVENTS):
            self._on_sync(event)
        elif isinstance(event, JobsChanged):
            self._on_jobs(event)
        elif isinstance(event, TargetHealth):
            self.targets_model.health[event.target] = event
            self.targets_model.checking.discard(event.target)
        elif isinstance(event, ConnectionState):
            self.sub_title = f"{event.target}: {event.state}"
            if event.state in ("lost", "reconnecting"):
                self.notify(f"{event.target}: connection {event.state} {event.detail}".strip(), severity="warning")
        elif isinstance(event, Notice):
            self.notify(event.message, severity=NOTICE_SEVERITY.get(event.level, "information"))
        elif isinstance(event, SubmitResult):
            self.submitted(event)
        elif isinstance(event, PullSummary):
            pulled = sum(1 for j in event.jobs if j.status == "pulled")
            self.notify(
                f"{pulled} pulled, {len(event.jobs) - pulled} unchanged or not there yet -> {event.dest}",
                title="pull done",
            )
        if isinstance(event, SCREEN_EVENTS):
            self._tell_screens(BackendUpdate, event)

    def _on_sync(self, event: SyncEvent) -> None:
        self.sync_model.apply(event)
        if isinstance(event, PhaseFailed):
            message = event.reason + (f"\nhint: {event.hint}" if event.hint else "")
            self.notify(message, title=f"{event.phase.value} failed", severity="error", timeout=15)

    def _on_jobs(self, event: JobsChanged) -> None:
        changed, runs = self.jobs_model.apply(event)
        self._tell_screens(JobsUpdated, changed, runs)
        if not self._gc_frozen:
            # The first status event creates a state per job, kept until the app ends; a full
            # collection over ~10^6 such objects stalled a keypress for 0.6-0.9 s at 10k jobs.
            self._gc_frozen = True
            gc.freeze()
        if event.error and event.error != self._last_stale_error:
            self.notify(event.error, title="status is stale", severity="warning")
        self._last_stale_error = event.error

    def on_backend_failed(self, message: BackendFailed) -> None:
        error = message.error
        text = error.message + (f"\nhint: {error.hint}" if error.hint else "")
        self.notify(text, title=f"{message.task} failed", severity="error", timeout=20)
        if message.task in ("run", "sync"):
            self.sync_finished(False, text.replace("\n", "  "))
        if message.task == "lab":
            self._offer_run = False  # the Lab picked could not be read: no Run dialog for it later

    def on_task_done(self, message: TaskDone) -> None:
        if message.task in ("run", "sync"):
            self.task_finished(message.task, message.result)

    def _mounted_screens(self) -> list[Screen]:
        """Every screen in every mode's stack (a mode's screens stay while another mode shows)."""
        return [s for stack in self._screen_stacks.values() for s in stack if s.is_mounted]

    def _screen_of(self, kind: type[Screen]) -> Screen | None:
        return next((s for s in self._mounted_screens() if isinstance(s, kind)), None)

    def _tell_screens(self, kind: type[Down], *args: Any) -> None:
        """Post a down message to every mounted screen (one instance each; it does not bubble)."""
        for screen in self._mounted_screens():
            screen.post_message(kind(*args))

    # --- Textual glue ---------------------------------------------------------------------

    def get_system_commands(self, screen):
        """Textual's own entries, minus the two ours replace: its Quit skips closing the target
        connection, its Keys panel duplicates `?`."""
        for command in super().get_system_commands(screen):
            if command.title not in ("Quit", "Keys"):
                yield command

    async def _on_key(self, event: events.Key) -> None:
        """Characters typed right after `/` went to the table or log, not the box it opened:
        Textual runs the `/` binding only once that key has bubbled back up here, after the next
        keys were handed to the old focus. They bubble up here with the box focused: type them
        into it (else they were lost, or ran as keys: a `2` switched to the Sync screen). The
        box's own printable keys never get here, it stops them."""
        box = self.focused
        if isinstance(box, Input) and event.is_printable and event.character:
            event.stop()
            event.prevent_default()  # App._on_key (bindings) runs next in the MRO otherwise
            if box.selection.is_empty:
                box.insert_text_at_cursor(event.character)
            else:
                box.replace(event.character, *box.selection)
        # else: App._on_key runs after this one (handlers are called along the MRO)

    async def action_quit(self) -> None:
        """Stop the backend tasks and close the target connection, then leave."""
        self.workers.cancel_all()
        try:
            await self.controller.close()
        except Exception:  # a dead connection must not keep the user from quitting
            pass
        self.exit()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))
