"""Fixed events for the inspector, efficiency, overview and pull views (issue 13), fed through
Controller.feed like the states of tests/ui/fixed.py: the exact types the backend emits."""

from __future__ import annotations

from dataclasses import replace

from repx_tui.backend.events import (
    Efficiency,
    JobInspection,
    JobsChanged,
    JobState,
    JobStateKind,
    PullProgress,
    PullResult,
    PullSummary,
    ResourceValue,
    UnitState,
)
from tests.ui.fixed import job_id, job_states

GIB, MIB = 1 << 30, 1 << 20
OOM_HINT = (
    "out of memory (peak 490M of 500M requested): raise mem in the [[rules]] entry 2 "
    "(job_id_glob = '*stage-C*') of resources.toml in /home/me/.config/repx/resources.toml, e.g. mem = \"1000M\""
)


def efficiency_states() -> JobsChanged:
    """The fixed states, finished SLURM jobs with sacct's numbers; job 3 ran out of memory."""
    states = list(job_states().changed)
    states[0] = replace(
        states[0], efficiency=Efficiency(60, 56.4, 1, 200 * MIB, 500 * MIB, 300, start_epoch=1000, end_epoch=1060)
    )
    states[1] = replace(
        states[1], efficiency=Efficiency(61, 4.9, 2, None, 500 * MIB, 300, start_epoch=1010, end_epoch=1071)
    )
    states[3] = replace(
        states[3], state=JobStateKind.OUT_OF_MEMORY, exit_code=None, hint=OOM_HINT,
        efficiency=Efficiency(63, 49, 1, 490 * MIB, 500 * MIB, 300, start_epoch=1020, end_epoch=1083),
    )  # fmt: skip
    return JobsChanged(changed=tuple(states))


def inspection(n: int = 3, state: JobState | None = None) -> JobInspection:
    """What session.inspect answers for fixed job n (job 3: the out-of-memory consumer)."""
    job = job_id(n)
    base = f"/srv/repx/outputs/{job}"
    return JobInspection(
        job=job, name=job.split("-", 1)[1], run="simulation", stage_type="simple", scheduler="slurm",
        params={"alpha": 0.5, "mode": "fast"}, upstream=(job_id(0), job_id(1), job_id(2)), downstream=(job_id(4),),
        state=state or efficiency_states().changed[n],
        resources=(
            ResourceValue("partition", "debug", "[defaults] of resources.toml in /home/me/.config/repx/resources.toml", "default"),
            ResourceValue("cpus_per_task", "1", "the Lab's resource_hints for this stage", "hint"),
            ResourceValue("mem", "500M", "[[rules]] entry 2 (job_id_glob = '*stage-C*') of resources.toml", "rule", 2),
            ResourceValue("time", "00:05:00", "[defaults] of resources.toml", "default"),
            ResourceValue("sbatch_opts", None, "not set: the cluster's default", "unset"),
        ),
        resources_note="as resources.toml resolves now (/home/me/.config/repx/resources.toml)",
        slurm_ids=(str(1000 + n),), submit="2026-12-01T10:00:00", start="2026-12-01T10:00:20", end="2026-12-01T10:01:23",
        out_path=f"{base}/out", stdout_path=f"{base}/repx/stdout.log", stderr_path=f"{base}/repx/stderr.log",
        units=(UnitState("", "failed", 137, 4096, 812),),
    )  # fmt: skip


def sg_inspection() -> JobInspection:
    """The scatter-gather job 4, with its units."""
    units = (
        UnitState("", "running", None, 40, 10),
        UnitState("scatter", "succeeded", 0, 34, 69),
        UnitState("branch-0/step-square", "succeeded", 0, 38, 73),
        UnitState("branch-1/step-square", "running", None, 12, 0),
        UnitState("gather", "not started"),
    )
    return replace(inspection(4, job_states().changed[4]), job=job_id(4), upstream=(job_id(3),), downstream=(),
                   stage_type="scatter-gather", units=units)  # fmt: skip


def pull_events(dest: str = "/home/me/results") -> list:
    return [
        PullProgress(job_id(0), 3, 2 * MIB),
        PullProgress(job_id(0), 5, 3 * MIB, done=True),
        PullProgress(job_id(1), 0, 0, done=True),
        PullSummary(dest, (PullResult(job_id(0), "pulled", 5, 3 * MIB), PullResult(job_id(1), "unchanged"),
                           PullResult(job_id(2), "missing")), 0.8),
    ]  # fmt: skip
