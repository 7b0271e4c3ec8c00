"""SLURM: one sbatch script per job, the whole batch submitted in one round trip.

Each script carries its job spec in a heredoc and execs the deployed executor. A scatter-gather
job runs entirely inside its own allocation (scatter, the branches with bounded parallelism,
gather), so its SUCCESS, and the afterok of its dependants, come only after gather succeeded.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Sequence

from repx_tui.backend.config import Target
from repx_tui.backend.errors import SchedulerError
from repx_tui.backend.events import EventSink
from repx_tui.backend.lab import Job, Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.resources import Directives, Resources
from repx_tui.backend.schedulers import SubmitResult, parse_answer_lines
from repx_tui.backend.schedulers.deploy import DeployedHelpers
from repx_tui.backend.schedulers.jobspec import build_spec, resolve_runtime, sink_step
from repx_tui.backend.transport.base import Transport

SPEC_DELIMITER = "__REPX_JOB_SPEC__"
_MEM_UNITS = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}


def _mem_kib(mem: str | None) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)B?\s*", mem or "", re.IGNORECASE)
    if not match:
        return 0
    return int(match.group(1)) * _MEM_UNITS[(match.group(2) or "M").upper()]


def job_directives(resources: Resources, job: Job, target: str) -> tuple[Directives, int]:
    """The allocation for a job, and how many scatter-gather branches may run in it at once.

    A scatter-gather allocation must fit at least one worker (step) too: it gets the larger
    cpus and mem of the job's and the workers' resolution.
    """
    directives = resources.resolve(job.id, job.resource_hints, target)
    if not job.is_scatter_gather:
        return directives, 1
    sink_hints = job.steps[sink_step(job)].resource_hints
    worker = resources.resolve_worker(job.id, job.resource_hints, sink_hints, target)
    cpus = max(directives.cpus_per_task or 1, worker.cpus_per_task or 1)
    mem = directives.mem if _mem_kib(directives.mem) >= _mem_kib(worker.mem) else worker.mem
    directives = Directives(
        partition=directives.partition, cpus_per_task=cpus if (directives.cpus_per_task or worker.cpus_per_task) else None,
        mem=mem, time=directives.time, sbatch_opts=directives.sbatch_opts,
    )
    return directives, max(1, cpus // (worker.cpus_per_task or 1))


def sbatch_script(job_id: str, spec: dict, directives: Directives, layout: RemoteLayout,
                  helpers: DeployedHelpers) -> str:
    log = f"{layout.job_repx(job_id)}/slurm-%j.out"
    lines = [
        f"#!{helpers.tools_bin}/bash",
        f"#SBATCH --job-name={job_id}",
        "#SBATCH --chdir=/tmp",
        f"#SBATCH --output={log}",
        f"#SBATCH --error={log}",
    ]
    for directive in directives.sbatch_lines():
        if "\n" in directive:
            raise SchedulerError(f"sbatch option for {job_id} contains a newline: {directive!r}")
        lines.append(f"#SBATCH {directive}")
    spec_json = json.dumps(spec, separators=(",", ":"), sort_keys=True)
    lines += [
        "set -euo pipefail",
        f"exec {shlex.quote(helpers.tools_bin + '/bash')} {shlex.quote(helpers.executor)} "
        f"{shlex.quote(helpers.tools_bin)} /dev/stdin <<'{SPEC_DELIMITER}'",
        spec_json,
        SPEC_DELIMITER,
        "",
    ]
    return "\n".join(lines)


def build_batch(
    lab: Lab,
    layout: RemoteLayout,
    target: Target,
    order: Sequence[str],
    helpers: DeployedHelpers,
    resources: Resources,
    execution_type: str | None,
) -> dict:
    jobs = []
    for job_id in order:
        job = lab.job(job_id)
        directives, parallel = job_directives(resources, job, target.name)
        runtime = resolve_runtime(lab, job_id, target, "slurm", execution_type)
        spec = build_spec(lab, job_id, layout, target, runtime, parallel=parallel)
        jobs.append({
            "id": job_id,
            "deps": list(job.dependencies),
            "script": sbatch_script(job_id, spec, directives, layout, helpers),
        })
    return {"lab_id": lab.lab_id, "jobs": jobs}


async def submit_batch(
    transport: Transport,
    layout: RemoteLayout,
    lab: Lab,
    target: Target,
    order: Sequence[str],
    helpers: DeployedHelpers,
    *,
    resources: Resources,
    execution_type: str | None,
    emit: EventSink,
) -> SubmitResult:
    batch = build_batch(lab, layout, target, order, helpers, resources, execution_type)
    result = await transport.run(
        [f"{helpers.tools_bin}/bash", helpers.submit, helpers.tools_bin, layout.base], input=json.dumps(batch).encode(), check=False
    )
    if not result.ok:
        detail = result.stderr.strip().splitlines()[-1:] or [f"exit {result.exit_status}"]
        raise SchedulerError(
            f"submitting to SLURM on {target.name} failed: {detail[0]}",
            hint="is sbatch on the target's PATH for non-interactive logins?",
        )
    return parse_answer_lines(result.stdout, emit)
