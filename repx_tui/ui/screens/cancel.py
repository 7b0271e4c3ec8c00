"""Cancel: confirm exactly which jobs will be cancelled (dependants included), then show outcomes."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from repx_tui.backend.events import JobCancelled
from repx_tui.ui import format as fmt
from repx_tui.ui.messages import BackendUpdate, CancelRequested
from repx_tui.ui.model import JobsModel
from repx_tui.ui.widgets.fittable import FitTable

# Cuttable columns and how far; the job id takes what the others leave (why is never cut).
CANCEL_MIN_WIDTH = {"job": 16, "run": 10, "outcome": 15}


class CancelScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "confirm", "Yes, cancel"),
        Binding("enter", "confirm", "Yes, cancel", show=False),
        Binding("n,escape", "close", "No / close"),
    ]

    def __init__(self, requested: list[str], model: JobsModel) -> None:
        super().__init__()
        self.requested = set(requested)
        self.model = model
        self.jobs = model.with_dependants(requested)
        self.confirmed = False
        self.outcomes: dict[str, JobCancelled] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="cancel-box", classes="dialog"):
            yield Static("", id="cancel-title", classes="title")
            yield FitTable(id="cancel-jobs", cursor_type="none", show_cursor=False, flex="job")
            yield Static("", id="cancel-help")

    def on_mount(self) -> None:
        table = self.query_one(FitTable)
        # One "state / outcome" column: the state until the answer comes, then the outcome (two
        # columns did not fit the dialog at 100 columns, and the old state was stale by then).
        for key, label in (("job", "job"), ("run", "run"), ("why", "why"), ("outcome", "state / outcome")):
            table.add_column(label, key=key, min_width=CANCEL_MIN_WIDTH.get(key))
        for job_id in self.jobs:
            info = self.model.jobs.get(job_id)
            why = "selected" if job_id in self.requested else "dependant"
            state = fmt.state_text(info.state.state) if info else Text("?")
            table.add_row(fmt.short_id(job_id), info.run if info else "", why, state, key=job_id)
        dependants = len(self.jobs) - len(self.requested & set(self.jobs))
        self.query_one("#cancel-title", Static).update(
            Text.from_markup(
                f"[b]Cancel {len(self.jobs)} job(s)?[/b]  ({len(self.requested)} selected + {dependants} dependant(s))"
            )
        )
        self.query_one("#cancel-help", Static).update("[b]y[/b]/Enter: cancel them   [b]n[/b]/Esc: keep them")

    def action_confirm(self) -> None:
        if self.confirmed or not self.jobs:
            self.action_close()
            return
        self.confirmed = True
        for job_id in self.jobs:
            self.query_one(FitTable).update_cell(job_id, "outcome", Text("… cancelling", style="grey50"))
        self.query_one("#cancel-help", Static).update("cancelling…  Esc/Enter: close")
        self.post_message(CancelRequested(self.jobs))

    def on_backend_update(self, message: BackendUpdate) -> None:
        if isinstance(message.event, JobCancelled) and self.is_mounted:
            self.show_outcome(message.event)

    def show_outcome(self, event: JobCancelled) -> None:
        self.outcomes[event.job] = event
        table = self.query_one(FitTable)
        if event.job not in table.rows:
            table.add_row(fmt.short_id(event.job), "", "also", "", key=event.job)
        if event.ok:  # the detail is mostly "cancelled by request": only say more when it adds something
            extra = event.detail if event.detail and "cancel" not in event.detail.lower() else ""
            cell = Text(f"✓ cancelled {extra}".rstrip(), style="green")
        else:
            cell = Text(f"✗ {event.detail or 'failed'}", style="bold red")
        table.update_cell(event.job, "outcome", cell, update_width=True)
        done = sum(1 for j in self.jobs if j in self.outcomes)
        failed = sum(1 for o in self.outcomes.values() if not o.ok)
        self.query_one("#cancel-help", Static).update(
            f"{done}/{len(self.jobs)} answered, {failed} failed.  Esc/Enter: close"
        )

    def action_close(self) -> None:
        self.dismiss(self.confirmed)
