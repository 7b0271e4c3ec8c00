"""Where a Lab's root is (a directory, a file in its lab/, or a tar), and Lab tars unpacked safely,
once, into a cache keyed by the tar's content.

The extractor is our own, member by member, and does not rely on tarfile's extraction filters:
some Python versions that requires-python allows let a chain of symlinks plus a very long name
through `filter="data"` (CVE-2025-4517). Every member is checked before anything is written:
 - names: relative, no '..', below the Lab's prefix in the tar; each path at most once;
 - kinds: regular files, directories, symlinks, hard links; no devices, FIFOs or others;
 - symlinks: relative, and resolving inside the Lab through every other link in the tar;
 - hard links: only to an earlier regular file of the Lab;
 - nothing is written through a link or a file: members below one are refused.
Then each member is created with dir_fd/O_NOFOLLOW/O_EXCL, so no link on disk is ever followed,
with modes stripped of setuid/setgid/sticky and write for group and others, and exactly the
number of bytes the tar declares.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from repx_tui.backend.errors import LabError
from repx_tui.backend.files import kind_of
from repx_tui.backend.labfs import LinkEscape, open_regular, resolve_link

CHUNK_SIZE = 1 << 20
_MANIFEST_IN_TAR_RE = re.compile(r"^(?:(.*)/)?lab/[^/]*lab-metadata\.json$")
_TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError)
_KINDS = {tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO"}


# ------------------------------------------------------------------------- locating a Lab


def locate_root(source: Path) -> Path:
    """The Lab root for a directory, a file in its lab/, or a tar (unpacked into the cache)."""
    if not os.path.lexists(source):
        raise LabError(f"{source}: no such file or directory")
    try:
        mode = os.stat(source).st_mode
    except FileNotFoundError:
        raise LabError(f"{source}: broken symlink") from None
    if stat.S_ISDIR(mode):
        return _root_of_dir(source)
    if not stat.S_ISREG(mode):  # never open a FIFO or a device: it would block or never end
        raise LabError(f"{source}: is {kind_of(mode)}, not a Lab directory, a file in its lab/ or a Lab tar")
    if tarfile.is_tarfile(source):
        return extract_lab_tar(source)
    if source.parent.name == "lab":
        return source.parent.parent.resolve()
    raise LabError(
        f"{source}: not a Lab directory, a file in its lab/ directory, or a Lab tar",
        hint="pass the Lab directory (e.g. ./result) or a tar of it",
    )


def _root_of_dir(path: Path) -> Path:
    if (path / "lab").is_dir():
        return path.resolve()
    if path.name == "lab" and any(path.glob("*lab-metadata.json")):
        return path.parent.resolve()
    raise LabError(
        f"{path}: no lab/*lab-metadata.json manifest found; this is not a Lab",
        hint="pass the Lab directory (e.g. ./result, the output of nix build) or a tar of it",
    )


# ------------------------------------------------------------------------------ the cache


def lab_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "repx-tui" / "labs"


def extract_lab_tar(tar_path: Path) -> Path:
    """Unpack a Lab tar once into the cache, keyed by the sha256 of its bytes (a rebuilt tar with
    the same size and mtime is a new entry); an existing cache entry is always complete."""
    fd = open_regular(tar_path, str(tar_path), "the Lab tar")
    with os.fdopen(fd, "rb") as fh:
        before = os.fstat(fd)
        key = _sha256(fh)
        dest = lab_cache_dir() / key
        if dest.is_dir():
            return dest.resolve()
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-", dir=dest.parent))
        try:
            fh.seek(0)
            _unpack(fh, tar_path, staging)
            if _changed(before, os.fstat(fd)):  # the cache entry must hold what its key says
                raise LabError(f"{tar_path}: the tar changed while it was read; try again")
            _publish(staging, dest)
        except BaseException:
            force_rmtree(staging)
            raise
    return dest.resolve()


def _sha256(fh: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := fh.read(CHUNK_SIZE):
        digest.update(chunk)
    return digest.hexdigest()


def _changed(before: os.stat_result, after: os.stat_result) -> bool:
    return (before.st_size, before.st_mtime_ns, before.st_ctime_ns) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
    )


def _publish(staging: Path, dest: Path) -> None:
    try:
        os.rename(staging, dest)
    except OSError:
        if not dest.is_dir():  # not a lost race with another process: a real failure
            raise
        force_rmtree(staging)


def add_owner_rwx_to_dirs(root: Path) -> None:
    # Nix-built Labs carry 0555 dirs; a cache or test copy must stay removable by its owner.
    for dirpath, _dirs, _files in os.walk(root):
        mode = os.lstat(dirpath).st_mode
        os.chmod(dirpath, stat.S_IMODE(mode) | stat.S_IRWXU)


def force_rmtree(path: Path) -> None:
    """Remove a tree even when it is read-only like the Nix store."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        add_owner_rwx_to_dirs(path)
        shutil.rmtree(path)
    else:
        path.unlink()


# --------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class _Entry:
    member: tarfile.TarInfo
    rel: str  # relative to the Lab root
    link: str = ""  # symlink target, or the Lab-relative source of a hard link


def _unpack(fh: IO[bytes], tar_path: Path, into: Path) -> None:
    try:
        with tarfile.open(fileobj=fh, mode="r:*") as tf:
            plan = _plan(tf.getmembers(), tar_path)
            _Writer(into, tf, tar_path).write(plan)
    except _TAR_ERRORS as exc:
        raise LabError(f"{tar_path}: cannot unpack Lab tar: {exc}") from None
    except OSError as exc:
        raise LabError(
            f"{tar_path}: cannot unpack Lab tar: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        ) from None


def _norm(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _tar_prefix(members: list[tarfile.TarInfo], tar_path: Path) -> str:
    for m in members:
        match = _MANIFEST_IN_TAR_RE.match(_norm(m.name))
        if match and m.isfile():
            return match.group(1) or ""
    raise LabError(f"{tar_path}: no lab/*lab-metadata.json inside the tar; this is not a Lab tar")


def _below(name: str, prefix: str) -> str | None:
    """name relative to prefix ("" for prefix itself), None if outside it."""
    name = _norm(name)
    if not prefix or name == prefix:
        return "" if name == prefix else name
    return name[len(prefix) + 1 :] if name.startswith(prefix + "/") else None


def _plan(members: list[tarfile.TarInfo], tar_path: Path) -> list[_Entry]:
    """The members to write, in tar order; LabError for the first unsafe one (nothing written yet)."""
    prefix = _tar_prefix(members, tar_path)
    kinds: dict[str, str] = {}  # rel -> "dir" | "file" | "link" (dirs also when only implied)
    links: dict[str, str] = {}
    plan: list[_Entry] = []

    def refuse(m: tarfile.TarInfo, why: str) -> LabError:
        return LabError(f"{tar_path}: tar member '{shorten(m.name)}' {why}; refusing to unpack")

    for m in members:
        if m.name.startswith("/") or ".." in PurePosixPath(m.name).parts:
            raise refuse(m, "points outside the Lab")
        rel = _below(m.name, prefix)
        if not rel:
            continue  # outside the Lab's directory in the tar, or its root
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise refuse(m, f"is {_KINDS.get(m.type, f'a special file (type {m.type!r})')}")
        for parent in _parents(rel):
            if kinds.setdefault(parent, "dir") != "dir":
                raise refuse(m, f"would be written through '{parent}', which is not a directory")
        if rel in kinds and not (m.isdir() and kinds[rel] == "dir"):
            raise refuse(m, "names a path the tar already holds")
        entry = _Entry(m, rel)
        if m.issym():
            if not m.linkname or m.linkname.startswith("/"):
                raise refuse(m, f"is a symlink to '{shorten(m.linkname)}', which escapes the Lab")
            links[rel] = m.linkname
            entry = _Entry(m, rel, m.linkname)
        elif m.islnk():
            source = _below(m.linkname, prefix) if ".." not in m.linkname.split("/") else None
            if not source or kinds.get(source) != "file" or m.linkname.startswith("/"):
                raise refuse(
                    m,
                    f"is a hard link to '{shorten(m.linkname)}', which escapes the Lab "
                    "(only earlier regular files of the Lab may be linked)",
                )
            entry = _Entry(m, rel, source)
        kinds[rel] = "dir" if m.isdir() else "link" if m.issym() else "file"
        plan.append(entry)
    for entry in plan:
        if entry.member.issym():
            try:
                resolve_link(entry.rel, entry.link, links.get)
            except LinkEscape as escape:
                why = f"is a symlink to '{shorten(entry.link)}', which escapes the Lab: it {escape}"
                raise refuse(entry.member, why) from None
    return plan


def shorten(name: str, limit: int = 120) -> str:
    """A name as shown in an error: its ends, if it is very long."""
    keep = (limit - 1) // 2
    return name if len(name) <= limit else f"{name[:keep]}…{name[-keep:]}"


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


# ---------------------------------------------------------------------------- writing


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _file_mode(mode: int) -> int:
    return (mode & 0o755) | 0o400  # no setuid/setgid/sticky, no write for group or others


def _dir_mode(mode: int) -> int:
    return (mode & 0o755) | stat.S_IRWXU  # the cache entry stays removable by its owner


class _Writer:
    """Creates planned members under root through directory fds: O_NOFOLLOW on every component,
    O_EXCL on every new name, so nothing on disk is ever followed or overwritten."""

    def __init__(self, root: Path, tf: tarfile.TarFile, tar_path: Path) -> None:
        self.root = root
        self.tf = tf
        self.tar_path = tar_path

    def write(self, plan: list[_Entry]) -> None:
        dir_modes: dict[str, int] = {}
        for entry in plan:
            parent, name = entry.rel.rpartition("/")[::2]
            with self._dir(parent) as pfd:
                self._write_one(entry, pfd, name)
            if entry.member.isdir():
                dir_modes[entry.rel] = _dir_mode(entry.member.mode)
        for rel, mode in dir_modes.items():  # last: a read-only dir would block its own children
            with self._dir(rel) as fd:
                os.fchmod(fd, mode)

    def _write_one(self, entry: _Entry, pfd: int, name: str) -> None:
        m = entry.member
        if m.isdir():
            _mkdir(name, pfd)
            os.close(os.open(name, _DIR_FLAGS, dir_fd=pfd))  # a real directory, not a link
        elif m.issym():
            os.symlink(entry.link, name, dir_fd=pfd)
        elif m.islnk():
            src_parent, src_name = entry.link.rpartition("/")[::2]
            with self._dir(src_parent) as sfd:
                os.link(src_name, name, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
        else:
            self._write_file(m, pfd, name)

    def _write_file(self, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        src = self.tf.extractfile(m)
        if src is None:
            raise LabError(f"{self.tar_path}: tar member '{m.name}' has no data; refusing to unpack")
        fd = os.open(name, _NEW_FILE_FLAGS, 0o600, dir_fd=pfd)
        with os.fdopen(fd, "wb") as out, src:
            left = m.size
            while left > 0 and (chunk := src.read(min(CHUNK_SIZE, left))):
                out.write(chunk)
                left -= len(chunk)
            if left:
                raise LabError(f"{self.tar_path}: tar member '{m.name}' is truncated; refusing to unpack")
            out.flush()
            os.fchmod(fd, _file_mode(m.mode))
            os.utime(fd, (m.mtime, m.mtime))

    @contextmanager
    def _dir(self, rel: str) -> Iterator[int]:
        """An fd on root/rel, creating missing directories, refusing to pass through a link."""
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in rel.split("/") if rel else []:
                _mkdir(part, fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)


def _mkdir(name: str, dir_fd: int) -> None:
    """mkdir that accepts an existing entry: whoever opens it next does so with
    O_DIRECTORY|O_NOFOLLOW, which fails on anything but a real directory."""
    try:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    except FileExistsError:
        pass
