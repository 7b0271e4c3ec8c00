"""SLURM's side of status: the squeue/sacct commands, their parsing, and what their states mean."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from repx_tui.backend.events import JobStateKind
from repx_tui.backend.textnum import unsigned

SEP = "\x1f"  # ASCII unit separator: cannot appear in a SLURM job name typed by a person
SQUEUE_FIELDS = ("%i", "%j", "%T", "%M", "%N", "%r", "%P")
SQUEUE_FORMAT = SEP.join(SQUEUE_FIELDS)
# The first seven decide state and the table's cells; the rest are what efficiency and the
# inspector read (CPU time, request, limit, times). Asked once per finished job, then cached.
SACCT_COLUMNS = (
    "JobID", "JobName", "State", "ExitCode", "Elapsed", "MaxRSS", "NodeList",
    "TotalCPU", "ReqMem", "AllocCPUS", "Timelimit", "Submit", "Start", "End",
)  # fmt: skip
SACCT_FIELDS = ",".join(SACCT_COLUMNS)
_SACCT_CORE = 7  # lines with only the first seven columns (older callers, tests) still parse

K = JobStateKind


@dataclass(frozen=True, slots=True)
class QueueEntry:
    slurm_id: str
    name: str
    state: str  # squeue %T, e.g. RUNNING, PENDING
    elapsed: str
    node: str
    reason: str
    partition: str


@dataclass(frozen=True, slots=True)
class AcctEntry:
    slurm_id: str
    name: str
    state: str  # first word of sacct State ("CANCELLED by 0" -> CANCELLED)
    exit_code: int | None
    signal: int | None
    elapsed: str
    max_rss: str
    node: str
    total_cpu: str = ""  # sacct TotalCPU of the allocation (all steps): [D-][HH:]MM:SS[.mmm]
    req_mem: str = ""  # ReqMem: "500M" per node (22.05+), "500Mn"/"4000Mc" on older SLURM
    alloc_cpus: str = ""
    time_limit: str = ""  # Timelimit: "00:05:00", "1-00:00:00", "UNLIMITED", "Partition_Limit"
    submit: str = ""  # ISO local times as sacct prints them, "Unknown"/"None" when not set
    start: str = ""
    end: str = ""
    steps_open: bool = False  # a step not final yet: its usage (MaxRSS) is still to come


# --- squeue / sacct parsing ----------------------------------------------------------------


def squeue_argv(user: str) -> list[str]:
    """One squeue call for all our jobs: user filter pushed to slurmctld, fixed format."""
    return ["squeue", "--noheader", "--array", "-u", user, "-o", SQUEUE_FORMAT]


def sacct_argv(slurm_ids: Iterable[str]) -> list[str]:
    # No -X: the allocation line has no MaxRSS, the `.batch` step line carries it.
    return [
        "sacct", "-n", "-P", "--delimiter", SEP, "-o", SACCT_FIELDS,
        "-j", ",".join(sorted(set(slurm_ids), key=_id_sort_key)),
    ]  # fmt: skip


def _id_sort_key(slurm_id: str) -> tuple[int, str]:
    head = slurm_id.split("_", 1)[0]
    return (unsigned(head) or 0, slurm_id)


def parse_squeue(text: str) -> list[QueueEntry]:
    """Lines with the wrong number of fields are dropped (e.g. a warning on stdout)."""
    entries = []
    width = len(SQUEUE_FIELDS)
    for line in text.splitlines():
        parts = line.split(SEP)
        if len(parts) != width or not parts[0].strip():
            continue
        sid, name, state, elapsed, node, reason, partition = parts
        entries.append(
            QueueEntry(
                sid.strip(), name, state.strip(), elapsed.strip(), node.strip(), reason.strip(), partition.strip()
            )
        )
    return entries


class SqueueParser:
    """parse_squeue with a cache of the previous refresh's lines: between two polls most lines
    are byte-identical, and an identical line yields the identical QueueEntry object (which
    lets merge_states reuse the job's previous state). Memory: one refresh's lines."""

    def __init__(self) -> None:
        self._cache: dict[str, QueueEntry] = {}

    def parse(self, text: str) -> list[QueueEntry]:
        old, new = self._cache, {}
        entries = []
        for line in text.splitlines():
            entry = old.get(line)
            if entry is None:
                parsed = parse_squeue(line)
                if not parsed:
                    continue
                entry = parsed[0]
            new[line] = entry
            entries.append(entry)
        self._cache = new
        return entries


def parse_sacct(text: str) -> dict[str, AcctEntry]:
    """sacct -P lines -> one entry per job allocation, MaxRSS taken from its steps."""
    allocations: dict[str, AcctEntry] = {}
    step_rss: dict[str, str] = {}
    open_steps: set[str] = set()
    for line in text.splitlines():
        parts = line.split(SEP)
        if len(parts) not in (_SACCT_CORE, len(SACCT_COLUMNS)):
            continue
        sid, name, state, exit_code, elapsed, max_rss, node = parts[:_SACCT_CORE]
        if "." in sid:  # a step: 123.batch, 123.0, 123.extern
            parent = sid.split(".", 1)[0]
            if max_rss and _rss_bytes(max_rss) > _rss_bytes(step_rss.get(parent, "")):
                step_rss[parent] = max_rss
            if not slurm_kind(state.split()[0] if state.split() else "").finished:
                open_steps.add(parent)
            continue
        code, signal = _parse_exit(exit_code)
        words = state.split()
        total_cpu, req_mem, alloc_cpus, limit, submit, start, end = (
            [p.strip() for p in parts[_SACCT_CORE:]] + [""] * 7
        )[:7]
        allocations[sid] = AcctEntry(
            sid, name, words[0] if words else "", code, signal, elapsed, max_rss, node,
            total_cpu, req_mem, alloc_cpus, limit, submit, start, end,
        )  # fmt: skip
    for sid, rss in step_rss.items():
        entry = allocations.get(sid)
        if entry is not None and not entry.max_rss:
            allocations[sid] = replace(entry, max_rss=rss)
    for sid in open_steps & allocations.keys():
        allocations[sid] = replace(allocations[sid], steps_open=True)
    return allocations


def _parse_exit(text: str) -> tuple[int | None, int | None]:
    code, _, signal = text.partition(":")
    try:
        return int(code), (int(signal) if signal else None)
    except ValueError:
        return None, None


_RSS_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _rss_bytes(text: str) -> float:
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([KMGT]?)", text.strip())
    return float(m.group(1)) * _RSS_UNITS[m.group(2)] if m else -1.0


def slurm_error(stderr: str) -> str | None:
    """SLURM commands can exit 0 and still have failed ("Socket timed out"): read stderr."""
    for line in stderr.splitlines():
        low = line.lower()
        if "error" in low or "timed out" in low or "unable to contact" in low:
            return line.strip()
    return None


_QUEUE_STATES = {
    "RUNNING": K.RUNNING, "COMPLETING": K.RUNNING, "CONFIGURING": K.RUNNING, "SIGNALING": K.RUNNING,
    "STAGE_OUT": K.RUNNING, "RESIZING": K.RUNNING,
    "PENDING": K.QUEUED, "REQUEUED": K.QUEUED, "REQUEUE_HOLD": K.QUEUED, "REQUEUE_FED": K.QUEUED,
    "SUSPENDED": K.QUEUED, "STOPPED": K.QUEUED, "RESV_DEL_HOLD": K.QUEUED,
}  # fmt: skip
_FINAL_STATES = {
    "COMPLETED": K.SUCCEEDED, "FAILED": K.FAILED, "NODE_FAIL": K.FAILED, "BOOT_FAIL": K.FAILED,
    "SPECIAL_EXIT": K.FAILED, "PREEMPTED": K.CANCELLED, "REVOKED": K.CANCELLED,
    "CANCELLED": K.CANCELLED, "DEADLINE": K.TIMEOUT, "TIMEOUT": K.TIMEOUT,
    "OUT_OF_MEMORY": K.OUT_OF_MEMORY,
}  # fmt: skip


def slurm_kind(state: str) -> JobStateKind:
    return _QUEUE_STATES.get(state) or _FINAL_STATES.get(state) or K.UNKNOWN


_SG_UNIT = re.compile(r"^(?:anchor-(?P<a>.+)|(?P<g>.+)-gather|(?P<s>.+)-scatter|(?P<b>.+)-b\d+-.+)$")


def owner_job(name: str, jobs: Mapping[str, Any]) -> str | None:
    """The Lab job a SLURM job name belongs to: the id itself, or a scatter-gather unit of it."""
    if name in jobs:
        return name
    m = _SG_UNIT.match(name)
    if m:
        owner = next(g for g in m.groups() if g)
        if owner in jobs:
            return owner
    return None


def queue_by_job(entries: Iterable[QueueEntry], jobs: Mapping[str, Any]) -> dict[str, QueueEntry]:
    """Our jobs' queue entries; when a job has several (SG units), a running one represents it."""
    found: dict[str, QueueEntry] = {}
    for entry in entries:
        job = owner_job(entry.name, jobs)
        if job is None:
            continue
        have = found.get(job)
        if have is None or _queue_rank(entry, job) > _queue_rank(have, job):
            found[job] = entry
    return found


def _queue_rank(entry: QueueEntry, job: str) -> tuple[int, int]:
    return (slurm_kind(entry.state) is K.RUNNING, entry.name == job)
