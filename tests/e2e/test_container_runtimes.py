"""podman and docker run a Lab's jobs inside its image, on the real test bed: root podman (vfs,
runc), and the docker CLI against podman's Docker-compatible API (no Docker daemon here).

The image is loaded once per node from the synced, verified layers and reused by later jobs;
mounts follow mount_paths / mount_host_paths; outputs belong to the submitting user whatever
the image's config says; a missing runtime is refused before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from repx_tui.backend.lab import Lab
from repx_tui.backend.schedulers.jobspec import layers_sha256
from tests import labgen
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 120
pytestmark = [pytest.mark.sshd]


def image_lab(tmp_path: Path, body: str, *, user: str | None = None) -> tuple[Path, str]:
    """A Lab with a 2-layer image (a last layer of its own, so the engine has never seen it) whose
    producer job appends `body`; the image's config may name a `user` to run as."""
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", image_layers=2, layer_seed=uuid.uuid4().hex)
    (producer,) = labgen.job_ids(lab_dir, "stage-B-producer")
    labgen.make_writable(lab_dir)
    script = lab_dir / "jobs" / producer / "bin" / "stage-B-producer"
    script.write_text(script.read_text() + body)
    if user is not None:
        set_image_user(lab_dir, user)
    labgen.rewrite_manifest(lab_dir)
    return lab_dir, producer


def set_image_user(lab_dir: Path, user: str) -> None:
    """The image's config says `User`: the config file is named by its sha256, so rename it."""
    (image_dir,) = (lab_dir / "images").iterdir()
    manifest = json.loads((image_dir / "manifest.json").read_text())
    old = image_dir / manifest[0]["Config"]
    config = json.loads(old.read_text())
    config["config"]["User"] = user
    text = labgen.compact_json(config)
    name = hashlib.sha256(text.encode()).hexdigest() + ".json"
    old.unlink()
    (image_dir / name).write_text(text)
    manifest[0]["Config"] = name
    (image_dir / "manifest.json").write_text(labgen.compact_json(manifest))


def write_config(tmp_path: Path, target: dict, base: Path, runtime: str, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[targets.cluster]\naddress = "{target["alias"]}"\nbase_path = "{base}"\ndefault_scheduler = "local"\n'
        f'default_execution_type = "{runtime}"\n{extra}\n[targets.cluster.local]\nexecution_types = ["{runtime}", "native"]\n'
    )
    return path


def cli(config: Path, target: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "repx_tui", *args], capture_output=True, text=True, cwd=REPO, timeout=180,
        env={**os.environ, "REPX_CONFIG": str(config), "REPX_SSH_CONFIG": target["ssh_config"]},
    )  # fmt: skip


def run_jobs(config: Path, target: dict, lab_dir: Path, *jobs: str) -> dict:
    result = cli(config, target, "run", *jobs, "--lab", str(lab_dir), "--target", "cluster", "--headless", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def outcome(base: Path, job: str) -> str:
    repx = base / "outputs" / job / "repx"
    marker = next((m for m in ("SUCCESS", "FAIL") if (repx / m).exists()), "")
    assert marker == "SUCCESS", marker + ": " + (repx / "stderr.log").read_text(errors="replace")[-3000:]
    return marker


def wait_done(base: Path, job: str) -> None:
    repx = base / "outputs" / job / "repx"
    wait_until(
        lambda: (repx / "SUCCESS").exists() or (repx / "FAIL").exists(),
        timeout=DEADLINE,
        interval=0.2,
        message=f"{job} to finish",
    )
    outcome(base, job)


def all_stderr(base: Path, job: str) -> str:
    """Every stderr.log of a job (a scatter-gather job has one per unit)."""
    return "".join(p.read_text(errors="replace") for p in sorted((base / "outputs" / job).rglob("stderr.log")))


def engine_images(runtime: str) -> str:
    return subprocess.run(
        [runtime, "images", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True, timeout=60
    ).stdout


@pytest.fixture
def remove_images():
    """Remove the images a test loaded (each has a last layer of its own)."""
    refs: list[tuple[str, str]] = []
    yield refs
    for runtime, ref in refs:
        subprocess.run([runtime, "rmi", "-f", ref], capture_output=True, timeout=120)


@pytest.fixture(params=["podman", "docker"])
def runtime(request) -> str:
    request.getfixturevalue("podman_available" if request.param == "podman" else "docker_available")
    return request.param


def test_job_runs_inside_the_image_loaded_once_and_reused(tmp_path, sshd_target, runtime, remove_images):
    probe = 'cat /opt/repx-demo/layer-2/info.txt > "$out/image-proof.txt"\nid -u > "$out/uid.txt"\n'
    lab_dir, producer = image_lab(tmp_path, probe, user="65534")  # the image would run as nobody
    lab = Lab.load(lab_dir)
    base = tmp_path / "store"
    config = write_config(tmp_path, sshd_target, base, runtime)
    # /opt/repx-demo exists only in the image's last layer, never on this host
    assert not Path("/opt/repx-demo").exists()

    result = run_jobs(config, sshd_target, lab_dir, producer)
    assert [s["job"] for s in result["submitted"]] == [producer]
    wait_done(base, producer)
    out = base / "outputs" / producer / "out"
    assert (out / "image-proof.txt").read_text().startswith("demo data layer 2")
    assert (out / "uid.txt").read_text().strip() == "0"  # the submitting user (root), not the image's nobody
    assert {p.stat().st_uid for p in out.iterdir()} == {0}
    spec = json.loads((base / "outputs" / producer / "repx" / "job-spec.json").read_text())
    assert spec["runtime"] == runtime
    (image,) = lab.images.values()
    loaded = (base / "outputs" / producer / "repx" / "stderr.log").read_text()
    assert f"{runtime}: loaded image {image.tag}" in loaded
    ref = loaded.split(f"loaded image {image.tag} as ", 1)[1].split()[0]
    remove_images.append((runtime, ref))
    assert layers_sha256(lab.root, image)  # the name says what it was loaded from
    assert ref.split("/", 1)[1] in engine_images(runtime)

    # every later job on this node reuses it: the whole simulation run, none loads again
    again = run_jobs(config, sshd_target, lab_dir, "simulation")
    others = [s["job"] for s in again["submitted"]]
    assert producer not in others and len(others) >= 3
    for job in others:
        wait_done(base, job)
        assert "loaded image" not in all_stderr(base, job)
    assert not list((base / "cache" / "images").glob("*/rootfs"))  # no bwrap rootfs was made


def test_mounts_follow_mount_paths_and_mount_host_paths(tmp_path, sshd_target, podman_available, remove_images):
    shared = tmp_path / "datasets"
    shared.mkdir()
    (shared / "input.txt").write_text("from the host\n")
    host_file = Path("/etc/debian_version")  # on this host, not in the image
    body = (
        f'cat {shared}/input.txt > "$out/mounted.txt" 2>/dev/null || echo absent > "$out/mounted.txt"\n'
        f"echo written-inside > {shared}/from-job.txt 2>/dev/null || true\n"
        f'cat {host_file} > "$out/host.txt" 2>/dev/null || echo absent > "$out/host.txt"\n'
    )
    lab_dir, producer = image_lab(tmp_path, body)
    base = tmp_path / "store"

    config = write_config(tmp_path, sshd_target, base, "podman", extra=f'mount_paths = ["{shared}"]')
    run_jobs(config, sshd_target, lab_dir, producer)
    wait_done(base, producer)
    out = base / "outputs" / producer / "out"
    assert (out / "mounted.txt").read_text() == "from the host\n"
    assert (shared / "from-job.txt").read_text() == "written-inside\n"
    assert (out / "host.txt").read_text() == "absent\n"  # /etc is the image's
    loaded = (base / "outputs" / producer / "repx" / "stderr.log").read_text()
    remove_images.append(("podman", loaded.split(" as ", 1)[1].split()[0]))

    base2 = tmp_path / "store2"
    config = write_config(tmp_path, sshd_target, base2, "podman", extra="mount_host_paths = true")
    run_jobs(config, sshd_target, lab_dir, producer)
    wait_done(base2, producer)
    out2 = base2 / "outputs" / producer / "out"
    assert (out2 / "host.txt").read_text() == host_file.read_text()
    assert (out2 / "mounted.txt").read_text() == "absent\n"  # mount_paths were not asked for here


def test_a_runtime_that_does_not_answer_is_refused_before_anything_runs(tmp_path, sshd_user_target, docker_available):
    """As the unprivileged user, the docker CLI cannot reach the daemon's socket."""
    lab_dir, producer = image_lab(tmp_path, "")
    base = Path("/tmp") / f"repx-e2e-docker-refused-{uuid.uuid4().hex[:8]}"
    config = write_config(tmp_path, sshd_user_target, base, "docker")

    result = cli(config, sshd_user_target, "run", producer, "--lab", str(lab_dir), "--target", "cluster", "--headless")
    assert result.returncode == 1
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "1 job(s) would run in docker on cluster, but docker does not answer" in line
    assert "nothing was submitted" in line and "Traceback" not in result.stderr
    assert not base.exists()  # nothing was synced either (so nothing to remove)

    check = cli(config, sshd_user_target, "targets", "--check", "--json")
    assert check.returncode == 1
    (target,) = json.loads(check.stdout)["targets"]
    checks = {c["name"]: c for c in target["health"]["checks"]}
    assert checks["reachable"]["ok"] and not checks["runtime docker"]["ok"]
    assert "docker does not answer" in checks["runtime docker"]["detail"]


@pytest.mark.slurm
def test_podman_job_under_slurm(tmp_path, sshd_target, podman_available, slurm_available, remove_images):
    lab_dir, producer = image_lab(tmp_path, 'cat /opt/repx-demo/layer-2/info.txt > "$out/image-proof.txt"\n')
    base = tmp_path / "store"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[targets.cluster]\naddress = "{sshd_target["alias"]}"\nbase_path = "{base}"\ndefault_scheduler = "slurm"\n'
        'default_execution_type = "podman"\n[targets.cluster.slurm]\nexecution_types = ["podman"]\n'
    )
    resources = tmp_path / "resources.toml"
    resources.write_text(f'[defaults]\npartition = "{slurm_available["partition"]}"\ntime = "00:05:00"\n')
    answer = json.loads(cli(config, sshd_target, "run", producer, "--lab", str(lab_dir), "--target", "cluster",
                            "--resources", str(resources), "--headless", "--json").stdout.strip().splitlines()[-1])  # fmt: skip
    try:
        assert [s["job"] for s in answer["submitted"]] == [producer]
        wait_done(base, producer)
    finally:
        subprocess.run(["scancel", *[s["slurm_id"] for s in answer["submitted"]]], capture_output=True)
    assert (base / "outputs" / producer / "out" / "image-proof.txt").read_text().startswith("demo data layer 2")
    loaded = all_stderr(base, producer)
    remove_images.append(("podman", loaded.split(" as ", 1)[1].split()[0]))
