"""Log following by byte offset: a live SLURM job through the real sshd, and the edge cases
(large logs, fast writers, truncation, split UTF-8, scatter-gather sub-steps) on real files."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import LogChunk
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.logs import MAX_READ, LogFollower, last_lines, log_path
from repx_tui.backend.transport.local import LocalTransport
from tests.e2e.test_status_slurm import E2E_ROOT, REPO, remote, squeue_state, ssh  # noqa: F401 (fixtures)
from tests.helpers import async_wait_until, wait_until


class CountingTransport(LocalTransport):
    """The real local transport, counting the bytes each read returns."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[int] = []

    async def read_file(self, remote: str, offset: int = 0, length: int | None = None) -> bytes:
        data = await super().read_file(remote, offset, length)
        self.reads.append(len(data))
        return data


def _log(base: Path, job: str, sub: str | None = None, stream: str = "stdout") -> Path:
    path = Path(log_path(RemoteLayout(base=str(base)), job, stream, sub))
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def text_of(chunks: list[LogChunk]) -> str:
    return "".join(c.text for c in chunks)


@pytest.mark.sshd
@pytest.mark.slurm
async def test_follow_shows_lines_as_a_slurm_job_writes_them(remote):
    job = remote.job_id("talker")
    gates = [remote.base / f"go-{i}" for i in range(3)]
    body = "; ".join(f"while [ ! -e {g} ]; do sleep 0.1; done; echo line-{i}" for i, g in enumerate(gates))
    sid = await remote.submit(job, body)
    chunks: list[LogChunk] = []
    follower = LogFollower(remote.transport, remote.layout, job, emit=chunks.append, interval=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.follow(stop, tail_lines=50))
    try:
        wait_until(lambda: squeue_state(sid) == "RUNNING", timeout=60, message="job running")
        for i, gate in enumerate(gates):
            gate.touch()
            await async_wait_until(lambda i=i: f"line-{i}" in text_of(chunks), timeout=20, message=f"line-{i} followed")
            assert f"line-{i + 1}" not in text_of(chunks)  # the next line is not written yet
        assert text_of(chunks) == "line-0\nline-1\nline-2\n"
        offsets = [c.offset for c in chunks]
        assert offsets == sorted(offsets) and offsets[0] == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    # after the job ended: the same log, read again from the tail
    again = LogFollower(remote.transport, remote.layout, job)
    tail = await again.tail(2)
    assert tail is not None and tail.text == "line-1\nline-2\n"


@pytest.mark.sshd
async def test_large_log_tail_reads_a_bounded_window_over_ssh(ssh, tmp_path):
    base = E2E_ROOT / uuid.uuid4().hex[:12]
    path = _log(base, "big-job")
    line = "x" * 90
    path.write_text("".join(f"{i:08d} {line}\n" for i in range(60_000)))  # ~6 MB
    try:
        follower = LogFollower(ssh, RemoteLayout(base=str(base)), "big-job")
        chunk = await follower.tail(5)
        assert chunk is not None
        assert chunk.text.splitlines() == [f"{i:08d} {line}" for i in range(59_995, 60_000)]
        assert follower.offset == path.stat().st_size
        assert chunk.offset == path.stat().st_size - len(chunk.text)
        assert await follower.read_new() is None  # nothing new
        with path.open("a") as f:
            f.write("tail-end\n")
        assert (await follower.read_new()).text == "tail-end\n"
    finally:
        import shutil

        shutil.rmtree(base, ignore_errors=True)


async def test_tail_never_reads_the_whole_file(tmp_path):
    path = _log(tmp_path, "job")
    path.write_bytes(b"".join(b"%07d\n" % i for i in range(1_000_000)))  # 8 MB
    transport = CountingTransport()
    follower = LogFollower(transport, RemoteLayout(base=str(tmp_path)), "job")
    chunk = await follower.tail(100)
    assert chunk.text.splitlines()[0] == "0999900" and len(chunk.text.splitlines()) == 100
    assert sum(transport.reads) <= 64 * 1024


async def test_fast_writer_is_caught_up_in_bounded_reads(tmp_path):
    path = _log(tmp_path, "job")
    path.write_bytes(b"")
    transport = CountingTransport()
    chunks: list[LogChunk] = []
    follower = LogFollower(transport, RemoteLayout(base=str(tmp_path)), "job", emit=chunks.append, interval=0.05)
    await follower.tail(10)
    payload = b"".join(b"row %09d\n" % i for i in range(400_000))  # ~5.6 MB in one burst
    path.write_bytes(payload)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.follow(stop, tail_lines=None))
    await async_wait_until(lambda: follower.offset == len(payload), timeout=30, message="caught up")
    stop.set()
    await asyncio.wait_for(task, 5)
    assert max(transport.reads) <= MAX_READ
    assert text_of(chunks).encode() == payload


async def test_missing_log_is_waited_for_and_truncation_restarts(tmp_path):
    layout = RemoteLayout(base=str(tmp_path))
    chunks: list[LogChunk] = []
    follower = LogFollower(LocalTransport(), layout, "job", stream="stderr", emit=chunks.append)
    assert await follower.tail(10) is None
    assert await follower.read_new() is None
    path = _log(tmp_path, "job", stream="stderr")
    path.write_text("first run, a long line\n")
    assert (await follower.read_new()).text == "first run, a long line\n"
    path.write_text("re-run\n")  # shorter: the log was rewritten
    chunk = await follower.read_new()
    assert chunk.text == "re-run\n" and chunk.offset == 0
    assert all(c.stream == "stderr" for c in chunks)


async def test_utf8_split_across_reads_is_not_mangled(tmp_path):
    path = _log(tmp_path, "job")
    data = "grüße – ünïcödé\n".encode()
    follower = LogFollower(LocalTransport(), RemoteLayout(base=str(tmp_path)), "job")
    path.write_bytes(data[:3])  # cuts "ü" in half
    first = await follower.read_new()
    path.write_bytes(data)
    second = await follower.read_new()
    assert (first.text if first else "") + second.text == data.decode()


async def test_scatter_gather_sub_step_logs(tmp_path):
    path = _log(tmp_path, "sg-job", sub="branch-0/step-square")
    path.write_text("squared 4\n")
    follower = LogFollower(LocalTransport(), RemoteLayout(base=str(tmp_path)), "sg-job", sub="branch-0/step-square")
    assert (await follower.tail(5)).text == "squared 4\n"
    assert follower.path.endswith("/outputs/sg-job/branch-0/step-square/repx/stdout.log")
    with pytest.raises(RepxError):
        log_path(RemoteLayout(base=str(tmp_path)), "sg-job", "stdout", "../../etc")
    with pytest.raises(RepxError):
        log_path(RemoteLayout(base=str(tmp_path)), "sg-job", "stdout", "branch-0/$(reboot)")


def test_last_lines():
    assert last_lines(b"a\nb\nc\n", 2, at_file_start=True) == (2, b"b\nc\n")
    assert last_lines(b"a\nb\nc", 2, at_file_start=True) == (2, b"b\nc")
    assert last_lines(b"a\nb\n", 5, at_file_start=True) == (0, b"a\nb\n")
    assert last_lines(b"tial\nb\n", 5, at_file_start=False) == (5, b"b\n")  # partial first line dropped
    assert last_lines(b"a\n", 0, at_file_start=True) == (2, b"")


def test_headless_logs_prints_the_last_lines(tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    import labgen

    lab = labgen.make_lab(tmp_path / "lab")
    from repx_tui.backend.lab import Lab

    job = sorted(Lab.load(lab).jobs)[0]
    base = tmp_path / "store"
    _log(base, job).write_text("".join(f"line {i}\n" for i in range(100)))
    config = tmp_path / "config.toml"
    config.write_text(f'[targets.local]\nbase_path = "{base}"\ndefault_scheduler = "local"\n')
    out = subprocess.run(
        [sys.executable, "-m", "repx_tui", "logs", job[:20], "--lab", str(lab), "--target", "local", "-n", "3"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "REPX_CONFIG": str(config)}, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "line 97\nline 98\nline 99\n"
