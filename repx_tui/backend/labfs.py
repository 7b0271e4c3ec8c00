"""A Lab's files as hostile input: links judged as they resolve on the target, files that may
be FIFOs or devices, metadata that may be huge or nested without end, and the re-hash of
`verify()`.

A Lab is copied to `<base>/artifacts/` on the target with its symlinks kept as links (rsync
-l). So a link is judged by where it leads inside the Lab's own tree, following every link on
the way as the kernel will there, never by what `realpath` finds on this machine: an absolute
link, or a relative one that climbs above the Lab root, would point elsewhere on the target.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repx_tui.backend.errors import LabError
from repx_tui.backend.files import NotRegular, open_regular_fd

if TYPE_CHECKING:
    from repx_tui.backend.lab import Lab

MAX_METADATA_BYTES = 256 << 20  # far above any real Lab's metadata; stops a read of /dev/zero-like files
MAX_LINKS_FOLLOWED = 40  # as Linux (ELOOP)
CHUNK_SIZE = 1 << 20
# Directories the sync writes into on the target: never a symlink there.
TOP_LEVEL_DIRS = ("lab", "revision", "readme", "jobs", "store", "images", "host-tools")
_LINK_HINT = "a Lab must be self-contained, with relative links that stay inside it; rebuild it"

ReadLink = Callable[[str], "str | None"]


# ---------------------------------------------------------------------------- symlinks


class LinkEscape(Exception):
    """A symlink that leaves the Lab, is absolute, or loops; str() says which."""


def resolve_link(link_rel: str, target: str, read_link: ReadLink) -> str:
    """Where the symlink at link_rel (Lab-relative) leads, every link on the way followed within the
    Lab's own tree (read_link(rel) gives the target of the link at rel, None if rel is no link).
    Returns a Lab-relative path ("" for the root); raises LinkEscape."""
    budget = [MAX_LINKS_FOLLOWED]
    base = link_rel.split("/")[:-1]
    return "/".join(_walk(base, target, read_link, budget))


def _walk(base: list[str], target: str, read_link: ReadLink, budget: list[int]) -> list[str]:
    if target.startswith("/"):
        raise LinkEscape("is absolute, so it would point elsewhere once the Lab is copied to the target")
    if not target:
        raise LinkEscape("is empty")
    stack = list(base)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:  # above the Lab root: on the target that is <base>/, not the Lab
                raise LinkEscape("leaves the Lab")
            stack.pop()
            continue
        stack.append(part)
        link = read_link("/".join(stack))
        if link is not None:
            budget[0] -= 1
            if budget[0] < 0:
                raise LinkEscape("is a loop of links")
            stack = _walk(stack[:-1], link, read_link, budget)
    return stack


def disk_link_reader(root: Path) -> ReadLink:
    """read_link for a Lab on disk. Paths handed to it never pass through a link (resolve_link
    replaces each link by its resolution first), so the OS follows nothing here."""

    def read(rel: str) -> str | None:
        try:
            return os.readlink(os.path.join(root, rel))
        except OSError:  # not a link, missing, or below a file
            return None

    return read


def check_lab_symlinks(root: Path) -> None:
    """Every symlink in the Lab must stay inside it, as it will resolve on the target."""
    read_link = disk_link_reader(root)
    stack = [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError as exc:
            raise LabError(f"{exc.filename}: cannot list Lab directory ({exc.strerror})") from None
        for entry in entries:
            if entry.is_symlink():
                rel = os.path.relpath(entry.path, root)
                target = os.readlink(entry.path)
                try:
                    resolve_link(rel, target, read_link)
                except LinkEscape as why:
                    raise LabError(
                        f"{rel}: symlink points outside the Lab (to {target}): it {why}", hint=_LINK_HINT
                    ) from None
            elif entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)


def check_real_dirs(root: Path, dirs: Iterable[str]) -> None:
    """No symlink may stand in place of a directory the sync writes into: on the target, rsync and
    the image phase would write through it, wherever it leads (links to files are fine)."""
    for rel in sorted(set(dirs)):
        path = os.path.join(root, rel)
        try:
            mode = os.lstat(path).st_mode
        except OSError:  # missing: the loader reports what it needs
            continue
        if stat.S_ISLNK(mode):
            target = os.readlink(path)
            raise LabError(
                f"{rel}: is a symlink (to {target}) where the Lab must have a directory "
                "(the sync writes into it on the target)",
                hint=_LINK_HINT,
            )


def parent_dirs(rel: str) -> list[str]:
    """'a/b/c' -> ['a', 'a/b']."""
    parts = rel.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


# ------------------------------------------------------------------------ odd files


def open_regular(path: Path | str, where: str, what: str) -> int:
    """_open_regular with every failure as one LabError line."""
    try:
        return open_regular_fd(path)
    except NotRegular as kind:
        raise LabError(f"{where}: {what} is {kind}, not a regular file") from None
    except FileNotFoundError:
        raise LabError(f"{where}: {what} is missing") from None
    except OSError as exc:
        raise LabError(f"{where}: cannot read {what} ({exc.strerror or exc})") from None


def read_json_file(path: Path, where: str, what: str) -> Any:
    """Parse one metadata file; every failure is one LabError line naming `where`."""
    fd = open_regular(path, where, what)
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fd).st_size
        if size > MAX_METADATA_BYTES:
            raise LabError(
                f"{where}: {what} is {size} bytes; Lab metadata may be at most {MAX_METADATA_BYTES >> 20} MiB"
            )
        try:
            data = fh.read(MAX_METADATA_BYTES + 1)
        except OSError as exc:
            raise LabError(f"{where}: cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > MAX_METADATA_BYTES:  # grew while we read it
        raise LabError(f"{where}: {what} is larger than {MAX_METADATA_BYTES >> 20} MiB")
    return parse_json(data, where)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(data: bytes, where: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LabError(f"{where}: not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise LabError(f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise LabError(f"{where}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, or an integer beyond Python's digit limit
        reason = "a number has too many digits" if "digits" in str(exc) else str(exc)
        raise LabError(f"{where}: invalid JSON: {reason}") from None


# ------------------------------------------------------------------------- verify


def size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def check_file(path: Path, rel: str, sha256: str, on_chunk: Callable[[int, str], None]) -> str | None:
    """None if the file at path hashes to sha256, else why not (one short phrase naming rel)."""
    digest = hashlib.sha256()
    try:
        fd = open_regular_fd(path)
    except NotRegular as kind:
        return f"{rel} is {kind}, not a regular file"
    except FileNotFoundError:
        return f"{rel} is missing"
    except OSError as exc:
        return f"{rel} cannot be read ({exc.strerror})"
    try:
        with os.fdopen(fd, "rb") as fh:
            while chunk := fh.read(CHUNK_SIZE):
                digest.update(chunk)
                on_chunk(len(chunk), rel)
    except OSError as exc:
        return f"{rel} cannot be read ({exc.strerror})"
    on_chunk(0, rel)  # so empty files show up in progress too
    actual = digest.hexdigest()
    if actual != sha256:
        return f"{rel} has sha256 {actual[:16]}…, manifest says {sha256[:16]}…"
    return None


def verify_files(
    root: Path, files: Iterable[tuple[str, str]], progress: Callable[[int, int, str], None] | None = None
) -> None:
    """Re-hash (path, sha256) pairs under root; one LabError naming the first failure."""
    files = list(files)
    total = sum(size_or_zero(root / rel) for rel, _ in files)
    done = 0
    failures: list[str] = []

    def on_chunk(n: int, rel: str) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total, rel)

    for rel, sha256 in files:
        failure = check_file(root / rel, rel, sha256, on_chunk)
        if failure:
            failures.append(failure)
    if failures:
        raise LabError(
            f"Lab verification failed for {len(failures)} of {len(files)} files; first: {failures[0]}",
            hint="the Lab was modified after it was built; rebuild it or fetch a fresh copy",
        )


def written_dirs(lab: Lab) -> set[str]:
    """Every directory the sync writes into on the target: the top level, each job's and host
    tools' directories, image directories, and every directory on the way to a listed path."""
    dirs = set(TOP_LEVEL_DIRS) | {f"host-tools/{lab.host_tools_dir}/bin"}
    dirs |= {f"jobs/{job}/bin" for job in lab.jobs}
    for image in lab.images.values():
        dirs |= {image.path} | {f"{image.path}/{layer.digest}" for layer in image.layers}
    paths = [f.path for f in lab.files] + [lab.manifest_path, lab.metadata_path]
    paths += [run.metadata_path for run in lab.runs.values()]
    paths += [exe.path for job in lab.jobs.values() for exe in job.executables.values()]
    for path in [*paths, *dirs]:
        dirs.update(parent_dirs(path))
    return dirs
