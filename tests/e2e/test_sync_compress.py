"""Compression on the wire over the real test-bed sshd (issue 15): chosen per session, layers
encoded here and decoded on the target with its zstd or gzip, every layer still checked by its
sha256 on the target before it gets its name, and the summary says what went over the wire.

Over loopback `auto` is off (both ends are this machine); `on` forces it, which is how these
tests exercise the encoders and the target's decoders. The shaped "login host" (a network
namespace, tests/infra/start-netns.sh) is where `auto` turns it on by itself."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.benchlab import make_lab as make_bench_lab
from repx_tui.backend.config import Target
from repx_tui.backend.errors import SyncError
from repx_tui.backend.events import LayerAction, Notice
from repx_tui.backend.lab import Lab
from repx_tui.backend.session import TargetSession
from repx_tui.backend.sync import compress
from tests import labgen
from tests.e2e.test_sync import TOOLS, Recorder, assert_synced
from tests.infra.fixtures import e2e_dir, read_env_file

pytestmark = [pytest.mark.sshd]


@pytest.fixture(scope="module")
def text_lab(tmp_path_factory) -> Path:
    """Text-like layers (gzip about 2.2 : 1) and one random layer, whose sample says no."""
    return make_bench_lab(
        tmp_path_factory.mktemp("textlab") / "lab", "compressible", layers=3, layer_mib=1, host_tools=(*TOOLS, "gzip")
    )


@pytest.fixture
def ssh_target(sshd_target, monkeypatch, tmp_path) -> Target:
    monkeypatch.setenv("REPX_SSH_CONFIG", sshd_target["ssh_config"])
    return Target(name="e2e", address="e2e-cluster", base_path=str(tmp_path / "base"))


async def sync(target: Target, lab_dir: Path, compress_mode: str):
    events = Recorder()
    async with TargetSession(target, events) as session:
        return await session.sync(Lab.load(lab_dir), compress=compress_mode), events


async def test_auto_sends_as_it_is_to_this_machine(ssh_target, text_lab):
    summary, _ = await sync(ssh_target, text_lab, "auto")
    assert summary.compression == "off" and "this machine" in summary.compression_reason
    images = summary.phase("images")
    assert images is not None and images.wire == images.bytes_sent > 0  # the layers' bytes, as they are
    assert summary.wire_bytes >= summary.bytes_sent  # plus rsync's and tar's own bytes for the Lab's tree
    assert {layer.encoding for layer in summary.layers} == {"raw"}
    assert_synced(text_lab, Path(ssh_target.base_path))


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
async def test_on_compresses_the_lab_and_the_layers_and_the_target_checks_every_layer(
    ssh_target, text_lab, codec, monkeypatch
):
    if codec == "gzip":
        monkeypatch.setattr(compress, "local_zstd", lambda: None)  # no zstd here: gzip, decoded by the target's gzip
    summary, events = await sync(ssh_target, text_lab, "on")
    assert_synced(text_lab, Path(ssh_target.base_path))  # every file byte for byte, every layer recorded
    sent = [layer for layer in summary.layers if layer.action is LayerAction.TRANSFERRED]
    encodings = {layer.encoding for layer in sent}
    assert encodings == {codec}, encodings  # the text layers and the rootfs (binaries) compress
    images = summary.phase("images")
    assert images is not None and images.compression.startswith(codec)
    assert images.wire < images.bytes_sent / 1.8  # text-like layers: gzip ~2.2:1, zstd better
    lab = summary.phase("lab")
    assert lab is not None and lab.wire < lab.bytes_sent  # rsync compressed the Lab's tree too
    assert summary.ratio is not None and summary.ratio > 1.5 and summary.to_json()["wire_bytes"] == summary.wire_bytes
    assert any(isinstance(e, Notice) and "compression:" in e.message for e in events)
    again, _ = await sync(ssh_target, text_lab, "on")  # nothing to send: nothing measured, nothing sent
    assert again.bytes_sent == 0 and again.wire_bytes == 0


async def test_a_layer_that_does_not_compress_goes_as_it_is(ssh_target, tmp_path):
    lab_dir = labgen.make_lab(tmp_path / "lab", "big_layers", host_tools=TOOLS, layer_size_kib=1024)
    summary, _ = await sync(ssh_target, lab_dir, "on")
    encodings = [layer.encoding for layer in summary.layers]  # the rootfs first, then the padding layers
    assert encodings[0] == "zstd" and set(encodings[1:]) == {"raw"}  # random padding: its sample says no
    assert_synced(lab_dir, Path(ssh_target.base_path))


@pytest.mark.parametrize("mode", ["on", "off"])
async def test_a_layer_whose_bytes_are_not_the_labs_never_gets_its_name(ssh_target, tmp_path, mode):
    """The target hashes what it decoded: bytes that differ from the sha256 the Lab gives (here
    the layer file was changed after the Lab was written, same size) are refused."""
    lab_dir = make_bench_lab(tmp_path / "lab", "compressible", layers=1, layer_mib=1, host_tools=TOOLS)
    lab = Lab.load(lab_dir)
    layer = max((layer for image in lab.images.values() for layer in image.layers), key=lambda x: x.size)
    labgen.make_writable(lab_dir)
    path = lab_dir / layer.store_path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20  # one letter's case
    path.write_bytes(bytes(data))
    with pytest.raises(SyncError, match=f"layer {layer.digest[:12]} arrived corrupt"):
        await sync(ssh_target, lab_dir, mode)
    store = Path(ssh_target.base_path) / "artifacts" / "store"
    assert not (store / f"{layer.digest}-layer.tar").exists()
    assert not [p for p in store.iterdir() if ".part-" in p.name]


@pytest.fixture
def login_host(monkeypatch) -> Iterator[Target]:
    env_file = e2e_dir() / "netns" / "env"
    if not env_file.is_file():
        pytest.skip("the shaped login host is not up (REPX_E2E_NETNS=1 bash tests/infra/start-netns.sh)")
    env = read_env_file(env_file)
    monkeypatch.setenv("REPX_SSH_CONFIG", env["REPX_E2E_NETNS_SSH_CONFIG"])
    base = Path(tempfile.mkdtemp(prefix="repx-login-"))  # outside pytest's 0700 tree: the user e2e writes there
    base.chmod(0o777)
    yield Target(name="login", address=env["REPX_E2E_NETNS_ALIAS"], base_path=str(base / "base"))
    shutil.rmtree(base, ignore_errors=True)


async def test_auto_compresses_over_a_100_mbit_link_by_itself(login_host, text_lab):
    summary, _ = await sync(login_host, text_lab, "auto")
    assert summary.compression != "off" and "slower than the compressor" in summary.compression_reason
    assert summary.ratio is not None and summary.ratio > 1.5
    assert_synced(text_lab, Path(login_host.base_path))
