"""LocalTransport: the `local` target's transport, against this machine (no mocks)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from repx_tui.backend.config import Target
from repx_tui.backend.errors import RemoteCommandError, TransportError
from repx_tui.backend.transport import LocalTransport, open_transport


@pytest.fixture
async def transport():
    async with LocalTransport() as t:
        yield t


async def test_run_passes_every_argument_verbatim(transport):
    tricky = ["a b", "it's", '"$HOME"', "; rm -rf /", "*"]
    result = await transport.run(["printf", "%s\\n", *tricky])
    assert result.stdout.splitlines() == tricky


async def test_run_script_gets_positional_args(transport):
    result = await transport.run_script('printf "%s|" "$@"', "x y", "$z")
    assert result.stdout == "x y|$z|"


async def test_nonzero_exit_raises_with_stderr(transport):
    with pytest.raises(RemoteCommandError) as info:
        await transport.run(["bash", "-c", "echo boom >&2; exit 3"])
    assert info.value.exit_status == 3
    assert "boom" in str(info.value)
    result = await transport.run(["bash", "-c", "exit 3"], check=False)
    assert result.exit_status == 3 and not result.ok


async def test_missing_command_is_a_transport_error(transport):
    with pytest.raises(TransportError, match="not found"):
        await transport.run(["/no/such/program-repx"])


async def test_input_and_timeout(transport):
    assert (await transport.run(["cat"], input=b"hello")).stdout == "hello"
    with pytest.raises(TransportError, match="timed out"):
        await transport.run(["sleep", "5"], timeout=0.2)


async def test_stream_delivers_both_streams(transport):
    out, err = bytearray(), bytearray()
    status = await transport.stream(["bash", "-c", "echo one; echo two >&2; exit 4"], out.extend, err.extend)
    assert (status, bytes(out), bytes(err)) == (4, b"one\n", b"two\n")


async def test_run_with_file_streams_the_file_with_progress(transport, tmp_path: Path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    seen: list[tuple[int, int]] = []
    result = await transport.run_with_file(["sha256sum"], src, progress=lambda d, t: seen.append((d, t)))
    assert result.stdout.split()[0] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert seen[-1] == (src.stat().st_size, src.stat().st_size) and len(seen) > 1


async def test_run_with_file_reports_a_command_that_stops_reading(transport, tmp_path: Path):
    src = tmp_path / "big.bin"
    src.write_bytes(b"x" * (8 << 20))
    result = await transport.run_with_file(
        ["bash", "-c", "head -c 1 >/dev/null; echo no room >&2; exit 4"], src, check=False
    )
    assert result.exit_status == 4 and "no room" in result.stderr


async def test_read_and_size(transport, tmp_path: Path):
    path = str(tmp_path / "f.txt")
    assert await transport.file_size(path) is None
    Path(path).write_bytes(b"0123456789")
    assert await transport.file_size(path) == 10
    assert await transport.read_file(path, 4) == b"456789"
    assert await transport.read_file(path, 2, 3) == b"234"
    with pytest.raises(FileNotFoundError):
        await transport.read_file(str(tmp_path / "missing"))


async def test_home_paths_and_rsync_helpers(transport):
    assert await transport.resolve_path("~/x") == str(Path.home()) + "/x"
    assert transport.rsync_shell() is None
    assert transport.rsync_destination("/a/b") == "/a/b"
    assert transport.authentications == 0


def test_factory_picks_local_for_a_target_without_address():
    assert isinstance(open_transport(Target(name="local", base_path="/tmp/x")), LocalTransport)


def test_without_rsync_on_path_the_labs_own_rsync_is_used(tmp_path, monkeypatch):
    from repx_tui.backend.errors import SyncError
    from repx_tui.backend.sync.lab import local_rsync

    lab_root = tmp_path / "lab"
    shipped = lab_root / "host-tools" / "abc" / "bin" / "rsync"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SyncError, match="rsync is not installed"):
        local_rsync(lab_root)
    shipped.parent.mkdir(parents=True)
    shipped.write_text("#!/bin/sh\n")
    shipped.chmod(0o755)
    assert local_rsync(lab_root) == str(shipped)
