"""The two renderers of the headless CLI: lines for people, JSON lines for scripts.

Both take the backend's events and nothing else; every command uses one of them, so a new event
shows up the same way in `sync`, `run`, `status`, `cancel` and `demo --headless`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

import humanize

from repx_tui.backend.events import (
    CancelReport,
    ConnectionState,
    Event,
    EventSink,
    JobInspection,
    JobsChanged,
    JobSkipped,
    JobState,
    JobSubmitted,
    LabReport,
    LayerAction,
    LayerProgress,
    LogChunk,
    LoggedOut,
    LoginKept,
    Notice,
    PhaseDone,
    PhaseFailed,
    PhaseProgress,
    PhaseSkipped,
    PhaseStarted,
    PullProgress,
    PullSummary,
    StatusReport,
    SubmitResult,
    SyncSummary,
    TargetsReport,
)
from repx_tui.headless.infotext import lab_text, login_text, logout_text, targets_text
from repx_tui.headless.jobtext import efficiency_bits, inspection_text, pull_progress_text, pull_summary_text


def size(n: float) -> str:
    return humanize.naturalsize(n, binary=True)


def renderer(as_json: bool, out: TextIO | None = None) -> EventSink:
    return JsonLines(out) if as_json else Human(out)


class JsonLines:
    """One JSON object per event (`Event.to_json()`); a verb's result event comes last."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def __call__(self, event: Event) -> None:
        if isinstance(event, LogChunk) or _normal_close(event):
            return  # log text is the logs command's output; a verb's result stays the last line
        self.out.write(json.dumps(event.to_json()) + "\n")
        self.out.flush()


class Human:
    """Readable lines; on a terminal, progress rewrites one line in place."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.live = self.out.isatty()
        self.pending_progress = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, LogChunk):
            self.out.write(event.text)
            self.out.flush()
            return
        line = describe(event)
        if line is None:
            return
        if isinstance(event, (PhaseProgress, LayerProgress, PullProgress)) and not getattr(event, "done", False):
            if self.live:
                self.out.write(f"\r{line}\x1b[K")
                self.pending_progress = True
                self.out.flush()
            return
        if self.pending_progress:
            self.out.write("\r\x1b[K")
            self.pending_progress = False
        self.out.write(line + "\n")
        self.out.flush()


def _normal_close(event: Event) -> bool:
    return isinstance(event, ConnectionState) and event.state == "closed"


def describe(event: Event) -> str | None:
    """The line (or lines) a person reads for one event; None for events only machines need."""
    if _normal_close(event):
        return None
    for kind, render in _RENDERERS:
        if isinstance(event, kind):
            return render(event)
    return None


def _phase_started(e: PhaseStarted) -> str:
    return f"[{e.phase.value}] started{': ' + e.detail if e.detail else ''}"


def _phase_progress(e: PhaseProgress) -> str:
    if not e.total_bytes and e.total_files:  # counted in items (submit: jobs settled)
        return f"[{e.phase.value}] {e.files_done} of {e.total_files} jobs"
    total = f" of {size(e.total_bytes)}" if e.total_bytes else ""
    rate = f" at {size(e.rate)}/s" if e.rate else ""
    return f"[{e.phase.value}] {size(e.bytes_done)}{total}{rate}"


def _phase_done(e: PhaseDone) -> str:
    return (
        f"[{e.phase.value}] done: {e.files_sent} files, {size(e.bytes_sent)} sent{_on_wire(e)} "
        f"in {e.seconds:.2f} s{' (' + e.detail + ')' if e.detail else ''}"
    )


def _on_wire(e: PhaseDone) -> str:
    """ ", 1.9 MiB on the wire (2.6:1, zstd-6)" when it was compressed, else ""."""
    if e.wire_bytes is None or not e.compression or e.compression == "off" or not e.bytes_sent:
        return ""
    return f", {size(e.wire_bytes)} on the wire ({e.bytes_sent / max(e.wire_bytes, 1):.1f}:1, {e.compression})"


def _phase_failed(e: PhaseFailed) -> str:
    return f"[{e.phase.value}] FAILED: {e.reason}" + (f"\n  hint: {e.hint}" if e.hint else "")


def _layer(e: LayerProgress) -> str | None:
    digest = e.digest[:12]
    if e.action is LayerAction.PENDING:
        return None
    if e.action is LayerAction.TRANSFERRED and not e.done:
        return f"  layer {digest} sending {size(e.sent)} of {size(e.size)}" if e.sent else None
    return f"  layer {digest} {e.action.value} ({size(e.size)})" if e.done else None


def _sync_summary(s: SyncSummary) -> str:
    sent = sum(layer.bytes_sent for layer in s.layers)
    reused = sum(1 for layer in s.layers if layer.action is LayerAction.REUSED)
    wire = (
        f", {size(s.wire_bytes)} on the wire ({s.ratio:.2f}:1, {s.compression})"
        if s.ratio is not None and s.compression not in ("", "off")
        else ""
    )
    return (
        f"synced in {s.seconds:.2f} s: {size(s.bytes_sent)} sent{wire} "
        f"({size(sent)} of image layers, {reused} of {len(s.layers)} layers reused), "
        f"{s.ssh_connections} SSH connection(s)"
    )


def _submit_result(r: SubmitResult) -> str:
    lines = [f"{len(r.submitted)} submitted, {len(r.skipped)} skipped, {len(r.errors)} not submitted"]
    lines += [f"  {job}: {message}" for job, message in r.errors]
    return "\n".join(lines)


def _cancel_report(r: CancelReport) -> str:
    lines = []
    for result in r.results:
        sid = f" (slurm {result.slurm_id})" if result.slurm_id else ""
        lines.append(f"{result.job}{sid}: {'cancelled' if result.ok else 'not cancelled'}: {result.detail}")
    return "\n".join(lines) or "nothing to cancel"


def job_detail(state: JobState) -> str:
    """What a person wants to know next to a job's state."""
    bits = []
    if state.slurm_id:
        bits.append(f"slurm {state.slurm_id}")
    if state.exit_code is not None and state.state.value != "succeeded":
        bits.append(f"exit {state.exit_code}")
    if state.elapsed:
        bits.append(state.elapsed)
    if state.node:
        bits.append(f"on {state.node}")
    if state.efficiency is not None:
        bits += efficiency_bits(state.efficiency)
    elif state.max_rss:
        bits.append(f"rss {state.max_rss}")
    if state.reason:
        bits.append(state.reason)
    if state.hint:
        bits.append(f"hint: {state.hint}")
    return ", ".join(bits)


def _job_line(state: JobState) -> str:
    detail = job_detail(state)
    return (
        f"{state.state.value:>10}  {state.job}"
        + (f"  ({detail})" if detail else "")
        + (" (stale)" if state.stale else "")
    )


def _jobs_changed(e: JobsChanged) -> str | None:
    lines = [f"STALE: {e.error}"] if e.error else []
    lines += [_job_line(s) for s in e.changed]
    return "\n".join(lines) or None


def _status_report(r: StatusReport) -> str:
    lines = []
    if r.error:
        age = time.time() - (r.stale_since or time.time())
        lines.append(f"STALE ({age:.0f} s): {r.error}")
    width = max((len(s.job) for s in r.jobs), default=3)
    for s in r.jobs:
        stale = " (stale)" if s.stale else ""
        lines.append(f"{s.job:<{width}}  {s.run:<12} {s.state.value:<13} {job_detail(s)}{stale}")
    lines.append("")
    for run in r.runs:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(run.counts.items()))
        lines.append(f"{run.name:<{width}}  {'':<12} {run.state.value:<13} {counts}")
    return "\n".join(lines)


_RENDERERS: tuple = (
    (PhaseStarted, _phase_started),
    (PhaseProgress, _phase_progress),
    (PhaseDone, _phase_done),
    (PhaseSkipped, lambda e: f"[{e.phase.value}] skipped: {e.reason}"),
    (PhaseFailed, _phase_failed),
    (LayerProgress, _layer),
    (ConnectionState, lambda e: f"[ssh] {e.target}: {e.state}{' ' + e.detail if e.detail else ''}"),
    (Notice, lambda e: f"{e.level}: {e.message}"),
    (JobSubmitted, lambda e: f"submitted {e.job}" + (f" (slurm {e.slurm_id})" if e.slurm_id else "")),
    (JobSkipped, lambda e: f"skipped {e.job}: {e.reason}"),
    (JobsChanged, _jobs_changed),
    (SyncSummary, _sync_summary),
    (SubmitResult, _submit_result),
    (CancelReport, _cancel_report),
    (StatusReport, _status_report),
    (JobInspection, inspection_text),
    (PullProgress, pull_progress_text),
    (PullSummary, pull_summary_text),
    (TargetsReport, targets_text),
    (LabReport, lab_text),
    (LoginKept, login_text),
    (LoggedOut, logout_text),
)
