"""Bad input gets a clear error and loses nothing: a full disk, an unreachable host.

The full disk is real: base_path on a small tmpfs mounted for the test (we are root here),
synced through the real sshd. After the error, no layer under its final name is incomplete,
and once there is room the next sync completes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.config import Target
from repx_tui.backend.errors import RepxError
from repx_tui.backend.lab import Lab
from repx_tui.backend.session import TargetSession
from tests import labgen

pytestmark = pytest.mark.sshd


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def ssh_env(sshd_target, monkeypatch):
    monkeypatch.setenv("REPX_SSH_CONFIG", sshd_target["ssh_config"])
    return sshd_target


def complete_layers(base: Path, lab: Lab) -> dict[str, bool]:
    """digest -> True when the file under its final name has the right content; absent: missing."""
    found = {}
    for image in lab.images.values():
        for layer in image.layers:
            path = base / "artifacts" / "store" / f"{layer.digest}-layer.tar"
            if path.exists():
                found[layer.digest] = hashlib.sha256(path.read_bytes()).hexdigest() == layer.digest
    return found


async def test_full_disk_is_a_clear_error_and_the_next_sync_completes(ssh_env, small_disk, tmp_path):
    # three 3 MiB layers cannot fit in 6 MiB next to the Lab and its tools
    lab_dir = labgen.make_lab(tmp_path / "lab", image_layers=3, layer_size_kib=3072, host_tools=labgen.SCRIPT_TOOLS)
    lab = Lab.load(lab_dir)
    base = small_disk / "base"
    target = Target(name="e2e", address="e2e-cluster", base_path=str(base))

    with pytest.raises(RepxError) as info:
        async with TargetSession(target) as session:
            await session.sync(lab)
    message = str(info.value).lower()
    assert "space" in message or "quota" in message, message
    assert "traceback" not in message
    assert all(complete_layers(base, lab).values()), "a partial layer is under its final name"
    for image in lab.images.values():  # the image is not advertised as present
        assert not (base / "artifacts" / image.path / "manifest.json").exists()

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    async with TargetSession(target) as session:
        summary = await session.sync(lab)
    layers = complete_layers(base, lab)
    assert len(layers) == sum(len(i.layers) for i in lab.images.values()) and all(layers.values())
    assert summary is not None


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "repx_tui", *args], capture_output=True, text=True, timeout=120)


def test_unreachable_host_is_one_clear_line(tmp_path, ssh_env):
    # a real closed port on loopback: nothing listens on port 1
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host nowhere\n  HostName 127.0.0.1\n  Port 1\n  User root\n  IdentityFile {ssh_env['key']}\n"
        f"  UserKnownHostsFile {ssh_env['known_hosts']}\n"
    )
    config = tmp_path / "config.toml"
    config.write_text('[targets.gone]\naddress = "nowhere"\nbase_path = "/tmp/repx-gone"\n')
    os.environ["REPX_SSH_CONFIG"] = str(ssh_config)
    lab_dir = labgen.make_lab(tmp_path / "lab", host_tools=labgen.SCRIPT_TOOLS)

    result = run_cli("--config", str(config), "sync", "--lab", str(lab_dir), "--target", "gone")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr and "nowhere" in result.stderr

    check = run_cli("--config", str(config), "targets", "--check", "--json")
    assert check.returncode == 1
    (gone,) = json.loads(check.stdout)["targets"]
    reachable = gone["health"]["checks"][0]
    assert reachable["name"] == "reachable" and reachable["ok"] is False
    assert "BatchMode=yes" in reachable["hint"]
