"""The transport interface: how the backend talks to a target, over SSH or on this machine.

Every phase, poll and action of a target session goes through ONE Transport object, so an
SSH target authenticates exactly once per session.
"""

from __future__ import annotations

import abc
import shlex
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from repx_tui.backend.errors import RemoteCommandError

# Called with (bytes_done, bytes_total).
ByteProgress = Callable[[int, int], None]


class StdinWriter(Protocol):
    """Where a streaming command's stdin goes: `write` waits while the far end is behind, and
    raises BrokenPipeError once the command stopped reading."""

    async def write(self, data: bytes) -> None: ...


# Writes a streaming command's whole stdin, then returns.
StdinFeed = Callable[[StdinWriter], Awaitable[None]]


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


def quote_argv(argv: Sequence[str]) -> str:
    """One shell command line with every argument quoted."""
    return " ".join(shlex.quote(str(arg)) for arg in argv)


class Transport(abc.ABC):
    """A connection to one target. Async and UI-free."""

    #: name of the target, for messages
    name: str

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open (or reuse) the connection; raises TransportError/HostKeyError."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def authentications(self) -> int:
        """How many times this transport has logged in (1 for a healthy SSH session)."""

    @abc.abstractmethod
    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run argv on the target (each argument quoted), return its output.

        With check=True a non-zero exit raises RemoteCommandError.
        """

    async def run_script(
        self,
        script: str,
        *args: str,
        input: bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run a bash script text with positional args: `bash -c SCRIPT repx ARGS...`."""
        return await self.run(["bash", "-c", script, "repx", *args], input=input, timeout=timeout, check=check)

    @abc.abstractmethod
    async def stream(
        self,
        argv: Sequence[str],
        on_stdout: Callable[[bytes], None],
        on_stderr: Callable[[bytes], None] | None = None,
        *,
        input: bytes | None = None,
    ) -> int:
        """Run argv, calling back with output as it arrives; return the exit status."""

    @abc.abstractmethod
    def is_connected(self) -> bool:
        """False once the connection is known to be gone (a failure then means a dropped link)."""
        return True

    @abc.abstractmethod
    async def run_with_file(
        self,
        argv: Sequence[str],
        local: Path,
        *,
        progress: ByteProgress | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run argv with a local file streamed to its stdin (never whole in memory), reporting
        (bytes sent, total) as it goes: the remote command checks and places the bytes itself."""

    async def run_streaming(
        self,
        argv: Sequence[str],
        feed: StdinFeed,
        *,
        on_line: Callable[[str], None] | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run argv with its stdin written by `feed` as it goes, calling `on_line` with each line
        of its stdout as it arrives. A command that stops reading ends the feed (BrokenPipeError
        is caught here); its exit status and stderr say why. This default spools the input to a
        temporary file and reports the lines at the end; transports that can stream override it."""
        with tempfile.TemporaryDirectory(prefix="repx-stdin-") as tmp:
            spool = Path(tmp) / "stdin"
            with open(spool, "wb") as f:
                await feed(_FileWriter(f))
            result = await self.run_with_file(argv, spool, check=check)
        for line in result.stdout.splitlines(keepends=True):
            if on_line is not None:
                on_line(line)
        return result

    @abc.abstractmethod
    async def read_file(self, remote: str, offset: int = 0, length: int | None = None) -> bytes:
        """Read bytes of a remote file from `offset`; raises FileNotFoundError when absent."""

    @abc.abstractmethod
    async def file_size(self, remote: str) -> int | None:
        """Size of a remote file, None when it does not exist."""

    @abc.abstractmethod
    async def home(self) -> str:
        """The login user's home directory on the target (for "~" in base_path)."""

    @abc.abstractmethod
    def rsync_shell(self) -> list[str] | None:
        """The argv rsync should use as its remote shell (`-e`), carried over this
        transport's existing connection; None for a local target (no remote shell)."""

    @abc.abstractmethod
    def rsync_destination(self, remote_path: str) -> str:
        """The rsync destination argument for a remote path (`host:path`, or the path)."""

    def peer_address(self) -> str | None:
        """The network address this transport reached ("127.0.0.1", "10.0.0.5"), None when
        there is none (this machine) or it is not known."""
        return None

    async def resolve_path(self, path: str) -> str:
        if path == "~":
            return await self.home()
        if path.startswith("~/"):
            return (await self.home()).rstrip("/") + path[1:]
        return path

    @staticmethod
    def _raise_for(argv: Sequence[str], result: CommandResult, hint: str | None = None) -> None:
        if result.exit_status != 0:
            raise RemoteCommandError(quote_argv(argv), result.exit_status, result.stderr, hint)

    async def __aenter__(self) -> Transport:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


class _FileWriter:
    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    async def write(self, data: bytes) -> None:
        self._file.write(data)
