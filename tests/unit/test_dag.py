"""One source of truth for the DAG (issue 9): selection, dependants, inter-run edges and the names
that become remote paths, as Lab.load and the Lab's methods define them for every front end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repx_tui.backend.errors import LabError, RepxError
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.schedulers import upstream_for_submit
from repx_tui.backend.status import LabView
from repx_tui.backend.sync.lab import own_metadata
from tests import labgen


@pytest.fixture
def lab_dir(tmp_path) -> Path:
    path = labgen.make_lab(tmp_path / "lab", "quick")
    labgen.make_writable(path)
    return path


def one(lab_dir: Path, pname: str) -> str:
    (job,) = labgen.job_ids(lab_dir, pname)
    return job


@pytest.mark.parametrize("value", [".", ".."])
def test_dot_names_are_refused_at_load(lab_dir, value):
    labgen.edit_json(lab_dir / "revision/metadata-simulation.json", lambda d: d.update(name=value))
    with pytest.raises(LabError, match="run name"):
        Lab.load(lab_dir)


@pytest.mark.parametrize("value", [".", "..", "a/b"])
def test_dot_lab_ids_are_refused_at_load(lab_dir, value):
    labgen.edit_json(lab_dir / "lab/lab-metadata.json", lambda d: d.update(labId=value))
    with pytest.raises(LabError, match="labId"):
        Lab.load(lab_dir)


def test_an_inter_run_input_naming_an_unknown_run_is_refused(lab_dir):
    report = one(lab_dir, "stage-E-report")

    def rename(meta):
        meta["jobs"][report]["executables"]["main"]["inputs"][0]["source_run"] = "nosuchrun"

    labgen.edit_json(lab_dir / "revision/metadata-analysis.json", rename)
    with pytest.raises(LabError, match="reads run 'nosuchrun', which is not in the Lab"):
        Lab.load(lab_dir)


def test_selection_and_cancel_mean_the_same_everywhere(lab_dir):
    lab = Lab.load(lab_dir)
    producer = one(lab_dir, "stage-B-producer")
    report = one(lab_dir, "stage-E-report")
    assert lab.select(["simulation"]) == lab.topological_order(lab.runs["simulation"].jobs)
    assert lab.select(["@all"])[-1] == report
    # what a cancel of the producer covers: everything that can only run after it, inter-run too
    covered = lab.with_dependants([producer])
    assert covered[0] == producer and report in covered
    assert set(covered) == {producer} | lab.dependants(producer)
    view = LabView.of(lab)
    assert view.deps[report] == lab.upstream(report) and view.source_runs[report] == {
        "simulation": tuple(lab.final_jobs("simulation"))
    }


def test_submit_dependencies_split_by_the_allow_missing_runs_choice(lab_dir):
    lab = Lab.load(lab_dir)
    report = one(lab_dir, "stage-E-report")
    finals = lab.final_jobs("simulation")
    assert upstream_for_submit(lab, report, {report, *finals}, False) == (finals, [])
    assert upstream_for_submit(lab, report, {report}, False) == (finals, [])
    assert upstream_for_submit(lab, report, {report}, True) == ([], finals)  # waited for only if queued


def test_own_metadata_points_only_at_itself(lab_dir):
    lab = Lab.load(lab_dir)
    files = {rel: json.loads(data) for rel, data in own_metadata(lab).items()}
    prefix = f"{lab.lab_id}-"
    assert all(rel.split("/")[1].startswith(prefix) for rel in files)
    manifest = files[f"lab/{prefix}lab-metadata.json"]
    top = files[manifest["metadata"]]
    assert all(path in files for path in top["runs"])
    analysis = files[f"revision/{prefix}metadata-analysis.json"]
    assert list(analysis["dependencies"]) == [f"revision/{prefix}metadata-simulation.json"]
    listed = {f["path"] for f in manifest["files"]}
    assert "revision/metadata-top.json" not in listed and manifest["metadata"] in listed
    layout = RemoteLayout(base="/b")
    assert layout.run_metadata(lab.lab_id, "simulation") == f"/b/artifacts/revision/{prefix}metadata-simulation.json"


def test_a_job_id_with_a_trailing_newline_is_refused_at_load(lab_dir):
    """`$` in a regex also matches before a final newline: such an id split the agent's and
    submit.sh's line-per-job batches (the agent queued a job named after the spec's base path)."""
    report = one(lab_dir, "stage-E-report")
    labgen.edit_json(
        lab_dir / "revision/metadata-analysis.json", lambda d: d["jobs"].update({report + "\n": d["jobs"].pop(report)})
    )
    (lab_dir / "jobs" / f"{report}\n").mkdir()  # its directory exists, as the Lab claims
    labgen.rewrite_manifest(lab_dir)
    with pytest.raises(LabError, match="is not a safe name"):
        Lab.load(lab_dir)
    with pytest.raises(RepxError, match="unsafe job id"):
        RemoteLayout(base="/b").job_dir(report + "\n")
