"""Opening a file given by a user or a Lab without trusting what it is: a FIFO, a device or a
directory in place of a config, a resources file or a Lab's metadata is refused at once (stat
first, O_NONBLOCK, fstat again), never read forever or blocked on."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def open_regular_fd(path: Path | str) -> int:
    """An fd on a regular file. stat first and O_NONBLOCK: opening a FIFO or a device must
    never block or have side effects. NotRegular (or the OSError) for anything else."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegular(kind_of(mode))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # swapped between stat and open
        os.close(fd)
        raise NotRegular(kind_of(mode))
    return fd


class NotRegular(Exception):
    """The path is a FIFO, a device, a directory...: str() says which."""
