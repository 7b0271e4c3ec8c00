"""`logs -n N` reads from the end in chunks: memory stays bounded by one read (MAX_READ), not by
N or by the size of the log, and exactly the last N lines come out, however long they are."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from repx_tui.backend.events import LogChunk
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.logs import MAX_READ, LogFollower, log_path
from repx_tui.backend.transport.local import LocalTransport

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import labgen  # noqa: E402

LINE = b"%09d " + b"x" * 89 + b"\n"  # 100 bytes
LINES = 500_000  # a 50 MB log: big enough to tell, quick to write


def write_log(base: Path, job: str) -> Path:
    path = Path(log_path(RemoteLayout(base=str(base)), job))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for start in range(0, LINES, 10_000):
            f.write(b"".join(LINE % i for i in range(start, start + 10_000)))
    return path


def sha_of_file_from(path: Path, offset: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        f.seek(offset)
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


async def test_tail_of_many_lines_streams_with_bounded_memory(tmp_path):
    path = write_log(tmp_path, "job")
    shown_lines = 450_000
    expected = sha_of_file_from(path, (LINES - shown_lines) * 100)
    digest, shown = hashlib.sha256(), [0]

    def emit(event: LogChunk) -> None:  # keeps nothing: only what tail() holds is measured
        digest.update(event.text.encode())
        shown[0] += len(event.text)

    follower = LogFollower(LocalTransport(), RemoteLayout(base=str(tmp_path)), "job", emit=emit)
    tracemalloc.start()
    try:
        await follower.tail(shown_lines)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert shown[0] == shown_lines * 100 and digest.hexdigest() == expected
    assert follower.offset == path.stat().st_size
    assert peak < 8 * MAX_READ, f"peak {peak / 2**20:.1f} MiB for {shown[0] / 2**20:.0f} MiB shown"


async def test_tail_gives_exactly_n_lines_longer_than_a_read(tmp_path):
    path = Path(log_path(RemoteLayout(base=str(tmp_path)), "job"))
    path.parent.mkdir(parents=True)
    long_lines = [bytes([ord("a") + i]) * (3 * MAX_READ) for i in range(4)]
    path.write_bytes(b"\n".join(long_lines) + b"\n")
    chunks: list[LogChunk] = []
    follower = LogFollower(LocalTransport(), RemoteLayout(base=str(tmp_path)), "job", emit=chunks.append)
    await follower.tail(2)
    text = "".join(c.text for c in chunks)
    assert text.encode() == long_lines[2] + b"\n" + long_lines[3] + b"\n"
    assert chunks[0].offset == 2 * (3 * MAX_READ + 1) and max(len(c.text) for c in chunks) <= MAX_READ
    # following (the TUI) starts no further back than a cap, after a line break when there is one
    capped: list[LogChunk] = []
    again = LogFollower(LocalTransport(), RemoteLayout(base=str(tmp_path)), "job", emit=capped.append)
    await again.tail(50, max_bytes=4 * MAX_READ)
    assert "".join(c.text for c in capped).encode() == long_lines[3] + b"\n"


# The real CLI, reporting its peak resident memory at exit. VmHWM belongs to the process's own
# address space: ru_maxrss from wait4 would carry the pytest parent's peak across vfork+exec.
PEAK_RSS_WRAPPER = """
import atexit, os, runpy, sys
def report():
    status = open("/proc/self/status").read()
    with open(os.environ["PEAK_RSS_FILE"], "w") as f:
        f.write(status.split("VmHWM:")[1].split()[0])
atexit.register(report)
sys.argv = ["repx-tui", *sys.argv[1:]]
runpy.run_module("repx_tui", run_name="__main__")
"""


def peak_rss_kib(args: list[str], env: dict[str, str], out: Path) -> int:
    """Run the CLI with stdout to a file; its peak resident set in KiB."""
    peak = out.with_suffix(".peak")
    with out.open("wb") as stdout:
        result = subprocess.run(
            [sys.executable, "-c", PEAK_RSS_WRAPPER, *args],
            stdout=stdout,
            stderr=subprocess.PIPE,
            cwd=REPO,
            env={**env, "PEAK_RSS_FILE": str(peak)},
            timeout=120,
        )
    assert result.returncode == 0, result.stderr.decode()
    return int(peak.read_text())


@pytest.mark.timeout(120)
def test_cli_logs_n_on_a_big_log_uses_memory_of_one_read_not_of_the_log(tmp_path):
    lab = labgen.make_lab(tmp_path / "lab", "quick")
    from repx_tui.backend.lab import Lab

    job = sorted(Lab.load(lab).jobs)[0]
    base = tmp_path / "store"
    path = write_log(base, job)
    config = tmp_path / "config.toml"
    config.write_text(f'[targets.local]\nbase_path = "{base}"\ndefault_scheduler = "local"\n')
    env = {**os.environ, "REPX_CONFIG": str(config)}
    cli = ["logs", job[:20], "--lab", str(lab), "--target", "local", "-n"]
    small = peak_rss_kib([*cli, "10"], env, tmp_path / "small.out")
    big = peak_rss_kib([*cli, "2000000"], env, tmp_path / "big.out")
    assert (tmp_path / "small.out").read_bytes() == b"".join(LINE % i for i in range(LINES - 10, LINES))
    assert (tmp_path / "big.out").stat().st_size == path.stat().st_size  # fewer lines than asked: all of them
    assert sha_of_file_from(tmp_path / "big.out", 0) == sha_of_file_from(path, 0)
    # 50 MB shown; the old code held the whole window (bytes, then text): >100 MB more
    assert big - small < 24 * 1024, f"peak RSS {small} KiB for 10 lines, {big} KiB for 50 MB"
