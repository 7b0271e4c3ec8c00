"""What the Jobs screen does with the chosen jobs outside itself: cancel, logs, the inspector,
the run overview, pulling results, and the Space / g menus (a mixin of JobsScreen)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from repx_tui.ui.messages import (
    WORKFLOW_ACTIONS,
    CancelSelection,
    CopyOutputPaths,
    OpenLog,
    SelectionWanted,
    WorkflowRequested,
)
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
    def _screen(self) -> JobsScreen:
        """The screen this is mixed into, typed as such."""
        return cast("JobsScreen", self)

    def action_cancel(self) -> None:
        """The confirmation lists the jobs with their dependants; it asks the App to cancel."""
        screen = self._screen()
        job_ids = screen.chosen_jobs()
        if not job_ids:
            screen.notify("Nothing to cancel: move to a job or mark some with x", severity="warning")
            return
        screen.app.push_screen(CancelScreen(job_ids, screen.model), screen._cancel_closed)

    def _cancel_closed(self, confirmed: bool | None) -> None:
        screen = self._screen()
        if confirmed:
            screen.action_clear_marks()

    def on_cancel_selection(self, _message: CancelSelection) -> None:
        screen = self._screen()
        screen.action_cancel()

    def on_selection_wanted(self, message: SelectionWanted) -> None:
        """A workflow key or palette entry (run, retry) applies to what is chosen here."""
        screen = self._screen()
        screen.post_message(WorkflowRequested(message.action, screen.chosen_jobs(), bool(screen.marked)))

    def action_open_logs(self, stream: str = "stdout") -> None:
        screen = self._screen()
        key = screen.cursor_key()
        if key and key in screen.model.jobs:
            screen.post_message(OpenLog(key, stream))

    def action_inspect(self) -> None:
        """The job inspector for the job under the cursor; leaving it puts the cursor on the
        last job looked at there (it can jump along dependencies)."""
        screen = self._screen()
        key = screen.cursor_key()
        if key and key in screen.model.jobs:
            screen.app.push_screen(InspectorScreen(key, screen.model), screen._inspector_closed)
        else:
            screen.notify("Move to a job to inspect it", severity="warning")

    def _inspector_closed(self, job_id: str | None) -> None:
        screen = self._screen()
        if job_id and job_id in screen.table.rows:
            screen.table.move_cursor(row=screen.table.get_row_index(job_id))

    def action_overview(self) -> None:
        screen = self._screen()
        screen.app.push_screen(OverviewScreen(screen.model))

    def action_pull(self) -> None:
        """Pull the marked jobs (or the row's: a run row pulls its shown jobs) into a local tree."""
        screen = self._screen()
        job_ids = screen.chosen_jobs()
        name = screen._target_name()
        if not job_ids or name is None:
            screen.notify("Nothing to pull: pick a target, move to a job or mark some with x", severity="warning")
            return
        screen.app.push_screen(PullScreen(job_ids, screen.model, name))

    def action_action_menu(self) -> None:
        screen = self._screen()
        screen._push_menu("Actions", ACTION_MENU)

    def action_go_menu(self) -> None:
        screen = self._screen()
        screen._push_menu("Go to", GO_MENU)

    def _push_menu(self, title: str, entries: tuple[tuple[str, str, str], ...]) -> None:
        """Menus are composed once and installed, so opening one again costs no compose."""
        screen = self._screen()
        name = f"menu:{title}"
        if not screen.app.is_screen_installed(name):
            screen.app.install_screen(KeyMenu(title, list(entries)), name)
        screen.app.push_screen(name, screen._menu_chosen)

    def _menu_chosen(self, action: str | None) -> None:
        screen = self._screen()
        if action in ("targets", "sync", "jobs"):
            screen.app.switch_mode(action)
        elif action in ("logs", "stderr"):
            screen.action_open_logs("stderr" if action == "stderr" else "stdout")
        elif action == "yank":
            screen.post_message(CopyOutputPaths(screen.chosen_jobs()))
        elif action in WORKFLOW_ACTIONS:
            screen.post_message(WorkflowRequested(action, screen.chosen_jobs(), bool(screen.marked)))
        elif action is not None:
            {"cancel": screen.action_cancel, "mark": screen.action_toggle_mark, "inspect": screen.action_inspect,
             "pull": screen.action_pull, "overview": screen.action_overview,
             "top": screen.action_go_top, "end": screen.action_go_end}[action]()  # fmt: skip
