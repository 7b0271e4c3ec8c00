"""Where the Lab picker finds Labs: the ones this user opened before (remembered in the XDG state
dir), and `./result` and `result*` links in the working directory (what `nix build` leaves).

The recent list is the user's own file, but still read as untrusted: anything unexpected in it
is skipped, never an error; it is written under a temporary name and renamed, so a crash never
leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from repx_tui.backend.config import xdg_dir

RECENT_MAX = 20
RECENT_MAX_BYTES = 1 << 20  # a larger file is not ours: ignored
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def recent_file() -> Path:
    return xdg_dir("state") / "repx-tui" / "recent-labs.json"


@dataclass(frozen=True)
class RecentLab:
    path: str  # absolute
    lab_id: str
    used: float  # seconds since the epoch


@dataclass(frozen=True)
class LabCandidate:
    path: str  # absolute
    origin: str  # "./result", "./result-x", "recent", "browsed"
    lab_id: str = ""  # known from the recent list (before the Lab is read)


def parse_recent(text: str) -> list[RecentLab]:
    """The entries of a recent-labs.json; whatever is not a well-formed entry is skipped."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return []
    entries = data.get("labs") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return []
    labs: list[RecentLab] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        path, lab_id, used = entry.get("path"), entry.get("lab_id", ""), entry.get("used", 0)
        if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path or not isinstance(lab_id, str):
            continue
        if isinstance(used, bool) or not isinstance(used, (int, float)) or used != used:  # NaN
            used = 0
        labs.append(RecentLab(path, lab_id, float(used)))
    return labs[:RECENT_MAX]


def load_recent(path: Path | None = None) -> list[RecentLab]:
    path = path or recent_file()
    try:
        if not path.is_file() or path.stat().st_size > RECENT_MAX_BYTES:
            return []
        return parse_recent(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return []


def remember(lab_path: str, lab_id: str, path: Path | None = None, now: Callable[[], float] = time.time) -> None:
    """Put a Lab first in the recent list (raises OSError when the state dir is not writable)."""
    path = path or recent_file()
    absolute = os.path.abspath(os.path.expanduser(lab_path))
    labs = [lab for lab in load_recent(path) if lab.path != absolute]
    labs.insert(0, RecentLab(absolute, lab_id, now()))
    text = json.dumps({"labs": [vars(lab) for lab in labs[:RECENT_MAX]]}, indent=1)
    write_atomically(path, text)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def result_links(cwd: Path) -> list[LabCandidate]:
    """`./result` (whatever it is) and the `result*` symbolic links beside it, by name."""
    found: list[LabCandidate] = []
    try:
        names = sorted(entry.name for entry in os.scandir(cwd) if entry.name.startswith("result"))
    except OSError:
        return []
    for name in names:
        path = cwd / name
        if (name == "result" or path.is_symlink()) and path.exists():
            found.append(LabCandidate(str(path.absolute()), f"./{name}"))
    return found


def find_candidates(cwd: Path, recent: list[RecentLab], demo: Path | None = None) -> list[LabCandidate]:
    """The working directory's results first, then recent Labs that still exist (each path once);
    with nothing found, the demo Lab (`demo`, written when it is picked), so a first run can go on."""
    candidates = result_links(cwd)
    seen = {os.path.realpath(c.path) for c in candidates}
    for lab in recent:
        real = os.path.realpath(lab.path)
        if real not in seen and os.path.exists(lab.path):
            seen.add(real)
            candidates.append(LabCandidate(lab.path, "recent", lab.lab_id))
    if not candidates and demo is not None:
        candidates.append(LabCandidate(str(demo), "demo"))
    return candidates


def demo_lab_path() -> Path:
    """Where `repx-tui demo` writes its Lab (the picker offers it when it finds no other)."""
    return xdg_dir("data") / "repx-tui" / "demo" / "lab"


def looks_like_lab(path: Path) -> bool:
    """Cheap check for the browser: a tar, or a directory with a lab/*lab-metadata.json."""
    try:
        if path.is_file():
            return path.name.endswith(TAR_SUFFIXES)
        lab_dir = path / "lab"
        return lab_dir.is_dir() and any(p.name.endswith("lab-metadata.json") for p in lab_dir.iterdir())
    except OSError:
        return False


def shown_path(path: str, cwd: Path | None = None) -> str:
    """A path as short as it reads unambiguously: ./x under the working directory, ~/x under home."""
    cwd = cwd or Path.cwd()
    for base, prefix in ((str(cwd), "."), (os.path.expanduser("~"), "~")):
        if base not in ("", "/") and (path == base or path.startswith(base.rstrip("/") + "/")):
            return prefix + path[len(base.rstrip("/")) :]
    return path
