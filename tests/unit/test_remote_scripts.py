"""The remote helpers (shellcheck, the executor run for real on this machine) and the
client-side generation of job specs and sbatch scripts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.config import SchedulerConfig, Target
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.resources import Resources, Rule
from repx_tui.backend.schedulers.deploy import DeployedHelpers, helper_sources, helpers_digest
from repx_tui.backend.schedulers.jobspec import build_spec, input_entry, resolve_runtime
from repx_tui.backend.schedulers.slurm import SPEC_DELIMITER, build_batch, job_directives
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]
REMOTE = REPO / "repx_tui" / "backend" / "remote"
sys.path.insert(0, str(REPO / "tests"))
import labgen  # noqa: E402


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory) -> Path:
    return labgen.make_lab(tmp_path_factory.mktemp("lab") / "lab", "quick", log_lines=20, log_delay=0.05)


@pytest.fixture(scope="module")
def lab(lab_dir) -> Lab:
    return Lab.load(lab_dir)


def one(lab: Lab, pname: str) -> str:
    return next(j for j in sorted(lab.jobs) if lab.jobs[j].name.startswith(pname))


def test_remote_scripts_are_shellcheck_clean():
    scripts = sorted(REMOTE.glob("*.sh"))
    assert {p.name for p in scripts} >= {"executor.sh", "agent.sh", "submit.sh"}
    result = subprocess.run(["shellcheck", "-x", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_helpers_digest_changes_with_content():
    sources = helper_sources()
    changed = {**sources, "agent.sh": sources["agent.sh"] + b"\n# changed\n"}
    assert helpers_digest(sources) == helpers_digest(dict(sources))
    assert helpers_digest(changed) != helpers_digest(sources)


# --- job specs -------------------------------------------------------------------------------


def test_spec_inputs_cover_every_mapping_kind(lab):
    layout = RemoteLayout(base="/srv/base")
    target = Target(name="t", base_path="/srv/base")
    c_job = one(lab, "stage-C-consumer")
    spec = build_spec(lab, c_job, layout, target, "native")
    upstream = {e["job"] for e in spec["main"]["inputs"]}
    assert upstream == set(lab.jobs[c_job].dependencies)
    assert all(e["template"].startswith("$out/") for e in spec["main"]["inputs"])
    assert spec["main"]["path"].startswith("/srv/base/artifacts/jobs/")

    report = one(lab, "stage-E-report")
    entry, base = build_spec(lab, report, layout, target, "native")["main"]["inputs"]
    # the report reads this Lab's own copy of the run metadata, which no other Lab overwrites
    own = f"/srv/base/artifacts/revision/{lab.lab_id}-metadata-simulation.json"
    assert entry == {"target": "metadata__simulation", "path": own}
    assert base == {"target": "store__base", "base": True}

    sg = build_spec(lab, one(lab, "stage-D"), layout, target, "native", parallel=3)
    assert sg["step_order"] == ["extract", "square"] and sg["sink"] == "square" and sg["parallel"] == 3
    kinds = {
        k
        for e in sg["steps"]["extract"]["inputs"] + sg["steps"]["square"]["inputs"] + sg["gather"]["inputs"]
        for k in e
        if k not in ("target", "template")
    }
    assert kinds == {"item", "job", "step", "worker_outs", "scatter"}
    global_input = input_entry(
        lab, lab.jobs[c_job], _mapping(target_input="store__base", type="global", source_value="store_base"), layout
    )
    assert global_input == {"target": "store__base", "base": True}


def _mapping(**values):
    from repx_tui.backend.lab import InputMapping

    fields = dict.fromkeys(
        ("type", "job_id", "source_output", "source_run", "source_value", "source", "source_key", "dependency_type")
    )
    fields.update(values)
    return InputMapping(raw={}, **fields)


def test_runtime_follows_upstream_order(tmp_path):
    lab = Lab.load(labgen.make_lab(tmp_path / "img", "quick", image_layers=1))
    job = next(iter(lab.jobs))
    plain = Target(name="t", base_path="/b")
    allowed = Target(
        name="t",
        base_path="/b",
        default_execution_type="bwrap",
        local=SchedulerConfig(execution_types=("native", "bwrap")),
    )
    assert resolve_runtime(lab, job, plain, "local", None) == "native"
    assert resolve_runtime(lab, job, allowed, "local", None) == "bwrap"
    assert resolve_runtime(lab, job, plain, "local", "bwrap") == "bwrap"


# --- sbatch scripts --------------------------------------------------------------------------


def test_sbatch_scripts_carry_directives_and_spec(lab):
    layout = RemoteLayout(base="/srv/base")
    target = Target(name="cluster", base_path="/srv/base", address="h")
    helpers = DeployedHelpers(dir="/srv/base/bin/abc", tools_bin="/srv/base/host-tools/h/bin")
    resources = Resources(
        defaults={"partition": "main", "cpus-per-task": 1, "mem": "1G", "time": "00:10:00"},
        rules=(
            Rule(values={"sbatch_opts": ["--comment=x y"], "mem": "2G"}, job_id_glob="*stage-C*"),
            Rule(values={}, job_id_glob="*stage-D*", worker_resources={"cpus-per-task": 2, "mem": "3G"}),
        ),
    )
    order = lab.topological_order(lab.jobs)
    batch = build_batch(lab, layout, target, order, helpers, resources, None)
    assert batch["lab_id"] == lab.lab_id and [j["id"] for j in batch["jobs"]] == order
    by_id = {j["id"]: j for j in batch["jobs"]}

    c_job = one(lab, "stage-C-consumer")
    script = by_id[c_job]["script"]
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    for expected in (
        f"#SBATCH --job-name={c_job}",
        "#SBATCH --chdir=/tmp",
        "#SBATCH --partition=main",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=2G",
        "#SBATCH --time=00:15:00",  # the Lab hint beats [defaults]
        '#SBATCH --comment="x y"',
        f'#SBATCH --output="/srv/base/outputs/{c_job}/repx/slurm-%j.out"',
    ):
        assert expected in lines
    # the spec travels in a heredoc and is valid JSON for exactly this job
    spec = json.loads(lines[lines.index(SPEC_DELIMITER) - 1])
    assert spec["job"] == c_job and spec["runtime"] == "native"
    assert "/srv/base/bin/abc/executor.sh" in script
    assert sorted(by_id[c_job]["deps"]) == sorted(lab.jobs[c_job].dependencies)

    d_job = one(lab, "stage-D")
    directives, parallel = job_directives(resources, lab.jobs[d_job], "cluster")
    assert directives.cpus_per_task == 2 and directives.mem == "3G" and parallel == 1
    assert "#SBATCH --cpus-per-task=2" in by_id[d_job]["script"].splitlines()


# --- the executor, run for real ---------------------------------------------------------------


def _stage(lab_dir: Path, base: Path) -> None:
    """Put the Lab where sync would (artifacts/ and host-tools/); sync itself is tested elsewhere."""
    shutil.copytree(lab_dir, base / "artifacts", symlinks=True)
    shutil.copytree(lab_dir / "host-tools", base / "host-tools", symlinks=False)
    labgen.make_writable(base)


def _executor(lab: Lab, base: Path, job: str, **spec_changes) -> tuple[subprocess.Popen, Path]:
    layout = RemoteLayout(base=str(base))
    spec = build_spec(lab, job, layout, Target(name="t", base_path=str(base)), "native")
    spec.update(spec_changes)
    tools = base / "host-tools" / lab.host_tools_dir / "bin"
    proc = subprocess.Popen(
        ["bash", str(REMOTE / "executor.sh"), str(tools), "/dev/stdin"], stdin=subprocess.PIPE, text=True
    )
    proc.stdin.write(json.dumps(spec))
    proc.stdin.close()
    return proc, base / "outputs" / job


def test_executor_logs_live_and_leaves_upstream_layout(lab_dir, lab, tmp_path):
    base = tmp_path / "base"
    _stage(lab_dir, base)
    job = one(lab, "stage-B-producer")
    stale = base / "outputs" / job / "repx"
    stale.mkdir(parents=True)
    (stale / "FAIL").touch()
    proc, root = _executor(lab, base, job)
    # a line is visible in stdout.log while the job still runs (no exit code yet)
    wait_until(
        lambda: (
            (root / "repx" / "stdout.log").is_file() and "log line 1/" in (root / "repx" / "stdout.log").read_text()
        ),
        timeout=10,
        message="first log line",
    )
    assert not (root / "repx" / "exit_code").exists() and not (root / "repx" / "FAIL").exists()
    assert proc.wait(timeout=30) == 0
    assert (root / "repx" / "SUCCESS").exists() and (root / "repx" / "exit_code").read_text() == "0"
    assert (root / "out" / "list_b.txt").read_text().split() == ["10", "11", "12"]
    assert json.loads((root / "repx" / "parameters.json").read_text()) == {"count": 3, "start": 10}
    assert (base / "outputs" / "completions.jsonl").read_text().splitlines() == [
        json.dumps({"id": job, "s": "ok"}, separators=(",", ":"))
    ]


def test_executor_failure_and_internal_error_both_end_in_fail(lab_dir, lab, tmp_path):
    base = tmp_path / "base"
    _stage(lab_dir, base)
    job = one(lab, "stage-C-consumer")  # its inputs do not exist: the script exits non-zero
    proc, root = _executor(lab, base, job)
    assert proc.wait(timeout=30) != 0
    assert (root / "repx" / "FAIL").exists() and not (root / "repx" / "SUCCESS").exists()
    assert (root / "repx" / "exit_code").read_text() not in ("", "0")

    other = one(lab, "stage-B-producer")
    proc, root = _executor(
        lab, base, other, main={"path": "/nonexistent/script", "inputs": [{"target": "x", "run": "nope"}]}
    )
    assert proc.wait(timeout=30) != 0
    assert (root / "repx" / "FAIL").exists()
    lines = [json.loads(x) for x in (base / "outputs" / "completions.jsonl").read_text().splitlines()]
    assert {"id": other, "s": "fail"} in lines and {"id": job, "s": "fail"} in lines


def test_a_second_executor_of_a_job_waits_for_the_first_and_takes_its_success(lab_dir, lab, tmp_path):
    """Two Labs (or a duplicate submission) sharing a job never run it twice at once."""
    base = tmp_path / "base"
    _stage(lab_dir, base)
    job = one(lab, "stage-B-producer")
    runs, gate = tmp_path / "runs.log", tmp_path / "gate"
    script = tmp_path / "stage.sh"
    script.write_text(f'#!/bin/bash\necho run >> {runs}\nwhile [ ! -e {gate} ]; do sleep 0.05; done\nmkdir -p "$1"\n')
    script.chmod(0o755)
    unit = {"path": str(script), "inputs": []}
    first, root = _executor(lab, base, job, main=unit)
    wait_until(lambda: runs.exists(), timeout=20, message="the first executor runs the stage")
    said = tmp_path / "second.err"
    with open(said, "w") as err:
        second = subprocess.Popen(
            [
                "bash",
                str(REMOTE / "executor.sh"),
                str(base / "host-tools" / lab.host_tools_dir / "bin"),
                str(root / "repx" / "job-spec.json"),
            ],
            stderr=err,
        )
    wait_until(lambda: "another executor" in said.read_text(), timeout=20, message="the second one waits")
    gate.touch()
    assert first.wait(timeout=30) == 0
    assert second.wait(timeout=30) == 0
    assert runs.read_text() == "run\n"  # the stage ran once
    assert (root / "repx" / "SUCCESS").exists()
