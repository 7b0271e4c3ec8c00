"""What the Jobs screen does with the chosen jobs outside itself: cancel, logs, the inspector,
the run overview, pulling results, and the Space / g menus (a mixin of JobsScreen)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from repx_tui.ui.messages import (
    WORKFLOW_ACTIONS, CancelSelection, CopyOutputPaths, OpenLog, SelectionWanted, WorkflowRequested,
)  # fmt: skip
from repx_tui.ui.screens.cancel import CancelScreen
from repx_tui.ui.screens.inspector import InspectorScreen
from repx_tui.ui.screens.overview import OverviewScreen
from repx_tui.ui.screens.pull import PullScreen
from repx_tui.ui.widgets.menu import KeyMenu

if TYPE_CHECKING:
    from repx_tui.ui.screens.jobs import JobsScreen

# The Space (actions) and g (go to) menus: (key, label, what _menu_chosen does).
ACTION_MENU = (
    ("c", "Cancel selected", "cancel"),
    ("i", "Inspect job", "inspect"),
    ("p", "Pull results", "pull"),
    ("v", "Run overview", "overview"),
    ("l", "Logs (stdout)", "logs"),
    ("e", "Logs (stderr)", "stderr"),
    ("y", "Copy output path", "yank"),
    ("m", "Mark / unmark", "mark"),
    # the workflow (App-side, ui/workflow.py): posted up as WorkflowRequested with the selection
    ("r", "Run… (sync + submit)", "run"),
    ("f", "Retry failed/cancelled", "retry"),
    ("s", "Sync only", "sync-only"),
    ("o", "Open another Lab…", "open-lab"),
    ("t", "Switch target", "switch-target"),
)
GO_MENU = (
    ("g", "Top", "top"),
    ("e", "End", "end"),
    ("l", "Logs", "logs"),
    ("t", "Targets", "targets"),
    ("s", "Sync", "sync"),
    ("j", "Jobs", "jobs"),
)


class JobActions:
    def action_cancel(self: JobsScreen) -> None:
        """The confirmation lists the jobs with their dependants; it asks the App to cancel."""
        job_ids = self.chosen_jobs()
        if not job_ids:
            self.notify("Nothing to cancel: move to a job or mark some with x", severity="warning")
            return
        self.app.push_screen(CancelScreen(job_ids, self.model), self._cancel_closed)

    def _cancel_closed(self: JobsScreen, confirmed: bool | None) -> None:
        if confirmed:
            self.action_clear_marks()

    def on_cancel_selection(self: JobsScreen, _message: CancelSelection) -> None:
        self.action_cancel()

    def on_selection_wanted(self: JobsScreen, message: SelectionWanted) -> None:
        """A workflow key or palette entry (run, retry) applies to what is chosen here."""
        self.post_message(WorkflowRequested(message.action, self.chosen_jobs(), bool(self.marked)))

    def action_open_logs(self: JobsScreen, stream: str = "stdout") -> None:
        key = self.cursor_key()
        if key and key in self.model.jobs:
            self.post_message(OpenLog(key, stream))

    def action_inspect(self: JobsScreen) -> None:
        """The job inspector for the job under the cursor; leaving it puts the cursor on the
        last job looked at there (it can jump along dependencies)."""
        key = self.cursor_key()
        if key and key in self.model.jobs:
            self.app.push_screen(InspectorScreen(key, self.model), self._inspector_closed)
        else:
            self.notify("Move to a job to inspect it", severity="warning")

    def _inspector_closed(self: JobsScreen, job_id: str | None) -> None:
        if job_id and job_id in self.table.rows:
            self.table.move_cursor(row=self.table.get_row_index(job_id))

    def action_overview(self: JobsScreen) -> None:
        self.app.push_screen(OverviewScreen(self.model))

    def action_pull(self: JobsScreen) -> None:
        """Pull the marked jobs (or the row's: a run row pulls its shown jobs) into a local tree."""
        job_ids = self.chosen_jobs()
        name = self._target_name()
        if not job_ids or name is None:
            self.notify("Nothing to pull: pick a target, move to a job or mark some with x", severity="warning")
            return
        self.app.push_screen(PullScreen(job_ids, self.model, name))

    def action_action_menu(self: JobsScreen) -> None:
        self._push_menu("Actions", ACTION_MENU)

    def action_go_menu(self: JobsScreen) -> None:
        self._push_menu("Go to", GO_MENU)

    def _push_menu(self: JobsScreen, title: str, entries: tuple[tuple[str, str, str], ...]) -> None:
        """Menus are composed once and installed, so opening one again costs no compose."""
        name = f"menu:{title}"
        if not self.app.is_screen_installed(name):
            self.app.install_screen(KeyMenu(title, list(entries)), name)
        self.app.push_screen(name, self._menu_chosen)

    def _menu_chosen(self: JobsScreen, action: str | None) -> None:
        if action in ("targets", "sync", "jobs"):
            self.app.switch_mode(action)
        elif action in ("logs", "stderr"):
            self.action_open_logs("stderr" if action == "stderr" else "stdout")
        elif action == "yank":
            self.post_message(CopyOutputPaths(self.chosen_jobs()))
        elif action in WORKFLOW_ACTIONS:
            self.post_message(WorkflowRequested(action, self.chosen_jobs(), bool(self.marked)))
        elif action is not None:
            {"cancel": self.action_cancel, "mark": self.action_toggle_mark, "inspect": self.action_inspect,
             "pull": self.action_pull, "overview": self.action_overview,
             "top": self.action_go_top, "end": self.action_go_end}[action]()  # fmt: skip
