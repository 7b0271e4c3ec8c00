"""What the sync phases share: the context they run in, their results, and rate-limited progress."""

from __future__ import annotations

import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repx_tui.backend.events import (  # noqa: F401  (results re-exported for the phases)
    EventSink,
    LayerAction,
    LayerResult,
    Phase,
    PhaseProgress,
    PhaseResult,
    SyncSummary,
)
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.sync.compress import Compression, TargetCodecs
from repx_tui.backend.transport.base import Transport

PROGRESS_INTERVAL = 0.1  # seconds between two progress events of one phase or layer

# Prefix for every script run on the target: the Lab's host tools first on PATH (once phase 1
# has put them there), so the rest of the script only uses tools we shipped.
SCRIPT_PREAMBLE = 'set -euo pipefail\nif [ -n "${REPX_TOOLS:-}" ]; then PATH="$REPX_TOOLS:$PATH"; fi\n'


# stderr lines that say WHY a remote step failed, where tools print a generic last line
# ("tar: exiting with failure status ...", "rsync error: ... (code 11)") after them
_TELLING = ("no space left", "quota", "read-only file system", "permission denied")


def failure_reason(stderr: str) -> str:
    """The most telling line of a failed remote step's stderr."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if any(word in line.lower() for word in _TELLING):
            return line
    return lines[-1] if lines else "no output"


def out_of_space(stderr: str) -> bool:
    text = stderr.lower()
    return "no space left" in text or "quota" in text


@dataclass
class SyncContext:
    transport: Transport
    layout: RemoteLayout
    emit: EventSink
    tools_bin: str | None = None  # remote host-tools bin dir, once phase 1 made it complete
    target_rsync: str | None = None  # path of the target's own rsync, None when it has none
    lab_current: bool = False  # the target's artifacts/ is complete for this Lab's manifest
    compression: Compression = field(default_factory=Compression)  # the session's choice (compress.py)
    codecs: TargetCodecs = field(default_factory=TargetCodecs)  # what the target decodes and hashes with

    def script(self, body: str) -> str:
        return SCRIPT_PREAMBLE + body

    def script_env_args(self) -> list[str]:
        """Positional args wrapper: scripts read REPX_TOOLS from `env`."""
        return ["env", f"REPX_TOOLS={self.tools_bin or ''}"]

    def script_argv(self, body: str, *args: str) -> list[str]:
        return [*self.script_env_args(), "bash", "-c", self.script(body), "repx", *args]

    async def run_script(self, body: str, *args: str, input: bytes | None = None, check: bool = True):
        return await self.transport.run(self.script_argv(body, *args), input=input, check=check)


class Throttle:
    """True at most every PROGRESS_INTERVAL seconds (and always when forced)."""

    def __init__(self, interval: float = PROGRESS_INTERVAL) -> None:
        self._interval = interval
        self._last = 0.0

    def ready(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last >= self._interval:
            self._last = now
            return True
        return False


class RateMeter:
    """Bytes per second since the phase started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def rate(self, done: int) -> float | None:
        elapsed = time.monotonic() - self.started
        return done / elapsed if elapsed > 0.05 and done else None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def progress_event(phase: Phase, done: int, total: int | None, meter: RateMeter, **extra: Any) -> PhaseProgress:
    return PhaseProgress(phase=phase, bytes_done=done, total_bytes=total, rate=meter.rate(done), **extra)


def add_to_tar(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    """Add one file, link or directory with no local owner, and directories kept writable
    for the owner (so a later sync or cleanup can replace what is inside)."""
    info = tar.gettarinfo(str(path), arcname=arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isdir():
        info.mode |= 0o700
    if info.isreg():
        with open(path, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)
