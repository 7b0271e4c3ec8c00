"""Where keepers listen: a directory only its owner can open, one socket per target.

`$XDG_RUNTIME_DIR/repx-tui/` when that is set, else `/tmp/repx-tui-<uid>/`; created 0700 and
refused (never used) unless it is a real directory owned by this user that nobody else can
enter. Sockets are 0600 and the keeper checks each peer's uid as well.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from repx_tui.backend.errors import TransportError
from repx_tui.backend.textnum import decimal

#: default idle time before a keeper ends (seconds); REPX_KEEPER_IDLE or `login --idle` change it
DEFAULT_IDLE = 600


class UnsafeKeeperDir(TransportError):
    """The keeper directory exists but others could reach it (or it is not ours)."""


def runtime_dir(create: bool = False) -> Path:
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    base = (
        Path(xdg) / "repx-tui"
        if xdg and os.path.isabs(xdg) and os.path.isdir(xdg)
        else Path(f"/tmp/repx-tui-{os.getuid()}")
    )
    if create:
        try:
            base.mkdir(mode=0o700)
        except FileExistsError:
            pass
    check_private(base)
    return base


def check_private(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return  # nothing there yet: nothing to trust or distrust
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise UnsafeKeeperDir(
            f"{path} is not a directory only you can open (owner uid {info.st_uid}, mode {stat.filemode(info.st_mode)})",
            hint=f"remove it (rm -rf {path}) and log in again; repx-tui makes it with mode 0700",
        )


def target_key(name: str, address: str) -> str:
    """The target's name and what the connection depends on: another address, or another
    $REPX_SSH_CONFIG, is another keeper."""
    digest = hashlib.sha256(f"{address}\n{os.environ.get('REPX_SSH_CONFIG', '')}".encode()).hexdigest()[:10]
    return f"{name}.{digest}"


def socket_path(name: str, address: str, create: bool = False) -> Path:
    return runtime_dir(create) / f"{target_key(name, address)}.sock"


def idle_seconds(value: str | float | None = None) -> float:
    """An idle time from `--idle`, $REPX_KEEPER_IDLE or the default: seconds, or with s/m/h."""
    raw = str(value if value is not None else os.environ.get("REPX_KEEPER_IDLE", DEFAULT_IDLE)).strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(raw[-1:], None)
    number = raw[:-1] if scale else raw
    amount = decimal(number) if "," not in number else None
    if amount is None:
        raise TransportError(f"idle time {raw!r} is not a number of seconds (or 10m, 1h)")
    seconds = amount * (scale or 1)
    if not 0 < seconds <= 7 * 24 * 3600:
        raise TransportError(f"idle time {raw!r} must be more than 0 and at most a week")
    return seconds
