"""Carry rsync's remote shell over the session's EXISTING SSH connection (no second login).

rsync runs locally with `-e "<python> -S rsync_bridge.py <socket>"`. rsync calls that "shell"
as `<shell> [-l user] <host> <remote command...>`; this script (the client half, stdlib only,
run by path so it starts fast) connects to the session's private unix socket, sends the remote
command, then relays its stdin to the socket and the socket's frames to stdout/stderr, and
exits with the remote exit status. The server half (`BridgeServer`, in the session's event
loop) opens one exec channel on the asyncssh connection per bridge client.

Wire format, client -> server: one JSON line {"command": "..."} then raw stdin bytes, then EOF
(half-close). Server -> client: frames of 1 type byte + 4-byte big-endian length + payload;
type 1 = stdout, 2 = stderr, 3 = exit status (payload: 4-byte signed int).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from typing import Any

STDOUT, STDERR, EXIT = 1, 2, 3
_HEADER = struct.Struct(">BI")
_CHUNK = 256 * 1024

# (command) -> (asyncssh process, release-callback)
OpenProcess = Callable[[str], Awaitable[tuple[Any, Callable[[], None]]]]


def _frame(kind: int, payload: bytes) -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


# --- server half: runs inside the session -------------------------------------------------


class BridgeServer:
    """A unix socket in a private (0700) directory; each connection becomes one channel."""

    def __init__(self, open_process: OpenProcess) -> None:
        self._open_process = open_process
        self._dir = tempfile.mkdtemp(prefix="repx-rsync-")
        os.chmod(self._dir, 0o700)
        self.socket_path = os.path.join(self._dir, "bridge.sock")
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=self.socket_path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        shutil.rmtree(self._dir, ignore_errors=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._relay(reader, writer)
        except Exception as exc:  # noqa: BLE001 - any failure must reach rsync as an exit status
            await _send_failure(writer, f"repx rsync bridge: {exc}\n")
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        header = json.loads(await reader.readline())
        proc, release = await self._open_process(header["command"])
        try:
            upstream = asyncio.create_task(_copy_stdin(reader, proc))
            await asyncio.gather(_copy_output(proc.stdout, writer, STDOUT), _copy_output(proc.stderr, writer, STDERR))
            await proc.wait_closed()
            upstream.cancel()
            status = proc.exit_status
            if status is None:
                raise ConnectionError("the SSH channel closed before the remote rsync exited")
            writer.write(_frame(EXIT, struct.pack(">i", status)))
            await writer.drain()
        finally:
            release()


async def _copy_stdin(reader: asyncio.StreamReader, proc: Any) -> None:
    while data := await reader.read(_CHUNK):
        proc.stdin.write(data)
        await proc.stdin.drain()
    proc.stdin.write_eof()


async def _copy_output(stream: Any, writer: asyncio.StreamWriter, kind: int) -> None:
    while data := await stream.read(_CHUNK):
        writer.write(_frame(kind, data))
        await writer.drain()


async def _send_failure(writer: asyncio.StreamWriter, message: str) -> None:
    try:
        writer.write(_frame(STDERR, message.encode()) + _frame(EXIT, struct.pack(">i", 255)))
        await writer.drain()
    except (ConnectionError, OSError):
        pass


# --- client half: what rsync runs as its remote shell ------------------------------------


def _remote_command(args: list[str]) -> str:
    """Drop `-l user` and the host; join the rest with spaces, as ssh does (rsync has already
    quoted the words for the remote shell)."""
    if len(args) >= 2 and args[0] == "-l":
        args = args[2:]
    if not args:
        raise SystemExit("rsync_bridge: no host and command given")
    return " ".join(args[1:])


def _pump_stdin(sock: socket.socket) -> None:
    try:
        while data := os.read(0, _CHUNK):
            sock.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the repx session closed the bridge")
        buf += chunk
    return bytes(buf)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        sys.stderr.write("usage: rsync_bridge.py SOCKET [-l USER] HOST COMMAND...\n")
        return 255
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(argv[0])
        sock.sendall(json.dumps({"command": _remote_command(argv[1:])}).encode() + b"\n")
        threading.Thread(target=_pump_stdin, args=(sock,), daemon=True).start()
        while True:
            kind, length = _HEADER.unpack(_read_exact(sock, _HEADER.size))
            payload = _read_exact(sock, length)
            if kind == EXIT:
                return struct.unpack(">i", payload)[0]
            _write_all(1 if kind == STDOUT else 2, payload)
    except (ConnectionError, OSError) as exc:
        sys.stderr.write(f"rsync_bridge: {exc}\n")
        return 255


if __name__ == "__main__":
    sys.stdout.flush()
    os._exit(main(sys.argv[1:]) & 0xFF)
