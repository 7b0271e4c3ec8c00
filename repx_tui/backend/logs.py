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
from typing import Any, Literal

from repx_tui.backend.errors import RepxError
from repx_tui.backend.events import EventSink, LogChunk, discard
from repx_tui.backend.layout import RemoteLayout, safe_component

Stream = Literal["stdout", "stderr"]

MAX_READ = 1 << 20  # bytes per read: bounds memory and a single round trip
POLL_INTERVAL = 1.0
IDLE_MAX = 5.0
TAIL_BYTES_PER_LINE = 256  # first guess of the tail window; grown until N lines fit or MAX_READ


def log_path(layout: RemoteLayout, job: str, stream: Stream = "stdout", sub: str | None = None) -> str:
    """outputs/<job>/[<sub>/]repx/<stream>.log; `sub` is an SG unit like `branch-0/step-square`."""
    if stream not in ("stdout", "stderr"):
        raise RepxError(f"unknown log stream {stream!r} (stdout or stderr)")
    parts = [layout.job_dir(job)]
    if sub:
        parts += [safe_component(p, "log sub-path") for p in sub.strip("/").split("/")]
    return posixpath.join(*parts, "repx", f"{stream}.log")


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

    async def tail(self, lines: int = 50) -> LogChunk | None:
        """Position at the last `lines` lines (reading a bounded window, never the whole file)
        and emit them. Returns None (offset 0) when the log does not exist yet."""
        size = await self.transport.file_size(self.path)
        if size is None:
            self.offset = 0
            return None
        window = min(size, max(4096, lines * TAIL_BYTES_PER_LINE))
        while True:
            start = size - window
            data = await self._read(start, window)
            if data is None:
                return None
            rel, text = last_lines(data, lines, at_file_start=start == 0)
            enough = data.count(b"\n", 0, rel) > 0 or start == 0 or window >= MAX_READ
            if enough:
                break
            window = min(size, window * 4, MAX_READ)
        self.offset = start + len(data)
        self._decoder.reset()
        return self._chunk(start + rel, text)

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

    async def follow(self, stop: asyncio.Event | None = None, tail_lines: int | None = 50) -> None:
        """Emit the tail, then new text as it arrives, until `stop` is set or cancelled."""
        stop = stop or asyncio.Event()
        if tail_lines is not None:
            await self.tail(tail_lines)
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
            except asyncio.TimeoutError:
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
