"""What the transports share for a streaming command (Transport.run_streaming): the stdin writer
its feed writes to, and the reader that hands stdout to the caller line by line as it comes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class StreamStdin:
    """An asyncssh process's or an asyncio subprocess's stdin: write, then wait for the far end."""

    def __init__(self, stdin: Any) -> None:
        self._stdin = stdin

    async def write(self, data: bytes) -> None:
        self._stdin.write(data)
        await self._stdin.drain()


async def read_lines(stream: Any, on_line: Callable[[str], None] | None) -> bytes:
    """All of a stream, handing each complete line to on_line as it arrives."""
    data = bytearray()
    while stream is not None and (line := await stream.readline()):
        data += line
        if on_line is not None:
            on_line(bytes(line).decode(errors="replace"))
    return bytes(data)
