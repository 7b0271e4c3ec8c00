"""One job, inspected: what the Lab says, what it asks SLURM for and why, and what the target
holds for it (units, outcomes, logs, times), in ONE remote round trip (plus sacct for SLURM,
on the same connection at the same time).

Also the hint an OUT_OF_MEMORY or TIMEOUT job carries: which resources.toml value to raise.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import (
    Efficiency,
    JobInspection,
    JobState,
    JobStateKind,
    ResourceValue,
    UnitState,
)
from repx_tui.backend.lab import Job, Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.resources import DIRECTIVE_FIELDS, Directives, Explained, Provenance, Resources
from repx_tui.backend.status.efficiency import human_bytes, human_seconds, parse_duration, parse_size
from repx_tui.backend.status.merge import HintFor
from repx_tui.backend.status.slurm import SEP, AcctEntry, parse_sacct, sacct_argv
from repx_tui.backend.textnum import decimal, signed, unsigned
from repx_tui.backend.transport.base import Transport

K = JobStateKind
COMMAND_TIMEOUT = 30.0
MARKER_FILES = ("SUCCESS", "FAIL", "exit_code", "cancelled", "stdout.log", "stderr.log", "job-spec.json")

# $1 the job's outputs dir. For the job and each scatter-gather unit (scatter, gather,
# branch-*/step-*), the unit files that exist: "F<US>path<US>exit code (exit_code files only)",
# then ONE stat for all of them: "S<US>path<US>size<US>mtime". Output dirs are never listed.
INSPECT_SCRIPT = r"""set -uo pipefail
shopt -s nullglob
root=$1
us=$'\x1f'
files=()
for d in "$root" "$root"/scatter "$root"/gather "$root"/branch-*/step-*; do
    for f in SUCCESS FAIL exit_code cancelled stdout.log stderr.log job-spec.json; do
        if [[ -e "$d/repx/$f" ]]; then files+=("$d/repx/$f"); fi
    done
done
for f in "${files[@]}"; do
    code=""
    if [[ "${f##*/}" == exit_code ]]; then read -r code <"$f" || true; fi
    printf 'F%s%s%s%s\n' "$us" "$f" "$us" "$code"
done
if ((${#files[@]})); then stat -c "S${us}%n${us}%s${us}%Y" -- "${files[@]}"; fi
"""

_UNIT = re.compile(r"|scatter|gather|branch-\d+/step-[A-Za-z0-9][A-Za-z0-9._+@:=-]*")


# --- what a job asks for, and why ------------------------------------------------------------


def allocation_explained(resources: Resources, job: Job, target: str) -> Explained:
    """The job's allocation as submit computes it (schedulers.slurm.job_directives), each value
    with its Provenance: for a scatter-gather job a value taken from the worker resolution
    (it must fit one step) is attributed to that resolution."""
    from repx_tui.backend.schedulers.slurm import job_directives, sink_step

    directives, provenance = resources.explain(job.id, job.resource_hints, target)
    if not job.is_scatter_gather:
        return directives, provenance
    sink_hints = job.steps[sink_step(job)].resource_hints
    _worker, worker_provenance = resources.explain_worker(job.id, job.resource_hints, sink_hints, target)
    allocation, _parallel = job_directives(resources, job, target)
    chosen = {
        key: provenance[key] if getattr(allocation, key) == getattr(directives, key) else worker_provenance[key]
        for key in DIRECTIVE_FIELDS
    }
    return allocation, chosen


def resource_values(explained: Explained) -> tuple[ResourceValue, ...]:
    directives, provenance = explained
    values = []
    for key in DIRECTIVE_FIELDS:
        value = getattr(directives, key)
        shown = " ".join(value) if isinstance(value, tuple) else (None if value is None else str(value))
        source = provenance[key]
        values.append(ResourceValue(key, shown or None, source.describe(), source.kind, source.rule))
    return tuple(values)


def raise_hint(state: JobState, directives: Directives, source: Provenance, job: Job) -> str:
    """One line: what ran out, and where to raise it (with a value to try)."""
    eff = state.efficiency or Efficiency()
    if state.state is K.OUT_OF_MEMORY:
        key, asked = "mem", eff.req_mem or parse_size(str(directives.mem or ""))
        peak = f"peak {human_bytes(eff.max_rss)} of " if eff.max_rss else ""
        what = f"out of memory ({peak}{human_bytes(asked)} requested)" if asked else "out of memory"
        suggestion = f'"{sbatch_mem(2 * asked)}"' if asked else '"4G"'
    else:
        key, limit = "time", eff.time_limit_s or parse_duration(str(directives.time or ""))
        what = f"timed out (limit {human_seconds(limit)})" if limit else "timed out"
        suggestion = f'"{human_seconds(2 * limit)}"' if limit else '"04:00:00"'
    if source.kind in ("rule", "worker", "default"):
        return f"{what}: raise {key} in the {source.describe()}, e.g. {key} = {suggestion}"
    origin = "set by the Lab's resource_hints" if source.kind in ("hint", "sink-hint") else "not set"
    return (f"{what}: {key} is {origin}; add {key} = {suggestion} to a [[rules]] entry with "
            f'job_id_glob = "*-{job.name}" in resources.toml')  # fmt: skip


def sbatch_mem(n: int) -> str:
    """A size as sbatch takes it (a whole number and a unit): 32G, 1000M."""
    gib, mib = 1 << 30, 1 << 20
    return f"{n // gib}G" if n % gib == 0 else f"{-(-n // mib)}M"


def resource_hint_for(resources: Resources, lab: Lab, target: str) -> HintFor:
    """The status watcher's hint for OUT_OF_MEMORY / TIMEOUT jobs (resolved as now configured)."""

    def hint(state: JobState) -> str | None:
        job = lab.jobs.get(state.job)
        if job is None:
            return None
        try:
            directives, provenance = allocation_explained(resources, job, target)
        except RepxError:
            return None
        return raise_hint(state, directives, provenance["mem" if state.state is K.OUT_OF_MEMORY else "time"], job)

    return hint


# --- the target's side ---------------------------------------------------------------------------


def parse_units(text: str, root: str) -> tuple[UnitState, ...]:
    """INSPECT_SCRIPT's output -> one UnitState per unit that left any file, in run order."""
    codes: dict[str, str] = {}
    stats: dict[str, tuple[int, float]] = {}
    for line in text.splitlines():
        parts = line.split(SEP)
        if parts[0] == "F" and len(parts) == 3:
            codes[parts[1]] = parts[2]
        elif parts[0] == "S" and len(parts) == 4 and (size := unsigned(parts[2])) is not None:
            stats[parts[1]] = (size, decimal(parts[3]) or 0.0)
    files: dict[str, dict[str, str]] = {}
    for path in codes:
        rel = path[len(root) + 1 :] if path.startswith(root + "/") else ""
        unit, _, name = ("/" + rel).rpartition("/repx/")
        unit = unit.lstrip("/")
        if name in MARKER_FILES and _UNIT.fullmatch(unit):
            files.setdefault(unit, {})[name] = path
    return tuple(_unit_state(unit, names, codes, stats) for unit, names in sorted(files.items(), key=_order))


def _order(item: tuple[str, Any]) -> tuple[int, int, str]:
    unit = item[0]
    if unit.startswith("branch-"):
        return (2, int(unit.split("/")[0].removeprefix("branch-")), unit)
    return ({"": 0, "scatter": 1, "gather": 3}[unit], 0, "")


def _unit_state(
    unit: str, names: Mapping[str, str], codes: Mapping[str, str], stats: Mapping[str, tuple[int, float]]
) -> UnitState:
    def size(name: str) -> int | None:
        """0 for a log the unit has not written (the script looked: it is not there); None only
        when the file was there but its size could not be read (gone before the stat)."""
        if name not in names:
            return 0
        return stats[names[name]][0] if names[name] in stats else None

    def mtime(name: str) -> float | None:
        return stats[names[name]][1] if name in names and names[name] in stats else None

    code_text = codes.get(names.get("exit_code", ""), "").strip()
    code = signed(code_text)
    if "SUCCESS" in names:
        state, ended = "succeeded", mtime("SUCCESS")
    elif "FAIL" in names:
        state, ended = ("cancelled" if "cancelled" in names else "failed"), mtime("FAIL")
    elif "stdout.log" in names or "stderr.log" in names:
        state, ended = "running", None
    else:
        state, ended = "not started", None
    started = mtime("job-spec.json") if unit == "" else None
    return UnitState(unit, state, code, size("stdout.log"), size("stderr.log"), started, ended)


async def read_units(transport: Transport, layout: RemoteLayout, job_id: str) -> tuple[UnitState, ...]:
    root = layout.job_dir(job_id)
    result = await transport.run_script(INSPECT_SCRIPT, root, timeout=COMMAND_TIMEOUT, check=True)
    return parse_units(result.stdout, root)


async def read_acct(transport: Transport, slurm_ids: tuple[str, ...]) -> dict[str, AcctEntry]:
    if not slurm_ids:
        return {}
    result = await transport.run(sacct_argv(slurm_ids), timeout=COMMAND_TIMEOUT, check=False)
    return parse_sacct(result.stdout) if result.ok else {}


# --- putting it together ---------------------------------------------------------------------


def lab_part(lab: Lab, job_id: str, scheduler: str) -> JobInspection:
    """What the Lab alone says about a job (shown before the target answers)."""
    job = lab.job(job_id)
    downstream = tuple(sorted(j for j in lab.jobs if job_id in lab.upstream(j)))
    return JobInspection(
        job=job_id, name=job.name, run=job.run, stage_type=job.stage_type, scheduler=scheduler,
        params=dict(job.params), upstream=tuple(lab.upstream(job_id)), downstream=downstream,
        source_runs=tuple(job.source_runs),
    )  # fmt: skip


async def inspect_job(
    transport: Transport,
    layout: RemoteLayout,
    lab: Lab,
    job_id: str,
    *,
    scheduler: str,
    target: str,
    resources: Resources,
    state: JobState | None,
    slurm_ids: tuple[str, ...],
) -> JobInspection:
    base = lab_part(lab, job_id, scheduler)
    job = lab.job(job_id)
    values: tuple[ResourceValue, ...] = ()
    note = "the local scheduler asks SLURM for nothing" if scheduler != "slurm" else ""
    if scheduler == "slurm":
        try:
            explained = allocation_explained(resources, job, target)
            values = resource_values(explained)
            note = "as resources.toml resolves now" + (
                f" ({', '.join(map(str, resources.sources))})" if resources.sources else " (no resources.toml)"
            )
            if state is not None and state.state in (K.OUT_OF_MEMORY, K.TIMEOUT) and not state.hint:
                key = "mem" if state.state is K.OUT_OF_MEMORY else "time"
                state = replace(state, hint=raise_hint(state, explained[0], explained[1][key], job))
        except RepxError as exc:
            note = f"cannot resolve the request: {exc.message}"
    error = None
    try:
        units, acct = await asyncio.gather(
            read_units(transport, layout, job_id), read_acct(transport, slurm_ids if scheduler == "slurm" else ())
        )
    except (TimeoutError, RepxError, OSError) as exc:
        units, acct = (), {}
        error = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    submit, start, end = _times(acct, slurm_ids, units)
    repx_dir = layout.job_repx(job_id)
    return replace(
        base, state=state, resources=values, resources_note=note, slurm_ids=slurm_ids,
        submit=submit, start=start, end=end, units=units, error=error,
        out_path=posixpath.join(layout.job_dir(job_id), "out"),
        stdout_path=posixpath.join(repx_dir, "stdout.log"), stderr_path=posixpath.join(repx_dir, "stderr.log"),
    )  # fmt: skip


def _times(
    acct: Mapping[str, AcctEntry], slurm_ids: tuple[str, ...], units: tuple[UnitState, ...]
) -> tuple[str | None, str | None, str | None]:
    """Submit / start / end: sacct's for the job's latest SLURM id, else the files' times."""
    entry = acct.get(slurm_ids[0]) if slurm_ids else None
    if entry is not None:

        def shown(text: str) -> str | None:
            return None if text in ("", "Unknown", "None") else text

        return shown(entry.submit), shown(entry.start), shown(entry.end)
    own = next((u for u in units if u.unit == ""), None)
    if own is None:
        return None, None, None
    return None, _iso(own.started), _iso(own.ended)


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%dT%H:%M:%S")


def param_text(value: Any) -> str:
    """A parameter as one line: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
