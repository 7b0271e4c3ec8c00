"""A command run on a real pseudo-terminal (its controlling terminal), for tests of what it asks.

    term = Terminal([sys.executable, "-m", "repx_tui", "login", "cluster"], env=env)
    term.expect("One-time password", timeout=30)
    term.send("123456\\n")
    assert term.wait(timeout=60) == 0

Every wait has a deadline; nothing sleeps.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import time


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: str | None = None) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: a new session whose controlling terminal is the pty
            try:
                if cwd:
                    os.chdir(cwd)
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.output = ""
        self.status: int | None = None

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        self.output += data.decode(errors="replace")
        return True

    def expect(self, text: str, timeout: float = 30.0) -> str:
        """Read until `text` appears in the output; returns the output so far."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.5)):
                if text in self.output:
                    break
                raise TimeoutError(f"{text!r} did not appear within {timeout:g}s; output so far:\n{self.output}")
        return self.output

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout: float = 60.0) -> int:
        """Read everything until the child exits; its exit status."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                while self._read(0.05) and select.select([self.fd], [], [], 0)[0]:
                    pass
                break
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"still running after {timeout:g}s; output:\n{self.output}")
            self._read(0.1)
        os.close(self.fd)
        return self.status

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
