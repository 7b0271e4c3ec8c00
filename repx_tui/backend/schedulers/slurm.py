"""SLURM: one sbatch script per job, the whole batch submitted in one round trip.

Each script carries its job spec in a heredoc and execs the deployed executor. A scatter-gather
job runs entirely inside its own allocation (scatter, the branches with bounded parallelism,
gather), so its SUCCESS, and the afterok of its dependants, come only after gather succeeded.
"""

from __future__ import annotations

import gzip
import io
import json
import shlex
import tarfile
from collections.abc import Sequence

from repx_tui.backend import slurmvalues
from repx_tui.backend.config import Target
from repx_tui.backend.errors import SchedulerError
from repx_tui.backend.events import EventSink
from repx_tui.backend.lab import Job, Lab
from repx_tui.backend.layout import RemoteLayout, safe_component
from repx_tui.backend.resources import Directives, Resources
from repx_tui.backend.schedulers import AnswerReader, SubmitResult, upstream_for_submit
from repx_tui.backend.schedulers.deploy import DeployedHelpers
from repx_tui.backend.schedulers.jobspec import build_spec, resolve_runtime, sink_step
from repx_tui.backend.transport.base import StdinWriter, Transport

SPEC_DELIMITER = "__REPX_JOB_SPEC__"
STREAM_FROM = 50  # jobs in a batch from which its answers stream (a channel of its own) rather than come at once


def _mem_kib(mem: object) -> int:
    """KiB of a mem value of any type (a Lab hint may be an int): 0 when it is not a size."""
    return slurmvalues.mem_kib(mem)


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
    for checked in (directives, worker):  # sizes are compared below: refuse a hint of the wrong type first
        checked_directives(job.id, checked)
    cpus = max(directives.cpus_per_task or 1, worker.cpus_per_task or 1)
    mem = directives.mem if _mem_kib(directives.mem) >= _mem_kib(worker.mem) else worker.mem
    directives = Directives(
        partition=directives.partition,
        cpus_per_task=cpus if (directives.cpus_per_task or worker.cpus_per_task) else None,
        mem=mem,
        time=directives.time,
        sbatch_opts=directives.sbatch_opts,
    )
    return directives, max(1, cpus // (worker.cpus_per_task or 1))


def sbatch_script(
    job_id: str, spec: dict, directives: Directives, layout: RemoteLayout, helpers: DeployedHelpers
) -> str:
    """The job's script. Every header value is checked here too (Lab hints reach this point
    without resources.toml's checks), so none can add an option of its own."""
    safe_component(job_id, "job id")
    log = _sbatch_path(f"{layout.job_repx(job_id)}/", "base_path") + "slurm-%j.out"
    lines = [
        "#!/bin/sh",  # not the host tools' bash: a shebang breaks on a space or a long base_path
        f"#SBATCH --job-name={job_id}",
        "#SBATCH --chdir=/tmp",
        f'#SBATCH --output="{log}"',
        f'#SBATCH --error="{log}"',
    ]
    lines += [f"#SBATCH {directive}" for directive in checked_directives(job_id, directives)]
    spec_json = json.dumps(spec, separators=(",", ":"), sort_keys=True)
    lines += [
        "set -eu",
        f"exec {shlex.quote(helpers.tools_bin + '/bash')} {shlex.quote(helpers.executor)} "
        f"{shlex.quote(helpers.tools_bin)} /dev/stdin <<'{SPEC_DELIMITER}'",
        spec_json,
        SPEC_DELIMITER,
        "",
    ]
    return "\n".join(lines)


_DIRECTIVE_CHECKS = (
    ("partition", "partition", slurmvalues.partition_error),
    ("cpus_per_task", "cpus-per-task", slurmvalues.cpus_error),
    ("mem", "mem", slurmvalues.mem_error),
    ("time", "time", slurmvalues.time_error),
)


def checked_directives(job_id: str, directives: Directives) -> list[str]:
    """The job's `#SBATCH` options, or a SchedulerError naming the job and the bad value."""
    for attr, key, check in _DIRECTIVE_CHECKS:
        value = getattr(directives, attr)
        problem = None if value is None else check(value)
        if problem:
            raise SchedulerError(
                f"job {job_id}: resource {key}: {problem}",
                hint="fix the Lab's resource_hints or override it in resources.toml",
            )
    problem = slurmvalues.sbatch_opts_error(list(directives.sbatch_opts))
    if problem:
        raise SchedulerError(
            f"job {job_id}: sbatch_opts: {problem}",
            hint="fix the Lab's resource_hints or override it in resources.toml",
        )
    return directives.sbatch_lines()


def _sbatch_path(path: str, what: str) -> str:
    """A path for a double-quoted `#SBATCH --output="..."` value, `%` escaped as `%%`.

    sbatch takes a quoted value with spaces as one word (tried on SLURM 22.05); a quote, a
    backslash or a control character cannot be written there, so those are refused."""
    if '"' in path or "\\" in path or slurmvalues.control_chars(path):
        raise SchedulerError(
            f"{what} {path!r} cannot be written in an #SBATCH --output line (it holds a quote, "
            "a backslash or a control character)",
            hint="choose a base_path without them",
        )
    return path.replace("%", "%%")


def build_batch(
    lab: Lab,
    layout: RemoteLayout,
    target: Target,
    order: Sequence[str],
    helpers: DeployedHelpers,
    resources: Resources,
    execution_type: str | None,
    allow_missing_runs: bool = False,
) -> dict:
    jobs = []
    batch = set(order)
    for job_id in order:
        job = lab.job(job_id)
        deps, after = upstream_for_submit(lab, job_id, batch, allow_missing_runs)
        directives, parallel = job_directives(resources, job, target.name)
        runtime = resolve_runtime(lab, job_id, target, "slurm", execution_type)
        spec = build_spec(lab, job_id, layout, target, runtime, parallel=parallel)
        jobs.append(
            {
                "id": job_id,
                "deps": deps,
                "after": after,
                "script": sbatch_script(job_id, spec, directives, layout, helpers),
            }
        )
    return {"lab_id": lab.lab_id, "jobs": jobs}


def batch_archive(batch: dict) -> bytes:
    """The batch as submit.sh reads it: a gzipped tar of `jobs.tsv` (job, after, deps per line, in
    order) and one `<job>.sbatch` per job, unpacked on the target in one pass. The scripts differ
    only in their spec, so 1,000 of them compress to a few dozen KiB: one round trip on the
    session's command runner instead of a new channel."""
    rows = []
    for job in batch["jobs"]:
        after = ",".join(job["after"]) or "-"  # tab is IFS whitespace: an empty middle field would vanish
        rows.append(f"{safe_component(job['id'], 'job id')}\t{after}\t{','.join(job['deps'])}\n")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0) as packed:
        with tarfile.open(fileobj=packed, mode="w") as tar:
            _add_member(tar, "jobs.tsv", "".join(rows).encode())
            for job in batch["jobs"]:
                _add_member(tar, f"{job['id']}.sbatch", job["script"].encode())
    return buf.getvalue()


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


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
    allow_missing_runs: bool = False,
    emit: EventSink,
) -> SubmitResult:
    batch = build_batch(lab, layout, target, order, helpers, resources, execution_type, allow_missing_runs)
    archive = batch_archive(batch)
    argv = [
        f"{helpers.tools_bin}/bash",
        helpers.submit,
        helpers.tools_bin,
        layout.base,
        safe_component(lab.lab_id, "lab id"),
    ]
    answers = AnswerReader(emit, total=len(order))
    if len(order) >= STREAM_FROM:  # each job's answer as sbatch gives it: the submit phase's progress

        async def feed(stdin: StdinWriter) -> None:
            await stdin.write(archive)

        result = await transport.run_streaming(argv, feed, on_line=answers.line, check=False)
    else:  # a few jobs: one round trip on the command runner, no channel of its own
        result = await transport.run(argv, input=archive, check=False)
        for line in result.stdout.splitlines():
            answers.line(line)
    if not result.ok:
        detail = result.stderr.strip().splitlines()[-1:] or [f"exit {result.exit_status}"]
        raise SchedulerError(
            f"submitting to SLURM on {target.name} failed: {detail[0]}",
            hint="is sbatch on the target's PATH for non-interactive logins?",
        )
    return answers.result()
