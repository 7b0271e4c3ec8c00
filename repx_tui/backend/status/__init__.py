"""Job status: one merged, change-only view of a Lab's jobs on a target.

Sources, per refresh:
  * outcome markers (`outputs/<job>/repx/{SUCCESS,FAIL}` + exit codes), the submission record
    and the local agent's state, all in ONE remote round trip (a small bash script);
  * `squeue` once, for this user only (the filter runs on the server), explicit format with the
    0x1F unit separator so no job name can break a line apart;
  * `sacct` once, only for jobs we know were submitted that left the queue without a marker.

Parsing and merging are pure functions (unit-tested without a target); `StatusWatcher` does
the I/O and the timing: polls are chained, never overlapping, and any failure (slurmctld down,
slurmdbd down, connection lost) marks the last known states stale instead of raising.

  slurm.py     squeue/sacct commands, their parsing, what SLURM states mean
  snapshot.py  the one-round-trip marker scan (MARKER_SCRIPT) and its parsing
  merge.py     sources -> one JobState per job, change detection, run roll-ups, the Lab view
  watcher.py   StatusWatcher: fetch, merge, publish JobsChanged
"""

from repx_tui.backend.status.merge import (
    LabView,
    MergeCache,
    RollUp,
    StatusInputs,
    diff_states,
    merge_states,
    needs_sacct,
    roll_up,
    roll_up_kind,
    roll_up_runs,
    states_json,
)
from repx_tui.backend.status.slurm import (
    SEP,
    AcctEntry,
    QueueEntry,
    SqueueParser,
    owner_job,
    parse_sacct,
    parse_squeue,
    queue_by_job,
    sacct_argv,
    slurm_error,
    slurm_kind,
    squeue_argv,
)
from repx_tui.backend.status.snapshot import (
    MARKER_SCRIPT,
    AgentJob,
    RemoteSnapshot,
    Submission,
    agent_dir,
    ours,
    parse_snapshot,
    submissions_dir,
)
from repx_tui.backend.status.watcher import COMMAND_TIMEOUT, DEFAULT_INTERVAL, MIN_INTERVAL, StatusWatcher

__all__ = [
    "COMMAND_TIMEOUT",
    "DEFAULT_INTERVAL",
    "MARKER_SCRIPT",
    "MIN_INTERVAL",
    "SEP",
    "AcctEntry",
    "AgentJob",
    "LabView",
    "MergeCache",
    "QueueEntry",
    "RemoteSnapshot",
    "RollUp",
    "SqueueParser",
    "StatusInputs",
    "StatusWatcher",
    "Submission",
    "agent_dir",
    "diff_states",
    "merge_states",
    "needs_sacct",
    "ours",
    "owner_job",
    "parse_sacct",
    "parse_snapshot",
    "parse_squeue",
    "queue_by_job",
    "roll_up",
    "roll_up_kind",
    "roll_up_runs",
    "sacct_argv",
    "slurm_error",
    "slurm_kind",
    "squeue_argv",
    "states_json",
    "submissions_dir",
]
