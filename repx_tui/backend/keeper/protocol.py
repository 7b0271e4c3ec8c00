"""The keeper's wire format (stdlib only: the client side must start fast).

One unix-socket connection per operation. Client -> keeper: one JSON line {"op": ..., ...},
then the operation's body (a command's stdin bytes, or answers to prompts as JSON lines).
Keeper -> client: frames of 1 type byte + 4-byte big-endian length + payload, as the rsync
bridge uses; RESULT, ERROR and PROMPT carry JSON, DATA raw bytes. Commands with streamed input
or output go through the keeper's rsync bridge socket instead (its protocol: rsync_bridge.py).
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

RESULT, ERROR, DATA, PROMPT = 4, 5, 6, 7
HEADER = struct.Struct(">BI")
MAX_FRAME = 1 << 30


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    kind, length = HEADER.unpack(await reader.readexactly(HEADER.size))
    if length > MAX_FRAME:
        raise ConnectionError(f"keeper frame of {length} bytes")
    return kind, await reader.readexactly(length)


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def json_frame(kind: int, value: Any) -> bytes:
    return frame(kind, json.dumps(value).encode())


def line(value: Any) -> bytes:
    return json.dumps(value).encode() + b"\n"
