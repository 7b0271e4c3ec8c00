"""Follow a job's stdout/stderr log by byte offset, over the session's one connection.

Shared cluster filesystems break inotify, so this polls: read from the last offset, at most
MAX_READ bytes a time (a fast writer is caught up in a few quick reads, memory stays bounded),
every ~1 s while the file grows and backing off to IDLE_MAX while it does not. A log that does
not exist yet is waited for; a log that shrank (re-run) is read again from the start.
"""

from __future__ import annotations

import asyncio
import codecs
import posixpath
import re
from typing import Any, Literal

from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import EventSink, LogChunk, discard
from repx_tui.backend.layout import RemoteLayout, safe_component
from repx_tui.backend.transport.base import Transport

Stream = Literal["stdout", "stderr"]

MAX_READ = 1 << 20  # bytes per read: bounds memory and a single round trip
POLL_INTERVAL = 1.0
IDLE_MAX = 5.0
TAIL_BYTES_PER_LINE = 256  # first guess of the tail window; grown (x4, up to MAX_READ a read) until N lines fit
FOLLOW_TAIL_MAX_BYTES = 8 << 20  # when following (the TUI), the tail starts at most this far back


def log_path(layout: RemoteLayout, job: str, stream: Stream = "stdout", sub: str | None = None) -> str:
    """outputs/<job>/[<sub>/]repx/<stream>.log; `sub` is an SG unit like `branch-0/step-square`."""
    if stream not in ("stdout", "stderr"):
        raise RepxError(f"unknown log stream {stream!r} (stdout or stderr)")
    parts = [layout.job_dir(job)]
    if sub:
        parts += [safe_component(p, "log sub-path") for p in sub.strip("/").split("/")]
    return posixpath.join(*parts, "repx", f"{stream}.log")


# The units of a job that write logs: the job itself (""), and for scatter-gather its scatter,
# each branch's steps and its gather (executor.sh's layout under outputs/<job>/).
_UNIT = re.compile(r"|scatter|gather|branch-\d+/step-[A-Za-z0-9][A-Za-z0-9._+@:=-]*")


def _unit_order(unit: str) -> tuple[int, int, str]:
    """The job, its scatter, the branches by number (steps by name), the gather."""
    if unit.startswith("branch-"):
        return (2, int(unit.split("/")[0].removeprefix("branch-")), unit)
    return ({"": 0, "scatter": 1, "gather": 3}[unit], 0, "")


async def list_log_units(transport: Transport, layout: RemoteLayout, job: str) -> list[str]:
    """The units of `job` with a log on the target, in run order: "" (the job's own log),
    "scatter", "branch-<i>/step-<name>"..., "gather". One round trip; [] before the job ran.
    Output dirs are not searched (a job's results may hold anything)."""
    root = layout.job_dir(job)
    found = await transport.run(
        ["find", root, "-maxdepth", "4", "-name", "out", "-prune", "-o",
         "(", "-name", "stdout.log", "-o", "-name", "stderr.log", ")", "-print"],
        check=False,
    )  # fmt: skip
    units = set()
    for line in found.stdout.splitlines():
        rel = line[len(root) + 1 :] if line.startswith(root + "/") else ""
        unit, _, name = rel.rpartition("/repx/")
        if not unit and rel.startswith("repx/"):
            unit, name = "", rel[len("repx/") :]
        if name in ("stdout.log", "stderr.log") and _UNIT.fullmatch(unit) and ".." not in unit:
            units.add(unit)
    return sorted(units, key=_unit_order)


def _nth_newline_from_end(data: bytes, end: int, need: int) -> tuple[int | None, int]:
    """(index of the need-th newline before `end`, 0) or (None, how many are still needed)."""
    count = data.count(b"\n", 0, end)
    if count < need:
        return None, need - count
    pos = end
    for _ in range(need):
        pos = data.rfind(b"\n", 0, pos)
    return pos, 0


def last_lines(data: bytes, n: int, *, at_file_start: bool) -> tuple[int, bytes]:
    """(offset within data, bytes) of the last n lines. A partial first line is dropped unless
    the window starts at the beginning of the file."""
    if n <= 0:
        return len(data), b""
    end = len(data) - 1 if data.endswith(b"\n") else len(data)
    pos = end
    for _ in range(n):
        pos = data.rfind(b"\n", 0, pos)
        if pos < 0:
            break
    if pos < 0:
        start = 0 if at_file_start else (data.find(b"\n") + 1 if b"\n" in data else len(data))
    else:
        start = pos + 1
    return start, data[start:]


class LogFollower:
    """Reads one log incrementally; `follow()` emits LogChunk events until stopped."""

    def __init__(
        self,
        transport: Any,
        layout: RemoteLayout,
        job: str,
        stream: Stream = "stdout",
        sub: str | None = None,
        emit: EventSink = discard,
        interval: float = POLL_INTERVAL,
    ) -> None:
        self.transport = transport
        self.job = safe_component(job, "job id")
        self.stream = stream
        self.path = log_path(layout, job, stream, sub)
        self.emit = emit
        self.interval = interval
        self.offset = 0  # next byte to read
        self.last_read = 0  # bytes the last read returned (MAX_READ: more is waiting)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    async def tail(self, lines: int = 50, max_bytes: int | None = None) -> LogChunk | None:
        """Emit the last `lines` lines and position after them; returns the last chunk emitted,
        None when the log does not exist yet (offset 0) or the tail is empty.

        Memory is bounded by MAX_READ whatever `lines` is: the start of the tail is found by
        reading backwards a window at a time and counting newlines, then the tail is emitted
        forwards in chunks of at most MAX_READ. With `max_bytes`, the tail starts no further
        back than that (after the first line break there, when there is one)."""
        size = await self.transport.file_size(self.path)
        if size is None:
            self.offset = 0
            return None
        floor = 0 if max_bytes is None else max(0, size - max_bytes)
        found = await self._tail_start(size, lines, floor)
        if found is None:
            return None
        start, kept = found
        self._decoder.reset()
        if kept is not None:  # the tail is in what the scan read: no second read
            self.offset = size
            return self._chunk(start, kept[len(kept) - (size - start) :])
        self.offset = start
        last = None
        while self.offset < size:
            data = await self._read(self.offset, min(MAX_READ, size - self.offset))
            if not data:  # truncated meanwhile; read_new starts over
                break
            begin, self.offset = self.offset, self.offset + len(data)
            last = self._chunk(begin, data) or last
        return last

    async def _tail_start(self, size: int, lines: int, floor: int) -> tuple[int, bytes | None] | None:
        """(offset where the last `lines` lines begin, the bytes from there to `size` when the
        scan still holds them). A final newline ends the last line; it does not start one."""
        if lines <= 0:
            return size, b""
        need, pos = lines, size
        kept: bytes | None = b""  # what the scan read, while it stays within MAX_READ
        window = min(MAX_READ, max(4096, lines * TAIL_BYTES_PER_LINE))
        first_newline = -1  # the earliest line break seen, for the max_bytes cut below
        while pos > floor:
            begin = max(floor, pos - window)
            data = await self._read(begin, pos - begin)
            if data is None:
                return None
            end = len(data) - 1 if pos == size and data.endswith(b"\n") else len(data)
            kept = data + kept if kept is not None and len(kept) + len(data) <= MAX_READ else None
            newline, need = _nth_newline_from_end(data, end, need)
            if newline is not None:
                return begin + newline + 1, kept
            if (index := data.find(b"\n", 0, end)) >= 0:
                first_newline = begin + index
            pos, window = begin, min(window * 4, MAX_READ)
        if floor == 0:
            return 0, kept
        # stopped by max_bytes: drop the partial first line when a whole one follows it
        return (first_newline + 1 if first_newline >= 0 else floor), kept

    async def read_new(self) -> LogChunk | None:
        """Whatever was appended since the last read (at most MAX_READ bytes), or None."""
        data = await self._read(self.offset, MAX_READ)
        self.last_read = len(data or b"")
        if data is None:
            return None
        if not data:
            size = await self.transport.file_size(self.path)
            if size is not None and size < self.offset:  # truncated or rewritten: start over
                self.offset = 0
                self._decoder.reset()
                data = await self._read(0, MAX_READ) or b""
        if not data:
            return None
        start = self.offset
        self.offset += len(data)
        return self._chunk(start, data)

    async def follow(
        self,
        stop: asyncio.Event | None = None,
        tail_lines: int | None = 50,
        tail_max_bytes: int | None = FOLLOW_TAIL_MAX_BYTES,
    ) -> None:
        """Emit the tail, then new text as it arrives, until `stop` is set or cancelled."""
        stop = stop or asyncio.Event()
        if tail_lines is not None:
            await self.tail(tail_lines, tail_max_bytes)
        idle = self.interval
        while not stop.is_set():
            try:
                chunk = await self.read_new()
            except RepxError as exc:  # connection trouble: keep the offset, try again later
                chunk = None
                self.emit_error(exc)
            if self.last_read >= MAX_READ:
                continue  # a fast writer: catch up without waiting
            idle = self.interval if chunk is not None else min(IDLE_MAX, idle * 1.5)
            try:
                await asyncio.wait_for(stop.wait(), timeout=idle)
            except TimeoutError:
                pass

    def emit_error(self, exc: RepxError) -> None:
        from repx_tui.backend.events import Notice

        self.emit(Notice("warning", f"log {self.path}: {exc.message}"))

    async def _read(self, offset: int, length: int) -> bytes | None:
        try:
            return await self.transport.read_file(self.path, offset, length)
        except FileNotFoundError:
            return None

    def _chunk(self, offset: int, data: bytes) -> LogChunk | None:
        text = self._decoder.decode(data)
        if not text:
            return None
        chunk = LogChunk(job=self.job, stream=self.stream, offset=offset, text=text)
        self.emit(chunk)
        return chunk
