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
    """One sbatch option: "--exclusive", "-N1" or "--name=value", and none that repx-tui sets.

    Whitespace is allowed only inside the value of "--name=value" (sbatch_opt_directive quotes
    it, so it stays one option); "-p debug" or two options in one entry are refused."""
    problem = _string_error(value, '"--exclusive"')
    if problem:
        return problem
    reserved = reserved_option_error(value)
    if reserved:
        return f"{_short(value)}: {reserved}"
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


# Options an sbatch_opts entry may not set: repx-tui writes them in every script or on submit.sh's
# sbatch command line (status, log tailing and submission rely on them), or they make sbatch do
# something other than queue this one script. Any of them would leave a job that looks submitted
# while status cannot see it, its log is elsewhere, or submission hangs. Long name -> why
# (aliases last: a prefix names the first reserved option it abbreviates).
_RESERVED_LONG: dict[str, str] = {
    "job-name": "repx-tui sets --job-name itself: the job table finds jobs by it",
    "output": "repx-tui sets --output itself: log tailing reads the job's log there",
    "error": "repx-tui sets --error itself: log tailing reads the job's log there",
    "chdir": "repx-tui sets --chdir itself: the job starts in a directory every node has",
    "dependency": "repx-tui sets --dependency itself: it orders the Lab's jobs with afterok",
    "array": "--array would queue the script as several tasks under one name, which status cannot tell apart",
    "wait": "--wait would hold the submission until the job has ended",
    "wrap": "--wrap would queue a command instead of the job's script",
    "parsable": "repx-tui sets --parsable itself: submission reads the job id from sbatch's answer",
    "test-only": "--test-only would queue nothing while the submission expects a job id",
    "clusters": "--clusters would queue the job on another cluster, where status, logs and cancel do not look",
    "help": "--help makes sbatch print its help and queue nothing",
    "usage": "--usage makes sbatch print its usage and queue nothing",
    "version": "--version makes sbatch print its version and queue nothing",
    "cluster": "--cluster would queue the job on another cluster, where status, logs and cancel do not look",
    "workdir": "--workdir is --chdir in older SLURM, which repx-tui sets itself",
}
# sbatch's single-letter options (SLURM 22.05 to now): the reserved ones, and those that take an
# argument, which is the rest of the word (-k's is optional: attached letters are still its).
# The others (H O Q s v, and letters sbatch does not know and refuses) are flags: getopt reads
# the next letter as another option, so -HJx is -H -J x.
_RESERVED_SHORT = {"J": "job-name", "o": "output", "e": "error", "D": "chdir", "d": "dependency",
                   "a": "array", "W": "wait", "M": "clusters", "h": "help", "V": "version"}  # fmt: skip
_SHORT_TAKES_ARGUMENT = frozenset("ABCFGLNSbcikmnpqtwx")
_LONG_NAME = re.compile(r"--([^=\s]*)")


def reserved_option_error(option: str) -> str | None:
    """Why an option would set one that repx-tui reserves (_RESERVED_LONG), or None.

    sbatch reads `#SBATCH` lines with getopt_long: a long option may be abbreviated to any
    unambiguous prefix (--job=x is --job-name=x), and single-letter options may be grouped.
    Every prefix of a reserved name is refused, in any case (no real sbatch option is a strict
    prefix of one: refusing the ambiguous ones too costs nothing), and a group is read letter
    by letter up to the first that takes an argument."""
    long_name = _LONG_NAME.match(option)
    if long_name:
        return _reserved_long_error(long_name.group(1))
    if option.startswith("-"):
        for letter in option[1:]:
            if letter in _RESERVED_SHORT:
                reserved = _RESERVED_SHORT[letter]
                return f"-{letter} is --{reserved}; {_RESERVED_LONG[reserved]}"
            if letter.isspace() or letter in _SHORT_TAKES_ARGUMENT:
                return None
    return None


def _reserved_long_error(name: str) -> str | None:
    key = name.lower()
    if not key:
        return None
    if key in _RESERVED_LONG:
        return _RESERVED_LONG[key]
    for reserved, why in _RESERVED_LONG.items():
        if reserved.startswith(key):
            return f"--{name} abbreviates --{reserved} (sbatch takes a prefix of a long option); {why}"
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
    "reserved_option_error",
    "sbatch_opt_directive",
    "sbatch_opt_error",
    "sbatch_opts_error",
    "time_error",
]
