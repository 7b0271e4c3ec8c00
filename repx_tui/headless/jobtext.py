"""Human text for the job inspector (`show`), pulls and efficiency: used by render.py."""

from __future__ import annotations

from repx_tui.backend.events import Efficiency, JobInspection, PullProgress, PullSummary, UnitState
from repx_tui.backend.inspection import param_text
from repx_tui.backend.status.efficiency import human_bytes, human_seconds


def percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f}%"


def efficiency_bits(eff: Efficiency) -> list[str]:
    """`cpu 93%`, `mem 44% (220M of 500M)`, `time 5% of 00:05:00`: what is known."""
    bits = []
    if eff.cpu is not None:
        bits.append(f"cpu {percent(eff.cpu)} of {eff.cpus}")
    if eff.mem is not None:
        bits.append(f"mem {percent(eff.mem)} ({human_bytes(eff.max_rss)} of {human_bytes(eff.req_mem)})")
    elif eff.req_mem:
        bits.append(f"mem ? of {human_bytes(eff.req_mem)} (no sample)")
    if eff.time is not None:
        bits.append(f"time {percent(eff.time)} of {human_seconds(eff.time_limit_s)}")
    return bits


def _unit_line(unit: UnitState) -> str:
    name = unit.unit or "(job)"
    code = f" exit {unit.exit_code}" if unit.exit_code not in (None, 0) else ""
    # "?" where JSON says null (the size could not be read), never "0B" for it
    logs = f"  stdout {human_bytes(unit.stdout_bytes)}, stderr {human_bytes(unit.stderr_bytes)}"
    return f"  {name:<28} {unit.state}{code}{logs}"


def inspection_text(ins: JobInspection) -> str:
    s = ins.state
    lines = [f"{ins.job}", f"  run {ins.run} · stage {ins.stage_type} · scheduler {ins.scheduler}"]
    if s is not None:
        state = s.state.value + (" (stale)" if s.stale else "")
        lines.append(f"  state {state}" + (f", exit {s.exit_code}" if s.exit_code not in (None, 0) else ""))
        if s.reason:
            lines.append(f"  reason {s.reason}")
        if s.hint:
            lines.append(f"  hint: {s.hint}")
        where = [f"slurm {', '.join(ins.slurm_ids)}" if ins.slurm_ids else "", f"node {s.node}" if s.node else ""]
        if any(where):
            lines.append("  " + " · ".join(w for w in where if w))
        if s.efficiency is not None:
            lines.append("  efficiency: " + (", ".join(efficiency_bits(s.efficiency)) or "no accounting data"))
    times = [f"{k} {v}" for k, v in (("submitted", ins.submit), ("started", ins.start), ("ended", ins.end)) if v]
    if times:
        lines.append("  " + " · ".join(times))
    if ins.error:
        lines.append(f"  target not read: {ins.error}")
    lines.append("parameters:" if ins.params else "parameters: none")
    lines += [f"  {k} = {param_text(v)}" for k, v in sorted(ins.params.items())]
    lines.append(f"reads from ({len(ins.upstream)}):" + ("" if ins.upstream else " nothing"))
    lines += [f"  {j}" for j in ins.upstream]
    lines.append(f"read by ({len(ins.downstream)}):" + ("" if ins.downstream else " nothing"))
    lines += [f"  {j}" for j in ins.downstream]
    lines.append("resources: " + ins.resources_note)
    for value in ins.resources:
        lines.append(f"  {value.key:<14} {value.value or '-':<12} {value.source}")
    lines.append(f"paths:\n  out    {ins.out_path}\n  stdout {ins.stdout_path}\n  stderr {ins.stderr_path}")
    if len(ins.units) > 1 or (ins.units and ins.units[0].unit):
        lines.append("units:")
        lines += [_unit_line(u) for u in ins.units]
    return "\n".join(lines)


def pull_progress_text(e: PullProgress) -> str:
    return f"  {e.job}: {e.files} file(s), {human_bytes(e.bytes)}" + ("" if e.done else " ...")


def pull_summary_text(s: PullSummary) -> str:
    counts: dict[str, int] = {}
    for result in s.jobs:
        counts[result.status] = counts.get(result.status, 0) + 1
    parts = [f"{counts.get('pulled', 0)} pulled", f"{counts.get('unchanged', 0)} unchanged"]
    if counts.get("missing"):
        parts.append(f"{counts['missing']} with no outputs on the target yet")
    return f"{', '.join(parts)}: {human_bytes(s.bytes)} in {s.seconds:.2f} s into {s.dest}"
