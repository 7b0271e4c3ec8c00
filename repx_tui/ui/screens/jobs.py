"""Jobs: a DataTable keyed by job id, updated cell by cell from status events.

Status updates never clear the table: changed cells are rewritten in place, so the cursor and the
selection stay put. Only user actions that change which rows are shown (filter, sort, tree) lay
the table out again, and they put the cursor back on the same row key.
"""

from __future__ import annotations

from typing import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.widgets.data_table import RowDoesNotExist

from repx_tui.backend.events import JobStateKind
from repx_tui.ui import format as fmt
from repx_tui.ui.model import JobInfo, JobsModel

COLUMNS = (
    ("sel", " "),
    ("job", "job"),
    ("state", "state"),
    ("elapsed", "elapsed"),
    ("run", "run"),
    ("stage", "stage"),
    ("slurm", "slurm id"),
    ("node", "node"),
    ("reason", "reason / exit"),
)
STATE_COLUMNS = ("state", "elapsed", "slurm", "node", "reason")

# `l` / `h` cycle through these, like upstream's All → Failed → Running → Pending → Succeeded.
STATE_FILTERS: tuple[tuple[str, frozenset[JobStateKind] | None], ...] = (
    ("all", None),
    ("failed", frozenset({JobStateKind.FAILED, JobStateKind.TIMEOUT, JobStateKind.OUT_OF_MEMORY})),
    ("running", frozenset({JobStateKind.RUNNING})),
    ("queued", frozenset({JobStateKind.QUEUED})),
    ("pending", frozenset({JobStateKind.PENDING, JobStateKind.BLOCKED})),
    ("succeeded", frozenset({JobStateKind.SUCCEEDED})),
    ("cancelled", frozenset({JobStateKind.CANCELLED})),
)
SORTS = ("lab order", "state", "elapsed", "job", "node")
_STATE_RANK = {kind: i for i, kind in enumerate(JobStateKind)}
RUN_KEY_PREFIX = "\x1frun:"


def run_key(run: str) -> str:
    return RUN_KEY_PREFIX + run


class JobsScreen(Screen):
    AUTO_FOCUS = "#jobs"
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("l", "state_filter(1)", "State →"),
        Binding("h", "state_filter(-1)", "← State"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("r", "reverse", "Reverse", show=False),
        Binding("t", "toggle_tree", "Tree"),
        Binding("period", "fold", "Fold run", show=False),
        Binding("x", "toggle_mark", "Mark"),
        Binding("percent_sign", "mark_all", "Mark all"),
        Binding("escape", "clear_marks", "Clear marks", show=False),
        Binding("c", "cancel", "Cancel"),
        Binding("enter", "open_logs", "Logs", show=False),
        Binding("o", "open_logs", "Logs"),
        Binding("space", "action_menu", "Actions"),
        Binding("g", "go_menu", "Go", show=False),
        Binding("G", "go_end", "End", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.text_filter = ""
        self.state_filter_index = 0
        self.sort_index = 0
        self.reverse = False
        self.tree_view = True
        self.folded: set[str] = set()
        self.marked: set[str] = set()
        self.shown_jobs: set[str] = set()  # job ids with a row right now
        self._relayout_pending = False

    @property
    def model(self) -> JobsModel:
        return self.app.jobs_model

    def compose(self) -> ComposeResult:
        with Horizontal(id="jobs-header"):
            yield Static("Jobs", id="title", classes="title")
            yield Static("", id="jobs-status")
        yield Input(placeholder="filter: text matches job, run, stage, state — Enter/Esc to leave", id="filter")
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.query_one("#filter", Input).display = False
        self.relayout()

    # --- what is shown ----------------------------------------------------------------

    def _matches(self, info: JobInfo) -> bool:
        wanted = STATE_FILTERS[self.state_filter_index][1]
        if wanted is not None and info.state.state not in wanted:
            return False
        if not self.text_filter:
            return True
        needle = self.text_filter.lower()
        haystack = (info.id, info.name, info.run, info.stage, info.state.state.value, info.state.node or "")
        return any(needle in field.lower() for field in haystack)

    def _sorted(self, infos: Iterable[JobInfo]) -> list[JobInfo]:
        sort = SORTS[self.sort_index]
        keys = {
            "lab order": lambda i: i.order,
            "state": lambda i: (_STATE_RANK[i.state.state], i.order),
            "elapsed": lambda i: (i.state.elapsed or "", i.order),
            "job": lambda i: (i.name, i.id),
            "node": lambda i: (i.state.node or "", i.order),
        }
        return sorted(infos, key=keys[sort], reverse=self.reverse)

    def _layout_rows(self) -> list[tuple[str, list]]:
        """(row key, cells) in display order for the current filter, sort and tree mode."""
        rows: list[tuple[str, list]] = []
        if not self.tree_view:
            jobs = self._sorted(i for i in self.model.jobs.values() if self._matches(i))
            return [(i.id, self._job_cells(i)) for i in jobs]
        for run, job_ids in self.model.runs.items():
            jobs = self._sorted(i for i in (self.model.jobs[j] for j in job_ids) if self._matches(i))
            if not jobs and (self.text_filter or self.state_filter_index):
                continue
            rows.append((run_key(run), self._run_cells(run)))
            if run in self.folded:
                continue
            for n, info in enumerate(jobs):
                rows.append((info.id, self._job_cells(info, last=n == len(jobs) - 1)))
        return rows

    def relayout(self) -> None:
        """Lay the table out again (user changed filter/sort/tree); keep the cursor's row."""
        self._relayout_pending = False
        table = self.query_one(DataTable)
        current = self.cursor_key()
        rows = self._layout_rows()
        table.clear()
        self.shown_jobs = set()
        for key, cells in rows:
            table.add_row(*cells, key=key)
            if not key.startswith(RUN_KEY_PREFIX):
                self.shown_jobs.add(key)
        if current is not None and current in table.rows:
            table.move_cursor(row=table.get_row_index(current), animate=False)
        self._update_status()

    # --- cells ------------------------------------------------------------------------

    def _mark(self, job_id: str) -> Text:
        return Text("●", style="bold yellow") if job_id in self.marked else Text(" ")

    def _job_cells(self, info: JobInfo, last: bool = False) -> list:
        label = fmt.short_id(info.id)
        if self.tree_view:
            label = ("└ " if last else "├ ") + label
        state, elapsed, slurm, node, reason = self._state_cells(info)
        return [self._mark(info.id), label, state, elapsed, info.run, info.stage, slurm, node, reason]

    def _state_cells(self, info: JobInfo) -> list:
        s = info.state
        reason = s.reason or ""
        if s.exit_code is not None:
            reason = f"exit {s.exit_code}" + (f": {reason}" if reason else "")
        return [fmt.state_text(s.state, s.stale), s.elapsed or "", s.slurm_id or "", s.node or "", reason]

    def _run_cells(self, run: str) -> list:
        counts = self.model.counts.get(run, {})
        total = sum(counts.values())
        done = counts.get(JobStateKind.SUCCEEDED, 0)
        folded = "▸" if run in self.folded else "▾"
        rollup = Text(f"{done}/{total} ", style="bold")
        for kind in (JobStateKind.RUNNING, JobStateKind.QUEUED, JobStateKind.FAILED, JobStateKind.CANCELLED, JobStateKind.PENDING, JobStateKind.BLOCKED):
            if counts.get(kind):
                rollup.append(f"{fmt.STATE_GLYPH[kind]}{counts[kind]} ", style=fmt.STATE_STYLE[kind])
        marked = sum(1 for j in self.model.runs.get(run, ()) if j in self.marked)
        mark = Text("◐" if marked else " ", style="bold yellow")
        return [mark, Text(f"{folded} {run}", style="bold underline"), rollup, "", Text(f"{total} jobs", style="grey50"), "", "", "", ""]

    # --- live updates -------------------------------------------------------------------

    def apply_changes(self, job_ids: set[str], runs: set[str]) -> None:
        """Rewrite only the cells of rows whose state changed; never clear the table."""
        if not self.is_mounted:
            return
        table = self.query_one(DataTable)
        needs_layout = False
        for job_id in job_ids:
            info = self.model.jobs[job_id]
            shown = job_id in self.shown_jobs
            wanted = self._matches(info) and not (self.tree_view and info.run in self.folded)
            if shown and not wanted:
                table.remove_row(job_id)
                self.shown_jobs.discard(job_id)
            elif wanted and not shown:
                needs_layout = True  # a DataTable cannot insert mid-table: coalesce one relayout
            elif shown:
                for column, cell in zip(STATE_COLUMNS, self._state_cells(info)):
                    table.update_cell(job_id, column, cell, update_width=column != "state")
        for run in runs:
            key = run_key(run)
            if key in table.rows:
                table.update_cell(key, "state", self._run_cells(run)[2], update_width=True)
            elif self.tree_view:
                needs_layout = True
        if needs_layout and not self._relayout_pending:
            self._relayout_pending = True
            self.set_timer(0.3, self.relayout)
        self._update_status()

    def _update_status(self) -> None:
        if not self.is_mounted:
            return
        parts = [f"{len(self.shown_jobs)}/{len(self.model.jobs)} jobs"]
        parts.append(f"state: ← {STATE_FILTERS[self.state_filter_index][0]} →")
        parts.append(f"sort: {SORTS[self.sort_index]}{' ↓' if self.reverse else ''}")
        parts.append("tree" if self.tree_view else "flat")
        if self.text_filter:
            parts.append(f"filter: {self.text_filter!r}")
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        text = Text("  ·  ".join(parts))
        if self.model.stale_since is not None or self.model.error:
            text.append(f"   ⚠ stale: {self.model.error or 'target not answering'}", style="bold yellow")
        self.query_one("#jobs-status", Static).update(text)

    # --- cursor and selection ---------------------------------------------------------

    def cursor_key(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except RowDoesNotExist:
            return None

    def _jobs_under(self, key: str | None) -> list[str]:
        if key is None:
            return []
        if key.startswith(RUN_KEY_PREFIX):
            run = key[len(RUN_KEY_PREFIX):]
            return [j for j in self.model.runs.get(run, ()) if self._matches(self.model.jobs[j])]
        return [key]

    def chosen_jobs(self) -> list[str]:
        """What an action applies to: the marked jobs, else the row under the cursor."""
        if self.marked:
            return sorted(self.marked, key=lambda j: self.model.jobs[j].order)
        return self._jobs_under(self.cursor_key())

    def _redraw_marks(self, job_ids: Iterable[str]) -> None:
        table = self.query_one(DataTable)
        runs = set()
        for job_id in job_ids:
            if job_id in table.rows:
                table.update_cell(job_id, "sel", self._mark(job_id))
            runs.add(self.model.jobs[job_id].run)
        for run in runs:
            if run_key(run) in table.rows:
                table.update_cell(run_key(run), "sel", self._run_cells(run)[0])
        self._update_status()

    def action_toggle_mark(self) -> None:
        jobs = self._jobs_under(self.cursor_key())
        if all(j in self.marked for j in jobs):
            self.marked.difference_update(jobs)
        else:
            self.marked.update(jobs)
        self._redraw_marks(jobs)
        self.query_one(DataTable).action_cursor_down()

    def action_mark_all(self) -> None:
        if self.shown_jobs and self.shown_jobs <= self.marked:
            changed = set(self.marked)
            self.marked.clear()
        else:
            changed = self.shown_jobs - self.marked
            self.marked.update(self.shown_jobs)
        self._redraw_marks(changed)

    def action_clear_marks(self) -> None:
        if self.query_one("#filter", Input).display:
            self._close_filter()
            return
        changed, self.marked = self.marked, set()
        self._redraw_marks(changed)

    # --- view actions -----------------------------------------------------------------

    def action_cursor_down(self) -> None:
        self.query_one(DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one(DataTable).action_cursor_up()

    def action_go_top(self) -> None:
        self.query_one(DataTable).move_cursor(row=0, animate=False)

    def action_go_end(self) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=max(table.row_count - 1, 0), animate=False)

    def action_state_filter(self, step: int) -> None:
        self.state_filter_index = (self.state_filter_index + step) % len(STATE_FILTERS)
        self.relayout()

    def action_cycle_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.relayout()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.relayout()

    def action_toggle_tree(self) -> None:
        self.tree_view = not self.tree_view
        self.relayout()

    def action_fold(self) -> None:
        key = self.cursor_key()
        if not self.tree_view or key is None:
            return
        run = key[len(RUN_KEY_PREFIX):] if key.startswith(RUN_KEY_PREFIX) else self.model.jobs[key].run
        self.folded.symmetric_difference_update({run})
        self.relayout()
        table = self.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(run_key(run)), animate=False)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.text_filter = event.value.strip()
            self.relayout()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._close_filter()

    def _close_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = bool(self.text_filter)
        self.query_one(DataTable).focus()

    def on_key(self, event) -> None:
        if event.key == "escape" and self.query_one("#filter", Input).has_focus:
            event.stop()
            self._close_filter()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value.startswith(RUN_KEY_PREFIX):
            self.action_fold()
        else:
            self.action_open_logs()

    # --- actions handled by the app ---------------------------------------------------

    def action_cancel(self) -> None:
        self.app.confirm_cancel(self.chosen_jobs())

    def action_open_logs(self) -> None:
        key = self.cursor_key()
        if key and not key.startswith(RUN_KEY_PREFIX):
            self.app.open_logs(key)

    def action_action_menu(self) -> None:
        self.app.action_menu()

    def action_go_menu(self) -> None:
        self.app.go_menu()
