"""A deterministic app state for key-path and snapshot tests: fixed jobs, fed backend events.

The events are the exact types the backend emits and go through Controller.feed, the same path
real backend events take; the real-backend flows are in test_app_local.py / test_app_sshd.py.
"""

from __future__ import annotations

from repx_tui.backend.config import Config, SchedulerConfig, Target
from repx_tui.backend.events import (
    HealthCheck,
    JobsChanged,
    JobState,
    JobStateKind,
    LayerAction,
    LayerProgress,
    LogChunk,
    Phase,
    PhaseDone,
    PhaseProgress,
    PhaseStarted,
    TargetHealth,
)
from repx_tui.ui.app import RepxApp

CONFIG = Config(
    targets={
        "local": Target("local", "/srv/repx", default_scheduler="local", local=SchedulerConfig(("native",))),
        "cluster": Target("cluster", "~/repx", address="me@login.example", slurm=SchedulerConfig(("bwrap",))),
    },
    submission_target="local",
)
IMAGE = "07dw90nbx77aaiawrj9ik632w9215644-repx-shared-image"
JOBS = [
    ("simulation", "stage-A-producer-1", "simple", JobStateKind.SUCCEEDED),
    ("simulation", "stage-A-producer-2", "simple", JobStateKind.SUCCEEDED),
    ("simulation", "stage-B-producer", "simple", JobStateKind.RUNNING),
    ("simulation", "stage-C-consumer", "simple", JobStateKind.FAILED),
    ("simulation", "stage-D-sum-squares", "scatter-gather", JobStateKind.BLOCKED),
    ("analysis", "stage-E-report", "simple", JobStateKind.QUEUED),
]


def job_id(n: int) -> str:
    return f"{n:04d}aaaabbbbccccddddeeeeffff0000-{JOBS[n][1]}"


def fixed_app() -> RepxApp:
    app = RepxApp(CONFIG, target="local", lab_path="/lab", autostart=False, clock=lambda: 100.0)
    deps = {job_id(3): [job_id(4)], job_id(0): [job_id(3)], job_id(1): [job_id(3)], job_id(2): [job_id(3)]}
    for n, (run, name, stage, _state) in enumerate(JOBS):
        app.jobs_model.add_job(job_id(n), name, run, stage)
    app.jobs_model.expand_cancel = lambda jobs: _closure(list(jobs), deps)
    return app


def _closure(jobs: list[str], deps: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    while jobs:
        job = jobs.pop()
        if job not in seen:
            seen.add(job)
            jobs.extend(deps.get(job, []))
    return seen


def job_states(overrides: dict[int, JobStateKind] | None = None) -> JobsChanged:
    states = []
    for n, (run, _name, _stage, state) in enumerate(JOBS):
        state = (overrides or {}).get(n, state)
        states.append(
            JobState(
                job=job_id(n),
                run=run,
                state=state,
                slurm_id=str(1000 + n) if state != JobStateKind.BLOCKED else None,
                elapsed=f"00:01:0{n}" if state.finished or state.active else None,
                node="node1" if state.finished or state == JobStateKind.RUNNING else None,
                exit_code=1 if state == JobStateKind.FAILED else None,
                reason="Priority"
                if state == JobStateKind.QUEUED
                else ("needs stage-C-consumer" if state == JobStateKind.BLOCKED else None),
            )
        )
    return JobsChanged(changed=tuple(states))


def sync_events() -> list:
    mib = 1 << 20
    return [
        PhaseStarted(Phase.HOST_TOOLS, total_bytes=2 * mib),
        PhaseDone(Phase.HOST_TOOLS, files_sent=12, bytes_sent=2 * mib, seconds=0.4),
        PhaseStarted(Phase.LAB),
        PhaseDone(Phase.LAB, files_sent=40, bytes_sent=mib, seconds=0.3, detail="40 files"),
        PhaseStarted(Phase.IMAGES, total_bytes=12 * mib),
        LayerProgress(IMAGE, "a" * 64, 4 * mib, 0, LayerAction.REUSED, True),
        LayerProgress(IMAGE, "b" * 64, 2 * mib, 0, LayerAction.NODE_LOCAL, True),
        LayerProgress(IMAGE, "c" * 64, 6 * mib, 3 * mib, LayerAction.TRANSFERRED),
        LayerProgress(IMAGE, "d" * 64, 1 * mib, 0, LayerAction.TRANSFERRED),  # waits for an upload slot
        PhaseProgress(Phase.IMAGES, bytes_done=3 * mib, total_bytes=12 * mib, detail="1 of 2 to send"),
    ]


def health_events() -> list:
    return [
        TargetHealth("local", (
            HealthCheck("reachable", True, "this machine"),
            HealthCheck("scheduler", True, "local"),
            HealthCheck("base_path", True, "/srv/repx writable"),
            HealthCheck("free_space", True, "120.0 GiB free"),
        ), 0.1),
        TargetHealth("cluster", (
            HealthCheck("reachable", False, "Permission denied (publickey)", "ssh -o BatchMode=yes me@login.example echo ok"),
        ), 2.0),
    ]  # fmt: skip


# The first screen as `repx-tui` opens it (no target given), with a target whose address is
# longer than an 80-column table can show beside its checks.
LONG_ADDRESS = "researcher@login01.hpc.university-example.org"
PICKER_CONFIG = Config(
    targets={
        **CONFIG.targets,
        "hpc": Target("hpc", "/scratch/researcher/repx", address=LONG_ADDRESS, slurm=SchedulerConfig(("bwrap",))),
    },
    submission_target="local",
)


def picker_app() -> RepxApp:
    return RepxApp(PICKER_CONFIG, autostart=False, clock=lambda: 100.0)


def picker_health_events() -> list:
    return [
        *health_events(),
        TargetHealth("hpc", (
            HealthCheck("reachable", True, "logged in"),
            HealthCheck("scheduler", True, "slurm (partitions: normal,gpu,debug)"),
            HealthCheck("base_path", True, "/scratch/researcher/repx writable"),
            HealthCheck("free_space", True, "2.1 TiB free"),
        ), 0.8),
    ]  # fmt: skip


def log_text(lines: int = 60) -> LogChunk:
    text = "".join(f"step {i}: value={i * i}\n" for i in range(lines))
    return LogChunk(job=job_id(2), stream="stdout", offset=0, text=text)
