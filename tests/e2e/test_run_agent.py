"""`repx-tui run --headless` with the local scheduler: the detached agent runs the Lab's DAG,
on this machine (target `local`) and over the real sshd; native and bwrap runtimes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.schedulers import agent
from repx_tui.backend.transport.local import LocalTransport
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import labgen  # noqa: E402

DEADLINE = 90


def write_config(path: Path, name: str, base: Path, *, address: str | None = None, extra: str = "") -> Path:
    lines = [f"[targets.{name}]", f'base_path = "{base}"', 'default_scheduler = "local"']
    if address:
        lines.append(f'address = "{address}"')
    lines += [extra, f"[targets.{name}.local]", 'execution_types = ["native", "bwrap"]']
    path.write_text("\n".join(lines) + "\n")
    return path


def cli_run(
    config: Path, lab: Path, target: str, *runs: str, env: dict | None = None, wait: bool = False, expect: int = 0
) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "repx_tui",
            "run",
            *runs,
            "--lab",
            str(lab),
            "--target",
            target,
            "--headless",
            "--json",
            *(["--wait"] if wait else []),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "REPX_CONFIG": str(config), **(env or {})},
    )
    assert result.returncode == expect, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def markers(base: Path, lab: Lab) -> dict[str, str]:
    found = {}
    for job in lab.jobs:
        repx = base / "outputs" / job / "repx"
        if (repx / "SUCCESS").exists():
            found[job] = "SUCCESS"
        elif (repx / "FAIL").exists():
            found[job] = "FAIL"
    return found


def agent_states(base: Path, lab: Lab) -> dict[str, str]:
    jobs = base / "agents" / lab.lab_id / "jobs"
    return {p.name: (p / "state").read_text().strip() for p in jobs.iterdir() if (p / "state").exists()}


def agent_alive(base: Path, lab: Lab) -> bool:
    lock = base / "agents" / lab.lab_id / "agent.lock"
    return lock.exists() and subprocess.run(["flock", "-n", str(lock), "true"]).returncode != 0


def check_results(base: Path, lab: Lab) -> None:
    outputs = base / "outputs"
    for job in labgen.job_ids(lab.root, "stage-D-sum-squares"):
        assert (outputs / job / "out" / "total.txt").read_text().strip() == "14"  # 1²+2²+3²
        root = outputs / job
        assert (root / "scatter" / "repx" / "SUCCESS").exists() and (root / "gather" / "repx" / "SUCCESS").exists()
        assert all((root / f"branch-{i}" / "step-square" / "repx" / "SUCCESS").exists() for i in range(3))
    (report,) = labgen.job_ids(lab.root, "stage-E-report")
    # the report read the simulation's results: it ran after the whole simulation run succeeded
    assert (outputs / report / "out" / "report.txt").read_text() == (
        "demo-report: run simulation has 7 jobs; 2 sums, total 28\n"
    )
    done = [json.loads(line) for line in (outputs / "completions.jsonl").read_text().splitlines()]
    assert {d["id"] for d in done if d["s"] == "ok"} == set(lab.jobs)


def test_local_agent_runs_the_whole_lab_and_a_second_run_adds_nothing(tmp_path):
    lab_dir = labgen.make_lab(tmp_path / "lab")
    lab = Lab.load(lab_dir)
    base = tmp_path / "store"
    config = write_config(tmp_path / "config.toml", "local", base)

    first = cli_run(config, lab_dir, "local", "@all")
    assert {s["job"] for s in first["submitted"]} == set(lab.jobs) and first["skipped"] == []
    assert all(s["slurm_id"] is None for s in first["submitted"])
    wait_until(lambda: len(markers(base, lab)) == len(lab.jobs), timeout=DEADLINE, interval=0.2, message="all markers")
    assert set(markers(base, lab).values()) == {"SUCCESS"}
    check_results(base, lab)

    again = cli_run(config, lab_dir, "local", "@all")
    assert again["submitted"] == []
    assert {s["job"] for s in again["skipped"]} == set(lab.jobs)
    assert_upstream_gc_root(base, lab)


def assert_upstream_gc_root(base: Path, lab: Lab) -> None:
    """Upstream's `repx gc` keeps only Labs reachable from gcroots: we register ours like it does."""
    (project,) = (base / "gcroots" / "auto").iterdir()
    assert project.name.startswith("no_remote_")
    links = sorted(project.iterdir())
    assert links and all(link.name.endswith(f"_{lab.lab_id}") for link in links)
    own = base / "artifacts" / "lab" / f"{lab.lab_id}-lab-metadata.json"
    assert Path(os.readlink(links[-1])) == own
    manifest = json.loads(links[-1].read_text())
    assert manifest["labId"] == lab.lab_id
    # the root follows this Lab's own metadata, which the fixed names of a later Lab never replace
    top = json.loads((base / "artifacts" / manifest["metadata"]).read_text())
    runs = [json.loads((base / "artifacts" / path).read_text())["name"] for path in top["runs"]]
    assert sorted(runs) == sorted(lab.runs)
    listed = {f["path"] for f in manifest["files"]}
    assert manifest["metadata"] in listed and set(top["runs"]) <= listed


def test_failing_job_blocks_its_dependants_which_never_run(tmp_path):
    lab_dir = labgen.make_lab(tmp_path / "lab", "failing", host_tools=labgen.SCRIPT_TOOLS)
    lab = Lab.load(lab_dir)
    base = tmp_path / "store"
    config = write_config(tmp_path / "config.toml", "local", base)
    answer = cli_run(config, lab_dir, "local", "simulation", wait=True, expect=1)  # --wait: until all settle

    failing = set(labgen.job_ids(lab_dir, "stage-C-consumer"))
    downstream = set(labgen.job_ids(lab_dir, "stage-D-sum-squares"))
    simulation = set(lab.runs["simulation"].jobs)

    def settled():
        states = agent_states(base, lab)
        return set(states) == simulation and set(states.values()) <= {"succeeded", "failed", "blocked"}

    assert settled()
    assert set(answer["failed"]) == failing | downstream
    states = agent_states(base, lab)
    assert {states[j] for j in failing} == {"failed"}
    assert {states[j] for j in downstream} == {"blocked"}
    assert all((base / "outputs" / j / "repx" / "FAIL").exists() for j in failing)
    assert "injected failure" in (base / "outputs" / sorted(failing)[0] / "repx" / "stderr.log").read_text()
    for job in downstream:  # never started: the executor never touched its output dir
        assert not (base / "outputs" / job).exists()
        assert "upstream" in (base / "agents" / lab.lab_id / "jobs" / job / "reason").read_text()


def test_bwrap_job_runs_inside_the_image_rootfs(tmp_path):
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", image_layers=2)
    (producer,) = labgen.job_ids(lab_dir, "stage-B-producer")
    labgen.make_writable(lab_dir)
    script = lab_dir / "jobs" / producer / "bin" / "stage-B-producer"
    # /opt/repx-demo exists only in the image's second layer, never on this host
    assert not Path("/opt/repx-demo").exists()
    script.write_text(script.read_text() + 'cat /opt/repx-demo/layer-2/info.txt > "$out/image-proof.txt"\n')
    labgen.rewrite_manifest(lab_dir)
    lab = Lab.load(lab_dir)
    base, node_local = tmp_path / "store", tmp_path / "node"
    config = write_config(
        tmp_path / "config.toml",
        "local",
        base,
        extra=f'node_local_path = "{node_local}"\ndefault_execution_type = "bwrap"',
    )

    result = cli_run(config, lab_dir, "local", producer)
    assert [s["job"] for s in result["submitted"]] == [producer]
    wait_until(lambda: markers(base, lab).get(producer), timeout=DEADLINE, interval=0.2, message="producer marker")
    assert markers(base, lab)[producer] == "SUCCESS", (base / "outputs" / producer / "repx" / "stderr.log").read_text()
    out = base / "outputs" / producer / "out"
    assert (out / "image-proof.txt").read_text().startswith("demo data layer 2")
    assert (out / "list_b.txt").read_text().split() == ["10", "11", "12"]
    spec = json.loads((base / "outputs" / producer / "repx" / "job-spec.json").read_text())
    assert spec["runtime"] == "bwrap"
    (image,) = lab.images.values()
    assert (node_local / "cache" / "images" / image.tag / "SUCCESS").exists()
    assert {p.name for p in (node_local / "store").iterdir()} == {f"{ly.digest}-layer.tar" for ly in image.layers}


async def test_agent_cancel_all_kills_running_groups_and_blocks_the_rest(tmp_path):
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", sleep_seconds={"stage-A-producer": 60})
    lab = Lab.load(lab_dir)
    base = tmp_path / "store"
    config = write_config(tmp_path / "config.toml", "local", base)
    cli_run(config, lab_dir, "local", "simulation")
    producers = set(labgen.job_ids(lab_dir, "stage-A-producer"))
    wait_until(
        lambda: (
            {agent_states(base, lab).get(j) for j in producers} == {"running"}
            and all((base / "agents" / lab.lab_id / "jobs" / j / "pgid").exists() for j in producers)
        ),
        timeout=DEADLINE,
        interval=0.1,
        message="producers running",
    )
    pgids = [int((base / "agents" / lab.lab_id / "jobs" / j / "pgid").read_text()) for j in producers]

    transport, layout = LocalTransport(), RemoteLayout(base=str(base))
    assert agent_alive(base, lab) and {agent_states(base, lab)[j] for j in producers} == {"running"}
    outcomes = await agent.cancel_jobs(transport, layout, lab, None, emit=lambda e: None)
    assert {job for job, ok, _ in outcomes if ok} >= producers

    def settled():
        states = agent_states(base, lab)
        return states if not any(s in ("queued", "running") for s in states.values()) else None

    states = wait_until(settled, timeout=DEADLINE, interval=0.1, message="nothing queued or running")
    assert {states[j] for j in producers} == {"cancelled"}
    assert {states[j] for j in labgen.job_ids(lab_dir, "stage-C-consumer")} <= {"blocked", "cancelled"}
    for pgid in pgids:  # the whole process group is gone, sleep included
        assert subprocess.run(["kill", "-0", "--", f"-{pgid}"], capture_output=True).returncode != 0
    assert all((base / "outputs" / j / "repx" / "cancelled").exists() for j in producers)


@pytest.mark.sshd
async def test_agent_over_ssh_survives_the_client_disconnecting(tmp_path, sshd_target):
    lab_dir = labgen.make_lab(tmp_path / "lab", sleep_seconds={"stage-A-producer": 2.0})
    lab = Lab.load(lab_dir)
    base = tmp_path / "remote-store"
    config = write_config(tmp_path / "config.toml", "cluster", base, address=sshd_target["alias"])
    env = {"REPX_SSH_CONFIG": sshd_target["ssh_config"]}

    first = cli_run(config, lab_dir, "cluster", "@all", env=env)
    assert {s["job"] for s in first["submitted"]} == set(lab.jobs)
    # the client process has exited (its SSH connection is closed); the agent works on
    assert agent_alive(base, lab)
    assert len(markers(base, lab)) < len(lab.jobs)
    wait_until(lambda: len(markers(base, lab)) == len(lab.jobs), timeout=DEADLINE, interval=0.2, message="all markers")
    assert set(markers(base, lab).values()) == {"SUCCESS"}
    check_results(base, lab)
    again = cli_run(config, lab_dir, "cluster", "@all", env=env)
    assert again["submitted"] == [] and len(again["skipped"]) == len(lab.jobs)
