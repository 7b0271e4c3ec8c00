"""Run overview (`v`): per run a progress bar coloured by state, counts per state, throughput
and ETA (backend/status/progress.py); the target, its scheduler, the Lab and its git hash on top.

Redrawn when job states change and once a second (the ETA counts down), at most once a second:
a redraw walks the states of every job once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from repx_tui.backend.events import JobStateKind
from repx_tui.backend.status.efficiency import human_seconds
from repx_tui.backend.status.progress import RunProgress, run_progress
from repx_tui.ui import format as fmt
from repx_tui.ui.messages import JobsUpdated
from repx_tui.ui.model import JobsModel
from repx_tui.ui.widgets.footer import StableFooter

if TYPE_CHECKING:
    from repx_tui.ui.app import RepxApp

K = JobStateKind
# Bar segments from the left: what is done first, then what is moving, then what waits.
BAR_ORDER = (
    K.SUCCEEDED,
    K.FAILED,
    K.OUT_OF_MEMORY,
    K.TIMEOUT,
    K.CANCELLED,
    K.RUNNING,
    K.QUEUED,
    K.PENDING,
    K.BLOCKED,
    K.UNKNOWN,
)
REDRAW_SECONDS = 1.0


def state_bar(progress: RunProgress, width: int) -> Text:
    """One cell per total/width jobs, each state its colour; rounding never loses a state that has jobs."""
    text = Text()
    if progress.total <= 0:
        return text.append("·" * width, style="grey23")
    cells = {k: progress.counts.get(k, 0) * width / progress.total for k in BAR_ORDER}
    whole = {k: max(1, int(v)) if progress.counts.get(k) else 0 for k, v in cells.items()}
    while sum(whole.values()) > width:  # the widest segment gives back what rounding up added
        widest = max(whole, key=lambda k: whole[k])
        whole[widest] -= 1
    rest = width - sum(whole.values())
    for kind in sorted(cells, key=lambda k: cells[k] - int(cells[k]), reverse=True)[:rest]:
        if progress.counts.get(kind):
            whole[kind] += 1
    for kind in BAR_ORDER:
        text.append("█" * whole[kind], style=fmt.STATE_STYLE[kind])
    return text.append("·" * (width - text.cell_len), style="grey23")


def progress_line(progress: RunProgress) -> Text:
    text = Text(f"{progress.finished}/{progress.total} finished", style="bold")
    for kind in BAR_ORDER:
        if progress.counts.get(kind):
            text.append(f"  {fmt.STATE_GLYPH[kind]} {progress.counts[kind]} {kind.value}", style=fmt.STATE_STYLE[kind])
    return text


def rate_line(progress: RunProgress) -> Text:
    if progress.rate_per_min is None:
        return Text("throughput: none yet (no job has finished while watched)", style="grey50")
    basis = "SLURM start/end times" if progress.basis == "sacct" else "jobs seen finishing"
    text = Text(f"{progress.rate_per_min:.1f} jobs/min", style="bold")
    if progress.eta_seconds is not None:
        text.append(f"   ETA {human_seconds(progress.eta_seconds)} for {progress.remaining} job(s)", style="bold cyan")
    elif progress.remaining == 0:
        text.append("   nothing left to run", style="green")
    return text.append(f"   (from {basis})", style="grey50")


class OverviewScreen(Screen[None]):
    HELP_TITLE = "Overview"
    BINDINGS = [Binding("escape,v", "close", "Back")]
    DEFAULT_CSS = """
    #overview-body { height: 1fr; padding: 0 1; }
    #overview-header { height: auto; background: $primary-background; color: $text; padding: 0 1; }
    """

    def __init__(self, model: JobsModel) -> None:
        super().__init__()
        self.model = model
        self._drawn_at = 0.0

    def compose(self) -> ComposeResult:
        yield Static("", id="overview-header")
        with VerticalScroll(id="overview-body"):
            yield Static("", id="overview-runs")
        yield StableFooter()

    def on_mount(self) -> None:
        self._draw()
        self.set_interval(REDRAW_SECONDS, self.redraw)

    def on_jobs_updated(self, _message: JobsUpdated) -> None:
        if time.monotonic() - self._drawn_at >= REDRAW_SECONDS:
            self.redraw()

    def _header_text(self) -> Text:
        controller = cast("RepxApp", self.app).controller
        target, lab = controller.target, controller.lab
        text = Text("Overview  ", style="bold")
        if target is not None:
            scheduler = target.scheduler(controller.config.default_scheduler)
            text.append(f"target {target.name} ({scheduler}, {target.address or 'this machine'})")
        if lab is not None:
            git = lab.git_hash[:12] if lab.git_hash else "?"
            text.append(f"\nLab {controller.lab_path or lab.source}  ·  git {git}  ·  id {lab.lab_id[:12]}")
        return text

    def redraw(self) -> None:
        if self.is_mounted:
            self._draw()

    def _draw(self) -> None:
        self._drawn_at = time.monotonic()
        self.query_one("#overview-header", Static).update(self._header_text())
        model, now = self.model, self.model.now()
        width = max(10, min(60, self.size.width - 20))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        for run, job_ids in model.runs.items():
            progress = run_progress(run, (model.jobs[j].state for j in job_ids), model.finished_at,
                                    model.watch_started, now)  # fmt: skip
            grid.add_row(run, state_bar(progress, width))
            grid.add_row("", progress_line(progress))
            grid.add_row("", rate_line(progress))
            grid.add_row("", "")
        if not model.runs:
            grid.add_row("", Text("no Lab open", style="grey50"))
        self.query_one("#overview-runs", Static).update(grid)

    def action_close(self) -> None:
        self.dismiss(None)
