"""Pull results (`p`): where to put the chosen jobs' outputs, then per-job progress.

The destination defaults to what `repx-tui pull` uses (./repx-results/<target>); Enter posts
PullRequested and the rows fill from PullProgress events; Esc closes the dialog (a pull under
way goes on, and its end is announced).
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from repx_tui.backend.events import PullProgress, PullSummary
from repx_tui.backend.pull import default_dest
from repx_tui.backend.status.efficiency import human_bytes
from repx_tui.ui import format as fmt
from repx_tui.ui.messages import BackendUpdate, PullRequested
from repx_tui.ui.model import JobsModel
from repx_tui.ui.widgets.fittable import FitTable

STATUS_STYLE = {"pulled": "green", "unchanged": "grey62", "missing": "yellow"}
# Cuttable columns and how far; the job id takes what the others leave (status is never cut).
PULL_MIN_WIDTH = {"job": 16, "state": 9, "got": 9}


class PullScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close")]
    DEFAULT_CSS = """
    PullScreen { align: center middle; }
    #pull-jobs { height: auto; max-height: 16; }
    """

    def __init__(self, job_ids: list[str], model: JobsModel, target: str) -> None:
        super().__init__()
        self.job_ids = job_ids
        self.model = model
        self.target_name = target
        self.started = False
        self.summary: PullSummary | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="pull-box", classes="dialog"):
            yield Static(Text(f"Pull {len(self.job_ids)} job(s) from {self.target_name} into", style="bold"),
                         classes="title")  # fmt: skip
            yield Input(str(default_dest(self.target_name)), id="pull-dest")
            yield FitTable(id="pull-jobs", cursor_type="none", show_cursor=False, flex="job")
            yield Static("Enter: pull (only what changed is sent)   Esc: close", id="pull-help")

    def on_mount(self) -> None:
        table = self.query_one(FitTable)
        for key, label in (("job", "job"), ("state", "state"), ("got", "received"), ("status", "status")):
            table.add_column(label, key=key, min_width=PULL_MIN_WIDTH.get(key))
        for job_id in self.job_ids:
            info = self.model.jobs.get(job_id)
            state = fmt.state_text(info.state.state) if info else Text("?")
            table.add_row(fmt.short_id(job_id), state, "", Text("waiting", style="grey50"), key=job_id)
        self.query_one("#pull-dest", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.started:
            return
        dest = event.value.strip()
        if not dest:
            self.notify("Give a directory to pull into", severity="warning")
            return
        self.started = True
        event.input.disabled = True
        self.query_one("#pull-help", Static).update(f"pulling into {dest}…   Esc: close (the pull goes on)")
        self.post_message(PullRequested(self.job_ids, dest))

    def on_backend_update(self, message: BackendUpdate) -> None:
        event = message.event
        if not self.is_mounted:
            return
        table = self.query_one(FitTable)
        if isinstance(event, PullProgress) and event.job in table.rows:
            got = f"{event.files} file(s), {human_bytes(event.bytes)}"
            status = Text("done" if event.done else "receiving…", style="green" if event.done else "bold cyan")
            table.update_cell(event.job, "got", got, update_width=True)
            table.update_cell(event.job, "status", status, update_width=True)
        elif isinstance(event, PullSummary):
            self.summary = event
            for result in event.jobs:
                if result.job in table.rows:
                    cell = Text(result.status, style=STATUS_STYLE.get(result.status, ""))
                    table.update_cell(result.job, "status", cell, update_width=True)
            pulled = sum(1 for j in event.jobs if j.status == "pulled")
            self.query_one("#pull-help", Static).update(
                f"{pulled} pulled, {human_bytes(event.bytes)} in {event.seconds:.1f} s into {event.dest}   Esc: close"
            )

    def action_close(self) -> None:
        self.dismiss(None)
