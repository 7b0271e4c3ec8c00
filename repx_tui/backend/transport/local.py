"""LocalTransport: the `local` target, i.e. this machine, driven with asyncio subprocesses.

Same contract as the SSH transport, so every phase and poll runs unchanged on both. No shell is
involved in `run` (argv goes straight to exec), which is the strongest form of quoting.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from repx_tui.backend.errors import TransportError
from repx_tui.backend.transport.base import ByteProgress, CommandResult, StdinFeed, StdinWriter, Transport
from repx_tui.backend.transport.streams import StreamStdin, read_lines

_CHUNK = 1 << 20


class LocalTransport(Transport):
    def __init__(self, name: str = "local") -> None:
        self.name = name

    async def connect(self) -> None:
        pass  # nothing to open

    async def close(self) -> None:
        pass

    def is_connected(self) -> bool:
        return True

    @property
    def authentications(self) -> int:
        return 0  # nothing to log in to

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        proc = await self._spawn(argv, stdin=input is not None)
        try:
            out, err = await asyncio.wait_for(proc.communicate(input), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise TransportError(f"command timed out after {timeout} s: {argv[0]}") from None
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        result = CommandResult(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))
        if check:
            self._raise_for(argv, result)
        return result

    async def stream(
        self,
        argv: Sequence[str],
        on_stdout: Callable[[bytes], None],
        on_stderr: Callable[[bytes], None] | None = None,
        *,
        input: bytes | None = None,
    ) -> int:
        proc = await self._spawn(argv, stdin=input is not None)
        try:
            if input is not None:
                assert proc.stdin is not None
                proc.stdin.write(input)
                await proc.stdin.drain()
                proc.stdin.close()
            await asyncio.gather(
                _pump(proc.stdout, on_stdout),
                _pump(proc.stderr, on_stderr or (lambda _b: None)),
            )
            return await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    async def run_with_file(
        self,
        argv: Sequence[str],
        local: Path,
        *,
        progress: ByteProgress | None = None,
        check: bool = True,
    ) -> CommandResult:
        total = os.stat(local).st_size

        async def feed(stdin: StdinWriter) -> None:
            done = 0
            with open(local, "rb") as f:
                while chunk := f.read(_CHUNK):
                    await stdin.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)

        return await self.run_streaming(argv, feed, check=check)

    async def run_streaming(
        self, argv: Sequence[str], feed: StdinFeed, *, on_line: Callable[[str], None] | None = None, check: bool = True
    ) -> CommandResult:
        proc = await self._spawn(argv, stdin=True)
        assert proc.stdin is not None
        try:
            output = asyncio.gather(read_lines(proc.stdout, on_line), _read_all(proc.stderr))
            try:
                await feed(StreamStdin(proc.stdin))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the command stopped reading: its exit status and stderr say why
            finally:
                proc.stdin.close()
            out, err = await output
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        result = CommandResult(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))
        if check:
            self._raise_for(argv, result)
        return result

    async def _spawn(self, argv: Sequence[str], *, stdin: bool) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *[str(a) for a in argv],
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            raise TransportError(f"command not found on this machine: {argv[0]}") from None
        except PermissionError:
            raise TransportError(f"command not executable on this machine: {argv[0]}") from None

    async def read_file(self, remote: str, offset: int = 0, length: int | None = None) -> bytes:
        def read() -> bytes:
            with open(remote, "rb") as f:
                f.seek(offset)
                return f.read() if length is None else f.read(length)

        return await asyncio.to_thread(read)

    async def file_size(self, remote: str) -> int | None:
        try:
            return os.stat(remote).st_size
        except FileNotFoundError:
            return None

    async def home(self) -> str:
        return str(Path.home())

    def rsync_shell(self) -> list[str] | None:
        return None

    def rsync_destination(self, remote_path: str) -> str:
        return remote_path


async def _read_all(reader: asyncio.StreamReader | None) -> bytes:
    return await reader.read() if reader is not None else b""


async def _pump(reader: asyncio.StreamReader | None, callback: Callable[[bytes], None]) -> None:
    if reader is None:
        return
    while chunk := await reader.read(65536):
        callback(chunk)
