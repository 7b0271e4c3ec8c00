"""Compression that pays for itself: whether this session's link is worth compressing for, with
what (what both ends can do), and the encoders that feed the layer lanes.

Compressing costs CPU on both ends and saves bytes on the wire, so it pays only where the wire is
slower than the compressor. `auto` decides once per sync, from the probe (plan.py) and, when
something compressible is to be sent, two more round trips on the command runner that measure
the link (measure_link: an empty one for the round trip, one carrying SOUNDING random bytes for
the rate):

* off when both ends are this machine (a local target, or SSH to a loopback address): the
  "link" is a memory copy and the CPUs compression would take are the ones the transfer needs;
* off when nothing compressible is to be sent (a layer's sample decides: MIN_RATIO);
* otherwise the strongest level whose speed (SPEED, per thread, times this machine's CPUs)
  still outruns the link's rate times RATIO_HEADROOM (what the compressed stream must carry to
  fill the link), and off when even level 1 would not: a fast LAN.

The codec is zstd where both ends have it (this machine's `zstd` program and the target's), else
gzip (the target's, or the Lab's host tools' pigz; Python's zlib encodes here). The Lab's rsync
compresses with `--compress-choice=zstd` when both rsyncs list zstd, else with `-z`. `on` and
`off` force the choice (`on` still needs a decoder on the target for the layers).
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from repx_tui.backend.errors import RemoteCommandError, SyncError
from repx_tui.backend.transport.base import Transport

MODES = ("auto", "on", "off")
MIN_RATIO = 1.15  # a layer whose sample compresses less than this goes as it is
RATIO_HEADROOM = 3.0  # content bytes/s the compressor must produce per byte/s of link
SOUNDING = 768 << 10  # random bytes of the rate measurement (under the runner's 1 MiB)
# content bytes/s one thread compresses (text-like data, this project's 2-core CI VM, measured)
SPEED = {"zstd": {1: 250e6, 3: 150e6, 6: 60e6, 9: 35e6}, "gzip": {1: 80e6, 6: 25e6}}
UNMEASURED_LEVEL = 6  # `--compress on` where the link was not measured: a middle course
READ_CHUNK = 1 << 20  # bytes read from a layer at a time (big writes: few syscalls, few wakeups)
FRAME = 2 << 20  # compressed bytes per frame on the wire (each costs the target one `head`)
SAMPLE = 64 << 10  # bytes per sample slice
SAMPLES = 4
SAMPLED_LAYERS = 8  # layers sampled to see whether anything to send compresses at all


@dataclass(frozen=True)
class TargetCodecs:
    """What the probe found on the target for decoding and checking layers."""

    cpus: int | None = None
    zstd: str | None = None  # the target's zstd, if any
    gzip: str | None = None  # the target's gzip (the Lab's pigz once the host tools are there)
    openssl: str | None = None  # hashes with the CPU's SHA instructions, where coreutils does not
    rsync_compress: frozenset[str] = frozenset()  # the target rsync's compress list (empty: unknown)
    rtt: float | None = None  # seconds: probe round trip minus the probe script's own time


@dataclass(frozen=True)
class LinkEstimate:
    rtt: float | None = None  # seconds, one command on the runner and back
    rate: float | None = None  # bytes/s
    rsync_compress: frozenset[str] = frozenset()  # the target rsync's compress list, asked on the way


@dataclass(frozen=True)
class Compression:
    """The session's choice. `codec` encodes layers; `rsync_flags` go to the Lab's rsync."""

    mode: str = "off"
    codec: str | None = None  # "zstd" | "gzip" | None
    level: int = 0
    rsync_flags: tuple[str, ...] = ()
    reason: str = "off"
    threads: int = 1
    link: LinkEstimate | None = None

    @property
    def label(self) -> str:
        """ "zstd-3", "gzip-1", "rsync -z" or "off", for people."""
        if self.codec:
            return f"{self.codec}-{self.level}"
        return "rsync -z" if self.rsync_flags else "off"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise SyncError(f"--compress {mode!r}: expected auto, on or off", hint="--compress auto|on|off")
    return mode


async def measure_link(transport: Transport, rsync: str | None = None) -> LinkEstimate:
    """Two round trips on the command runner: an empty one, then one with SOUNDING random bytes
    on its stdin; both also run `rsync --version` (its compress list), so what they do on the
    target is the same but for the bytes."""
    command = ["sh", "-c", 'cat >/dev/null; exec "$@"', "sh", *([rsync, "--version"] if rsync else ["true"])]
    try:
        started = time.monotonic()
        answer = await transport.run(command)
        ping = time.monotonic() - started
        payload = os.urandom(SOUNDING)
        started = time.monotonic()
        await transport.run(command, input=payload)
        sounding = time.monotonic() - started
    except RemoteCommandError:  # a dropped connection is raised: the phase is retried
        return LinkEstimate()
    return LinkEstimate(ping, SOUNDING / max(sounding - ping, 1e-4), parse_compress_list(answer.stdout))


def choose(
    mode: str,
    target: TargetCodecs,
    link: LinkEstimate | None,
    *,
    same_host: bool,
    local_rsync: str | None,
    to_send: bool = True,
    layers_compressible: bool = True,
) -> Compression:
    """The session's compression (see the module's docstring). `link` None: not measured (then
    the Lab's tree is compressed by rsync's own choice and no layer is)."""
    check_mode(mode)
    threads = max(1, min(os.cpu_count() or 1, 4))
    if mode == "off":
        return Compression(mode, reason="off (--compress off)")
    if mode == "auto" and same_host:
        return Compression(mode, reason="off: both ends are this machine (compressing would only take CPU)")
    if not to_send:
        return Compression(mode, reason="off: nothing to send")
    codec = _codec(target) if layers_compressible else None
    rate = link.rate if link is not None else None
    level = _level(codec or "zstd", rate, threads)
    if level is None and mode == "auto":
        return Compression(mode, reason=f"off: the link ({_rate(rate)}) outruns the compressor", link=link)
    level = level or 1
    if link is None:  # a changed Lab's tree (usually a small delta) and no layer worth it: rsync -z
        return Compression(mode, rsync_flags=("--compress",), reason="rsync -z for the Lab's tree; no layer compresses")
    why = "on (--compress on)" if mode == "on" else f"on: the link ({_rate(rate)}) is slower than the compressor"
    if codec is None:
        why += "; layers as they are" + ("" if not layers_compressible else " (the target has no zstd or gzip)")
    compress_list = link.rsync_compress or target.rsync_compress
    # rsync compresses in its one sender process: a level one thread keeps up with
    flags = _rsync_flags(compress_list, local_rsync, _level("zstd", rate, 1) or 1)
    return Compression(mode, codec, level if codec else 0, flags, why, threads, link)


def _codec(target: TargetCodecs) -> str | None:
    if target.zstd and local_zstd():
        return "zstd"
    return "gzip" if target.gzip else None


def _level(codec: str, rate: float | None, threads: int) -> int | None:
    """The strongest level that still fills the link; None when even the fastest would not."""
    speeds = SPEED[codec]
    if rate is None:
        return UNMEASURED_LEVEL
    fitting = [level for level, speed in speeds.items() if speed * threads >= rate * RATIO_HEADROOM]
    return max(fitting) if fitting else None


def _rate(rate: float | None) -> str:
    return "unmeasured" if rate is None else f"{rate / 2**20:.0f} MiB/s"


def _rsync_flags(theirs: frozenset[str], local_rsync: str | None, level: int) -> tuple[str, ...]:
    ours = rsync_compress_list(local_rsync) if local_rsync else frozenset()
    if "zstd" in ours and "zstd" in theirs:
        return ("--compress", "--compress-choice=zstd", f"--compress-level={level}")
    return ("--compress",)  # rsync >= 3.2 on both ends negotiates what they share, else zlib


@functools.cache
def local_zstd() -> str | None:
    return shutil.which("zstd")


@functools.cache
def rsync_compress_list(rsync: str) -> frozenset[str]:
    """The algorithms in `rsync --version`'s "Compress list:" (empty for an rsync before 3.2)."""
    try:
        text = subprocess.run([rsync, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return parse_compress_list(text)


def parse_compress_list(version_text: str) -> frozenset[str]:
    lines = version_text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().lower().startswith("compress list"):
            rest = line.split(":", 1)[1].split() if ":" in line else []
            return frozenset(rest or (lines[i + 1].split() if i + 1 < len(lines) else []))
    return frozenset()


# --- is this layer worth it -------------------------------------------------------------------


def sample_ratio(path: Path) -> float:
    """How well a file compresses, from SAMPLES slices spread over it (zlib level 1: fast, and a
    lower bound for zstd); a file is sampled once per size and mtime."""
    info = path.stat()
    return _sample_ratio(str(path), info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _sample_ratio(path: str, size: int, _mtime_ns: int) -> float:
    if size == 0:
        return 1.0
    step = max(size // SAMPLES, 1)
    raw = packed = 0
    with open(path, "rb") as f:
        for offset in range(0, size, step)[:SAMPLES]:
            f.seek(offset)
            data = f.read(SAMPLE)
            raw += len(data)
            packed += len(zlib.compress(data, 1))
    return raw / max(packed, 1)


# --- encoders: (bytes for the wire, content bytes consumed so far) ------------------------------


async def read_chunks(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, READ_CHUNK):
            yield chunk


def encode(path: Path, codec: str, level: int, threads: int) -> AsyncIterator[tuple[bytes, int]]:
    if codec == "zstd":
        return _zstd_frames(path, level, threads)
    if codec == "gzip":
        return _gzip_frames(path, level, threads)
    raise SyncError(f"unknown layer codec {codec!r}")


async def _zstd_frames(path: Path, level: int, threads: int) -> AsyncIterator[tuple[bytes, int]]:
    """This machine's zstd, fed from here (so the content's progress is known), read in FRAMEs."""
    zstd = local_zstd()
    if zstd is None:
        raise SyncError("zstd is not installed on this machine", hint="run with --compress off, or install zstd")
    proc = await asyncio.create_subprocess_exec(
        zstd, "-q", "-c", f"-{level}", f"-T{threads}", "--no-progress",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    fed = [0]

    async def feed() -> None:
        assert proc.stdin is not None
        try:
            async for chunk in read_chunks(path):
                proc.stdin.write(chunk)
                await proc.stdin.drain()
                fed[0] += len(chunk)
        finally:
            proc.stdin.close()

    feeding = asyncio.create_task(feed())
    try:
        assert proc.stdout is not None
        while True:
            try:
                frame = await proc.stdout.readexactly(FRAME)
            except asyncio.IncompleteReadError as short:
                frame = short.partial
            if not frame:
                break
            yield frame, fed[0]
        await feeding
        if await proc.wait() != 0:
            stderr = await proc.stderr.read() if proc.stderr else b""
            raise SyncError(f"zstd failed on {path.name}: {stderr.decode(errors='replace').strip()}")
    finally:
        if not feeding.done():
            feeding.cancel()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _gzip_frames(path: Path, level: int, threads: int) -> AsyncIterator[tuple[bytes, int]]:
    """Python's zlib (it lets go of the GIL while it compresses): FRAME-sized pieces of the
    content, each its own gzip member, `threads` of them at once, in order (gzip -d and pigz -d
    read concatenated members as one stream)."""
    pending: list[tuple[asyncio.Task[bytes], int]] = []  # (member, content bytes up to its end)
    done = 0
    try:
        async for chunk in _content_pieces(path):
            done += len(chunk)
            pending.append((asyncio.create_task(asyncio.to_thread(_gzip_member, chunk, level)), done))
            if len(pending) >= threads:
                task, upto = pending.pop(0)
                yield await task, upto
        while pending:
            task, upto = pending.pop(0)
            yield await task, upto
    finally:
        for task, _ in pending:
            task.cancel()


async def _content_pieces(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, FRAME):
            yield chunk


def _gzip_member(data: bytes, level: int) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: a gzip header and trailer
    return packer.compress(data) + packer.flush()


async def decide(
    mode: str,
    transport: Transport,
    target: TargetCodecs,
    *,
    same_host: bool,
    local_rsync: str | None,
    target_rsync: str | None,
    lab_to_send: bool,
    lab_cold: bool,
    layers_to_send: list[Path],
) -> Compression:
    """choose(), with the link measured only where it can matter: a layer whose sample shrinks,
    or a Lab tree the target has never had, is to be sent to a target that is not this machine.
    An unchanged re-sync, a changed Lab's tree alone, or incompressible layers cost no round trip."""
    to_send = lab_to_send or bool(layers_to_send)
    if mode == "off" or (mode == "auto" and same_host) or not to_send:
        return choose(mode, target, None, same_host=same_host, local_rsync=local_rsync, to_send=to_send)
    ratios = await asyncio.gather(*(asyncio.to_thread(sample_ratio, p) for p in layers_to_send[:SAMPLED_LAYERS]))
    compressible = any(r >= MIN_RATIO for r in ratios)
    link = await measure_link(transport, target_rsync) if compressible or lab_cold else None
    return choose(mode, target, link, same_host=same_host, local_rsync=local_rsync, layers_compressible=compressible)
