"""Jobs: a virtual table keyed by job id, updated cell by cell from status events.

Status updates never rebuild the table: changed cells are rewritten in place, so the cursor and
the selection stay put. Only user actions that change which rows are shown (filter, sort, tree)
lay the rows out again (O(n) in plain Python, nothing measured or rendered off screen), and the
cursor goes back to the same row key. Typing a filter is debounced.

Enter / `i` open the job inspector, `o` the logs, `e` toggles the efficiency columns, `v` the
run overview, `p` pulls the chosen jobs' results; the filter text, state filter and efficiency
columns are saved per target (ui/jobfilter.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Static

from repx_tui.backend.events import JobStateKind
from repx_tui.ui import format as fmt
from repx_tui.ui.jobcolumns import HASH_PREFIX_MIN_WIDTH, STATE_COLUMNS, efficiency_cells, layout_columns
from repx_tui.ui.jobfilter import SavedView, compile_terms, load_view, parse_filter, save_view
from repx_tui.ui.messages import JobsUpdated, LabOpened
from repx_tui.ui.model import JobInfo, JobsModel
from repx_tui.ui.screens.jobactions import JobActions
from repx_tui.ui.widgets.footer import StableFooter
from repx_tui.ui.widgets.inputs import open_box
from repx_tui.ui.widgets.jobtable import SPAN, JobTable, Row

if TYPE_CHECKING:
    from repx_tui.ui.app import RepxApp

FILTER_DEBOUNCE = 0.12  # seconds of no typing before a filter re-lays out 10,000 rows
CHANGE_RELAYOUT_DELAY = 0.3  # rows entering/leaving a filter by a state change are coalesced


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
# Keyed by the enum's plain string value: hashing a str-Enum member runs Python code, and these
# lookups run 10,000 times per relayout.
_STATE_RANK = {kind._value_: i for i, kind in enumerate(JobStateKind)}
RUN_KEY_PREFIX = "\x1frun:"
# What a run row counts beside "done"; OUT_OF_MEMORY and TIMEOUT stand out on their own.
ROLLUP_KINDS = (
    JobStateKind.RUNNING, JobStateKind.QUEUED, JobStateKind.FAILED, JobStateKind.OUT_OF_MEMORY, JobStateKind.TIMEOUT,
    JobStateKind.CANCELLED, JobStateKind.PENDING, JobStateKind.BLOCKED,
)  # fmt: skip


def run_key(run: str) -> str:
    return RUN_KEY_PREFIX + run


class JobsScreen(JobActions, Screen):
    AUTO_FOCUS = "#jobs"
    HELP_TITLE = "Jobs"
    TABLE = JobTable  # the bench swaps in a DataTable-based baseline with the same methods
    # The key bar cuts what does not fit (at 80 columns, six keys): the way on comes first, the
    # Space menu (run, retry, sync, Lab, target) and `?` (every key) before the table's own keys.
    BINDINGS = [
        Binding("space", "action_menu", "Actions"),
        Binding("question_mark", "app.help", "Help"),
        Binding("i", "inspect", "Inspect"),
        Binding("o", "open_logs", "Logs"),
        Binding("x", "toggle_mark", "Mark"),
        Binding("c", "cancel", "Cancel"),
        Binding("slash", "filter", "Filter"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("l", "state_filter(1)", "State →"),
        Binding("h", "state_filter(-1)", "← State"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("r", "reverse", "Reverse", show=False),
        Binding("t", "toggle_tree", "Tree"),
        Binding("period", "fold", "Fold run", show=False),
        Binding("percent_sign", "mark_all", "Mark all"),
        Binding("escape", "clear_marks", "Clear marks", show=False),
        Binding("e", "toggle_efficiency", "Efficiency"),
        Binding("v", "overview", "Overview"),
        Binding("p", "pull", "Pull"),
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
        self._haystacks: dict[str, str] = {}  # job id -> its fixed fields for the text filter
        self._cells: dict[str, Row] = {}  # job id -> its cells, rebuilt only when the job changes
        self._names_only = False  # narrow job column: names without the hash prefix
        self._last_in_run: set[str] = set()  # tree mode draws these with └
        self._relayout_pending = False
        self._filter_timer: Timer | None = None
        self.efficiency = False  # the cpu% / mem% / time% columns
        self._view_target: str | None = None  # whose saved view is shown

    @property
    def model(self) -> JobsModel:
        return cast("RepxApp", self.app).jobs_model

    @property
    def table(self) -> JobTable:
        return self.query_one("#jobs", self.TABLE)

    def compose(self) -> ComposeResult:
        with Horizontal(id="jobs-header"):
            yield Static("Jobs", id="title", classes="title")
            yield Static("", id="jobs-status")
        yield Input(
            placeholder="filter: text run:R state:S node:N key=value !term — Enter/Esc to leave",
            id="filter",
            select_on_focus=False,
        )
        yield self.TABLE(id="jobs")
        yield StableFooter()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self._load_view()
        self._set_columns()
        self.relayout()

    def on_screen_resume(self) -> None:
        if self._load_view():  # another target since this screen was last shown
            self._set_columns()
            self.relayout()

    def _target_name(self) -> str | None:
        target = getattr(cast("RepxApp", self.app).controller, "target", None)
        return target.name if target is not None else None

    def _load_view(self) -> bool:
        """Take the current target's saved filter, state filter and columns; True if they changed."""
        name = self._target_name()
        if name is None or name == self._view_target:
            return False
        self._view_target = name
        view = load_view(name)
        names = [n for n, _kinds in STATE_FILTERS]
        self.text_filter, self.efficiency = view.text, view.efficiency
        self.state_filter_index = names.index(view.state) if view.state in names else 0
        box = self.query_one("#filter", Input)
        box.value, box.display = view.text, bool(view.text)
        return True

    def _save_view(self) -> None:
        if self._view_target is None:
            return
        view = SavedView(self.text_filter, STATE_FILTERS[self.state_filter_index][0], self.efficiency)
        try:
            save_view(self._view_target, view)
        except OSError as exc:  # a read-only home: the view is only not kept
            self.notify(f"could not save the filter: {exc}", severity="warning")

    def on_resize(self) -> None:
        self._set_columns()

    def _set_columns(self) -> None:
        width = max(self.size.width - 2, 40)  # the vertical scrollbar takes two cells
        columns = layout_columns(width, self.tree_view, self.efficiency)
        job_width = next(c.width for c in columns if c.key == "job") - (2 if self.tree_view else 0)
        self._names_only = job_width < HASH_PREFIX_MIN_WIDTH
        self.table.set_columns(columns)

    # --- what is shown ----------------------------------------------------------------

    def _filtering(self) -> bool:
        return bool(self.state_filter_index or self.text_filter)

    def _haystack(self, info: JobInfo) -> str:
        """The job's fixed searchable fields, lower-cased once (relayouts run 10,000 of these)."""
        hay = self._haystacks.get(info.id)
        if hay is None:
            hay = self._haystacks[info.id] = "\0".join((info.id, info.name, info.run, info.stage)).lower()
        return hay

    def _matcher(self):
        """A predicate for the current state filter and the `/` terms, built once per relayout."""
        kinds = STATE_FILTERS[self.state_filter_index][1]
        wanted = None if kinds is None else {k._value_ for k in kinds}
        terms = compile_terms(parse_filter(self.text_filter), self._haystack)

        def matches(info: JobInfo) -> bool:
            if wanted is not None and info.state.state._value_ not in wanted:
                return False
            return terms is None or terms(info)

        return matches

    def _sorted(self, infos: list[JobInfo]) -> list[JobInfo]:
        sort = SORTS[self.sort_index]
        if sort == "lab order":  # the model keeps every list in Lab order already
            return infos[::-1] if self.reverse else infos
        keys = {
            "state": lambda i: (_STATE_RANK[i.state.state._value_], i.order),
            "elapsed": lambda i: (i.state.elapsed or "", i.order),
            "job": lambda i: (i.name, i.id),
            "node": lambda i: (i.state.node or "", i.order),
        }
        return sorted(infos, key=keys[sort], reverse=self.reverse)

    def _pick(self, infos: Iterable[JobInfo]) -> list[JobInfo]:
        if not self._filtering():
            return list(infos)
        matches = self._matcher()
        return [i for i in infos if matches(i)]

    def _layout_keys(self) -> tuple[list[str], list[str]]:
        """Row keys in display order for the current filter, sort and tree mode, and the run rows."""
        model = self.model
        self._last_in_run = set()
        if not self.tree_view:
            return [i.id for i in self._sorted(self._pick(model.jobs.values()))], []
        keys: list[str] = []
        groups: list[str] = []
        for run, job_ids in model.runs.items():
            jobs = self._sorted(self._pick(map(model.jobs.__getitem__, job_ids)))
            if not jobs and self._filtering():
                continue
            groups.append(run_key(run))
            keys.append(groups[-1])
            if run in self.folded or not jobs:
                continue
            keys.extend([i.id for i in jobs])
            self._last_in_run.add(jobs[-1].id)
        return keys, groups

    def relayout(self) -> None:
        """Lay the rows out again (user changed filter/sort/tree); the cursor keeps its row."""
        self._relayout_pending = False
        keys, groups = self._layout_keys()
        self.shown_jobs = set(keys).difference(groups)
        self.table.set_rows(keys, self._row, groups=groups)
        self._update_status()

    def _relayout_soon(self, delay: float) -> None:
        if not self._relayout_pending:
            self._relayout_pending = True
            self.set_timer(delay, self._pending_relayout)

    def _pending_relayout(self) -> None:
        if self._relayout_pending:
            self.relayout()

    # --- cells ------------------------------------------------------------------------

    def _mark(self, job_id: str) -> Text:
        return Text("●", style="bold yellow") if job_id in self.marked else Text(" ")

    def _row(self, key: str) -> Row:
        """A row's cells, asked for by the table only when the row is drawn."""
        if key.startswith(RUN_KEY_PREFIX):
            return self._run_row(key[len(RUN_KEY_PREFIX) :])
        cells = self._cells.get(key)
        if cells is None:
            cells = self._cells[key] = self._job_cells(self.model.jobs[key])
        label = self.model.jobs[key].name if self._names_only else cells["job"]
        if self.tree_view:  # job cells are plain strings (fmt.short_id)
            label = ("└ " if key in self._last_in_run else "├ ") + str(label)
        return cells if label is cells["job"] else {**cells, "job": label}

    def _job_cells(self, info: JobInfo) -> Row:
        cells: Row = {"sel": self._mark(info.id), "job": fmt.short_id(info.id), "run": info.run, "stage": info.stage}
        cells.update(zip(STATE_COLUMNS, self._state_cells(info)))
        if self.efficiency:
            cells.update(zip(("cpu", "mem", "tlim"), efficiency_cells(info.state)))
        return cells

    def _state_cells(self, info: JobInfo) -> list:
        s = info.state
        reason = s.reason or ""
        if s.hint:  # OUT_OF_MEMORY / TIMEOUT: what to raise says more than SLURM's reason
            reason = s.hint
        if s.exit_code:  # "exit 0" on every succeeded job would only be noise
            reason = f"exit {s.exit_code}" + (f": {reason}" if reason else "")
        return [fmt.state_text(s.state, s.stale), s.elapsed or "", s.slurm_id or "", s.node or "", reason]

    def _run_row(self, run: str) -> Row:
        counts = self.model.counts.get(run, Counter())
        total = sum(counts.values())
        done = counts.get(JobStateKind.SUCCEEDED, 0)
        folded = "▸" if run in self.folded else "▾"
        rollup = Text(f"{done}/{total} done  ", style="bold")
        for kind in ROLLUP_KINDS:
            if counts.get(kind):
                rollup.append(f"{fmt.STATE_GLYPH[kind]} {counts[kind]} {kind.value}  ", style=fmt.STATE_STYLE[kind])
        jobs = self.model.runs.get(run, ())
        marked = sum(1 for j in jobs if j in self.marked)
        mark = Text("●" if jobs and marked == len(jobs) else "◐" if marked else " ", style="bold yellow")
        return {"sel": mark, "job": Text(f"{folded} {run}", style="bold"), "state": rollup, SPAN: "state"}

    # --- live updates -------------------------------------------------------------------

    def on_jobs_updated(self, message: JobsUpdated) -> None:
        self.apply_changes(message.job_ids, message.runs)

    def on_lab_opened(self, _message: LabOpened) -> None:
        # another Lab or target: cells, marks and folds were about jobs that may be gone
        self._cells.clear()
        self._haystacks.clear()
        self.marked.clear()
        self.folded.clear()
        if self.is_mounted:
            self.relayout()

    def apply_changes(self, job_ids: set[str], runs: set[str]) -> None:
        """Rewrite only the cells of rows whose state changed; never rebuild the table."""
        if not self.is_mounted:
            return
        table, matches = self.table, self._matcher()
        needs_layout = False
        for job_id in job_ids:
            info = self.model.jobs[job_id]
            self._cells.pop(job_id, None)
            shown = job_id in self.shown_jobs
            wanted = matches(info) and not (self.tree_view and info.run in self.folded)
            if shown != wanted or (shown and SORTS[self.sort_index] in ("state", "elapsed", "node")):
                needs_layout = True  # a row enters/leaves the filter or moves in the sort order
            if shown:
                table.refresh_row(job_id)
        for run in runs:
            key = run_key(run)
            if key in table.rows:
                table.refresh_row(key)
            elif self.tree_view:
                needs_layout = True
        if needs_layout:
            self._relayout_soon(CHANGE_RELAYOUT_DELAY)
        self._update_status()

    def _update_status(self) -> None:
        if not self.is_mounted:
            return
        parts = [f"{len(self.shown_jobs)}/{len(self.model.jobs)} jobs"]
        parts.append(f"state: ← {STATE_FILTERS[self.state_filter_index][0]} →")
        parts.append(f"sort: {SORTS[self.sort_index]}{' ↓' if self.reverse else ''}")
        parts.append("tree" if self.tree_view else "flat")
        if self.efficiency:
            parts.append("efficiency")
        if self.text_filter:
            parts.append(f"filter: {self.text_filter!r}")
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        text = Text("  ·  ".join(parts))
        if self.model.stale_since is not None or self.model.error:
            why = self.model.error or "target not answering"
            text.append(f"   ⚠ stale (* = last known): {why}", style="bold yellow")
        self.query_one("#jobs-status", Static).update(text)

    # --- cursor and selection ---------------------------------------------------------

    def cursor_key(self) -> str | None:
        return self.table.cursor_key

    def _jobs_under(self, key: str | None) -> list[str]:
        if key is None:
            return []
        if key.startswith(RUN_KEY_PREFIX):
            run = key[len(RUN_KEY_PREFIX) :]
            matches = self._matcher()
            return [j for j in self.model.runs.get(run, ()) if matches(self.model.jobs[j])]
        return [key]

    def chosen_jobs(self) -> list[str]:
        """What an action applies to: the marked jobs, else the row under the cursor."""
        if self.marked:
            return sorted(self.marked, key=lambda j: self.model.jobs[j].order)
        return self._jobs_under(self.cursor_key())

    def _redraw_marks(self, job_ids: Iterable[str]) -> None:
        table = self.table
        runs = set()
        for job_id in job_ids:
            if job_id in self._cells:
                self._cells[job_id]["sel"] = self._mark(job_id)
            table.refresh_row(job_id)
            runs.add(self.model.jobs[job_id].run)
        for run in runs:
            table.refresh_row(run_key(run))
        self._update_status()

    def action_toggle_mark(self) -> None:
        jobs = self._jobs_under(self.cursor_key())
        if all(j in self.marked for j in jobs):
            self.marked.difference_update(jobs)
        else:
            self.marked.update(jobs)
        self._redraw_marks(jobs)
        self.table.action_cursor_down()

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
        self.table.action_cursor_down()

    def action_cursor_up(self) -> None:
        self.table.action_cursor_up()

    def action_go_top(self) -> None:
        self.table.move_cursor(row=0, animate=False)

    def action_go_end(self) -> None:
        self.table.move_cursor(row=max(self.table.row_count - 1, 0), animate=False)

    def action_state_filter(self, step: int) -> None:
        self.state_filter_index = (self.state_filter_index + step) % len(STATE_FILTERS)
        self.relayout()
        self._save_view()

    def action_toggle_efficiency(self) -> None:
        """cpu% / mem% / time% of finished SLURM jobs (from sacct) on or off."""
        self.efficiency = not self.efficiency
        self._cells.clear()
        self._set_columns()
        self.relayout()
        self._save_view()

    def action_cycle_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.relayout()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.relayout()

    def action_toggle_tree(self) -> None:
        self.tree_view = not self.tree_view
        self._set_columns()
        self.relayout()

    def action_fold(self) -> None:
        key = self.cursor_key()
        if not self.tree_view or key is None:
            return
        run = key[len(RUN_KEY_PREFIX) :] if key.startswith(RUN_KEY_PREFIX) else self.model.jobs[key].run
        self.folded.symmetric_difference_update({run})
        self.relayout()
        self.table.move_cursor(row=self.table.get_row_index(run_key(run)), animate=False)

    def action_filter(self) -> None:
        open_box(self, self.query_one("#filter", Input))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter":
            return
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(FILTER_DEBOUNCE, self._apply_filter)

    def _apply_filter(self) -> None:
        self._filter_timer = None
        text = self.query_one("#filter", Input).value.strip()
        if text != self.text_filter:
            self.text_filter = text
            self.relayout()
            self._save_view()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._close_filter()

    def _close_filter(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._apply_filter()  # Enter/Esc apply what was typed at once
        box = self.query_one("#filter", Input)
        box.display = bool(self.text_filter)
        self.table.focus()

    def on_key(self, event) -> None:
        box = self.query_one("#filter", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            self._close_filter()

    def on_job_table_row_selected(self, event: JobTable.RowSelected) -> None:
        event.stop()
        if event.row_key.startswith(RUN_KEY_PREFIX):
            self.action_fold()
        else:
            self.action_inspect()
