"""The keeper process: one authenticated SSH connection to one target, lent to its owner's commands.

    python -m repx_tui.backend.keeper.server --target NAME --address ADDR --socket PATH --idle S [--ready-fd N]

Started by `repx-tui login` (client.start_keeper). It listens on its 0600 socket in the private
keeper directory, answers only peers with its own uid, logs in when the `login` operation asks
(forwarding the server's questions to that client), and ends after `idle` seconds without an
operation or an rsync in flight, on `logout`, or when its login is gone for good (a reconnect
that would need a new code). One keeper per target: a lock file next to the socket.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from repx_tui.backend.auth import AuthCancelled, AuthChallenge, AuthFailed, AuthRequired, CannotPrompt
from repx_tui.backend.errors import HostKeyError, RepxError
from repx_tui.backend.events import ConnectionState, Event
from repx_tui.backend.keeper import protocol
from repx_tui.backend.keeper.paths import check_private
from repx_tui.backend.transport.ssh import SshTransport

#: errors after which the kept login is over: the keeper ends so the next command logs in anew
FATAL = (AuthRequired, AuthFailed, AuthCancelled, HostKeyError)


class _Broker:
    """The keeper's Authenticator: the server's questions go to the client of the `login`
    operation; at any other time nobody can be asked."""

    def __init__(self) -> None:
        self.client: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def prompt(self, challenge: AuthChallenge) -> list[str]:
        if self.client is None:
            raise CannotPrompt()
        reader, writer = self.client
        writer.write(protocol.json_frame(protocol.PROMPT, challenge.to_json()))
        await writer.drain()
        answer = json.loads(await reader.readline() or b"{}")
        if answer.get("cancel"):
            raise AuthCancelled(f"{challenge.target}: login cancelled")
        if "answers" not in answer:
            raise CannotPrompt()
        return [str(a) for a in answer["answers"]]


class Keeper:
    def __init__(self, name: str, address: str, socket_path: Path, idle: float) -> None:
        self.name, self.address, self.socket_path, self.idle = name, address, socket_path, idle
        self.broker = _Broker()
        self.transport = SshTransport(name, address, self._event, authenticator=self.broker)
        self.active = 0
        self.last_used = time.monotonic()
        self.done = asyncio.Event()
        self.ops = {"hello": self._hello, "login": self._login, "run": self._run, "read": self._read,
                    "size": self._size, "home": self._home, "logout": self._logout}  # fmt: skip

    def _event(self, event: Event) -> None:
        if isinstance(event, ConnectionState):
            log(f"connection {event.state} {event.detail}".strip())

    async def serve(self, ready_fd: int | None) -> None:
        old_umask = os.umask(0o177)  # the socket is born 0600
        try:
            server = await asyncio.start_unix_server(self._client, path=str(self.socket_path))
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, 0o600)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, self.done.set)  # end cleanly: socket removed
        tell_ready(ready_fd, "ready")
        watchdog = asyncio.create_task(self._watch_idle())
        try:
            await self.done.wait()
        finally:
            watchdog.cancel()
            server.close()
            self.socket_path.unlink(missing_ok=True)
            await self.transport.close()
            log("keeper ended")

    async def _watch_idle(self) -> None:
        step = max(0.1, min(self.idle / 10, 5.0))
        while True:
            await asyncio.sleep(step)  # a periodic check, not synchronisation
            quiet = self.active == 0 and not self.transport.busy()
            if not quiet:
                self.last_used = time.monotonic()
            elif time.monotonic() - self.last_used >= self.idle:
                log(f"idle for {self.idle:g} s: ending")
                self.done.set()
                return

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.active += 1
        try:
            line = await asyncio.wait_for(reader.readline(), 10)  # read first: closing on unread bytes resets
            if not same_user(writer):
                await self._error(writer, RepxError("this keeper belongs to another user"))
                return
            header = json.loads(line or b"{}")
            op = self.ops.get(header.get("op"))
            if op is None:
                raise RepxError(f"unknown keeper operation {header.get('op')!r}")
            await op(header, reader, writer)
        except FileNotFoundError as exc:
            await self._error(writer, exc)
        except RepxError as exc:
            await self._error(writer, exc)
            if isinstance(exc, FATAL):
                log(f"login is over: {exc}")
                self.done.set()
        except (ConnectionError, asyncio.IncompleteReadError, json.JSONDecodeError, TimeoutError) as exc:
            log(f"client went away: {exc!r}")
        finally:
            self.active -= 1
            self.last_used = time.monotonic()
            writer.close()

    async def _error(self, writer: asyncio.StreamWriter, exc: BaseException) -> None:
        body = {"type": type(exc).__name__, "message": getattr(exc, "message", None) or str(exc),
                "hint": getattr(exc, "hint", None)}  # fmt: skip
        if isinstance(exc, FileNotFoundError):
            body["message"] = exc.args[0] if exc.args else ""
        try:
            writer.write(protocol.json_frame(protocol.ERROR, body))
            await writer.drain()
        except (ConnectionError, OSError):
            pass

    async def _result(self, writer: asyncio.StreamWriter, value: Any) -> None:
        writer.write(protocol.json_frame(protocol.RESULT, value))
        await writer.drain()

    # --- operations -------------------------------------------------------------------------

    async def _hello(self, header: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        shell = self.transport.rsync_shell() if self.transport.is_connected() else None
        await self._result(writer, {
            "name": self.name, "address": self.address, "pid": os.getpid(), "idle": self.idle,
            "connected": self.transport.is_connected(), "bridge": shell[-1] if shell else None,
        })  # fmt: skip

    async def _login(self, header: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.broker.client = (reader, writer)
        try:
            await self.transport.connect()
        except RepxError:
            if not self.transport.is_connected():
                self.done.set()  # never logged in: nothing to keep
            raise
        finally:
            self.broker.client = None
        log(f"logged in to {self.address}")
        await self._hello(header, reader, writer)

    async def _connected(self) -> SshTransport:
        await self.transport.connect()  # the first use logs in; a drop reconnects (never asking)
        return self.transport

    async def _run(self, header: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = int(header.get("input", 0))
        data = await reader.readexactly(size) if size else None
        transport = await self._connected()
        result = await transport.run(header["argv"], input=data, timeout=header.get("timeout"), check=False)
        await self._result(writer, {"exit": result.exit_status, "stdout": result.stdout, "stderr": result.stderr})

    async def _read(self, header: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = await self._connected()
        data = await transport.read_file(header["path"], int(header.get("offset", 0)), header.get("length"))
        writer.write(protocol.frame(protocol.DATA, data))
        await writer.drain()

    async def _size(self, header: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = await self._connected()
        await self._result(writer, {"size": await transport.file_size(header["path"])})

    async def _home(self, header: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = await self._connected()
        await self._result(writer, {"home": await transport.home()})

    async def _logout(self, header: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._result(writer, {"pid": os.getpid()})
        self.done.set()


def same_user(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def tell_ready(fd: int | None, word: str) -> None:
    if fd is None:
        return
    try:
        os.write(fd, word.encode() + b"\n")
        os.close(fd)
    except OSError:
        pass


def log(message: str) -> None:
    print(f"[repx-keeper {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="repx-keeper")
    parser.add_argument("--target", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--idle", required=True, type=float)
    parser.add_argument("--ready-fd", type=int)
    args = parser.parse_args(argv)
    check_private(args.socket.parent)
    lock = open(args.socket.with_suffix(".lock"), "a")  # held for the keeper's whole life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        tell_ready(args.ready_fd, "busy")  # another keeper serves this target
        return 0
    args.socket.unlink(missing_ok=True)  # a socket left by a keeper that was killed
    log(f"keeper for {args.target} ({args.address}), pid {os.getpid()}, idle {args.idle:g} s")
    asyncio.run(Keeper(args.target, args.address, args.socket, args.idle).serve(args.ready_fd))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
