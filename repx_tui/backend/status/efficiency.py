"""sacct's accounting fields -> Efficiency (CPU, memory and time used against what was asked).

Pure parsing: durations (`Elapsed`, `TotalCPU`, `Timelimit`), sizes (`MaxRSS`, `ReqMem` with
the per-node `n` / per-CPU `c` suffix of older SLURM) and the ISO times sacct prints.
"""

from __future__ import annotations

import datetime as dt
import re

from repx_tui.backend.events import Efficiency
from repx_tui.backend.status.slurm import AcctEntry
from repx_tui.backend.textnum import unsigned

_DURATION = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGTP]?)([nc]?)$")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def parse_duration(text: str) -> float | None:
    """Seconds of `[D-][HH:]MM:SS[.mmm]`; None for UNLIMITED, Partition_Limit, INVALID, ""."""
    match = _DURATION.match(text.strip())
    if not match:
        return None
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def parse_size(text: str, cpus: int | None = None) -> int | None:
    """Bytes of a SLURM size (`221252K`, `1.5G`, `500M`); a per-CPU request (`4000Mc`) is
    multiplied by the allocated CPUs (None when that is unknown)."""
    match = _SIZE.match(text.strip())
    if not match:
        return None
    number, unit, per = match.groups()
    value = float(number) * _UNITS[unit or ("M" if per else "")]
    if per == "c":
        if not cpus:
            return None
        value *= cpus
    return int(value)


def parse_time(text: str) -> float | None:
    """Epoch seconds of sacct's `2026-12-01T12:31:42` (the target's local time, read as this
    machine's: only differences between two such times are used)."""
    try:
        return dt.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        return None


def _int(text: str) -> int | None:
    return unsigned(text.strip())


def _shown(text: str) -> str | None:
    text = text.strip()
    return None if text in ("", "Unknown", "None") else text


def efficiency_of(entry: AcctEntry) -> Efficiency:
    cpus = _int(entry.alloc_cpus)
    return Efficiency(
        elapsed_s=parse_duration(entry.elapsed),
        cpu_s=parse_duration(entry.total_cpu),
        cpus=cpus,
        max_rss=parse_size(entry.max_rss) if entry.max_rss else None,
        req_mem=parse_size(entry.req_mem, cpus) if entry.req_mem else None,
        time_limit_s=parse_duration(entry.time_limit),
        submit=_shown(entry.submit),
        start=_shown(entry.start),
        end=_shown(entry.end),
        start_epoch=parse_time(entry.start),
        end_epoch=parse_time(entry.end),
    )


# SIGKILL'ed by SLURM with a peak at (or, sampled, just under) its limit: the memory enforcement
# of sites without cgroups (JobAcctGatherParams=OverMemoryKill) records such a job as FAILED or
# CANCELLED, signal 9, where a cgroup site records OUT_OF_MEMORY.
_KILLED_STATES = frozenset({"FAILED", "CANCELLED"})
_NEAR_LIMIT = 0.95


def killed_for_memory(entry: AcctEntry) -> bool:
    """Whether SLURM killed this job for passing its memory request (see _KILLED_STATES)."""
    if entry.state not in _KILLED_STATES or entry.signal != 9 or not entry.max_rss or not entry.req_mem:
        return False
    eff = efficiency_of(entry)
    return eff.max_rss is not None and bool(eff.req_mem) and eff.max_rss >= _NEAR_LIMIT * (eff.req_mem or 0)


def record_complete(entry: AcctEntry) -> bool:
    """Whether a final record has all slurmdbd will write. Right after a job ends it may answer
    with a partial one (seen on 22.05: named "allocation", ReqMem "16?", no Timelimit, or the
    steps' usage still to come); a job killed by signal 9 needs its usage (MaxRSS) to be told
    apart from one SLURM killed for its memory. A short job may have no MaxRSS at all."""
    if not entry.time_limit or parse_size(entry.req_mem, 1) is None:
        return False
    return bool(entry.max_rss) or entry.signal != 9


def human_bytes(n: float | None) -> str:
    """Short sizes for cells and hints: 512K, 1.9G."""
    if n is None:
        return "?"
    for unit in ("", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.0f}{unit or 'B'}" if unit in ("", "K") or n >= 100 else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}T"


def human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock
