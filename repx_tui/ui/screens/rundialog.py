"""Run dialog: choose runs or groups (or job ids), scheduler, execution type and resources; Enter
asks the target what would happen (RunPlanned: jobs to submit, jobs skipped, what is sent) and a
second Enter goes. In retry mode the jobs are given (failed or cancelled ones, their dependants
and what those need) and only submitted: the Lab is on the target already.

The dialog never calls the backend: it posts PlanRun up and shows the RunPlanned that comes
down; it is dismissed with (RunRequest, job ids), which the App hands to the controller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label, SelectionList, Static
from textual.widgets import Select as SelectBox

from repx_tui.backend.events import RunPlan
from repx_tui.ui import format as fmt
from repx_tui.ui.messages import PlanRun, RunPlanned, RunRequest

DEFAULT_EXECUTION = "default"  # the Lab's / target's own choice
SHOWN_JOBS = 6  # a retry lists this many jobs, then "and N more"


@dataclass(frozen=True)
class RunSetup:
    """What the dialog offers: the Lab's runs and groups, what the target allows, the defaults."""

    target: str
    runs: Mapping[str, int]  # run -> number of jobs
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    schedulers: tuple[str, ...] = ("local",)
    execution_types: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # per scheduler
    mode: str = "run"  # "run" | "retry"
    job_ids: tuple[str, ...] = ()  # retry: exactly these; run: typed in the jobs box (the marked jobs)
    last: RunRequest | None = None  # the options of the last run on this target


class TickList(SelectionList[str]):
    """A SelectionList where Space ticks and Enter is the dialog's (check, then go)."""

    BINDINGS = [
        Binding("enter", "screen.confirm", "Check / go", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]


class Tick(Checkbox):
    """A Checkbox toggled by Space only: Enter is the dialog's."""

    BINDINGS = [Binding("enter", "screen.confirm", "Check / go", show=False)]


class RunScreen(ModalScreen[tuple[RunRequest, list[str]] | None]):
    HELP_TITLE = "Run dialog"
    BINDINGS = [
        Binding("enter", "confirm", "Check / go", priority=False),
        Binding("y", "go", "Go", show=False),
        Binding("escape", "close", "Cancel"),
    ]
    DEFAULT_CSS = """
    RunScreen { align: center middle; }
    #run-box { width: 90%; max-width: 100; height: auto; max-height: 95%; border: thick $primary;
               background: $surface; padding: 0 1; }
    #run-box Horizontal { height: 1; }
    #run-box Label { width: 12; }
    #run-box Input, #run-box SelectBox { width: 1fr; }
    #run-runs { height: auto; max-height: 6; margin: 0 0 1 0; }
    #run-retry { height: auto; margin: 0 0 1 0; }
    #run-plan { height: auto; border-top: solid $primary; margin: 1 0 0 0; }
    """

    def __init__(self, setup: RunSetup) -> None:
        super().__init__()
        self.setup = setup
        self.token = 0
        self.plan: RunPlan | None = None
        self.job_ids: list[str] = []
        self.request: RunRequest | None = None  # what the plan shown was made for
        self.error: str | None = None
        self.checking = False
        self._ready = False  # widgets post Changed while they are set up: not a user's change

    # --- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        setup, last = self.setup, self.setup.last
        scheduler = last.scheduler if last and last.scheduler in setup.schedulers else setup.schedulers[0]
        with VerticalScroll(id="run-box"):
            yield Static(self._title(), classes="title")
            if setup.mode == "retry":
                yield Static(self._retry_list(), id="run-retry")
            else:
                yield Static("Runs and groups ([b]Space[/b] ticks):")
                yield TickList(*self._choices(), id="run-runs", compact=True)
                with Horizontal():
                    yield Label("Jobs")
                    yield Input(" ".join(setup.job_ids), placeholder="job ids or prefixes (their dependencies come along)",
                                id="run-jobs", compact=True)  # fmt: skip
            with Horizontal():
                yield Label("Scheduler")
                yield SelectBox([(s, s) for s in setup.schedulers], value=scheduler, allow_blank=False,
                                id="run-scheduler", compact=True)  # fmt: skip
                yield Label(" Execution")
                yield SelectBox(self._execution_options(scheduler), value=self._execution_default(scheduler),
                                allow_blank=False, id="run-execution", compact=True)  # fmt: skip
            with Horizontal():
                yield Label("Resources")
                yield Input((last.resources or "") if last else "", id="run-resources", compact=True,
                            placeholder="resources.toml for SLURM (on top of ~/.config/repx/, ./)")  # fmt: skip
            if setup.mode != "retry":
                # one line at 80 columns (68 cells in a 90% dialog, 74 in a full-width one with a scrollbar)
                yield Tick("submit even if a run they read is missing (--allow-missing-runs)",
                           bool(last and last.allow_missing_runs), id="run-allow-missing", compact=True)  # fmt: skip
            yield Static(self._plan_text(), id="run-plan")

    def on_mount(self) -> None:
        first = "#run-runs" if self.setup.mode != "retry" else "#run-resources"
        self.query_one(first).focus()
        self.call_after_refresh(self._set_ready)

    def _set_ready(self) -> None:
        self._ready = True

    def _title(self) -> str:
        if self.setup.mode == "retry":
            return f"Retry on {self.setup.target}"
        return f"Run on {self.setup.target}: sync the Lab, submit the jobs"

    def _choices(self) -> list[tuple[str, str, bool]]:
        last = set(self.setup.last.specs) if self.setup.last and self.setup.last.mode == "run" else set()
        tick_all = not last and not self.setup.job_ids  # a first run: everything, Enter goes on
        choices = []
        for run, count in self.setup.runs.items():
            choices.append((f"{run}  ({count} job{'s' if count != 1 else ''})", run, tick_all or run in last))
        for group, runs in self.setup.groups.items():
            choices.append((f"@{group}  (runs {', '.join(runs)})", f"@{group}", f"@{group}" in last))
        return choices

    def _retry_list(self) -> Text:
        jobs = self.setup.job_ids
        text = Text(f"Re-submit {len(jobs)} job(s): the failed or cancelled ones you chose, the jobs that "
                    "depend on them and what those need (never one that succeeded, is queued or running):\n")  # fmt: skip
        for job in jobs[:SHOWN_JOBS]:
            text.append(f"  {fmt.short_id(job)}\n")
        if len(jobs) > SHOWN_JOBS:
            text.append(f"  and {len(jobs) - SHOWN_JOBS} more\n")
        return text

    def _execution_options(self, scheduler: str) -> list[tuple[str, str]]:
        allowed = self.setup.execution_types.get(scheduler, ())
        return [(DEFAULT_EXECUTION, DEFAULT_EXECUTION), *[(e, e) for e in allowed]]

    def _execution_default(self, scheduler: str) -> str:
        last = self.setup.last
        allowed = self.setup.execution_types.get(scheduler, ())
        return last.execution_type if last and last.execution_type in allowed else DEFAULT_EXECUTION

    # --- what was chosen --------------------------------------------------------------------

    def chosen(self) -> RunRequest:
        scheduler = str(self.query_one("#run-scheduler", SelectBox).value)
        execution = str(self.query_one("#run-execution", SelectBox).value)
        resources = self.query_one("#run-resources", Input).value.strip() or None
        if self.setup.mode == "retry":
            specs: tuple[str, ...] = self.setup.job_ids
            allow_missing = False
        else:
            typed = self.query_one("#run-jobs", Input).value.split()
            specs = (*self.query_one(TickList).selected, *typed)
            allow_missing = self.query_one(Tick).value
        return RunRequest(
            mode=self.setup.mode, specs=specs, scheduler=scheduler, resources=resources,
            execution_type=None if execution == DEFAULT_EXECUTION else execution, allow_missing_runs=allow_missing,
        )  # fmt: skip

    # --- check, then go ----------------------------------------------------------------------

    def action_confirm(self) -> None:
        if self.ready_to_go():
            self.action_go()
        elif not self.checking:
            self.check()

    def check(self) -> None:
        self.token += 1
        self.plan, self.error, self.checking = None, None, True
        self.request = self.chosen()
        self.post_message(PlanRun(self.request, self.token))
        self._show_plan()

    def ready_to_go(self) -> bool:
        plan = self.plan
        if plan is None or not plan.submit or self.request != self.chosen():
            return False
        return not (plan.missing_runs and not self.request.allow_missing_runs)

    def action_go(self) -> None:
        if self.ready_to_go() and self.request is not None:
            self.dismiss((self.request, list(self.job_ids)))

    def action_close(self) -> None:
        self.dismiss(None)

    def on_run_planned(self, message: RunPlanned) -> None:
        if message.token != self.token:
            return  # the answer to a check the user has changed since
        self.checking = False
        self.plan, self.job_ids, self.error = message.plan, message.job_ids, message.error
        self._show_plan()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_confirm()

    def _changed(self) -> None:
        """Anything the user changes makes the plan shown stale: Enter checks again."""
        if self._ready and (self.plan is not None or self.error is not None):
            self.plan, self.error = None, None
            self._show_plan()

    def on_input_changed(self, _event: Input.Changed) -> None:
        self._changed()

    def on_selection_list_selected_changed(self, _event: SelectionList.SelectedChanged) -> None:
        self._changed()

    def on_checkbox_changed(self, _event: Checkbox.Changed) -> None:
        self._changed()

    def on_select_changed(self, event: SelectBox.Changed) -> None:
        if event.select.id == "run-scheduler" and self._ready:
            execution = self.query_one("#run-execution", SelectBox)
            scheduler = str(event.value)
            execution.set_options(self._execution_options(scheduler))
            execution.value = self._execution_default(scheduler)
        self._changed()

    # --- the plan, in words ---------------------------------------------------------------------

    def _show_plan(self) -> None:
        if self.is_mounted:
            self.query_one("#run-plan", Static).update(self._plan_text())

    def _plan_text(self) -> Text:
        if self.checking:
            return Text(f"Asking {self.setup.target} what is there and what runs…", style="bold cyan")
        if self.error:
            return Text.assemble(("✗ ", "bold red"), (self.error, "red"), "\n", _keys("check again"))
        if self.plan is None:
            return _keys("check what will happen")
        return plan_text(self.plan, self.setup.mode, self.request)


def _keys(enter: str, go: bool = False) -> Text:
    text = Text()
    text.append(" Enter " if not go else " Enter/y ", style="bold black on yellow")
    text.append(f" {enter}   ")
    text.append(" Esc ", style="bold black on yellow")
    text.append(" cancel")
    return text


def plan_text(plan: RunPlan, mode: str, request: RunRequest | None) -> Text:
    """The confirmation: what is submitted, what is skipped and why, what is sent."""
    text = Text()
    if plan.submit:
        text.append(f"Submit {len(plan.submit)} job(s) to {plan.target}", style="bold")
        text.append(f" with the {request.scheduler} scheduler\n" if request else "\n")
    else:
        text.append("Nothing to submit: every chosen job succeeded or is queued or running\n", style="bold yellow")
    if plan.skipped:
        counts: dict[str, int] = {}
        for _job, state in plan.skipped:
            counts[state] = counts.get(state, 0) + 1
        text.append(f"Skipped {len(plan.skipped)}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + "\n")
    if mode != "retry":
        text.append_text(_sending(plan))
    for run in plan.missing_runs:
        allowed = request is not None and request.allow_missing_runs
        style = "yellow" if allowed else "bold red"
        text.append(f"⚠ these jobs read run '{run}', which is not chosen, queued or done on {plan.target}", style=style)
        text.append(": allowed, they go without it\n" if allowed else ": tick it, or allow missing runs\n", style=style)
    if plan.status_error:
        text.append(f"⚠ status not fully read ({plan.status_error}); the target skips queued and done jobs itself\n",
                    style="yellow")  # fmt: skip
    ready = bool(plan.submit) and not (plan.missing_runs and not (request and request.allow_missing_runs))
    text.append_text(_keys("go" if ready else "check again", go=ready))
    return text


def _sending(plan: RunPlan) -> Text:
    presence = plan.presence
    text = Text("Sync: ")
    if presence.current:
        text.append("Lab ✓ up to date there", style="green")
    else:
        text.append(f"Lab files to sync (up to {fmt.size(plan.lab_bytes)}; rsync sends only what differs)")
    if presence.layers_total:
        missing = presence.layers_total - presence.layers_there
        text.append(f" · image layers {presence.layers_there}/{presence.layers_total} there")
        text.append(f", {missing} to send ({fmt.size(presence.bytes_to_send)})" if missing else "",
                    style="bold" if missing else "")  # fmt: skip
    text.append("\n")
    return text
