"""What a run or a retry would do, worked out before anything is sent.

The front ends show it as a confirmation: the jobs that would be submitted, those skipped because
they already succeeded or are queued or running (the scheduler helpers skip the same ones, so
what is shown is what happens), what the target lacks, and runs the jobs read that are missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from repx_tui.backend.events import JobState, JobStateKind, LabPresence, RunPlan
from repx_tui.backend.lab import Lab

K = JobStateKind
# A submission skips these (never a second copy of a job that is queued, running or done).
SKIPPED = frozenset({K.SUCCEEDED, K.QUEUED, K.RUNNING})
# A retry re-submits these.
RETRYABLE = frozenset({K.FAILED, K.CANCELLED, K.TIMEOUT, K.OUT_OF_MEMORY})


def _kind(states: Mapping[str, JobState], job_id: str) -> JobStateKind:
    state = states.get(job_id)
    return state.state if state is not None else K.UNKNOWN


def split_by_state(job_ids: Sequence[str], states: Mapping[str, JobState]) -> tuple[list[str], list[tuple[str, str]]]:
    """(jobs to submit, [(job, state)] skipped), order kept."""
    submit: list[str] = []
    skipped: list[tuple[str, str]] = []
    for job_id in job_ids:
        kind = _kind(states, job_id)
        if kind in SKIPPED:
            skipped.append((job_id, kind.value))
        else:
            submit.append(job_id)
    return submit, skipped


def retry_jobs(lab: Lab, chosen: Iterable[str], states: Mapping[str, JobState]) -> list[str]:
    """What re-submitting the failed or cancelled jobs among `chosen` means: those jobs, every job
    that depends on them, and whatever those need that has not succeeded (a job waits for its
    upstream); never one that succeeded or is queued or running. Upstream first."""
    failed = [j for j in chosen if j in lab.jobs and _kind(states, j) in RETRYABLE]
    if not failed:
        return []
    wanted = [j for j in lab.with_dependants(failed) if _kind(states, j) not in SKIPPED]
    return lab.topological_order(_with_upstream(lab, wanted, states))


def _with_upstream(lab: Lab, job_ids: Iterable[str], states: Mapping[str, JobState]) -> set[str]:
    """The jobs and what they wait for (inter-run sources too, Lab.upstream) that has not
    succeeded and is not queued or running: those need nothing more."""
    seen: set[str] = set()
    stack = list(job_ids)
    while stack:
        job_id = stack.pop()
        if job_id not in seen and _kind(states, job_id) not in SKIPPED:
            seen.add(job_id)
            stack.extend(lab.upstream(job_id))
    return seen


def missing_runs(lab: Lab, job_ids: Sequence[str], states: Mapping[str, JobState]) -> list[str]:
    """Runs these jobs read that are neither in the batch nor queued, running or succeeded."""
    batch = set(job_ids)
    ready = (K.SUCCEEDED, K.QUEUED, K.RUNNING)
    return sorted(
        run
        for run in lab.missing_source_runs(job_ids)
        if any(j not in batch and _kind(states, j) not in ready for j in lab.final_jobs(run))
    )


def lab_files_size(lab: Lab) -> int:
    """Bytes of the Lab's own files (what an rsync to an empty target sends at most)."""
    total = 0
    for entry in lab.files:
        try:
            total += (lab.root / entry.path).stat().st_size
        except OSError:
            continue
    return total


def build_plan(
    lab: Lab,
    job_ids: Sequence[str],
    states: Mapping[str, JobState],
    presence: LabPresence,
    lab_bytes: int,
    status_error: str | None = None,
) -> RunPlan:
    submit, skipped = split_by_state(job_ids, states)
    return RunPlan(
        target=presence.target,
        submit=tuple(submit),
        skipped=tuple(skipped),
        presence=presence,
        lab_bytes=0 if presence.current else lab_bytes,
        missing_runs=tuple(missing_runs(lab, job_ids, states)),
        status_error=status_error,
    )
