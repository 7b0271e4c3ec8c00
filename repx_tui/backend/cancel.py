"""Cancel a selection of jobs: one `scancel` for all SLURM jobs, the agent for local ones.

What a cancel covers is decided by the front ends with `Lab.with_dependants`: the jobs chosen
and every job that could only run after them (both front ends show that list before asking),
so no dependant is left queued behind a job that will never succeed.

Only jobs that THIS Lab submitted on THIS target are touched: SLURM ids come from the Lab's
submission records (`submissions/<lab_id>/*.json`), local jobs from the Lab's agent directory
(`agents/<lab_id>/`). Anything else is reported as not cancelled, never guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import CancelReport, CancelResult, EventSink, JobCancelled, JobState, JobStateKind, discard
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.status import COMMAND_TIMEOUT, RemoteSnapshot, StatusWatcher

K = JobStateKind
_SCANCEL_ERROR = re.compile(r"job id (?P<id>\d+(?:_\d+)?)[^:]*:\s*(?P<msg>.+)$", re.IGNORECASE)


def parse_scancel_errors(stderr: str) -> dict[str, str]:
    """SLURM id -> scancel's complaint about it (e.g. already completed)."""
    errors = {}
    for line in stderr.splitlines():
        m = _SCANCEL_ERROR.search(line)
        if m:
            errors[m.group("id")] = m.group("msg").strip()
    return errors


async def cancel_jobs(
    transport: Any,
    layout: RemoteLayout,
    lab: Any,
    target: Any,
    scheduler: str,
    jobs: Sequence[str],
    emit: EventSink = discard,
) -> CancelReport:
    """Cancel `jobs` (Lab job ids). One status poll decides who is active and who submitted
    it; then one scancel for every SLURM job and one agent call for every local job."""
    watcher = StatusWatcher(transport, layout, lab, target, scheduler, discard)
    states = await watcher.poll_once()
    if watcher.error and watcher.last_good is None:
        raise RepxError(f"cannot read job states on {getattr(target, 'name', 'the target')}: {watcher.error}")
    snap = watcher.snapshot
    results: dict[str, CancelResult] = {}
    slurm, local = _partition(jobs, snap, states, results)
    if slurm:
        results.update(await _scancel(transport, slurm, snap))
    if local:
        results.update(await _agent_cancel(transport, layout, lab, local))
    ordered = tuple(results[j] for j in jobs if j in results)
    for r in ordered:
        emit(JobCancelled(job=r.job, ok=r.ok, detail=r.detail))
    report = CancelReport(ordered)
    emit(report)
    return report


def _partition(
    jobs: Sequence[str], snap: RemoteSnapshot, states: Mapping[str, JobState], results: dict[str, CancelResult]
) -> tuple[dict[str, list[str]], list[str]]:
    """Split the selection into SLURM jobs (job -> ids) and agent jobs; report the rest now."""
    slurm: dict[str, list[str]] = {}
    local: list[str] = []
    for job in jobs:
        sub = snap.submissions.get(job)
        state = states.get(job)
        if sub is None:
            results[job] = CancelResult(job, False, "not submitted by this Lab on this target")
        elif state is not None and state.state.finished:
            results[job] = CancelResult(job, False, f"already {state.state.value}", sub.slurm_id)
        elif sub.slurm_id:
            if snap.user and sub.user and sub.user != snap.user:
                results[job] = CancelResult(job, False, f"submitted by {sub.user}, not {snap.user}", sub.slurm_id)
            else:
                slurm[job] = list(sub.all_slurm_ids)
        elif job in snap.agent:
            local.append(job)
        else:
            results[job] = CancelResult(job, False, "not submitted by this Lab on this target")
    return slurm, local


async def _scancel(transport: Any, slurm: Mapping[str, list[str]], snap: RemoteSnapshot) -> dict[str, CancelResult]:
    ids = sorted({sid for sids in slurm.values() for sid in sids}, key=lambda s: (len(s), s))
    try:
        result = await transport.run(["scancel", *ids], timeout=COMMAND_TIMEOUT, check=False)
    except RepxError as exc:
        return {job: CancelResult(job, False, f"scancel: {exc.message}", sids[0]) for job, sids in slurm.items()}
    errors = parse_scancel_errors(result.stderr)
    general = result.stderr.strip() if result.exit_status != 0 and not errors else ""
    out = {}
    for job, sids in slurm.items():
        # an earlier submission's id may be long finished: one id that scancel took is enough
        taken = [sid for sid in sids if sid not in errors]
        problem = general or ("" if taken else errors.get(sids[0], ""))
        out[job] = CancelResult(job, not problem, problem or "scancel sent", sids[0])
    return out


async def _agent_cancel(transport: Any, layout: RemoteLayout, lab: Any, jobs: list[str]) -> dict[str, CancelResult]:
    """Ask the Lab's agent (remote/agent.sh cancel): under its state lock it stops a running
    job's process group, or drops a queued job, and records it as cancelled."""
    from repx_tui.backend.schedulers import agent

    try:
        outcomes = await agent.cancel_jobs(transport, layout, lab, jobs, emit=discard)
    except RepxError as exc:
        return {job: CancelResult(job, False, f"agent: {exc.message}") for job in jobs}
    answers = {job: (ok, "cancelled" if ok else f"not active ({detail})") for job, ok, detail in outcomes}
    return {job: CancelResult(job, *answers.get(job, (False, "the agent gave no answer"))) for job in jobs}
