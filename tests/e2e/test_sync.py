"""The phased sync against the real test-bed sshd (and the local target): content, increments,
one login, interruption, node-local reuse, and the clear errors."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.config import Target
from repx_tui.backend.errors import HostKeyError, SyncError
from repx_tui.backend.events import ConnectionState, LayerAction, LayerProgress, Phase, PhaseFailed
from repx_tui.backend.lab import Lab
from repx_tui.backend.session import TargetSession
from repx_tui.backend.sync import hosttools, images, plan, sync_lab
from repx_tui.backend.sync import lab as lab_phase
from repx_tui.backend.transport.ssh import SshTransport
from tests import labgen

ROOT = Path(__file__).resolve().parents[2]
TOOLS = (*labgen.SCRIPT_TOOLS, "rsync", "tar", "sha256sum", "stat", "cut", "chmod", "mv", "cp", "ln")


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory) -> Path:
    return labgen.make_lab(tmp_path_factory.mktemp("lab") / "lab", "big_layers", host_tools=TOOLS)


@pytest.fixture(scope="module")
def lab_changed_layer(tmp_path_factory) -> Path:
    return labgen.make_lab(tmp_path_factory.mktemp("lab2") / "lab", "big_layers", host_tools=TOOLS, layer_seed=7)


@pytest.fixture
def ssh_config(sshd_target, monkeypatch) -> str:
    monkeypatch.setenv("REPX_SSH_CONFIG", sshd_target["ssh_config"])
    return sshd_target["ssh_config"]


@pytest.fixture(params=["local", "ssh"])
def target(request, tmp_path) -> Target:
    base = str(tmp_path / "base")
    if request.param == "local":
        return Target(name="local", base_path=base)
    request.getfixturevalue("ssh_config")
    return Target(name="e2e", address="e2e-cluster", base_path=base)


class Recorder(list):
    def __call__(self, event) -> None:
        self.append(event)

    def of(self, kind):
        return [e for e in self if isinstance(e, kind)]


async def sync(target: Target, lab_path: Path, emit=None):
    emit = emit if emit is not None else Recorder()
    async with TargetSession(target, emit) as session:
        return await session.sync(Lab.load(lab_path)), session


# --- helpers that read the target (the test-bed sshd is this machine) ----------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digest(root: Path, skip_top: tuple[str, ...] = ()) -> dict[str, str]:
    """rel path -> sha256 of content (links followed) or 'link:<target>' for symlinks."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] in skip_top:
            continue
        if path.is_symlink():
            found[rel] = "link:" + os.readlink(path)
            found[rel + "#content"] = sha256(path) if path.is_file() else "dir"
        elif path.is_file():
            found[rel] = sha256(path)
    return found


def assert_synced(lab_path: Path, base: Path, *, allow_orphans: bool = False) -> None:
    lab = Lab.load(lab_path)
    artifacts = base / "artifacts"
    want = tree_digest(lab_path)
    got = tree_digest(artifacts)
    missing_or_different = {k: v for k, v in want.items() if got.get(k) != v}
    assert not missing_or_different, f"differs from the Lab: {sorted(missing_or_different)[:5]}"
    for image in lab.images.values():  # upstream's tag link next to the image dir
        tag = artifacts / "images" / image.tag
        assert os.readlink(tag) == Path(image.path).name
    tools = base / "host-tools" / lab.host_tools_dir
    assert (tools / hosttools.MARKER).is_file()
    for tool in lab.host_tools_path.iterdir():
        installed = tools / "bin" / tool.name
        assert not installed.is_symlink() and sha256(installed) == sha256(tool)
    leftovers = [p for p in base.rglob(".*") if ".part-" in p.name or ".staging-" in p.name or ".tmp-" in p.name]
    if allow_orphans:  # an upload cut off by a dead connection may leave its dot-named temp file
        leftovers = [p for p in leftovers if not p.name.startswith(".")]
    assert not leftovers


# --- the list ---------------------------------------------------------------------------


async def test_cold_sync_equals_the_lab_byte_for_byte(target, lab_dir):
    summary, _ = await sync(target, lab_dir)
    assert_synced(lab_dir, Path(target.base_path))
    assert [p.status for p in summary.phases] == ["done", "done", "done"]
    assert {layer.action for layer in summary.layers} == {LayerAction.TRANSFERRED}
    assert summary.phase(Phase.IMAGES).bytes_sent == sum(layer.size for layer in summary.layers)
    assert summary.ssh_connections == (0 if target.is_local else 1)
    layers = list((Path(target.base_path) / "artifacts" / "store").glob("*-layer.tar"))
    assert len(layers) == len({layer.digest for layer in summary.layers})
    assert all(path.stat().st_mode & 0o222 == 0 for path in layers), "a checked layer must not stay writable"


async def test_unchanged_resync_sends_no_file_and_no_layer_byte(target, lab_dir):
    await sync(target, lab_dir)
    events = Recorder()
    summary, _ = await sync(target, lab_dir, events)
    assert summary.phase(Phase.HOST_TOOLS).status == "skipped"
    assert summary.phase(Phase.LAB).files_sent == 0
    assert summary.phase(Phase.IMAGES).files_sent == 0
    assert all(layer.action is LayerAction.REUSED and layer.bytes_sent == 0 for layer in summary.layers)
    assert summary.bytes_sent == 0
    assert not [e for e in events.of(LayerProgress) if e.sent]


async def test_one_changed_layer_sends_only_that_layer(target, lab_dir, lab_changed_layer):
    await sync(target, lab_dir)
    summary, _ = await sync(target, lab_changed_layer)
    sent = [layer for layer in summary.layers if layer.action is LayerAction.TRANSFERRED]
    assert len(sent) == 1
    assert summary.phase(Phase.IMAGES).bytes_sent == sent[0].size == sent[0].bytes_sent
    assert all(layer.bytes_sent == 0 for layer in summary.layers if layer is not sent[0])
    assert_synced(lab_changed_layer, Path(target.base_path))


async def test_metadata_of_the_same_size_is_sent_despite_equal_mtimes(tmp_path, lab_dir):
    """Nix gives every file mtime 1: a changed file of the same size must still be sent."""
    target = Target(name="local", base_path=str(tmp_path / "base"))
    await sync(target, lab_dir)
    lab2 = tmp_path / "lab2"
    shutil.copytree(lab_dir, lab2, symlinks=True)
    labgen.make_writable(lab2)
    readme = lab2 / "readme" / "README.md"
    text = readme.read_bytes()
    readme.write_bytes(text[:-1] + (b"X" if text[-1:] != b"X" else b"Y"))
    os.utime(readme, (1, 1))
    labgen.rewrite_manifest(lab2)
    summary, _ = await sync(target, lab2)
    assert summary.phase(Phase.LAB).files_sent >= 2  # README and the manifest that lists it
    assert sha256(Path(target.base_path) / "artifacts" / "readme" / "README.md") == sha256(readme)


async def test_a_whole_sync_logs_in_exactly_once(ssh_config, sshd_auth_count, tmp_path, lab_dir):
    target = Target(name="e2e", address="e2e-cluster", base_path=str(tmp_path / "base"))
    before = sshd_auth_count(user="root")
    summary, session = await sync(target, lab_dir)
    assert sshd_auth_count(user="root") - before == 1
    assert summary.ssh_connections == 1 == session.transport.authentications


async def test_connection_killed_mid_layer_then_resync_is_complete(ssh_config, tmp_path, lab_dir):
    target = Target(name="e2e", address="e2e-cluster", base_path=str(tmp_path / "base"))
    events = Recorder()
    session = TargetSession(target, events)
    killed = []

    def kill_mid_layer(event) -> None:
        events(event)
        if (
            isinstance(event, LayerProgress)
            and not killed
            and event.action is LayerAction.TRANSFERRED
            and 0 < event.sent < event.size
        ):
            killed.append(event.digest)
            transport = session.transport
            assert isinstance(transport, SshTransport) and transport.connection is not None
            transport.connection.abort()  # the TCP connection goes away under the upload

    session.emit = kill_mid_layer
    session._transport = None  # built on connect with the new sink
    async with session:
        try:
            await session.sync(Lab.load(lab_dir))
        except Exception:  # the phase may give up; the next sync must still finish the job
            pass
    assert killed, "no layer was in flight to interrupt"
    assert [e for e in events.of(ConnectionState) if e.state == "lost"]
    summary, _ = await sync(target, lab_dir)
    assert_synced(lab_dir, Path(target.base_path), allow_orphans=True)
    assert all(layer.action is not LayerAction.NODE_LOCAL for layer in summary.layers)


async def test_layers_in_node_local_path_are_copied_on_the_target(target, tmp_path, lab_dir):
    lab = Lab.load(lab_dir)
    node_local = tmp_path / "node-local"
    (node_local / "store").mkdir(parents=True)
    image = next(iter(lab.images.values()))
    reused = image.layers[0]
    shutil.copy(lab_dir / reused.store_path, node_local / "store" / f"{reused.digest}-layer.tar")
    target = Target(
        name=target.name, address=target.address, base_path=target.base_path, node_local_path=str(node_local)
    )
    summary, _ = await sync(target, lab_dir)
    actions = {layer.digest: layer for layer in summary.layers}
    assert actions[reused.digest].action is LayerAction.NODE_LOCAL
    assert actions[reused.digest].bytes_sent == 0
    assert summary.phase(Phase.IMAGES).bytes_sent == sum(
        layer.size for layer in image.layers if layer.digest != reused.digest
    )
    assert_synced(lab_dir, Path(target.base_path))


async def test_a_corrupt_node_local_layer_is_not_used(tmp_path, lab_dir):
    lab = Lab.load(lab_dir)
    layer = next(iter(lab.images.values())).layers[0]
    node_local = tmp_path / "nl"
    (node_local / "store").mkdir(parents=True)
    (node_local / "store" / f"{layer.digest}-layer.tar").write_bytes(b"\0" * layer.size)  # right size, wrong bytes
    target = Target(name="local", base_path=str(tmp_path / "base"), node_local_path=str(node_local))
    summary, _ = await sync(target, lab_dir)
    assert next(x for x in summary.layers if x.digest == layer.digest).action is LayerAction.TRANSFERRED
    assert_synced(lab_dir, Path(target.base_path))


async def test_unknown_host_key_is_refused_with_its_fingerprint(
    sshd_target, sshd_auth_count, tmp_path, monkeypatch, lab_dir
):
    empty_known_hosts = tmp_path / "known_hosts"
    empty_known_hosts.write_text("")
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host stranger\n  HostName {sshd_target['host']}\n  Port {sshd_target['port']}\n  User root\n"
        f"  IdentityFile {sshd_target['key']}\n  UserKnownHostsFile {empty_known_hosts}\n"
    )
    monkeypatch.setenv("REPX_SSH_CONFIG", str(config))
    before = sshd_auth_count(user="root")
    target = Target(name="stranger", address="stranger", base_path=str(tmp_path / "base"))
    with pytest.raises(HostKeyError) as info:
        await sync(target, lab_dir)
    expected = subprocess.run(
        ["ssh-keygen", "-lf", sshd_target["known_hosts"]], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert expected in info.value.message
    assert f"ssh-keyscan -p {sshd_target['port']} {sshd_target['host']}" in info.value.hint
    assert sshd_auth_count(user="root") == before
    assert not (tmp_path / "base").exists()


async def test_unwritable_base_path_is_a_clear_error(request, tmp_path, lab_dir):
    if "REPX_E2E_SKIP_SSH" in os.environ:
        pytest.skip("ssh disabled")
    request.getfixturevalue("ssh_config")
    targets = [
        Target(name="local", base_path="/proc/repx-cannot-exist/base"),
        Target(name="e2e-user", address="e2e-user", base_path="/root/repx-not-for-e2e/base"),
    ]
    for target in targets:
        events = Recorder()
        with pytest.raises(SyncError, match="cannot be created or written") as info:
            await sync(target, lab_dir, events)
        assert "base_path" in info.value.hint
        assert [e.phase for e in events.of(PhaseFailed)] == [Phase.HOST_TOOLS]


async def test_two_clients_syncing_at_once_corrupt_nothing(target, lab_dir, lab_changed_layer):
    await asyncio.gather(sync(target, lab_dir), sync(target, lab_dir))
    assert_synced(lab_dir, Path(target.base_path))
    await asyncio.gather(sync(target, lab_changed_layer), sync(target, lab_changed_layer))
    assert_synced(lab_changed_layer, Path(target.base_path))


async def test_images_phase_only_takes_the_images_of_the_given_runs(tmp_path):
    native = labgen.make_lab(tmp_path / "native", "quick")
    target = Target(name="local", base_path=str(tmp_path / "base"))
    events = Recorder()
    async with TargetSession(target, events) as session:
        summary = await sync_lab(session.transport, Lab.load(native), target, events, runs=["simulation"])
    assert summary.phase(Phase.IMAGES).status == "skipped"
    assert summary.layers == ()


# --- headless CLI -------------------------------------------------------------------------------


def _cli(args: list[str], config: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "REPX_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "repx_tui", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_headless_sync_json_lines_and_summary(tmp_path, lab_dir):
    config = tmp_path / "config.toml"
    config.write_text(f'[targets.local]\nbase_path = "{tmp_path / "base"}"\n')
    done = _cli(["sync", "--lab", str(lab_dir), "--target", "local", "--json"], config)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert {"PhaseStarted", "PhaseDone", "LayerProgress"} <= {e.get("event") for e in lines[:-1]}
    summary = lines[-1]
    # keys are only ever added (issue 15 added the wire bytes and the compression)
    assert set(summary) >= {"phases", "layers", "bytes_sent", "ssh_connections", "seconds"}
    assert set(summary) >= {"content_bytes", "wire_bytes", "ratio", "compression", "compression_reason"}
    assert [p["name"] for p in summary["phases"]] == ["host-tools", "lab", "images"]
    assert set(summary["phases"][0]) >= {"name", "status", "files_sent", "bytes_sent", "seconds", "wire_bytes"}
    assert set(summary["layers"][0]) >= {"image", "digest", "size", "action", "bytes_sent", "wire_bytes", "encoding"}
    human = _cli(["sync", "--lab", str(lab_dir), "--target", "local"], config)
    assert human.returncode == 0, human.stderr
    assert "[host-tools] skipped" in human.stdout and "reused" in human.stdout


def test_headless_sync_error_is_one_line(tmp_path, lab_dir):
    config = tmp_path / "config.toml"
    config.write_text('[targets.local]\nbase_path = "/proc/repx-nope"\n')
    done = _cli(["sync", "--lab", str(lab_dir), "--target", "local"], config)
    assert done.returncode == 1
    assert "cannot be created or written" in done.stderr and "Traceback" not in done.stderr


# --- the bash we send is shellcheck-clean -----------------------------------------------------------


SCRIPTS = {
    "probe": plan.PROBE_SCRIPT,
    "install": hosttools.INSTALL_SCRIPT,
    "copy-tools": hosttools.COPY_SCRIPT,
    "list": images.LIST_SCRIPT,
    "node-local": images.NODE_LOCAL_SCRIPT,
    "lane": images.LANE_SCRIPT,
    "image": images.IMAGE_SCRIPT,
    "metadata": lab_phase.METADATA_SCRIPT,
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_remote_scripts_pass_shellcheck(name, tmp_path):
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed")
    from repx_tui.backend.sync.common import SCRIPT_PREAMBLE

    script = tmp_path / f"{name}.sh"
    script.write_text("#!/bin/bash\n" + SCRIPT_PREAMBLE + SCRIPTS[name])
    done = subprocess.run(["shellcheck", "-s", "bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


# --- the SSH command runner (one long-lived bash instead of a channel + login shell per command) ---


async def test_the_command_runner_keeps_each_command_apart(ssh_config):
    async with SshTransport("e2e", "e2e-cluster") as transport:
        odd = b"a\x00b \t\n\n\n" * 1000  # NULs, tabs, trailing newlines: all must survive
        done = await transport.run(["bash", "-c", 'cat; printf "err\\n" >&2; cd /; exit 7'], input=odd, check=False)
        assert (done.exit_status, done.stdout.encode(), done.stderr) == (7, odd, "err\n")
        # the `cd` and `exit` above stayed in their command: the next one starts where every command does
        home = (await transport.run(["sh", "-c", "pwd"])).stdout.strip()
        assert home == (await transport.home())
        # each command is a new bash; its parent is the runner for all of them (a channel's would not be)
        grandparent = ["sh", "-c", "awk '/^PPid/ {print $2}' /proc/$PPID/status"]
        parents = {(await transport.run(grandparent)).stdout for _ in range(3)}
        assert len(parents) == 1, "the commands did not go through one runner"
        # concurrent commands: the runner takes one, the others get their own channels
        results = await asyncio.gather(*(transport.run(["sh", "-c", f"echo {i}; echo e{i} >&2"]) for i in range(6)))
        assert [(r.stdout, r.stderr) for r in results] == [(f"{i}\n", f"e{i}\n") for i in range(6)]
        assert transport.authentications == 1


async def test_a_timed_out_command_does_not_block_the_next(ssh_config):
    from repx_tui.backend.errors import TransportError

    async with SshTransport("e2e", "e2e-cluster") as transport:
        with pytest.raises(TransportError, match="timed out"):
            await transport.run(["sleep", "30"], timeout=0.5)
        assert (await transport.run(["echo", "next"])).stdout == "next\n"
        assert transport.authentications == 1


def test_the_command_runner_passes_shellcheck(tmp_path):
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed")
    from repx_tui.backend.transport.ssh import RUNNER_SCRIPT

    script = tmp_path / "runner.sh"
    script.write_text("#!/bin/bash\n" + RUNNER_SCRIPT)
    done = subprocess.run(["shellcheck", "-s", "bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


async def test_host_tools_are_sent_as_a_tar_when_the_target_has_no_rsync(target, lab_dir):
    """Normally the tools are copied out of the Lab's content on the target; a target without
    rsync gets them as a tar first (the Lab's own rsync is among them)."""
    from repx_tui.backend.sync.common import RateMeter, SyncContext

    lab = Lab.load(lab_dir)
    async with TargetSession(target) as session:
        ctx = SyncContext(session.transport, session.layout, Recorder())
        dest = session.layout.host_tools(lab.host_tools_dir)
        await session.transport.run(["mkdir", "-p", session.layout.base + "/host-tools"])
        files, size = await hosttools._install(ctx, lab, dest, RateMeter())
    tools = Path(dest)
    assert files == len([t for t in lab.host_tools_path.iterdir() if t.is_file()]) and size > 0
    assert (tools / hosttools.MARKER).is_file()
    for tool in lab.host_tools_path.iterdir():
        assert sha256(tools / "bin" / tool.name) == sha256(tool)
    assert not [p for p in tools.parent.iterdir() if p.name.startswith(".")]  # no staging, no upload left


async def test_a_cold_sync_copies_the_host_tools_out_of_the_lab(target, lab_dir):
    summary, _ = await sync(target, lab_dir)
    tools = summary.phase(Phase.HOST_TOOLS)
    assert tools.status == "done" and tools.bytes_sent == 0 and tools.files_sent > 0
    assert_synced(lab_dir, Path(target.base_path))
