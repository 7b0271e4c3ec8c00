"""`artifact_store = "node-local"` on the real SLURM and with the agent: the Lab travels as one tar
to <base>/lab-tars/<labId>.tar, the first job on the node unpacks it (under a lock) into
node_local_path, and every job's scripts run from that copy, not from the shared artifacts/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.config import Target
from repx_tui.backend.lab import Lab
from repx_tui.backend.labstore import lab_tar
from repx_tui.backend.session import TargetSession
from tests import labgen
from tests.helpers import async_wait_until, wait_until

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 120
pytestmark = [pytest.mark.sshd]

SELF_PROOF = 'printf "%s\\n" "$0" > "$out/script-path.txt"\n'


def lab_with_proof(tmp_path: Path) -> tuple[Path, str]:
    """The quick Lab; its stage-B producer writes the path of the script that ran."""
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick")
    (producer,) = labgen.job_ids(lab_dir, "stage-B-producer")
    labgen.make_writable(lab_dir)
    script = lab_dir / "jobs" / producer / "bin" / "stage-B-producer"
    script.write_text(script.read_text() + SELF_PROOF)
    labgen.rewrite_manifest(lab_dir)
    return lab_dir, producer


def write_config(path: Path, address: str, base: Path, node_local: Path, scheduler: str) -> Path:
    path.write_text(
        f'[targets.cluster]\naddress = "{address}"\nbase_path = "{base}"\nnode_local_path = "{node_local}"\n'
        f'artifact_store = "node-local"\ndefault_scheduler = "{scheduler}"\n'
        f'[targets.cluster.{scheduler}]\nexecution_types = ["native"]\n'
    )
    return path


def cli_run(config: Path, ssh_config: str, lab_dir: Path, *runs: str, extra: tuple[str, ...] = ()) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "repx_tui", "run", *runs, "--lab", str(lab_dir), "--target", "cluster",
         "--headless", "--json", *extra],
        capture_output=True, text=True, cwd=REPO, timeout=180,
        env={**os.environ, "REPX_CONFIG": str(config), "REPX_SSH_CONFIG": ssh_config},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def markers(base: Path, jobs) -> dict[str, str]:
    found = {}
    for job in jobs:
        for name in ("SUCCESS", "FAIL"):
            if (base / "outputs" / job / "repx" / name).exists():
                found[job] = name
    return found


def unpack_notes(base: Path) -> list[str]:
    return [
        line
        for log in sorted((base / "outputs").rglob("stderr.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "node-local: unpacked the Lab" in line
    ]


def check_node_local_run(base: Path, node_local: Path, lab_dir: Path, producer: str) -> None:
    lab = Lab.load(lab_dir)
    tar = base / "lab-tars" / f"{lab.lab_id}.tar"
    assert tar.is_file() and labgen.sha256_file(tar) == lab_tar(lab).sha256
    (copy,) = (node_local / "repx" / "labs" / lab.lab_id).glob("repx-tui-*")
    assert (copy / ".repx-complete").exists() and (copy / "jobs" / producer).is_dir()
    assert not (copy / "store").exists() and not (copy / "images").exists()
    assert len(unpack_notes(base)) == 1  # the first job unpacked it; every other one found it done
    ran = (base / "outputs" / producer / "out" / "script-path.txt").read_text().strip()
    assert ran == str(copy / "jobs" / producer / "bin" / "stage-B-producer")
    spec = json.loads((base / "outputs" / producer / "repx" / "job-spec.json").read_text())
    assert spec["main"]["path"].startswith(str(copy) + "/")


@pytest.mark.slurm
def test_slurm_jobs_run_from_the_lab_unpacked_once_in_node_local_path(tmp_path, sshd_target, slurm_available):
    lab_dir, producer = lab_with_proof(tmp_path)
    base, node_local = tmp_path / "shared-base", tmp_path / "node-disk"
    config = write_config(tmp_path / "config.toml", sshd_target["alias"], base, node_local, "slurm")
    resources = tmp_path / "resources.toml"
    resources.write_text(f'[defaults]\npartition = "{slurm_available["partition"]}"\ntime = "00:05:00"\n')

    answer = cli_run(config, sshd_target["ssh_config"], lab_dir, "simulation", extra=("--resources", str(resources)))
    jobs = [s["job"] for s in answer["submitted"]]
    try:
        assert len(jobs) >= 5
        wait_until(
            lambda: len(markers(base, jobs)) == len(jobs), timeout=DEADLINE, interval=0.5, message="every job's marker"
        )
    finally:
        subprocess.run(["scancel", *[s["slurm_id"] for s in answer["submitted"]]], capture_output=True)
    assert set(markers(base, jobs).values()) == {"SUCCESS"}, unpack_notes(base)
    check_node_local_run(base, node_local, lab_dir, producer)
    sg = labgen.job_ids(lab_dir, "stage-D-sum-squares")[0]
    assert (base / "outputs" / sg / "out" / "total.txt").read_text().strip() == "14"


def test_agent_jobs_run_from_the_node_local_copy(tmp_path, sshd_target):
    lab_dir, producer = lab_with_proof(tmp_path)
    base, node_local = tmp_path / "shared-base", tmp_path / "node-disk"
    config = write_config(tmp_path / "config.toml", sshd_target["alias"], base, node_local, "local")
    answer = cli_run(config, sshd_target["ssh_config"], lab_dir, "simulation")
    jobs = [s["job"] for s in answer["submitted"]]
    wait_until(lambda: len(markers(base, jobs)) == len(jobs), timeout=DEADLINE, interval=0.2, message="markers")
    assert set(markers(base, jobs).values()) == {"SUCCESS"}
    check_node_local_run(base, node_local, lab_dir, producer)


async def test_a_tar_that_is_not_the_labs_is_never_unpacked(tmp_path, sshd_target, monkeypatch):
    """The tar on the shared file system changed after the sync: the job fails with one line and
    nothing is unpacked."""
    monkeypatch.setenv("REPX_SSH_CONFIG", sshd_target["ssh_config"])
    lab_dir, producer = lab_with_proof(tmp_path)
    lab = Lab.load(lab_dir)
    base, node_local = tmp_path / "shared-base", tmp_path / "node-disk"
    target = Target(
        name="cluster",
        address=sshd_target["alias"],
        base_path=str(base),
        node_local_path=str(node_local),
        artifact_store="node-local",
        default_scheduler="local",
    )
    async with TargetSession(target, lambda event: None, lab=lab, scheduler="local") as session:
        await session.sync()
        tar = base / "lab-tars" / f"{lab.lab_id}.tar"
        tar.chmod(0o644)
        data = bytearray(tar.read_bytes())
        data[600] ^= 0xFF  # inside the first member's bytes
        tar.write_bytes(bytes(data))
        await session.submit([producer])
        repx = base / "outputs" / producer / "repx"
        await async_wait_until(lambda: (repx / "FAIL").exists(), timeout=DEADLINE, message="the job to fail")
    assert "is missing or is not this Lab's tar: sync the Lab again" in (repx / "stderr.log").read_text()
    assert not list((node_local / "repx" / "labs" / lab.lab_id).glob("repx-tui-*"))
