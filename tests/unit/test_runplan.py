"""What a run or a retry would do, before anything is sent (backend/runplan.py), on a real Lab."""

from __future__ import annotations

import pytest

from repx_tui.backend.events import JobState, JobStateKind, LabPresence
from repx_tui.backend.lab import Lab
from repx_tui.backend.runplan import build_plan, lab_files_size, missing_runs, retry_jobs, split_by_state
from tests.labgen import job_ids, make_lab

K = JobStateKind


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    return Lab.load(make_lab(tmp_path_factory.mktemp("lab") / "lab", "quick"))


def states_of(lab: Lab, **by_stage: JobStateKind) -> dict[str, JobState]:
    """Every job SUCCEEDED except those of the stages named (pname with _ for -)."""
    out = {}
    for job_id, job in lab.jobs.items():
        kind = next((k for stage, k in by_stage.items() if stage.replace("_", "-") in job.name), K.SUCCEEDED)
        out[job_id] = JobState(job_id, job.run, kind)
    return out


def test_done_queued_and_running_jobs_are_skipped(lab):
    jobs = lab.resolve(["simulation"])
    states = states_of(lab, stage_A=K.QUEUED, stage_B=K.RUNNING, stage_C=K.FAILED, stage_D=K.BLOCKED)
    submit, skipped = split_by_state(jobs, states)
    assert {lab.jobs[j].name.split("-1")[0] for j in submit} == {"stage-C-consumer", "stage-D-sum-squares"}
    assert sorted(state for _job, state in skipped) == ["queued", "queued", "running"]
    assert submit == [j for j in jobs if j in submit]  # upstream first, as resolved


def test_a_retry_takes_the_failed_job_its_dependants_and_what_they_need(lab, tmp_path):
    c_jobs = job_ids(lab.root, "stage-C-consumer")
    failed = c_jobs[0]
    states = states_of(lab, stage_C=K.FAILED, stage_D=K.CANCELLED, stage_E=K.CANCELLED)
    retry = retry_jobs(lab, [failed], states)
    assert failed in retry and lab.dependants(failed) <= set(retry)
    # the report reads every run's final job: the other, cancelled, branch comes along; nothing that succeeded
    assert set(c_jobs) <= set(retry)
    assert all(states[j].state != K.SUCCEEDED for j in retry)
    assert retry == lab.topological_order(retry)


def test_a_retry_never_takes_a_queued_or_running_job_nor_what_only_they_need(lab):
    c_jobs = job_ids(lab.root, "stage-C-consumer")
    states = states_of(lab, stage_C=K.FAILED, stage_D=K.QUEUED, stage_E=K.RUNNING)
    assert retry_jobs(lab, [c_jobs[0]], states) == [c_jobs[0]]  # not the other failed C, which only E needs
    assert retry_jobs(lab, list(lab.jobs), states_of(lab)) == []  # all succeeded: nothing to retry
    assert retry_jobs(lab, job_ids(lab.root, "stage-D-sum-squares"), states) == []  # chosen, but not failed


def test_missing_source_runs_and_the_plan(lab):
    report = lab.resolve(["analysis"])
    assert missing_runs(lab, report, states_of(lab, stage_D=K.FAILED)) == ["simulation"]
    assert missing_runs(lab, report, states_of(lab)) == []  # simulation succeeded on the target
    presence = LabPresence("local", lab.lab_id, current=False, layers_there=0, layers_total=0, bytes_to_send=0)
    size = lab_files_size(lab)
    assert size > 0
    plan = build_plan(lab, report, states_of(lab, stage_D=K.FAILED, stage_E=K.FAILED), presence, size)
    assert plan.submit == tuple(report) and plan.missing_runs == ("simulation",) and plan.lab_bytes == size
    current = LabPresence("local", lab.lab_id, current=True, layers_there=0, layers_total=0, bytes_to_send=0)
    assert build_plan(lab, report, states_of(lab), current, size).lab_bytes == 0
