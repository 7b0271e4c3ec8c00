"""The messages between the screens and the App.

Up (a screen asks, the App routes it to the Controller or answers it): posted by a screen with
`self.post_message(...)`, they bubble to the App. A screen never calls an App method.

Down (the App tells the screens what changed): the App applies each backend event to its models
first, then posts one of these to every mounted screen; a screen that has no handler ignores it.
They do not bubble, so they never come back up to the App.

    key press -> screen -> (up) message -> App -> Controller -> TargetSession
    TargetSession -> event -> Controller -> BackendEventMessage -> App -> (down) message -> screens
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from textual.message import Message

from repx_tui.backend.events import Event, LabPresence, RunPlan

# --- up: screen -> App ------------------------------------------------------------------


class TargetPicked(Message):
    """Targets screen: work on this target (then the Jobs screen of the open Lab)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class CheckTargets(Message):
    """Targets screen: run the health checks (all, or only the targets not checked yet)."""

    def __init__(self, only_unchecked: bool = False) -> None:
        super().__init__()
        self.only_unchecked = only_unchecked


class CancelRequested(Message):
    """Cancel dialog, confirmed: cancel exactly these jobs (dependants already included)."""

    def __init__(self, job_ids: Sequence[str]) -> None:
        super().__init__()
        self.job_ids = list(job_ids)


class OpenLog(Message):
    """Jobs screen: open the Logs screen of a job (of one scatter-gather unit with `sub`)."""

    def __init__(self, job_id: str, stream: str = "stdout", sub: str | None = None) -> None:
        super().__init__()
        self.job_id = job_id
        self.stream = stream
        self.sub = sub


class FollowLog(Message):
    """Logs screen: follow this log from now on (it replaces the one followed before).
    `sub` is a scatter-gather unit (`scatter`, `gather`, `branch-0/step-x`), None for the job's
    own log; `token` comes back in `LogFollowing` once the App started following it."""

    def __init__(self, job_id: str, stream: str, sub: str | None, token: int) -> None:
        super().__init__()
        self.job_id = job_id
        self.stream = stream
        self.sub = sub
        self.token = token


class ListLogUnits(Message):
    """Logs screen: which units of this job have a log on the target (answered by LogUnitsListed)."""

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id


class InspectJob(Message):
    """Inspector: find out everything about this job (answered by a JobInspection BackendUpdate)."""

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id


class PullRequested(Message):
    """Pull dialog: bring these jobs' outputs into dest (PullProgress / PullSummary come down)."""

    def __init__(self, job_ids: Sequence[str], dest: str) -> None:
        super().__init__()
        self.job_ids = list(job_ids)
        self.dest = dest


class CopyOutputPaths(Message):
    """Jobs screen: copy `<base_path>/outputs/<job>/out` of these jobs to the clipboard."""

    def __init__(self, job_ids: Sequence[str]) -> None:
        super().__init__()
        self.job_ids = list(job_ids)


# Workflow actions (Space menu, keys, command palette): what WorkflowRequested.action may be.
WORKFLOW_ACTIONS = ("run", "retry", "sync-only", "open-lab", "switch-target")


class WorkflowRequested(Message):
    """Jobs screen (Space menu, or asked by SelectionWanted): run / retry / sync only / open a Lab
    / switch target, with the jobs chosen there (`marked`: they were marked, not just under the cursor)."""

    def __init__(self, action: str, job_ids: Sequence[str] = (), marked: bool = False) -> None:
        super().__init__()
        self.action = action
        self.job_ids = list(job_ids)
        self.marked = marked


class DescribeLabs(Message):
    """Lab picker: read these Labs and ask the chosen target how much of each it has. `browsed`:
    the Lab highlighted in the folder browser (its own worker: the next one replaces it, and the
    list's answers are never cut short)."""

    def __init__(self, paths: Sequence[str], browsed: bool = False) -> None:
        super().__init__()
        self.paths = list(paths)
        self.browsed = browsed


@dataclass(frozen=True)
class RunRequest:
    """What the Run dialog chose. `specs` are runs, @groups or job ids (resolved with their
    dependencies); a retry names its jobs exactly and is submitted without a sync."""

    mode: str  # "run" (sync + submit) | "retry" (submit only)
    specs: tuple[str, ...]
    scheduler: str
    resources: str | None = None  # a resources.toml on top of the XDG and ./resources.toml ones
    execution_type: str | None = None  # None: the Lab's / target's default
    allow_missing_runs: bool = False


class PlanRun(Message):
    """Run dialog: what would this request do (answered by RunPlanned with the same token)?"""

    def __init__(self, request: RunRequest, token: int) -> None:
        super().__init__()
        self.request = request
        self.token = token


# --- down: App -> screens -----------------------------------------------------------------


class Down(Message):
    """Base of the messages the App posts to its screens: they stay where they are posted."""

    bubble = False


class BackendUpdate(Down):
    """A backend event, already applied to the App's models (sync, targets, cancel, logs)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class JobsUpdated(Down):
    """The jobs model changed: these jobs' rows and these runs' roll-ups need a redraw."""

    def __init__(self, job_ids: set[str], runs: set[str]) -> None:
        super().__init__()
        self.job_ids = job_ids
        self.runs = runs


class LabOpened(Down):
    """The jobs model now holds a (new) Lab's jobs: lay the rows out again."""


class TargetsChecking(Down):
    """Health checks of these targets started."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self.names = list(names)


class CancelSelection(Down):
    """Command palette: cancel what is selected on the Jobs screen (with the confirmation)."""


class LogFollowing(Down):
    """The follow asked for with this token has started: every LogChunk after this message
    belongs to it, every one before to a follow that was replaced."""

    def __init__(self, token: int) -> None:
        super().__init__()
        self.token = token


class LogUnitsListed(Down):
    """The units of a job with a log on the target: "" is the job's own log."""

    def __init__(self, job_id: str, units: Sequence[str]) -> None:
        super().__init__()
        self.job_id = job_id
        self.units = list(units)


class SelectionWanted(Down):
    """Keys and command palette: the Jobs screen answers with WorkflowRequested(action, its selection)."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action


@dataclass(frozen=True)
class LabInfo:
    """What the Lab picker shows of one Lab."""

    lab_id: str
    git_hash: str
    runs: Mapping[str, int] = field(default_factory=dict)  # run -> number of jobs
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    jobs: int = 0


class LabDescribed(Down):
    """A Lab of the picker was read (`info`, or `error`), then probed on the target (`presence`,
    or `presence_error`); sent once after reading and again after the probe."""

    def __init__(self, path: str, info: LabInfo | None = None, error: str | None = None,
                 presence: LabPresence | None = None, presence_error: str | None = None) -> None:  # fmt: skip
        super().__init__()
        self.path = path
        self.info = info
        self.error = error
        self.presence = presence
        self.presence_error = presence_error


class RunPlanned(Down):
    """The answer to PlanRun: the resolved jobs and the plan, or why there is none."""

    def __init__(self, token: int, job_ids: Sequence[str] = (), plan: RunPlan | None = None,
                 error: str | None = None) -> None:  # fmt: skip
        super().__init__()
        self.token = token
        self.job_ids = list(job_ids)
        self.plan = plan
        self.error = error


class SyncReset(Down):
    """A new sync starts: the sync model is empty again."""


class SyncFinished(Down):
    """The sync (and submission) ended; `ok` False when something failed (the view stays)."""

    def __init__(self, ok: bool, summary: str) -> None:
        super().__init__()
        self.ok = ok
        self.summary = summary
