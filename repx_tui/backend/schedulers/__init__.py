"""Submitting jobs on a target: SLURM (sbatch) or the detached local agent.

`submit()` deploys the remote helpers (once per content hash), then hands the batch to the
chosen scheduler in one round trip. Jobs that already succeeded, or are already queued or
running, are skipped, so submitting twice never duplicates work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

from repx_tui.backend.config import Target
from repx_tui.backend.errors import SchedulerError
from repx_tui.backend.events import EventSink, JobSkipped, JobSubmitted, Notice, Phase, PhaseDone, PhaseStarted
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.resources import Resources
from repx_tui.backend.transport.base import Transport


@dataclass
class SubmitResult:
    submitted: list[tuple[str, str | None]] = field(default_factory=list)  # (job, SLURM id or None)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (job, reason)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (job, message)

    def to_json(self) -> dict:
        return {
            "submitted": [{"job": j, "slurm_id": s} for j, s in self.submitted],
            "skipped": [{"job": j, "reason": r} for j, r in self.skipped],
            "errors": [{"job": j, "error": e} for j, e in self.errors],
        }


def parse_answer_lines(text: str, emit: EventSink) -> SubmitResult:
    """The helpers answer `job<TAB>ID|QUEUED` or `job<TAB>SKIPPED|ERROR<TAB>detail` per job."""
    result = SubmitResult()
    for line in text.splitlines():
        parts = line.split("\t", 2)
        if len(parts) < 2:
            continue
        job, verdict, detail = parts[0], parts[1], parts[2] if len(parts) > 2 else ""
        if verdict == "SKIPPED":
            result.skipped.append((job, detail))
            emit(JobSkipped(job=job, reason=detail))
        elif verdict == "ERROR":
            result.errors.append((job, detail))
            emit(Notice(level="error", message=f"{job}: {detail}"))
        else:
            slurm_id = None if verdict == "QUEUED" else verdict
            result.submitted.append((job, slurm_id))
            emit(JobSubmitted(job=job, slurm_id=slurm_id))
    return result


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
    emit: EventSink,
) -> SubmitResult:
    from repx_tui.backend.schedulers import agent, slurm
    from repx_tui.backend.schedulers.deploy import deploy_helpers

    if scheduler not in ("slurm", "local"):
        raise SchedulerError(f"unknown scheduler '{scheduler}' (expected local or slurm)")
    started = time.monotonic()
    emit(PhaseStarted(phase=Phase.SUBMIT, detail=f"{len(job_ids)} jobs via {scheduler}", total_files=len(job_ids)))
    helpers = await deploy_helpers(transport, layout, lab)
    order = lab.topological_order(job_ids)
    if scheduler == "slurm":
        result = await slurm.submit_batch(
            transport, layout, lab, target, order, helpers,
            resources=resources or Resources(), execution_type=execution_type, emit=emit,
        )
    else:
        result = await agent.submit_batch(
            transport, layout, lab, target, order, helpers, execution_type=execution_type, emit=emit
        )
    emit(PhaseDone(
        phase=Phase.SUBMIT, files_sent=len(result.submitted), seconds=time.monotonic() - started,
        detail=f"{len(result.submitted)} submitted, {len(result.skipped)} skipped, {len(result.errors)} failed",
    ))
    return result


__all__ = ["SubmitResult", "submit", "parse_answer_lines"]
