"""The App's part of the workflow a user goes through: pick a target, pick a Lab, choose runs, sync,
submit, retry. A mixin of RepxApp (app.py), so the router stays one class without one long file.

Each action arrives as a message (WorkflowRequested from the Jobs screen's Space menu, or a key or
palette entry here) and ends in a Controller call; the dialogs are pushed from here with a
callback, so a screen never calls into the App.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.screen import ModalScreen, Screen

from repx_tui.backend.config import Target
from repx_tui.backend.events import SubmitResult, SyncSummary
from repx_tui.ui import format as fmt
from repx_tui.ui.labsources import demo_lab_path, find_candidates, load_recent, shown_path
from repx_tui.ui.messages import (
    DescribeLabs,
    Down,
    LabOpened,
    PlanRun,
    RunRequest,
    SelectionWanted,
    SyncFinished,
    SyncReset,
    WorkflowRequested,
)  # fmt: skip
from repx_tui.ui.model import JobsModel
from repx_tui.ui.screens.jobs import JobsScreen
from repx_tui.ui.screens.labpicker import LabPickerScreen
from repx_tui.ui.screens.rundialog import RunScreen, RunSetup

if TYPE_CHECKING:
    from repx_tui.backend.lab import Lab
    from repx_tui.ui.controller import Controller, ToScreens
    from repx_tui.ui.model import SyncModel


def allowed_schedulers(target: Target, fallback: str | None) -> tuple[str, ...]:
    """The target's own scheduler first, then any other it has a table for in config.toml."""
    default = target.scheduler(fallback)
    others = [s for s in ("local", "slurm") if s != default and getattr(target, s) is not None]
    return (default, *others)


class WorkflowMixin(App):
    controller: Controller
    jobs_model: JobsModel
    sync_model: SyncModel
    lab_path: str | None
    autostart: bool
    _lab_shown: bool
    _offer_run: bool

    def _tell_screens(self, kind: type[Down], *args: Any) -> None:  # RepxApp's
        raise NotImplementedError

    def _screen_of(self, kind: type[Screen]) -> Screen | None:  # RepxApp's
        raise NotImplementedError

    # --- keys and the command palette -------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The workflow keys wait while a dialog or the Lab picker is open."""
        if action == "workflow" and isinstance(self.screen, (ModalScreen, LabPickerScreen)):
            return False
        return super().check_action(action, parameters)

    def action_workflow(self, action: str) -> None:
        jobs = self._screen_of(JobsScreen)
        if jobs is not None and action in ("run", "retry"):
            jobs.post_message(SelectionWanted(action))  # it answers with WorkflowRequested
        else:
            self.workflow(action, [], False)

    def on_workflow_requested(self, message: WorkflowRequested) -> None:
        self.workflow(message.action, message.job_ids, message.marked)

    def workflow(self, action: str, job_ids: Sequence[str], marked: bool) -> None:
        if action == "switch-target":
            self.switch_mode("targets")
            return
        if self.controller.target is None:
            self.switch_mode("targets")
            self.notify("Pick a target first: Enter on one of the Targets screen", severity="warning")
            return
        busy = self.controller.busy() if action in ("run", "retry", "sync-only", "open-lab") else None
        if busy is not None:
            self.notify(f"A {busy} is still under way: wait for it (2 shows the Sync screen)", severity="warning")
        elif action == "open-lab":
            self.open_lab_picker()
        elif not self.jobs_model.jobs:
            self.notify("Open a Lab first", severity="warning")
            self.open_lab_picker()
        elif action == "sync-only":
            self.start_sync()
        elif action == "run":
            self.open_run_dialog("run", job_ids if marked else [])
        elif action == "retry":
            self.open_retry(job_ids)

    # --- the Lab picker ------------------------------------------------------------------------

    def open_lab_picker(self) -> None:
        if any(isinstance(s, LabPickerScreen) for s in self.screen_stack):
            return
        target = self.controller.target
        cwd = Path.cwd()
        candidates = find_candidates(cwd, load_recent(), demo_lab_path())
        picker = LabPickerScreen(candidates, target.name if target else None, cwd)
        self.push_screen(picker, self._lab_chosen)

    def _lab_chosen(self, path: str | None) -> None:
        if path is None:
            return
        self._offer_run = True
        self.notify(f"reading {shown_path(path)}…")
        if self.autostart:
            self.controller.load_lab(path)

    def on_describe_labs(self, message: DescribeLabs) -> None:
        if self.autostart:
            self.controller.describe_labs(message.paths, group="describe-browsed" if message.browsed else "describe")

    def on_to_screens(self, message: ToScreens) -> None:
        self._tell_screens(message.kind, *message.args)

    def show_lab_jobs(self, lab: Lab) -> None:
        """The jobs model holds this Lab's jobs, every state unknown until the target answers."""
        if self._lab_shown:
            self.jobs_model = JobsModel()
        self._lab_shown = True
        self.jobs_model.load_lab(lab)
        self._tell_screens(LabOpened)

    def lab_opened_from_picker(self) -> None:
        """After a Lab picked in the picker: its jobs, and the Run dialog (Esc just watches)."""
        if self._offer_run:
            self._offer_run = False
            self.switch_mode("jobs")
            self.open_run_dialog("run", [])

    # --- run, retry, sync only -------------------------------------------------------------------

    def open_run_dialog(self, mode: str, job_ids: Sequence[str]) -> None:
        target = self.controller.target
        if target is None:
            return
        lab = self.controller.lab
        if lab is not None:
            runs = {name: len(run.jobs) for name, run in lab.runs.items()}
            groups = dict(lab.groups)
        else:  # jobs fed by hand (tests): their runs
            runs, groups = {name: len(ids) for name, ids in self.jobs_model.runs.items()}, {}
        schedulers = allowed_schedulers(target, self.controller.config.default_scheduler)
        setup = RunSetup(
            target=target.name, runs=runs, groups=groups, schedulers=schedulers,
            execution_types={s: target.execution_types(s) for s in schedulers}, mode=mode, job_ids=tuple(job_ids),
            last=self.controller.last_request.get(target.name),
        )  # fmt: skip
        self.push_screen(RunScreen(setup), self._run_chosen)

    def on_plan_run(self, message: PlanRun) -> None:
        if self.autostart:
            self.controller.plan_run(message.request, message.token)

    def _run_chosen(self, result: tuple[RunRequest, list[str]] | None) -> None:
        if result is None:
            return
        request, job_ids = result
        if request.mode == "retry":
            self.notify(f"re-submitting {len(job_ids)} job(s)…")
        else:
            self.reset_sync_view()
            self.switch_mode("sync")
        if self.autostart:
            self.controller.start(request, job_ids)

    def open_retry(self, chosen: Sequence[str]) -> None:
        if self.controller.lab is None:
            self.notify("No Lab open", severity="warning")
            return
        states = {job_id: info.state for job_id, info in self.jobs_model.jobs.items()}
        jobs = self.controller.retry_jobs(list(chosen) or list(states), states)
        if not jobs:
            self.notify("Nothing to retry: choose failed or cancelled jobs (x marks them, or put the cursor on one)",
                        severity="warning")  # fmt: skip
            return
        self.open_run_dialog("retry", jobs)

    def start_sync(self) -> None:
        self.reset_sync_view()
        self.switch_mode("sync")
        if self.autostart:
            self.controller.sync_only()

    # --- how a sync ends ----------------------------------------------------------------------

    def reset_sync_view(self) -> None:
        self.sync_model.reset()
        self._tell_screens(SyncReset)

    def sync_finished(self, ok: bool, summary: str) -> None:
        """The Sync view shows how it ended; after a failure it stays (Enter goes on to the jobs)."""
        self.sync_model.outcome = (ok, summary)
        self._tell_screens(SyncFinished, ok, summary)

    def submitted(self, result: SubmitResult) -> None:
        if self.current_mode != "sync":  # a retry, from the Jobs screen
            self.notify(f"{len(result.submitted)} submitted, {len(result.skipped)} skipped (queued, running or done)")
            return
        if result.errors:
            job, why = result.errors[0]
            more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
            self.sync_finished(
                False, f"{len(result.errors)} job(s) could not be submitted: {fmt.short_id(job)}: {why}{more}"
            )
        elif self.sync_model.outcome is None:
            self.switch_mode("jobs")

    def task_finished(self, task: str, result: object) -> None:
        if task == "sync" and isinstance(result, SyncSummary):
            sent = fmt.size(result.bytes_sent)
            self.sync_finished(True, f"✓ synced in {fmt.duration(result.seconds)}, {sent} sent; nothing submitted")
