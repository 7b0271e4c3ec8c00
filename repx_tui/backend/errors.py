"""Errors a user can read: every failure that reaches the CLI or UI is one of these."""

from __future__ import annotations

_TELLING = (
    "no space left",
    "disk quota",
    "read-only file system",
    "permission denied",
    "not found",
    "connection",
    "timed out",
    "cannot",
    "error",
)
_NOISE = ("exiting with failure status", "due to previous errors")


def stderr_summary(stderr: str) -> str:
    """The line of a failed command's stderr that best says why (not tar's closing summary)."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    lines = [line for line in lines if not any(n in line.lower() for n in _NOISE)] or lines
    if not lines:
        return "no output"
    for word in _TELLING:
        for line in lines:
            if word in line.lower():
                return line
    return lines[-1]


class RepxError(Exception):
    """A failure with a message meant for people, and an optional hint on what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(RepxError):
    """config.toml or resources.toml is missing, unparsable or invalid."""


class LabError(RepxError):
    """A Lab cannot be loaded, or fails verification."""


class TransportError(RepxError):
    """A target cannot be reached, authenticated or commanded."""


class ConnectionDropped(TransportError):
    """The connection went away under a running operation; the caller may retry it (the
    transport reconnects on the next use)."""


class HostKeyError(TransportError):
    """The target's host key is unknown or changed."""


class RemoteCommandError(TransportError):
    """A command on the target exited non-zero."""

    def __init__(self, command: str, exit_status: int | None, stderr: str, hint: str | None = None) -> None:
        detail = stderr_summary(stderr)
        super().__init__(f"command on target failed (exit {exit_status}): {detail}", hint)
        self.command = command
        self.exit_status = exit_status
        self.stderr = stderr


class SyncError(RepxError):
    """A sync phase failed."""


class SchedulerError(RepxError):
    """Submitting, polling or cancelling jobs failed."""
