"""Validators for values that end up in an `#SBATCH` line: mem, time, cpus, partition, options.

Each `*_error(value)` returns None for a value SLURM takes as one argument, else a short reason
(no file or key: the caller names those). They are strict on purpose: a value with a space, a
newline or a stray `-` could otherwise become a second option in the script header.
Types follow upstream's Lab and resources.toml: mem, time and partition are strings, cpus an
integer, sbatch_opts a list of strings.
"""

from __future__ import annotations

import re
from typing import Any

MAX_CPUS = 65_535  # SLURM keeps cpus-per-task in 16 bits
MAX_VALUE_CHARS = 256

_MEM = re.compile(r"(\d{1,15})([KMGT]?)B?", re.IGNORECASE | re.ASCII)
_TIME_FORMS = (
    r"\d+",  # minutes
    r"\d+:\d{1,2}",  # minutes:seconds
    r"\d+:\d{1,2}:\d{1,2}",  # hours:minutes:seconds
    r"\d+-\d{1,2}",  # days-hours
    r"\d+-\d{1,2}:\d{1,2}",  # days-hours:minutes
    r"\d+-\d{1,2}:\d{1,2}:\d{1,2}",  # days-hours:minutes:seconds
)
_TIME = re.compile("|".join(f"(?:{form})" for form in _TIME_FORMS), re.ASCII)
_TIME_WORDS = ("UNLIMITED", "INFINITE")
_PARTITION_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_PARTITION = re.compile(rf"{_PARTITION_NAME}(?:,{_PARTITION_NAME})*", re.ASCII)
_OPTION = re.compile(r"--?[A-Za-z0-9][A-Za-z0-9-]*(?:=.*)?", re.DOTALL | re.ASCII)
_QUOTED = re.compile(r'"[^"\\]*"')  # already one quoted word: kept as written
_MEM_KIB = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}

MEM_FORMAT = 'digits with an optional unit K, M, G or T and an optional B, e.g. "512M" or "4G"'
TIME_FORMAT = 'MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED, e.g. "30", "02:00:00" or "1-12"'


def _string_error(value: Any, example: str) -> str | None:
    if not isinstance(value, str):
        return f"wrong type ({type(value).__name__}: {_short(value)}), must be a string such as {example}"
    if len(value) > MAX_VALUE_CHARS:
        return f"is {len(value)} characters long (at most {MAX_VALUE_CHARS})"
    if control_chars(value):
        return f"contains a control character (newline, tab, ...): {_short(value)}"
    return None


def control_chars(value: str) -> bool:
    return any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def mem_error(value: Any) -> str | None:
    """A `--mem` value: digits, an optional unit (K, M, G, T; M when absent) and an optional B."""
    problem = _string_error(value, '"4G"')
    if problem:
        return problem
    if not _MEM.fullmatch(value):
        return f"{_short(value)} is not a memory size ({MEM_FORMAT})"
    return None


def mem_kib(value: Any) -> int:
    """A valid mem value in KiB; 0 for anything else (None, or not validated)."""
    match = _MEM.fullmatch(str(value).strip()) if value is not None else None
    if not match:
        return 0
    return int(match.group(1)) * _MEM_KIB[(match.group(2) or "M").upper()]


def time_error(value: Any) -> str | None:
    """A `--time` value in one of SLURM's formats."""
    problem = _string_error(value, '"02:00:00"')
    if problem:
        return problem
    if value.upper() in _TIME_WORDS or _TIME.fullmatch(value):
        return None
    return f"{_short(value)} is not a SLURM time ({TIME_FORMAT})"


def cpus_error(value: Any) -> str | None:
    """`--cpus-per-task`: a positive integer (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"wrong type ({type(value).__name__}: {_short(value)}), must be a positive integer"
    if not 1 <= value <= MAX_CPUS:
        return f"must be between 1 and {MAX_CPUS} (got {_short(value)})"
    return None


def partition_error(value: Any) -> str | None:
    """`--partition`: one SLURM partition name or a comma-separated list of them."""
    problem = _string_error(value, '"batch"')
    if problem:
        return problem
    if not _PARTITION.fullmatch(value):
        return (
            f"{_short(value)} is not a partition name (letters, digits, _ . - ; "
            "several names separated by commas, no spaces)"
        )
    return None


def sbatch_opt_error(value: Any) -> str | None:
    """One sbatch option: "--exclusive", "-N1" or "--name=value".

    Whitespace is allowed only inside the value of "--name=value" (sbatch_opt_directive quotes
    it, so it stays one option); "-p debug" or two options in one entry are refused."""
    problem = _string_error(value, '"--exclusive"')
    if problem:
        return problem
    if not _OPTION.fullmatch(value):
        if any(c.isspace() for c in value):
            return f'{_short(value)} is not one option: write "--option=value", one option per entry'
        return f"{_short(value)} is not an sbatch option (it must start with - or --)"
    name, _, argument = value.partition("=")
    if any(c.isspace() for c in name):
        return f'{_short(value)} is not one option: write "--option=value", one option per entry'
    if any(c.isspace() for c in argument) and not _QUOTED.fullmatch(argument) and ('"' in argument or "\\" in argument):
        return f"{_short(value)}: a value with spaces cannot also hold a quote or a backslash"
    return None


def sbatch_opt_directive(value: str) -> str:
    """A checked option as written after `#SBATCH`: a value with whitespace in double quotes
    (sbatch's script parser keeps a quoted value as one word; tried on SLURM 22.05)."""
    name, sep, argument = value.partition("=")
    if sep and any(c.isspace() for c in argument) and not _QUOTED.fullmatch(argument):
        return f'{name}="{argument}"'
    return value


def sbatch_opts_error(value: Any) -> str | None:
    """A list of sbatch options (upstream reads a list of strings)."""
    if not isinstance(value, list):
        return f'wrong type ({type(value).__name__}), must be a list of options such as ["--exclusive"]'
    for index, option in enumerate(value):
        problem = sbatch_opt_error(option)
        if problem:
            return f"entry {index + 1}: {problem}"
    return None


__all__ = [
    "MEM_FORMAT",
    "TIME_FORMAT",
    "MAX_CPUS",
    "control_chars",
    "cpus_error",
    "mem_error",
    "mem_kib",
    "partition_error",
    "sbatch_opt_directive",
    "sbatch_opt_error",
    "sbatch_opts_error",
    "time_error",
]
