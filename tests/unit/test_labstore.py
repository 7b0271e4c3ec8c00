"""The node-local artifact store's client side: refused without node_local_path (never accepted
and ignored), a deterministic tar of what jobs read, and job specs that point at the copy."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from repx_tui.backend import labstore
from repx_tui.backend.config import Target, load_config
from repx_tui.backend.errors import ConfigError, SchedulerError
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.schedulers.jobspec import build_spec
from tests import labgen


def test_node_local_without_node_local_path_is_a_config_error(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[targets.c]\naddress = "h"\nbase_path = "/b"\nartifact_store = "node-local"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:4: targets.c.artifact_store" in str(err.value)
    assert "needs node_local_path" in str(err.value)
    path.write_text(path.read_text() + 'node_local_path = "/scratch/local"\n')
    assert load_config(path).targets["c"].artifact_store == "node-local"


def test_the_tar_holds_what_jobs_read_and_is_the_same_for_the_same_lab(tmp_path, monkeypatch):
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", image_layers=1)
    lab = Lab.load(lab_dir)
    first = labstore.lab_tar(lab)
    with tarfile.open(first.path) as tar:
        names = tar.getnames()
        assert all(m.uid == 0 and m.mtime == 1 for m in tar.getmembers())
    assert {n.split("/")[0] for n in names} == {"jobs", "lab", "revision", "readme"}
    assert all(f"jobs/{job}" in names for job in lab.jobs)

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-cache"))  # built again elsewhere
    labstore.forget_built_tars()
    again = labstore.lab_tar(Lab.load(lab_dir))
    assert again.path != first.path and again.sha256 == first.sha256


def test_job_specs_point_at_the_node_local_copy(tmp_path):
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick")
    lab = Lab.load(lab_dir)
    job = labgen.job_ids(lab_dir, "stage-D-sum-squares")[0]  # scatter-gather: every unit
    layout = RemoteLayout(base="/shared/base", node_local="/local/disk")
    target = Target(name="c", base_path="/shared/base", node_local_path="/local/disk", artifact_store="node-local")
    spec = build_spec(lab, job, layout, target, "native")
    sha = labstore.lab_tar(lab).sha256
    copy = f"/local/disk/repx/labs/{lab.lab_id}/repx-tui-{sha[:16]}"
    assert spec["lab_tar"] == {"path": f"/shared/base/lab-tars/{lab.lab_id}.tar", "sha256": sha, "dir": copy}
    units = [spec["scatter"], spec["gather"], *spec["steps"].values()]
    assert units and all(u["path"].startswith(copy + "/jobs/") for u in units)

    shared = build_spec(lab, job, layout, Target(name="c", base_path="/shared/base"), "native")
    assert "lab_tar" not in shared and shared["gather"]["path"].startswith("/shared/base/artifacts/jobs/")
    with pytest.raises(SchedulerError, match="needs node_local_path"):
        build_spec(lab, job, RemoteLayout(base="/b"), Target(name="c", base_path="/b", artifact_store="node-local"),
                   "native")  # fmt: skip


def test_unchanged_lab_tar_is_reused_from_the_cache(tmp_path):
    lab = Lab.load(labgen.make_lab(tmp_path / "lab", "quick"))
    built = labstore.lab_tar(lab)
    mtime = built.path.stat().st_mtime_ns
    labstore.forget_built_tars()
    assert labstore.lab_tar(Lab.load(lab.root)).path == built.path
    assert Path(built.path).stat().st_mtime_ns == mtime
