"""The Jobs table's columns for a terminal width, and the cells of the efficiency columns.

Widths are decided here from the terminal width (the table never measures cells): the state,
SLURM id, elapsed, node and reason columns fit at 80 columns; run and stage only appear when job
and reason keep room. With efficiency on (`e`), cpu% / mem% / time% come in and, when the room is
short, take the place of node and then SLURM id.
"""

from __future__ import annotations

from rich.text import Text

from repx_tui.backend.events import Efficiency, JobState, JobStateKind
from repx_tui.ui.widgets.jobtable import Column

# (key, header, width); 0 = shares the room left over.
JOB_COLUMN = ("job", "job", 0)
REASON_COLUMN = ("reason", "reason / exit", 0)
FIXED_COLUMNS = (
    ("sel", " ", 1),
    ("state", "state", 12),
    ("elapsed", "elapsed", 8),
    ("slurm", "slurm id", 8),
    ("node", "node", 8),
)
EFFICIENCY_COLUMNS = (("cpu", "cpu%", 5), ("mem", "mem%", 5), ("tlim", "time%", 5))
DROPPABLE = ("node", "slurm")  # given up, in this order, for the efficiency columns on a narrow screen
OPTIONAL_COLUMNS = (("run", "run", 10), ("stage", "stage", 14))  # in this order of priority
# Cells job + reason must keep for an optional column to be shown: the flat list needs its run
# (names without hash suffice there), the stage type only fits beside full job ids.
JOB_WIDTH = (20, 36)  # min, max
ROOM_FOR = {"run": 22 + 18, "stage": JOB_WIDTH[1] + 18}
REASON_MIN = 12
REASON_WANTED = 18  # the job column grows to JOB_WIDTH max only while reason keeps this
HASH_PREFIX_MIN_WIDTH = 30  # a narrower job column shows job names without the hash prefix
STATE_COLUMNS = ("state", "elapsed", "slurm", "node", "reason")

Spec = tuple[str, str, int]


def layout_columns(width: int, tree: bool, efficiency: bool = False) -> list[Column]:
    """Columns that fit `width` cells: the fixed ones, optional ones while job and reason keep room."""
    fixed = list(FIXED_COLUMNS) + (list(EFFICIENCY_COLUMNS) if efficiency else [])
    for key in DROPPABLE if efficiency else ():
        if _room(width, fixed) >= JOB_WIDTH[0] + REASON_MIN:
            break
        fixed = [c for c in fixed if c[0] != key]
    optional = [c for c in OPTIONAL_COLUMNS if not (tree and c[0] == "run")]  # tree rows show the run
    chosen: list[Spec] = []
    for column in optional:
        trial = [*chosen, column]
        if _room(width, [*fixed, *trial]) >= ROOM_FOR[column[0]]:
            chosen = trial
    room = _room(width, [*fixed, *chosen])
    job = max(JOB_WIDTH[0], min(JOB_WIDTH[1], max(room - REASON_WANTED, room - REASON_MIN - 2)))
    by_key = {c[0]: c for c in fixed}
    order = [by_key["sel"], (*JOB_COLUMN[:2], job), *[c for c in OPTIONAL_COLUMNS if c in chosen]]
    order += [by_key[k] for k in ("state", "slurm", "elapsed", "node") if k in by_key]
    order += [c for c in EFFICIENCY_COLUMNS if c[0] in by_key]
    order.append((*REASON_COLUMN[:2], max(room - job, REASON_MIN)))
    return [Column(*c) for c in order]


def _room(width: int, columns: list[Spec]) -> int:
    """Cells left for job + reason after these columns and one space between each."""
    separators = len(columns) + 1  # the job and reason columns add one more gap between them all
    return width - sum(c[2] for c in columns) - separators


# --- efficiency cells ----------------------------------------------------------------------------

LOW_CPU = 0.25  # under a quarter of the CPUs asked for were busy: a smaller request would do
HIGH_USE = 0.9  # memory or time this close to the request: the next run may not fit


def _percent(value: float) -> str:
    return f"{min(value, 9.99) * 100:.0f}%"


def efficiency_cells(state: JobState) -> tuple[Text | str, Text | str, Text | str]:
    """cpu%, mem%, time% of a finished SLURM job: OUT_OF_MEMORY and TIMEOUT in bold red, a
    request nearly used up in yellow, CPUs mostly idle in yellow; "?" where sacct has no sample."""
    eff: Efficiency | None = state.efficiency
    if eff is None:
        return "", "", ""
    oom, timeout = state.state is JobStateKind.OUT_OF_MEMORY, state.state is JobStateKind.TIMEOUT
    cpu = eff.cpu
    cpu_cell: Text | str = "" if cpu is None else Text(_percent(cpu), style="yellow" if cpu < LOW_CPU else "")
    mem = eff.mem
    if oom:
        mem_cell: Text | str = Text("OOM" if mem is None else _percent(mem), style="bold red")
    elif mem is None:
        mem_cell = Text("?", style="grey50") if eff.req_mem else ""
    else:
        mem_cell = Text(_percent(mem), style="yellow" if mem >= HIGH_USE else "")
    used = eff.time
    if timeout:
        time_cell: Text | str = Text("T/O" if used is None else _percent(used), style="bold red")
    elif used is None:
        time_cell = ""
    else:
        time_cell = Text(_percent(used), style="yellow" if used >= HIGH_USE else "")
    return cpu_cell, mem_cell, time_cell
