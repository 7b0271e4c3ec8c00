"""Types and formats of the job values a Lab hands on: resource hints (they become `#SBATCH`
lines), params and outputs (they go into job specs and through jq and bash on the target).

Checked once at load, so a wrong type is one line naming the file, the job and the JSON path,
not a traceback or a bad `sbatch` script later. The SLURM formats are shared with
resources.toml (slurmvalues.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from repx_tui.backend.errors import LabError
from repx_tui.backend.slurmvalues import (
    control_chars,
    cpus_error,
    mem_error,
    partition_error,
    sbatch_opts_error,
    time_error,
)

if TYPE_CHECKING:
    from repx_tui.backend.labmodel import Job, Run

# Upstream's Nix rejects any other key (validateResourceHints); Rust reads these types.
HINT_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "mem": mem_error,
    "cpus": cpus_error,
    "time": time_error,
    "partition": partition_error,
    "sbatch_opts": sbatch_opts_error,
}
MAX_DEPTH = 64  # nesting of params and outputs: deeper than any real Lab, shallow enough for every encoder


def check_job_values(jobs: Mapping[str, Job], runs: Mapping[str, Run]) -> None:
    """LabError for the first job value of a wrong type or format."""
    for job in jobs.values():
        problem = job_problem(job)
        if problem:
            path, why = problem
            raise LabError(
                f"{runs[job.run].metadata_path}: job {job.id}, {path}: {why}",
                hint="fix the stage's resource hints or outputs and rebuild the Lab",
            )


def job_problem(job: Job) -> tuple[str, str] | None:
    """(JSON path within the job, what is wrong), or None."""
    problem = hints_problem(job.resource_hints)
    if problem:
        return problem
    if too_deep(job.params):
        return "params", f"nested more than {MAX_DEPTH} levels deep"
    for name, exe in job.executables.items():
        problem = hints_problem(exe.resource_hints) or outputs_problem(exe.outputs)
        if problem:
            return f"executable {name}, {problem[0]}", problem[1]
    return steps_problem(job) if job.is_scatter_gather else None


def steps_problem(job: Job) -> tuple[str, str] | None:
    """Scatter-gather steps form one chain ending in one final step (its outputs feed gather)."""
    steps = job.steps
    used = {dep for exe in steps.values() for dep in exe.deps}
    if used - set(steps):
        return "executables", f"steps depend on unknown step(s): {', '.join(sorted(used - set(steps)))}"
    sinks = sorted(set(steps) - used)
    if len(sinks) != 1:
        return "executables", f"the steps must end in exactly one final step, not {len(sinks)} ({', '.join(sinks)})"
    return None


def hints_problem(hints: Mapping[str, Any]) -> tuple[str, str] | None:
    for key, value in hints.items():
        path = f"resource_hints.{key}" if key.isprintable() else f"resource_hints[{key!r}]"
        check = HINT_CHECKS.get(key)
        if check is None:
            return path, f"unknown resource hint (known: {', '.join(HINT_CHECKS)})"
        problem = None if value is None else check(value)  # null: not set, as upstream reads it
        if problem:
            return path, problem
    return None


def outputs_problem(outputs: Mapping[str, Any]) -> tuple[str, str] | None:
    for name, value in outputs.items():
        path = f"outputs.{name}" if name.isprintable() else f"outputs[{name!r}]"
        if control_chars(name) or (isinstance(value, str) and control_chars(value)):
            return path, "contains a control character (newline, tab, ...)"
        if too_deep(value):
            return path, f"nested more than {MAX_DEPTH} levels deep"
    return None


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a JSON value nests lists/objects more than limit levels (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False
