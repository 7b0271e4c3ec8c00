"""The local scheduler: a detached agent on the target runs the DAG (remote/agent.sh).

The client hands the agent a batch (job ids, their dependencies and job specs) in one round
trip; the agent's state lives in files under <base>/agents/<lab_id>/, so a client that
disconnects and comes back (or another client) can find it, read job states and cancel jobs.
An agent that died is replaced by the next submit: the new one adopts executors that still
hold their run.lock and runs the queue the dead one left (see remote/agent.sh).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence

from repx_tui.backend.config import Target
from repx_tui.backend.errors import SchedulerError
from repx_tui.backend.events import EventSink, JobCancelled
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout, safe_component
from repx_tui.backend.schedulers import SubmitResult, parse_answer_lines, upstream_for_submit
from repx_tui.backend.schedulers.deploy import DeployedHelpers
from repx_tui.backend.schedulers.jobspec import build_spec, resolve_runtime
from repx_tui.backend.transport.base import Transport

AGENT_STATES = ("queued", "running", "succeeded", "failed", "blocked", "cancelled")


def agent_dir(layout: RemoteLayout, lab_id: str) -> str:
    return posixpath.join(layout.base, "agents", safe_component(lab_id, "lab id"))


def build_dag(
    lab: Lab,
    layout: RemoteLayout,
    target: Target,
    order: Sequence[str],
    execution_type: str | None,
    allow_missing_runs: bool = False,
) -> dict:
    concurrency = target.local.local_concurrency if target.local else None
    batch = set(order)
    jobs = []
    for job_id in order:
        deps, after = upstream_for_submit(lab, job_id, batch, allow_missing_runs)
        runtime = resolve_runtime(lab, job_id, target, "local", execution_type)
        jobs.append(
            {"id": job_id, "deps": deps, "after": after, "spec": build_spec(lab, job_id, layout, target, runtime)}
        )
    return {"concurrency": concurrency, "jobs": jobs}


async def submit_batch(
    transport: Transport,
    layout: RemoteLayout,
    lab: Lab,
    target: Target,
    order: Sequence[str],
    helpers: DeployedHelpers,
    *,
    execution_type: str | None,
    allow_missing_runs: bool = False,
    emit: EventSink,
) -> SubmitResult:
    dag = build_dag(lab, layout, target, order, execution_type, allow_missing_runs)
    argv = [
        f"{helpers.tools_bin}/bash",
        helpers.agent,
        "submit",
        helpers.tools_bin,
        helpers.executor,
        agent_dir(layout, lab.lab_id),
    ]
    result = await transport.run(argv, input=json.dumps(dag).encode(), check=False)
    if not result.ok:
        detail = (result.stderr.strip().splitlines() or [f"exit {result.exit_status}"])[-1]
        raise SchedulerError(f"handing jobs to the agent on {target.name} failed: {detail}")
    return parse_answer_lines(result.stdout, emit)


async def cancel_jobs(
    transport: Transport,
    layout: RemoteLayout,
    lab: Lab,
    job_ids: Sequence[str] | None,
    *,
    emit: EventSink,
) -> list[tuple[str, bool, str]]:
    """Cancel some jobs (or every queued/running one when job_ids is None): a running job's
    whole process group is signalled, a queued one never starts; its dependants get blocked."""
    from repx_tui.backend.schedulers.deploy import deploy_helpers

    helpers = await deploy_helpers(transport, layout, lab)
    which = ["--all"] if job_ids is None else [safe_component(j, "job id") for j in job_ids]
    argv = [
        f"{helpers.tools_bin}/bash",
        helpers.agent,
        "cancel",
        helpers.tools_bin,
        agent_dir(layout, lab.lab_id),
        *which,
    ]
    result = await transport.run(argv, check=False)
    if not result.ok:
        raise SchedulerError(f"cancelling on the agent failed: {result.stderr.strip() or result.exit_status}")
    outcomes = []
    for line in result.stdout.splitlines():
        fields = line.split("\t")
        ok = len(fields) > 1 and fields[1] == "cancelled"
        detail = fields[2] if len(fields) > 2 else (fields[1] if len(fields) > 1 else "")
        outcomes.append((fields[0], ok, detail))
        emit(JobCancelled(job=fields[0], ok=ok, detail=detail))
    return outcomes
