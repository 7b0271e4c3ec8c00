"""The client side of a keeper: find it, start it, log in through it, use it as a Transport.

Nothing here imports asyncssh: a command that finds a keeper starts fast and does no SSH
handshake. $REPX_KEEPER=0 makes commands ignore keepers (they log in themselves).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from repx_tui.backend import auth
from repx_tui.backend.errors import ConnectionDropped, HostKeyError, RepxError, TransportError
from repx_tui.backend.keeper import paths, protocol
from repx_tui.backend.transport import rsync_bridge
from repx_tui.backend.transport.base import ByteProgress, CommandResult, Transport, quote_argv

KEEPER_START_TIMEOUT = 30.0
FILE_CHUNK = 256 * 1024
_ERRORS: dict[str, type[RepxError]] = {
    cls.__name__: cls
    for cls in (auth.AuthRequired, auth.AuthFailed, auth.AuthCancelled, HostKeyError, ConnectionDropped, TransportError)
}


def find_keeper(name: str, address: str) -> KeeperTransport | None:
    """The live keeper for this target, or None (none started, it ended, or keepers are off).
    A keeper directory others could reach is never used."""
    if os.environ.get("REPX_KEEPER", "1") == "0":
        return None
    try:
        path = paths.socket_path(name, address)
    except paths.UnsafeKeeperDir:
        return None
    if not _answers(path):
        return None
    return KeeperTransport(name, address, path)


def _answers(path: Path) -> bool:
    """A connect, no more (a keeper that was killed leaves its socket behind)."""
    if not path.is_socket():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


class KeeperTransport(Transport):
    """A Transport whose every operation runs on the keeper's connection."""

    def __init__(self, name: str, address: str, socket_path: Path) -> None:
        self.name = name
        self.address = address
        self.socket_path = socket_path
        self.info: dict[str, Any] = {}

    # --- lifecycle ------------------------------------------------------------------------

    async def connect(self) -> None:
        if not self.info.get("bridge"):
            self.info = await self._call({"op": "hello"})
            if not self.info.get("connected"):  # started but not logged in: log in without asking
                self.info = await self._call({"op": "login"})

    async def login(self, authenticator: auth.Authenticator) -> dict[str, Any]:
        """Log the keeper in, answering the server's questions through `authenticator`."""
        self.info = await self._call({"op": "login"}, authenticator=authenticator)
        return self.info

    async def logout(self) -> dict[str, Any]:
        return await self._call({"op": "logout"})

    async def close(self) -> None:
        """The keeper's connection stays for the next command."""

    @property
    def authentications(self) -> int:
        return 0  # this process logged in zero times: the keeper's login is reused

    def is_connected(self) -> bool:
        return _answers(self.socket_path)

    # --- commands ---------------------------------------------------------------------------

    async def run(self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = None,
                  check: bool = True) -> CommandResult:  # fmt: skip
        header = {"op": "run", "argv": [str(a) for a in argv], "timeout": timeout, "input": len(input or b"")}
        answer = await self._call(header, body=input or b"")
        result = CommandResult(int(answer["exit"]), answer["stdout"], answer["stderr"])
        if check:
            self._raise_for(argv, result)
        return result

    async def stream(self, argv: Sequence[str], on_stdout: Callable[[bytes], None],
                     on_stderr: Callable[[bytes], None] | None = None, *, input: bytes | None = None) -> int:  # fmt: skip
        async def send(writer: asyncio.StreamWriter) -> None:
            if input:
                writer.write(input)
                await writer.drain()

        return await self._bridge(argv, send, on_stdout, on_stderr or (lambda _b: None))

    async def run_with_file(self, argv: Sequence[str], local: Path, *, progress: ByteProgress | None = None,
                            check: bool = True) -> CommandResult:  # fmt: skip
        total = os.stat(local).st_size
        out, err = bytearray(), bytearray()

        async def send(writer: asyncio.StreamWriter) -> None:
            done = 0
            with open(local, "rb") as fh:
                while chunk := fh.read(FILE_CHUNK):
                    writer.write(chunk)
                    await writer.drain()
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)

        status = await self._bridge(argv, send, out.extend, err.extend)
        result = CommandResult(status, out.decode(errors="replace"), err.decode(errors="replace"))
        if check:
            self._raise_for(argv, result)
        return result

    async def _bridge(self, argv: Sequence[str], send: Callable[[asyncio.StreamWriter], Any],
                      on_stdout: Callable[[bytes], None], on_stderr: Callable[[bytes], None]) -> int:  # fmt: skip
        """A command on its own channel of the kept connection, through the keeper's rsync
        bridge (stdin streamed, output framed): what stream() and run_with_file() need."""
        await self.connect()
        try:
            reader, writer = await asyncio.open_unix_connection(self.info["bridge"])
        except OSError as exc:
            raise self._gone(exc) from None
        try:
            writer.write(json.dumps({"command": quote_argv(argv)}).encode() + b"\n")
            await send(writer)
            writer.write_eof()
            while True:
                kind, payload = await protocol.read_frame(reader)
                if kind == rsync_bridge.EXIT:
                    return int.from_bytes(payload, "big", signed=True)
                (on_stdout if kind == rsync_bridge.STDOUT else on_stderr)(payload)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise self._gone(exc) from None
        finally:
            writer.close()

    # --- files ------------------------------------------------------------------------------

    async def read_file(self, remote: str, offset: int = 0, length: int | None = None) -> bytes:
        return await self._call({"op": "read", "path": remote, "offset": offset, "length": length})

    async def file_size(self, remote: str) -> int | None:
        return (await self._call({"op": "size", "path": remote}))["size"]

    async def home(self) -> str:
        return (await self._call({"op": "home"}))["home"]

    def rsync_shell(self) -> list[str] | None:
        if not self.info.get("bridge"):
            raise TransportError(f"{self.name}: not connected (rsync needs the kept connection)")
        return [sys.executable, "-S", rsync_bridge.__file__, self.info["bridge"]]

    def rsync_destination(self, remote_path: str) -> str:
        return f"repx-session:{remote_path}"

    # --- the wire ---------------------------------------------------------------------------

    async def _call(self, header: dict[str, Any], body: bytes = b"",
                    authenticator: auth.Authenticator | None = None) -> Any:  # fmt: skip
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        except OSError as exc:
            raise self._gone(exc) from None
        try:
            writer.write(protocol.line(header) + body)
            await writer.drain()
            while True:
                kind, payload = await protocol.read_frame(reader)
                if kind == protocol.PROMPT:
                    await _answer(writer, auth.AuthChallenge.from_json(json.loads(payload)), authenticator)
                elif kind == protocol.DATA:
                    return payload
                elif kind == protocol.RESULT:
                    return json.loads(payload)
                else:
                    raise _error(json.loads(payload))
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise self._gone(exc) from None
        finally:
            writer.close()

    def _gone(self, exc: BaseException) -> TransportError:
        return TransportError(
            f"{self.name}: the kept login ended ({exc.__class__.__name__})",
            hint=f"run the command again (it logs in itself), or `repx-tui login {self.name}` to keep a new login",
        )


async def _answer(writer: asyncio.StreamWriter, challenge: auth.AuthChallenge,
                  authenticator: auth.Authenticator | None) -> None:  # fmt: skip
    try:
        if authenticator is None:
            raise auth.CannotPrompt()
        reply: dict[str, Any] = {"answers": await authenticator.prompt(challenge)}
    except auth.CannotPrompt:
        reply = {"cannot": True}
    except auth.AuthCancelled:
        reply = {"cancel": True}
    writer.write(protocol.line(reply))
    await writer.drain()


def _error(body: dict[str, Any]) -> BaseException:
    if body.get("type") == "FileNotFoundError":
        return FileNotFoundError(body.get("message", ""))
    cls = _ERRORS.get(body.get("type", ""), TransportError)
    return cls(body.get("message", "keeper error"), hint=body.get("hint"))


# --- starting and ending keepers --------------------------------------------------------------


async def start_keeper(name: str, address: str, idle: float) -> KeeperTransport:
    """Start the keeper process for a target (or find the one running) and wait until it
    listens; it is not logged in yet (KeeperTransport.login does that)."""
    path = paths.socket_path(name, address, create=True)
    if _answers(path):
        return KeeperTransport(name, address, path)
    log = path.with_suffix(".log")
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-m", "repx_tui.backend.keeper.server", "--target", name, "--address", address,
            "--socket", str(path), "--idle", str(idle), "--ready-fd", str(write_end)]  # fmt: skip
    with open(log, "wb") as log_file:
        subprocess.Popen(argv, pass_fds=(write_end,), start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=log_file)  # fmt: skip
    os.close(write_end)
    try:
        word = await asyncio.wait_for(asyncio.to_thread(_read_word, read_end), KEEPER_START_TIMEOUT)
    except TimeoutError:
        word = ""
    finally:
        os.close(read_end)
    if word == "busy" and _answers(path):  # another `login` started one at the same moment
        return KeeperTransport(name, address, path)
    if word != "ready":
        detail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["it exited at once"]
        raise TransportError(f"{name}: the keeper did not start: {detail[0]}", hint=f"see {log}")
    return KeeperTransport(name, address, path)


def _read_word(fd: int) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def running_keepers() -> list[Path]:
    """Sockets of the keepers that answer, in the private directory (none if it is unsafe)."""
    try:
        directory = paths.runtime_dir()
    except paths.UnsafeKeeperDir:
        return []
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.sock") if _answers(p))


async def logout(name: str | None = None) -> list[dict[str, Any]]:
    """End the keepers of one target (by name), or all of them; what each said."""
    ended = []
    for path in running_keepers():
        keeper_name = path.name.rsplit(".", 2)[0]
        if name is not None and keeper_name != name:
            continue
        kept = KeeperTransport(keeper_name, "", path)
        try:
            hello = await kept._call({"op": "hello"})
            await kept.logout()
        except TransportError:
            continue
        ended.append(hello)
    return ended
