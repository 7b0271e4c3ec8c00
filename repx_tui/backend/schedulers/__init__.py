"""Submitting jobs on a target: SLURM (sbatch) or the detached local agent.

`submit()` deploys the remote helpers (once per content hash), then hands the batch to the
chosen scheduler in one round trip. Jobs that already succeeded, or are already queued or
running, are skipped, so submitting twice never duplicates work.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from repx_tui.backend.config import Target
from repx_tui.backend.errors import SchedulerError
from repx_tui.backend.events import (
    EventSink,
    JobSkipped,
    JobStateKind,
    JobSubmitted,
    Notice,
    Phase,
    PhaseDone,
    PhaseProgress,
    PhaseStarted,
    SubmitResult,
    discard,
)
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.resources import Resources
from repx_tui.backend.runtimes import RuntimeFact
from repx_tui.backend.transport.base import Transport

# The container runtimes asked for -> what the target says of each (the session's, cached).
RuntimeProbe = Callable[[Sequence[str]], Awaitable[dict[str, RuntimeFact]]]


class AnswerReader:
    """The helpers answer `job<TAB>ID|QUEUED` or `job<TAB>SKIPPED|ERROR<TAB>detail` per job, as
    each job is settled: one event per line as it comes, and the count of jobs settled so far as
    the submit phase's progress (at most every PROGRESS_EVERY seconds, and at the end)."""

    PROGRESS_EVERY = 0.1

    def __init__(self, emit: EventSink, total: int | None = None) -> None:
        self.emit = emit
        self.total = total
        self.submitted: list[tuple[str, str | None]] = []
        self.skipped: list[tuple[str, str]] = []
        self.errors: list[tuple[str, str]] = []
        self._shown_at = 0.0

    def line(self, line: str) -> None:
        parts = line.rstrip("\n").split("\t", 2)
        if len(parts) < 2:
            return
        job, verdict, detail = parts[0], parts[1], parts[2] if len(parts) > 2 else ""
        if verdict == "SKIPPED":
            self.skipped.append((job, detail))
            self.emit(JobSkipped(job=job, reason=detail))
        elif verdict == "ERROR":
            self.errors.append((job, detail))
            self.emit(Notice(level="error", message=f"{job}: {detail}"))
        else:
            slurm_id = None if verdict == "QUEUED" else verdict
            self.submitted.append((job, slurm_id))
            self.emit(JobSubmitted(job=job, slurm_id=slurm_id))
        self._progress()

    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.total is None or not (force or now - self._shown_at >= self.PROGRESS_EVERY):
            return
        self._shown_at = now
        settled = len(self.submitted) + len(self.skipped) + len(self.errors)
        self.emit(PhaseProgress(phase=Phase.SUBMIT, bytes_done=0, files_done=settled, total_files=self.total))

    def result(self) -> SubmitResult:
        self._progress(force=True)
        return SubmitResult(tuple(self.submitted), tuple(self.skipped), tuple(self.errors))


def parse_answer_lines(text: str, emit: EventSink) -> SubmitResult:
    """The helpers' whole answer at once (see AnswerReader)."""
    reader = AnswerReader(emit)
    for line in text.splitlines():
        reader.line(line)
    return reader.result()


def upstream_for_submit(
    lab: Lab, job_id: str, batch: set[str], allow_missing_runs: bool
) -> tuple[list[str], list[str]]:
    """(jobs that must be in the batch, queued or succeeded first; jobs waited for only if
    queued). With allow_missing_runs, a source run left out of the batch is waited for when it
    is queued, and otherwise not at all: the user chose to go without it."""
    job = lab.job(job_id)
    required = set(job.dependencies)
    optional: set[str] = set()
    for finals in lab.run_upstream(job_id).values():
        if allow_missing_runs and not set(finals) <= batch:
            optional |= set(finals)
        else:
            required |= set(finals)
    return sorted(required), sorted(optional - required)


async def check_source_runs(
    transport: Transport, layout: RemoteLayout, lab: Lab, target: Target, scheduler: str, job_ids: Sequence[str]
) -> None:
    """Refuse, before anything is sent, a submission whose jobs read a run that is neither in it,
    nor queued or running, nor succeeded on the target: they would read missing results."""
    from repx_tui.backend.status import StatusWatcher

    missing = lab.missing_source_runs(job_ids)
    if not missing:
        return
    watcher = StatusWatcher(transport, layout, lab, target, scheduler, discard)
    states = await watcher.poll_once()
    ready = (JobStateKind.SUCCEEDED, JobStateKind.QUEUED, JobStateKind.RUNNING)
    for run, readers in missing.items():
        absent = [j for j in lab.final_jobs(run) if j not in job_ids and states[j].state not in ready]
        if not absent:
            continue
        reader_runs = sorted({lab.run_of(j) for j in readers})
        why = f" (status unknown: {watcher.error})" if watcher.error else ""
        raise SchedulerError(
            f"{', '.join(reader_runs)} reads run '{run}', which is not in this submission, not queued and "
            f"has not succeeded on {target.name}{why}",
            hint=f"include it: repx-tui run {run} {' '.join(reader_runs)} --lab {lab.source} --target {target.name}"
            " (or add --allow-missing-runs to go anyway)",
        )


async def check_runtimes(
    transport: Transport,
    lab: Lab,
    target: Target,
    scheduler: str,
    job_ids: Sequence[str],
    execution_type: str | None,
    probe: RuntimeProbe | None = None,
) -> None:
    """Refuse, before anything is sent or runs, jobs whose container runtime (podman, docker)
    is missing on the target or does not answer: one round trip, only when a job needs one
    (none when `probe`, the session's, already knows the answer)."""
    from repx_tui.backend.runtimes import CONTAINER_RUNTIMES, probe_runtimes
    from repx_tui.backend.schedulers.jobspec import resolve_runtime

    needed: dict[str, list[str]] = {}
    for job_id in job_ids:
        runtime = resolve_runtime(lab, job_id, target, scheduler, execution_type)
        if runtime in CONTAINER_RUNTIMES:
            needed.setdefault(runtime, []).append(job_id)
    if not needed:
        return
    facts = await probe(sorted(needed)) if probe is not None else await probe_runtimes(transport, sorted(needed))
    for runtime, jobs in sorted(needed.items()):
        fact = facts[runtime]
        if not fact.ok:
            raise SchedulerError(
                f"{len(jobs)} job(s) would run in {runtime} on {target.name}, but {fact.problem()}; nothing was submitted",
                hint=f"install {runtime} on {target.name}, or choose another runtime (--execution-type bwrap or native)",
            )


async def submit(
    transport: Transport,
    layout: RemoteLayout,
    lab: Lab,
    target: Target,
    job_ids: Sequence[str],
    *,
    scheduler: str,
    resources: Resources | None = None,
    execution_type: str | None = None,
    allow_missing_runs: bool = False,
    emit: EventSink,
    probe: RuntimeProbe | None = None,
) -> SubmitResult:
    from repx_tui.backend.schedulers import agent, slurm
    from repx_tui.backend.schedulers.deploy import deploy_helpers

    if scheduler not in ("slurm", "local"):
        raise SchedulerError(f"unknown scheduler '{scheduler}' (expected local or slurm)")
    started = time.monotonic()
    await check_runtimes(transport, lab, target, scheduler, job_ids, execution_type, probe)
    emit(PhaseStarted(phase=Phase.SUBMIT, detail=f"{len(job_ids)} jobs via {scheduler}", total_files=len(job_ids)))
    helpers = await deploy_helpers(transport, layout, lab)
    order = lab.topological_order(job_ids)
    if scheduler == "slurm":
        result = await slurm.submit_batch(
            transport,
            layout,
            lab,
            target,
            order,
            helpers,
            resources=resources or Resources(),
            execution_type=execution_type,
            allow_missing_runs=allow_missing_runs,
            emit=emit,
        )
    else:
        result = await agent.submit_batch(
            transport,
            layout,
            lab,
            target,
            order,
            helpers,
            execution_type=execution_type,
            allow_missing_runs=allow_missing_runs,
            emit=emit,
        )
    emit(
        PhaseDone(
            phase=Phase.SUBMIT,
            files_sent=len(result.submitted),
            seconds=time.monotonic() - started,
            detail=f"{len(result.submitted)} submitted, {len(result.skipped)} skipped, {len(result.errors)} failed",
        )
    )
    emit(result)
    return result


__all__ = [
    "AnswerReader",
    "SubmitResult",
    "check_runtimes",
    "check_source_runs",
    "parse_answer_lines",
    "submit",
    "upstream_for_submit",
]
