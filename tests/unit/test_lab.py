"""The Lab model: loading (dir, file, tar), DAG, resolve, verify, broken Labs, and the demo Lab."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from repx_tui.backend.errors import LabError
from repx_tui.backend.lab import Job, Lab, lab_cache_dir
from tests import labgen

A, B, C, D, E = (f"stage-{x}" for x in ("A-producer", "B-producer", "C-consumer", "D-sum-squares", "E-report"))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """One full demo Lab (all host tools), shared read-only by the tests that only look."""
    return labgen.make_lab(tmp_path_factory.mktemp("labs") / "lab")


@pytest.fixture(scope="module")
def lab(pristine) -> Lab:
    return Lab.load(pristine)


@pytest.fixture
def quick_lab(tmp_path) -> Path:
    """A private Lab a test may break."""
    path = labgen.make_lab(tmp_path / "lab", "quick")
    labgen.make_writable(path)
    return path


def ids(lab: Lab, pname: str) -> list[str]:
    return sorted(j.id for j in lab.jobs.values() if j.name == f"{pname}-1.1")


# ----------------------------------------------------------------------------- loading


def test_nix32_matches_the_upstream_test_vector():
    assert labgen.nix32(hashlib.sha256(b"").digest()) == "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"


def test_runs_groups_and_jobs(lab, pristine):
    assert lab.root == pristine.resolve()
    assert list(lab.runs) == ["simulation", "analysis"]
    assert lab.groups == {"all": ("simulation", "analysis")}
    assert lab.repx_version == "0.5.0" and lab.warnings == []
    assert lab.manifest_path == "lab/lab-metadata.json"
    assert lab.metadata_path == "revision/metadata-top.json"
    assert len(lab.jobs) == 8 and len(lab.runs["simulation"].jobs) == 7
    assert [len(ids(lab, p)) for p in (A, B, C, D, E)] == [2, 1, 2, 2, 1]
    assert sorted(j.params["count"] for j in (lab.jobs[i] for i in ids(lab, A))) == [3, 5]
    assert all(re.fullmatch(r"[0-9a-df-np-sv-z]{32}-stage-[A-Z]-[a-z-]+-1\.1", j) for j in lab.jobs)
    analysis = lab.runs["analysis"]
    assert analysis.dependencies == {"revision/metadata-simulation.json": "hard"}
    assert analysis.image is None and lab.image_for_job(analysis.jobs[0]) is None
    assert lab.run_of(analysis.jobs[0]) == "analysis"


def test_dag_comes_from_input_job_ids(lab):
    b = ids(lab, B)[0]
    for c in ids(lab, C):
        job = lab.jobs[c]
        assert len(job.dependencies) == 2 and b in job.dependencies
        assert {lab.jobs[d].name for d in job.dependencies} == {f"{A}-1.1", f"{B}-1.1"}
    for d in ids(lab, D):
        assert [lab.jobs[x].name for x in lab.jobs[d].dependencies] == [f"{C}-1.1"]
    report = lab.jobs[ids(lab, E)[0]]
    assert report.dependencies == ()  # inter-run inputs are not output edges...
    assert report.main.inputs[0].type == "inter-run" and report.main.inputs[0].source_run == "simulation"
    assert report.source_runs == ("simulation",)
    # ...but the report starts only after the whole simulation run: its final jobs are upstream
    assert lab.final_jobs("simulation") == sorted(ids(lab, D))
    assert lab.upstream(report.id) == tuple(sorted(ids(lab, D)))
    assert lab.dependants(b) == set(ids(lab, C)) | set(ids(lab, D)) | {report.id}
    assert lab.dependants(report.id) == set()
    order = lab.topological_order(lab.jobs)
    assert order[-1] == report.id
    # selecting the analysis run alone does not pull the simulation in: it is reported missing
    assert lab.resolve(["analysis"]) == [report.id]
    assert lab.missing_source_runs([report.id]) == {"simulation": [report.id]}
    assert lab.missing_source_runs(lab.resolve(["@all"])) == {}
    assert lab.with_dependants(ids(lab, C)[:1])[-1] == report.id


def test_scatter_gather_shape(lab):
    job: Job = lab.jobs[ids(lab, D)[0]]
    assert job.is_scatter_gather and job.main is None
    assert set(job.steps) == {"extract", "square"} and job.step_order == ["extract", "square"]
    assert job.steps["square"].deps == ("extract",)
    assert job.scatter.outputs == {"work__items": "$out/work_items.json", "worker__arg": {"index": 0}}
    gather_inputs = {i.target_input: i for i in job.gather.inputs}
    assert gather_inputs["worker__outs"].source == "runner:worker_outputs"
    assert gather_inputs["work__items"].job_id == "self"  # and "self" is not a dependency
    assert job.scatter.path == f"jobs/{job.id}/bin/{D}-scatter"
    assert job.steps["extract"].resource_hints == {"cpus": 1, "mem": "512M", "time": "00:05:00"}
    assert job.short_id == job.id[:12] + job.id[32:]


def test_resource_hints(lab):
    assert lab.jobs[ids(lab, B)[0]].resource_hints["sbatch_opts"] == ["--comment=repx-demo"]
    assert lab.jobs[ids(lab, A)[0]].resource_hints == {"cpus": 1, "mem": "256M", "time": "00:05:00"}


def test_host_tools(lab):
    assert re.fullmatch(r"[0-9a-f]{64}", lab.host_tools_dir)
    bash = lab.host_tools_path / "bash"
    assert bash.is_symlink() and os.readlink(bash).startswith("../../../store/")
    assert subprocess.run([str(bash), "-c", "echo ok"], capture_output=True, text=True).stdout == "ok\n"


@pytest.mark.parametrize("hash_prefixed", [False, True])
def test_both_naming_styles_give_the_same_lab(tmp_path, lab, hash_prefixed):
    path = labgen.make_lab(tmp_path / "lab", "quick", hash_prefixed_names=hash_prefixed)
    loaded = Lab.load(path)
    assert sorted(loaded.jobs) == sorted(lab.jobs)
    if hash_prefixed:
        assert re.fullmatch(r"lab/[0-9a-z]{32}-lab-metadata\.json", loaded.manifest_path)
        assert re.fullmatch(r"revision/[0-9a-z]{32}-metadata-top\.json", loaded.metadata_path)
        dep_key = next(iter(loaded.runs["analysis"].dependencies))
        assert re.fullmatch(r"revision/[0-9a-z]{32}-metadata-simulation\.json", dep_key)
    loaded.verify()


def test_load_from_a_file_inside_lab(pristine, lab):
    assert Lab.load(pristine / "lab" / "lab-metadata.json").root == lab.root
    assert Lab.load(pristine / "lab").root == lab.root


@pytest.mark.parametrize(
    "prefix,name", [("result", "lab.tar"), ("./", "lab.tar"), ("", "flat.tar"), ("any-dir", "lab.tar.gz")]
)
def test_load_tar(tmp_path, prefix, name):
    tar = labgen.make_lab_tar(tmp_path, "quick", prefix=prefix, name=name)
    from_dir = Lab.load(tmp_path / "lab-src")
    loaded = Lab.load(tar)
    assert loaded.source == tar and loaded.root.parent == lab_cache_dir().resolve()
    assert loaded.to_summary() == from_dir.to_summary()
    loaded.verify()
    assert (loaded.host_tools_path / "bash").is_symlink()
    assert Lab.load(tar).root == loaded.root  # cached, not unpacked twice
    assert [p.name for p in lab_cache_dir().iterdir()] == [loaded.root.name]  # no temp leftovers


def test_repx_version_mismatch_only_warns(quick_lab):
    labgen.edit_json(quick_lab / "revision/metadata-top.json", lambda d: d.update(repx_version="0.4.2"))
    loaded = Lab.load(quick_lab)
    assert len(loaded.warnings) == 1 and "0.4.2" in loaded.warnings[0]


# ----------------------------------------------------------------------------- resolve


def _assert_topological(lab: Lab, order: list[str]) -> None:
    position = {j: i for i, j in enumerate(order)}
    for job_id in order:
        assert all(position[d] < position[job_id] for d in lab.jobs[job_id].dependencies if d in position)


def test_resolve_run_group_and_prefix(lab):
    simulation = lab.resolve(["simulation"])
    assert sorted(simulation) == sorted(lab.runs["simulation"].jobs)
    _assert_topological(lab, simulation)
    assert simulation[0] == min(ids(lab, A) + ids(lab, B))  # ties broken by id
    assert lab.resolve(["analysis"]) == ids(lab, E)
    assert sorted(lab.resolve(["@all"])) == sorted(lab.jobs)
    c = ids(lab, C)[0]
    assert sorted(lab.resolve([c[:10]])) == sorted([c, *lab.jobs[c].dependencies])
    assert lab.resolve([c])[-1] == c
    assert lab.resolve(["analysis", "analysis"]) == ids(lab, E)
    assert lab.final_jobs("simulation") == ids(lab, D)


def test_resolve_errors(lab):
    with pytest.raises(LabError, match="'nope' did not match any run, group or job"):
        lab.resolve(["nope"])
    with pytest.raises(LabError, match=r"'1' is ambiguous: it matches \d+ jobs"):
        lab.resolve(["1"])  # a 52-char nix32 hash cut to 32 starts with 0 or 1
    with pytest.raises(LabError, match=r"unknown group '@nope' \(groups in this Lab: all\)"):
        lab.resolve(["@nope"])
    with pytest.raises(LabError, match="needs a group name"):
        lab.resolve(["@"])
    with pytest.raises(LabError, match="unknown job"):
        lab.run_of("nope")


def test_topological_order_big_dag(tmp_path):
    big = Lab.load(labgen.make_lab(tmp_path / "lab", "big_dag", runs=["simulation"], scale=200))
    assert len(big.jobs) == 207
    order = big.resolve(["simulation"])
    assert len(order) == 207
    _assert_topological(big, order)
    root_scale = next(j for j in big.jobs.values() if j.name == "stage-S-scale-1.1" and j.params["index"] == 0)
    assert len(big.dependants(root_scale.id)) == 199


# ------------------------------------------------------------------------------ verify


def test_verify_passes_with_progress(lab):
    calls = []
    lab.verify(lambda done, total, path: calls.append((done, total, path)))
    total = calls[-1][1]
    assert calls[-1][0] == total > 0
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert {c[2] for c in calls} == {f.path for f in lab.files}


def test_verify_names_a_corrupted_file(quick_lab):
    loaded = Lab.load(quick_lab)
    script = quick_lab / loaded.jobs[ids(loaded, C)[0]].main.path
    script.chmod(script.stat().st_mode | stat.S_IWUSR)
    script.write_text(script.read_text() + "# tampered\n")
    with pytest.raises(LabError) as err:
        loaded.verify()
    rel = script.relative_to(quick_lab).as_posix()
    assert f"failed for 1 of {len(loaded.files)} files; first: {rel} has sha256" in err.value.message


def test_verify_names_a_missing_file(quick_lab):
    (quick_lab / "readme" / "README.md").unlink()
    with pytest.raises(LabError, match=r"first: readme/README.md is missing"):
        Lab.load(quick_lab).verify()


# -------------------------------------------------------------------------- broken Labs


def _first_job(lab_dir: Path, run: str = "simulation") -> str:
    return sorted(json.loads((lab_dir / f"revision/metadata-{run}.json").read_text())["jobs"])[0]


def _rename_job(lab_dir: Path, new_id: str) -> None:
    old = _first_job(lab_dir)
    labgen.edit_json(
        lab_dir / "revision/metadata-simulation.json", lambda d: d["jobs"].update({new_id: d["jobs"].pop(old)})
    )


def test_not_a_lab(tmp_path):
    with pytest.raises(LabError, match="no such file or directory"):
        Lab.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabError, match="this is not a Lab"):
        Lab.load(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(LabError, match="not a Lab directory"):
        Lab.load(tmp_path / "x.txt")


def test_missing_manifest(quick_lab):
    (quick_lab / "lab" / "lab-metadata.json").unlink()
    with pytest.raises(LabError, match=r"lab: no \*lab-metadata.json manifest"):
        Lab.load(quick_lab)


def test_bad_json_names_file_line_and_column(quick_lab):
    (quick_lab / "revision/metadata-simulation.json").write_text('{"name": "simulation",\n "jobs": }')
    with pytest.raises(LabError, match=r"^revision/metadata-simulation.json: invalid JSON at line 2, column 10"):
        Lab.load(quick_lab)


@pytest.mark.parametrize(
    "path,field",
    [
        ("lab/lab-metadata.json", "labId"),
        ("lab/lab-metadata.json", "files"),
        ("revision/metadata-top.json", "gitHash"),
        ("revision/metadata-simulation.json", "name"),
    ],
)
def test_missing_required_field(quick_lab, path, field):
    labgen.edit_json(quick_lab / path, lambda d: d.pop(field))
    with pytest.raises(LabError, match=f"^{re.escape(path)}: required field '{field}' is missing"):
        Lab.load(quick_lab)


def test_missing_job_params(quick_lab):
    job = _first_job(quick_lab)
    labgen.edit_json(quick_lab / "revision/metadata-simulation.json", lambda d: d["jobs"][job].pop("params"))
    with pytest.raises(LabError, match=f"job {job}: required field 'params' is missing"):
        Lab.load(quick_lab)


def test_missing_job_dir(quick_lab):
    job = _first_job(quick_lab)
    shutil.rmtree(quick_lab / "jobs" / job)
    with pytest.raises(LabError, match=f"job directory jobs/{job} is missing"):
        Lab.load(quick_lab)


def test_missing_host_tools(quick_lab):
    shutil.rmtree(quick_lab / "host-tools")
    with pytest.raises(LabError, match=r"no host-tools/<hash>/ directory"):
        Lab.load(quick_lab)


def test_symlink_escaping_the_lab(quick_lab):
    (quick_lab / "readme" / "evil").symlink_to("/etc/passwd")
    with pytest.raises(LabError, match=r"^readme/evil: symlink points outside the Lab \(to /etc/passwd\)"):
        Lab.load(quick_lab)


def test_job_dir_symlink_escaping_the_lab(quick_lab, tmp_path):
    job = _first_job(quick_lab)
    shutil.move(quick_lab / "jobs" / job, tmp_path / "outside")
    (quick_lab / "jobs" / job).symlink_to(tmp_path / "outside")
    with pytest.raises(LabError, match="points outside the Lab"):
        Lab.load(quick_lab)


@pytest.mark.parametrize("bad_id", ["../evil", "abc'def", "a b", "x..y", "-lead", 'q"uote', "$(id)"])
def test_unsafe_job_ids(quick_lab, bad_id):
    _rename_job(quick_lab, bad_id)
    with pytest.raises(LabError, match="is not a safe name"):
        Lab.load(quick_lab)


@pytest.mark.parametrize(
    "bad_path,message",
    [("/etc/passwd", "is absolute"), ("jobs/../../x", "contains '..'"), ("jobs/a b/run", "contains whitespace")],
)
def test_unsafe_executable_paths(quick_lab, bad_path, message):
    job = _first_job(quick_lab)
    labgen.edit_json(
        quick_lab / "revision/metadata-simulation.json",
        lambda d: d["jobs"][job]["executables"]["main"].update(path=bad_path),
    )
    with pytest.raises(LabError, match=re.escape(message)):
        Lab.load(quick_lab)


def test_unsafe_run_name(quick_lab):
    labgen.edit_json(quick_lab / "revision/metadata-simulation.json", lambda d: d.update(name="sim`x`"))
    with pytest.raises(LabError, match="run name"):
        Lab.load(quick_lab)


def test_missing_image_dir(quick_lab):
    labgen.edit_json(quick_lab / "revision/metadata-analysis.json", lambda d: d.update(image="images/x-img.tar"))
    with pytest.raises(LabError, match="image images/x-img.tar is missing"):
        Lab.load(quick_lab)


def test_unknown_dependency(quick_lab):
    c = labgen.job_ids(quick_lab, C)[0]
    labgen.edit_json(
        quick_lab / "revision/metadata-simulation.json",
        lambda d: d["jobs"][c]["executables"]["main"]["inputs"][0].update(job_id="0" * 32 + "-gone-1.1"),
    )
    with pytest.raises(LabError, match=f"job {c} depends on 0{{32}}-gone-1.1, which is not in the Lab"):
        Lab.load(quick_lab)


def _tar_with(tmp_path: Path, extra: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tf:
        manifest = tarfile.TarInfo("result/lab/lab-metadata.json")
        manifest.size = 2
        tf.addfile(manifest, io.BytesIO(b"{}"))
        extra.size = len(data)
        tf.addfile(extra, io.BytesIO(data))
    return path


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "abs-symlink", "hardlink"])
def test_tar_members_escaping_the_lab(tmp_path, kind):
    info = {
        "dotdot": tarfile.TarInfo("result/../../escaped"),
        "absolute": tarfile.TarInfo("/tmp/escaped"),
        "symlink": tarfile.TarInfo("result/jobs/link"),
        "abs-symlink": tarfile.TarInfo("result/jobs/link"),
        "hardlink": tarfile.TarInfo("result/jobs/hard"),
    }[kind]
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "../../outside"
    elif kind == "abs-symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
    with pytest.raises(LabError, match=r"evil.tar: .*(outside the Lab|escapes the Lab)"):
        Lab.load(_tar_with(tmp_path, info, b"x" if info.isfile() else b""))
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()
    assert list(lab_cache_dir().iterdir()) == []  # the temp dir is gone, nothing was cached


def test_tar_without_a_lab(tmp_path):
    path = tmp_path / "other.tar"
    with tarfile.open(path, "w") as tf:
        tf.addfile(tarfile.TarInfo("readme.txt"))
    with pytest.raises(LabError, match="no lab/\\*lab-metadata.json inside the tar"):
        Lab.load(path)


# ---------------------------------------------------------------------- summary, format


def test_to_summary_shape(lab):
    summary = lab.to_summary()
    assert set(summary) == {"lab_id", "runs", "groups", "jobs", "images", "host_tools"}
    assert summary["runs"][0] == {"name": "simulation", "jobs": list(lab.runs["simulation"].jobs)}
    assert summary["groups"] == {"all": ["simulation", "analysis"]}
    assert summary["jobs"] == 8 and summary["images"] == [] and summary["host_tools"] == lab.host_tools_dir
    json.dumps(summary)


def test_files_follow_the_upstream_format(pristine):
    manifest_text = (pristine / "lab/lab-metadata.json").read_text()
    manifest = json.loads(manifest_text)
    assert manifest_text == json.dumps(manifest, sort_keys=True, separators=(",", ":"))  # compact
    assert set(manifest) == {"labId", "lab_version", "metadata", "files"}
    assert re.fullmatch(r"[0-9a-df-np-sv-z]{32}", manifest["labId"])
    paths = [f["path"] for f in manifest["files"]]
    assert paths == sorted(paths) and "lab/lab-metadata.json" not in paths
    host_bash = next(f for f in manifest["files"] if f["path"].endswith("/bin/bash"))
    assert host_bash["sha256"] == hashlib.sha256((pristine / host_bash["path"]).read_bytes()).hexdigest()
    root = json.loads((pristine / manifest["metadata"]).read_text())
    assert root["repx_version"] == "0.5.0" and root["type"] == "root" and re.fullmatch(r"[0-9a-f]{40}", root["gitHash"])
    assert root["runs"] == ["revision/metadata-simulation.json", "revision/metadata-analysis.json"]
    run = json.loads((pristine / root["runs"][0]).read_text())
    assert set(run) == {"type", "name", "gitHash", "dependencies", "image", "jobs"} and run["type"] == "run"
    for job_id, job in run["jobs"].items():
        assert {"name", "stage_type", "params", "executables"} <= set(job)
        pname = job["name"].rsplit("-", 1)[0]
        params_file = pristine / "jobs" / job_id / f"{pname}-parameters.json"
        assert json.loads(params_file.read_text()) == job["params"]
        assert isinstance(json.loads((pristine / "jobs" / job_id / "nix-input-dependencies.json").read_text()), list)
        for exe in job["executables"].values():
            assert exe["path"].startswith(f"jobs/{job_id}/bin/")
            for mapping in exe["inputs"]:
                assert set(mapping) == {
                    "type",
                    "job_id",
                    "job_id_template",
                    "source_output",
                    "target_input",
                    "source_run",
                    "dependency_type",
                    "source_value",
                    "source",
                    "source_key",
                }


def test_files_are_nix_like(pristine):
    lab = Lab.load(pristine)
    script = pristine / lab.jobs[ids(lab, A)[0]].main.path
    assert stat.S_IMODE(script.stat().st_mode) == 0o555
    assert stat.S_IMODE((pristine / "readme/README.md").stat().st_mode) == 0o444
    assert stat.S_IMODE((pristine / "jobs").stat().st_mode) == 0o555
    assert script.stat().st_mtime == 1 and pristine.stat().st_mtime == 1


# ------------------------------------------------------------------------------ images


def test_image_layers(tmp_path):
    path = labgen.make_lab(tmp_path / "lab", "quick", image_layers=3, layer_size_kib=64)
    lab = Lab.load(path)
    lab.verify()
    (image,) = lab.images.values()
    assert re.fullmatch(r"images/[0-9a-z]{32}-repx-shared-image\.tar", image.path)
    assert image.tag == image.path[len("images/") : -len(".tar")]
    assert all(lab.image_for_job(j) == image for j in lab.jobs)
    assert len(image.layers) == 3 and f"{image.path}/manifest.json" in image.meta_files and len(image.meta_files) == 2
    for layer in image.layers:
        real = path / layer.store_path
        assert layer.store_path == f"store/{layer.digest}-layer.tar"
        assert hashlib.sha256(real.read_bytes()).hexdigest() == layer.digest == layer.sha256
        assert layer.size == real.stat().st_size and tarfile.is_tarfile(real)
        assert os.readlink(path / image.path / layer.digest / "layer.tar") == f"../../../store/{layer.digest}-layer.tar"
    with tarfile.open(path / image.layers[0].store_path) as tf:
        names = tf.getnames()
    assert "usr/bin/env" in names and any(n.endswith("bin/jq") for n in names)
    with tarfile.open(path / image.layers[2].store_path) as tf:
        assert tf.getmember("opt/repx-demo/layer-3/padding.bin").size == 64 * 1024


def test_layer_seed_changes_only_the_last_layer(tmp_path):
    first = Lab.load(labgen.make_lab(tmp_path / "a", "quick", image_layers=3, layer_seed=1))
    second = Lab.load(labgen.make_lab(tmp_path / "b", "quick", image_layers=3, layer_seed=2))
    digests = [[ly.digest for ly in lab.images[next(iter(lab.images))].layers] for lab in (first, second)]
    assert digests[0][:2] == digests[1][:2] and digests[0][2] != digests[1][2]
    assert sorted(first.jobs) == sorted(second.jobs)


# ----------------------------------------------------------------- running the stages natively


class NativeRunner:
    """Runs a demo Lab's jobs by hand, resolving inputs the way an executor must."""

    def __init__(self, lab: Lab, base: Path) -> None:
        self.lab, self.base = lab, base
        self.env = {**os.environ, "PATH": f"{lab.host_tools_path}:{os.environ['PATH']}"}

    def out_dir(self, job_id: str) -> Path:
        return self.base / "outputs" / job_id / "out"

    def output(self, job_id: str, name: str) -> str:
        job = self.lab.jobs[job_id]
        template = (job.gather or job.main).outputs[name]
        return template.replace("$out", str(self.out_dir(job_id)))

    def exe(self, job: Job, exe_name: str, out: Path, inputs: dict[str, str]) -> subprocess.CompletedProcess:
        out.parent.mkdir(parents=True, exist_ok=True)
        inputs_file = out.parent / f"{exe_name}-inputs.json"
        inputs_file.write_text(json.dumps(inputs))
        params = self.lab.root / "jobs" / job.id / f"{job.name[:-4]}-parameters.json"
        script = self.lab.root / job.executables[exe_name].path
        return subprocess.run(
            [str(script), str(out), str(inputs_file), str(params)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )

    def common_input(self, mapping) -> str:
        if mapping.type == "inter-run":
            return str(self.lab.root / self.lab.runs[mapping.source_run].metadata_path)
        if mapping.type == "global":
            return str(self.base)
        return self.output(mapping.job_id, mapping.source_output)

    def run_simple(self, job: Job) -> subprocess.CompletedProcess:
        inputs = {m.target_input: self.common_input(m) for m in job.main.inputs}
        return self.exe(job, "main", self.out_dir(job.id), inputs)

    def run_scatter_gather(self, job: Job) -> subprocess.CompletedProcess:
        root = self.base / "outputs" / job.id
        inputs = {m.target_input: self.common_input(m) for m in job.scatter.inputs}
        result = self.exe(job, "scatter", root / "scatter" / "out", inputs)
        assert result.returncode == 0, result.stderr
        items = json.loads((root / "scatter/out/work_items.json").read_text())
        sink = job.step_order[-1]
        outs = [self.run_branch(job, root / f"branch-{i}", item, sink) for i, item in enumerate(items)]
        (root / "repx").mkdir(parents=True, exist_ok=True)
        (root / "repx/worker_outs_manifest.json").write_text(json.dumps(outs))
        inputs = {}
        for m in job.gather.inputs:
            if m.source == "runner:worker_outputs":
                inputs[m.target_input] = str(root / "repx/worker_outs_manifest.json")
            elif m.job_id == "self":
                inputs[m.target_input] = job.scatter.outputs[m.source_output].replace("$out", str(root / "scatter/out"))
        return self.exe(job, "gather", self.out_dir(job.id), inputs)

    def run_branch(self, job: Job, branch: Path, item: dict, sink: str) -> dict[str, str]:
        branch.mkdir(parents=True)
        (branch / "work_item.json").write_text(json.dumps(item))
        for name in job.step_order:
            step = job.steps[name]
            inputs = {}
            for m in step.inputs:
                if m.source == "scatter:work_item":
                    inputs[m.target_input] = str(branch / "work_item.json")
                elif m.source and m.source.startswith("step:"):
                    dep = m.source.removeprefix("step:")
                    template = job.steps[dep].outputs[m.source_output]
                    inputs[m.target_input] = template.replace("$out", str(branch / f"step-{dep}" / "out"))
                else:
                    inputs[m.target_input] = self.common_input(m)
            result = self.exe(job, f"step-{name}", branch / f"step-{name}" / "out", inputs)
            assert result.returncode == 0, result.stderr
        sink_out = job.steps[sink].outputs
        return {k: v.replace("$out", str(branch / f"step-{sink}" / "out")) for k, v in sink_out.items()}

    def run(self, job_id: str) -> subprocess.CompletedProcess:
        job = self.lab.jobs[job_id]
        return self.run_scatter_gather(job) if job.is_scatter_gather else self.run_simple(job)


def test_simple_job_script_runs_natively(lab, tmp_path):
    job = lab.jobs[next(j for j in ids(lab, A) if lab.jobs[j].params["count"] == 3)]
    (tmp_path / "inputs.json").write_text("{}")
    params = lab.root / "jobs" / job.id / f"{A}-parameters.json"
    result = subprocess.run(
        ["bash", str(lab.root / job.main.path), str(tmp_path / "out"), str(tmp_path / "inputs.json"), str(params)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "numbers.txt").read_text() == "1\n2\n3\n"


def test_whole_lab_runs_natively(lab, tmp_path):
    runner = NativeRunner(lab, tmp_path)
    for job_id in lab.resolve(["@all"]):
        result = runner.run(job_id)
        assert result.returncode == 0, f"{job_id}: {result.stderr}"
    for d in ids(lab, D):
        assert runner.out_dir(d).joinpath("total.txt").read_text() == "14\n"  # 1 + 4 + 9
    report = runner.out_dir(ids(lab, E)[0]).joinpath("report.txt").read_text()
    assert report == "demo-report: run simulation has 7 jobs; 2 sums, total 28\n"


def test_fail_logs_and_sleep_options(tmp_path):
    lab = Lab.load(
        labgen.make_lab(tmp_path / "lab", "quick", fail_job=C, log_lines=3, log_delay=0, sleep_seconds={B: 0.01})
    )
    runner = NativeRunner(lab, tmp_path / "base")
    for job_id in ids(lab, A) + ids(lab, B):
        result = runner.run(job_id)
        assert result.returncode == 0
        assert [ln for ln in result.stdout.splitlines() if "log line" in ln] == [
            f"{lab.jobs[job_id].name[:-4]}/main log line {i}/3" for i in (1, 2, 3)
        ]
    assert "sleep 0.01" in (lab.root / lab.jobs[ids(lab, B)[0]].main.path).read_text()
    failed = runner.run(ids(lab, C)[0])
    assert failed.returncode == 3 and "stage-C-consumer/main: injected failure" in failed.stderr
