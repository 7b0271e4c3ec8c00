"""Image layers on the target: bytes are trusted only once verified, and a layer's members can
never land outside the image's root file system.

Real parts only: the sync against this machine (target `local`) and the test-bed sshd, and bwrap
jobs run by the detached agent on this machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from repx_tui.backend.config import Target
from repx_tui.backend.errors import SyncError
from repx_tui.backend.events import LayerAction
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.schedulers.jobspec import build_spec
from repx_tui.backend.session import TargetSession
from tests import labgen
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 90
TOOLS = (*labgen.SCRIPT_TOOLS, "rsync", "tar", "sha256sum", "stat", "cut", "chmod", "mv", "cp", "ln")


# --- helpers --------------------------------------------------------------------------------------


@pytest.fixture(params=["local", "ssh"])
def target(request, tmp_path) -> Target:
    base = str(tmp_path / "base")
    if request.param == "local":
        return Target(name="local", base_path=base)
    ssh = request.getfixturevalue("sshd_target")
    request.getfixturevalue("monkeypatch").setenv("REPX_SSH_CONFIG", ssh["ssh_config"])
    return Target(name="e2e", address=ssh["alias"], base_path=base)


async def sync(target: Target, lab_dir: Path):
    async with TargetSession(target, lambda event: None) as session:
        summary = await session.sync(Lab.load(lab_dir))
    return summary


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_layer(base: Path, digest: str) -> Path:
    return base / "artifacts" / "store" / f"{digest}-layer.tar"


def actions(summary) -> dict[str, LayerAction]:
    return {layer.digest: layer.action for layer in summary.layers}


def write_config(tmp_path: Path, base: Path, node_local: Path | None) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[targets.local]\nbase_path = "{base}"\ndefault_scheduler = "local"\n'
        + (f'node_local_path = "{node_local}"\n' if node_local else "")
        + 'default_execution_type = "bwrap"\n[targets.local.local]\nexecution_types = ["native", "bwrap"]\n'
    )
    return path


def cli(config: Path, *args: str, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:
        if file_size_limit is not None:  # every file this command and its agent write stops there
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [sys.executable, "-m", "repx_tui", *args, "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        preexec_fn=limit,
        env={**os.environ, "REPX_CONFIG": str(config)},
    )


def run_job(config: Path, lab_dir: Path, job: str, **kwargs) -> None:
    done = cli(config, "run", job, "--lab", str(lab_dir), "--target", "local", "--headless", **kwargs)
    assert done.returncode == 0, done.stdout + done.stderr


def marker(base: Path, job: str) -> str | None:
    repx = base / "outputs" / job / "repx"
    return "SUCCESS" if (repx / "SUCCESS").exists() else "FAIL" if (repx / "FAIL").exists() else None


def wait_marker(base: Path, job: str) -> str:
    return wait_until(lambda: marker(base, job), timeout=DEADLINE, interval=0.2, message=f"{job} marker")


def agent_gone(base: Path, lab: Lab) -> bool:
    lock = base / "agents" / lab.lab_id / "agent.lock"
    return not lock.exists() or subprocess.run(["flock", "-n", str(lock), "true"]).returncode == 0


def image_lab(dest: Path, **overrides) -> Path:
    """A Lab whose stage-B producer runs in a 2-layer image (layer 2 holds /opt/repx-demo)."""
    return labgen.make_lab(dest, "quick", image_layers=2, **overrides)


def producer(lab_dir: Path) -> str:
    (job,) = labgen.job_ids(lab_dir, "stage-B-producer")
    return job


# A member of a crafted layer: (name, "file" | "dir" | "link", data or link target)
Member = tuple[str, str, str]


def layer_bytes(members: list[Member]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1
            if kind == "file":
                data = value.encode()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, value, 0o777
                tar.addfile(info)
    return buf.getvalue()


def append_layers(lab_dir: Path, *layers: list[Member]) -> None:
    """Add layers on top of the Lab's image, the way lab-packagers.nix lays them out."""
    labgen.make_writable(lab_dir)
    (image_dir,) = (lab_dir / "images").glob("*.tar")
    manifest_path = image_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for members in layers:
        data = layer_bytes(members)
        digest = hashlib.sha256(data).hexdigest()
        (lab_dir / "store" / f"{digest}-layer.tar").write_bytes(data)
        (image_dir / digest).mkdir()
        (image_dir / digest / "layer.tar").symlink_to(f"../../../store/{digest}-layer.tar")
        manifest[0]["Layers"].append(f"{digest}/layer.tar")
    manifest_path.write_text(json.dumps(manifest))
    labgen.rewrite_manifest(lab_dir)


# --- 1. a layer is reused only if its bytes were verified when placed --------------------------------


@pytest.mark.parametrize("how", ["overwritten in place", "replaced by another file"])
async def test_a_layer_of_the_right_size_but_other_bytes_is_never_reused(target, tmp_path, how):
    lab_dir = image_lab(tmp_path / "lab")
    base = Path(target.base_path)
    await sync(target, lab_dir)
    (image,) = Lab.load(lab_dir).images.values()
    layer = image.layers[-1]
    placed = store_layer(base, layer.digest)
    garbage = os.urandom(layer.size)
    if how == "overwritten in place":
        placed.chmod(0o644)
        placed.write_bytes(garbage)
    else:
        other = placed.with_name("other")
        other.write_bytes(garbage)
        other.replace(placed)

    summary = await sync(target, lab_dir)
    assert actions(summary)[layer.digest] is LayerAction.TRANSFERRED
    assert sha256(placed) == layer.sha256
    assert summary.layers and all(a is LayerAction.REUSED for d, a in actions(summary).items() if d != layer.digest)


async def test_a_layer_placed_without_a_record_is_checked_once_on_the_target(tmp_path):
    """A layer put there by upstream's rsync (no record of a check): hashed on the target once,
    recorded, then reused; no byte goes over the wire for it."""
    lab_dir = image_lab(tmp_path / "lab")
    base = tmp_path / "base"
    target = Target(name="local", base_path=str(base))
    await sync(target, lab_dir)
    records = base / ".repx" / "verified"
    kept = {p.name: p.read_text() for p in records.iterdir()}
    (image,) = Lab.load(lab_dir).images.values()
    layers = image.layers
    assert set(kept) == {f"{layer.digest}-layer.tar" for layer in layers}
    assert all(
        text.split()[0] == layer.sha256
        for layer in layers
        for name, text in kept.items()
        if name.startswith(layer.digest)
    )
    for path in records.iterdir():
        path.unlink()

    summary = await sync(target, lab_dir)
    assert set(actions(summary).values()) == {LayerAction.REUSED}
    assert summary.bytes_sent == 0
    assert {p.name for p in records.iterdir()} == set(kept)

    # a record written for other bytes (or a forged one) does not vouch for this file
    layer = layers[0]
    record = records / f"{layer.digest}-layer.tar"
    record.write_text("0" * 64 + record.read_text()[64:])
    summary = await sync(target, lab_dir)
    assert actions(summary)[layer.digest] is LayerAction.REUSED  # checked again on the target: it is right
    assert record.read_text().split()[0] == layer.sha256


# --- 1. node-local copies made at job time ----------------------------------------------------------


def test_a_corrupt_node_local_copy_is_replaced_before_a_job_uses_it(tmp_path):
    lab_dir = image_lab(tmp_path / "lab")
    lab = Lab.load(lab_dir)
    base, node_local = tmp_path / "store", tmp_path / "node"
    (image,) = lab.images.values()
    (node_local / "store").mkdir(parents=True)
    for layer in image.layers:  # right size, other bytes: e.g. left by an older client
        (node_local / "store" / f"{layer.digest}-layer.tar").write_bytes(os.urandom(layer.size))
    config = write_config(tmp_path, base, node_local)
    job = producer(lab_dir)

    run_job(config, lab_dir, job)
    assert wait_marker(base, job) == "SUCCESS", (base / "outputs" / job / "repx" / "stderr.log").read_text()
    for layer in image.layers:
        assert sha256(node_local / "store" / f"{layer.digest}-layer.tar") == layer.sha256


def test_a_node_local_copy_cut_short_never_gets_its_final_name(tmp_path):
    """A full node-local disk (here: a file size limit) cuts the copy short: the partial copy
    must not be left under the layer's name, where every later run would use it."""
    lab_dir = image_lab(tmp_path / "lab", layer_size_kib=16384)
    lab = Lab.load(lab_dir)
    (image,) = lab.images.values()
    small, big = sorted(image.layers, key=lambda layer: layer.size)
    base, node_local = tmp_path / "store", tmp_path / "node"
    config = write_config(tmp_path, base, node_local)
    job = producer(lab_dir)
    synced = cli(config, "sync", "--lab", str(lab_dir), "--target", "local")
    assert synced.returncode == 0, synced.stdout + synced.stderr

    run_job(config, lab_dir, job, file_size_limit=(small.size + big.size) // 2)
    assert wait_marker(base, job) == "FAIL"  # the limit also stops the layer's big file
    copy = node_local / "store" / f"{big.digest}-layer.tar"
    assert not copy.exists() or sha256(copy) == big.sha256
    assert sha256(node_local / "store" / f"{small.digest}-layer.tar") == small.sha256

    wait_until(lambda: agent_gone(base, lab), timeout=DEADLINE, interval=0.2, message="the limited agent to exit")
    run_job(config, lab_dir, job)
    wait_until(
        lambda: (base / "outputs" / job / "repx" / "SUCCESS").exists() or None,
        timeout=DEADLINE,
        interval=0.2,
        message="the job to succeed without the limit",
    )
    assert sha256(copy) == big.sha256


@pytest.mark.parametrize("change", ["bytes rewritten", "record removed"])
def test_the_job_checks_shared_layers_that_changed_after_the_sync(tmp_path, change):
    """Between the sync and the job (a queue can take hours) a layer in the shared store is
    rewritten, or loses its record (upstream's rsync, a cleanup): the job checks the layers
    against the Lab's before it uses a byte of them, and records the ones it found right."""
    lab_dir = image_lab(tmp_path / "lab", sleep_seconds={"stage-A-producer": 8.0})
    lab = Lab.load(lab_dir)
    (image,) = lab.images.values()
    base = tmp_path / "store"
    config = write_config(tmp_path, base, None)
    (consumer, *_) = labgen.job_ids(lab_dir, "stage-C-consumer")
    upstream = [m.job_id for m in lab.jobs[consumer].main.inputs if m.job_id]
    # the consumer's upstream jobs run natively, so the image's rootfs is not made before it
    first = cli(
        config, "run", *upstream, "--lab", str(lab_dir), "--target", "local", "--headless", "--execution-type", "native"
    )
    assert first.returncode == 0, first.stdout + first.stderr
    run_job(config, lab_dir, consumer)
    layer = image.layers[-1]
    placed = store_layer(base, layer.digest)
    record = base / ".repx" / "verified" / placed.name
    if change == "bytes rewritten":
        placed.chmod(0o644)
        placed.write_bytes(os.urandom(placed.stat().st_size))
    else:
        record.unlink()
    sleeping = [job for job in upstream if lab.jobs[job].name.startswith("stage-A-producer")]
    assert sleeping and marker(base, sleeping[0]) is None  # so the consumer has not started yet

    stderr = base / "outputs" / consumer / "repx" / "stderr.log"
    if change == "bytes rewritten":
        assert wait_marker(base, consumer) == "FAIL"
        assert "FAIL: image" in stderr.read_text() and "differ from the Lab's" in stderr.read_text()
        assert not (base / "cache" / "images" / image.tag / "SUCCESS").exists()
    else:
        assert wait_marker(base, consumer) == "SUCCESS", stderr.read_text()
        assert record.read_text().split()[0] == layer.sha256


def test_a_rootfs_cached_under_the_same_tag_from_other_layers_is_not_reused(tmp_path):
    """Two projects (base paths) share one node_local_path, where the bwrap rootfs is cached by
    image tag. Their Labs name their image alike but its layers differ (a Lab not built by Nix may
    reuse a name): each job must run in a rootfs made from its own Lab's layers."""
    node_local = tmp_path / "node"
    seen = {}
    for version in ("one", "two"):
        lab_dir = image_lab(tmp_path / f"lab-{version}")
        append_layers(lab_dir, [("opt/which", "file", f"{version}\n")])
        job = producer(lab_dir)
        script = lab_dir / "jobs" / job / "bin" / "stage-B-producer"
        script.write_text(script.read_text() + 'cat /opt/which > "$out/which.txt"\n')
        labgen.rewrite_manifest(lab_dir)
        (image,) = Lab.load(lab_dir).images.values()
        seen.setdefault("tags", set()).add(image.tag)
        base = tmp_path / f"store-{version}"
        run_job(write_config(tmp_path, base, node_local), lab_dir, job)
        assert wait_marker(base, job) == "SUCCESS", (base / "outputs" / job / "repx" / "stderr.log").read_text()
        seen[version] = (base / "outputs" / job / "out" / "which.txt").read_text()
    assert len(seen["tags"]) == 1  # the same tag: one cache entry for both
    assert (seen["one"], seen["two"]) == ("one\n", "two\n")


# --- 2. extraction into the rootfs cannot leave it ------------------------------------------------------


@pytest.mark.parametrize("link", ["absolute", "relative"])
def test_a_layer_writing_through_an_earlier_layers_link_is_refused(tmp_path, link):
    lab_dir = image_lab(tmp_path / "lab")
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    base, node_local = tmp_path / "store", tmp_path / "node"
    # the rootfs is <node>/cache/images/<tag>/rootfs: four levels up is <node> itself
    target, landed = (
        (str(host_dir), host_dir / "owned") if link == "absolute" else ("../../../..", node_local / "owned")
    )
    append_layers(lab_dir, [("escape", "link", target)], [("escape/owned", "file", "written by the image\n")])
    config = write_config(tmp_path, base, node_local)
    job = producer(lab_dir)

    run_job(config, lab_dir, job)
    assert wait_marker(base, job) == "FAIL"
    stderr = (base / "outputs" / job / "repx" / "stderr.log").read_text()
    assert "FAIL: image" in stderr and "outside the image's root file system" in stderr, stderr
    assert not landed.exists()
    assert list(host_dir.iterdir()) == []


@pytest.mark.parametrize("name", ["/abs-owned", "opt/../../dotdot-owned"])
def test_a_layer_member_with_an_absolute_name_or_dotdot_is_refused(tmp_path, name):
    lab_dir = image_lab(tmp_path / "lab")
    append_layers(lab_dir, [(name, "file", "x\n")])
    base, node_local = tmp_path / "store", tmp_path / "node"
    config = write_config(tmp_path, base, node_local)
    job = producer(lab_dir)

    run_job(config, lab_dir, job)
    assert wait_marker(base, job) == "FAIL"
    stderr = (base / "outputs" / job / "repx" / "stderr.log").read_text()
    assert "FAIL: image" in stderr and name in stderr, stderr


def test_a_legit_image_with_links_still_runs(tmp_path):
    """Links that stay inside the image (relative and within it) are fine, in later layers too."""
    lab_dir = image_lab(tmp_path / "lab")
    append_layers(
        lab_dir,
        [("opt/data", "dir", ""), ("opt/data/real", "dir", ""), ("opt/data/alias", "link", "real")],
        [("opt/data/alias/extra.txt", "file", "through a link inside the image\n")],
    )
    labgen.make_writable(lab_dir)
    job = producer(lab_dir)
    script = lab_dir / "jobs" / job / "bin" / "stage-B-producer"
    script.write_text(script.read_text() + 'cat /opt/data/real/extra.txt > "$out/proof.txt"\n')
    labgen.rewrite_manifest(lab_dir)
    base, node_local = tmp_path / "store", tmp_path / "node"
    config = write_config(tmp_path, base, node_local)

    run_job(config, lab_dir, job)
    assert wait_marker(base, job) == "SUCCESS", (base / "outputs" / job / "repx" / "stderr.log").read_text()
    assert (base / "outputs" / job / "out" / "proof.txt").read_text() == "through a link inside the image\n"


# --- 3. the sync never writes through a link left on the target ------------------------------------------


@pytest.mark.parametrize("linked", ["store", "images"])
async def test_a_link_in_place_of_the_layer_store_or_image_dir_is_refused(target, tmp_path, linked):
    lab_dir = image_lab(tmp_path / "lab")
    base = Path(target.base_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (base / "artifacts").mkdir(parents=True)
    (base / "artifacts" / linked).symlink_to(elsewhere)

    with pytest.raises(SyncError) as info:
        await sync(target, lab_dir)
    assert f"artifacts/{linked}" in info.value.message and "link" in info.value.message
    assert list(elsewhere.iterdir()) == []


# --- the job spec carries what the executor checks against ------------------------------------------------


def test_the_job_spec_carries_one_sha256_over_the_layers_and_their_sha256s(tmp_path):
    """One value per spec, not one per layer (a spec travels in every sbatch script); the
    executor recomputes it from what it finds on the target: the format is shared."""
    lab_dir = image_lab(tmp_path / "lab")
    lab = Lab.load(lab_dir)
    (image,) = lab.images.values()
    spec = build_spec(lab, producer(lab_dir), RemoteLayout(base="/b"), Target(name="t", base_path="/b"), "bwrap")
    lines = "".join(f"{x.digest} {sha256(lab_dir / x.store_path)}\n" for x in image.layers)
    assert spec["image"]["layers_sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    assert set(spec["image"]) == {"tag", "path", "layers_sha256"}
