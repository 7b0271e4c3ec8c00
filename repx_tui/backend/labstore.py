"""`artifact_store = "node-local"`: the Lab travels as one tar, each node unpacks it once.

As upstream RepX defines it: the sync places the tar at `<base>/lab-tars/<labId>.tar`; before a
job runs, the executor (remote/executor.sh, `prepare_local_lab`) unpacks it once per node, under
a lock, into `node_local_path`, and the job's scripts run from there instead of the shared
`artifacts/`. Jobs on many nodes then read their scripts from local disk, not the shared
file system.

The tar holds what a job reads from the Lab: everything but `host-tools/`, `images/` and
`store/` (host tools stay in `<base>/host-tools`, image layers have their own node-local cache).
It is built here, deterministically, once per Lab content (cached under $XDG_CACHE_HOME), and its
sha256 travels in every job spec: the executor unpacks only a tar with exactly those bytes.
The unpacked copy lives in `<node_local_path>/repx/labs/<labId>/repx-tui-<sha256[:16]>/`
(upstream's directory for the Lab, with a name of its own, so neither tool reads the other's
copy); a copy is complete once renamed into place.
"""

from __future__ import annotations

import asyncio
import functools
import os
import posixpath
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from repx_tui.backend.config import xdg_dir
from repx_tui.backend.errors import SchedulerError, SyncError
from repx_tui.backend.events import EventSink, Notice
from repx_tui.backend.hashing import sha256_file
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout, safe_component
from repx_tui.backend.transport.base import Transport

#: top-level Lab entries that stay out of the tar
LEFT_OUT = frozenset({"host-tools", "images", "store"})


@dataclass(frozen=True)
class LabTar:
    path: Path  # the tar on this machine (in the cache)
    sha256: str
    size: int


def remote_tar(layout: RemoteLayout, lab: Lab) -> str:
    return posixpath.join(layout.base, "lab-tars", f"{safe_component(lab.lab_id, 'lab id')}.tar")


def local_dir(layout: RemoteLayout, lab: Lab, sha256: str) -> str:
    if not layout.node_local:
        raise SchedulerError(
            'artifact_store = "node-local" needs node_local_path: where each node unpacks the Lab',
            hint="set node_local_path for this target in config.toml (a local disk on the compute nodes)",
        )
    lab_dir = safe_component(lab.lab_id, "lab id")
    return posixpath.join(layout.node_local, "repx", "labs", lab_dir, f"repx-tui-{sha256[:16]}")


def lab_tar(lab: Lab) -> LabTar:
    """The Lab's tar, built once per content (key: the manifest, which lists every file's sha256)."""
    tar = _lab_tar(lab)
    if not tar.path.is_file():  # the cache was cleaned while this process ran
        _lab_tar.cache_clear()
        tar = _lab_tar(lab)
    return tar


def forget_built_tars() -> None:
    """Forget the tars this process built (they stay in the cache directory)."""
    _lab_tar.cache_clear()


@functools.lru_cache(maxsize=8)
def _lab_tar(lab: Lab) -> LabTar:
    key = sha256_file(lab.root / lab.manifest_path)[:24]
    cache = xdg_dir("cache") / "repx-tui" / "lab-tars"
    path = cache / f"{safe_component(lab.lab_id, 'lab id')}-{key}.tar"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        _build(lab.root, path)
    return LabTar(path=path, sha256=sha256_file(path), size=path.stat().st_size)


def _build(root: Path, dest: Path) -> None:
    """Members in sorted order, fixed owner and times: the same Lab gives the same bytes. Links
    are followed (the Lab's are checked to stay inside it), so the copy needs nothing else."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for rel in _members(root):
                info = tar.gettarinfo(str(root / rel), arcname=rel)
                if info.issym() or info.islnk():
                    info = tar.gettarinfo(os.path.realpath(root / rel), arcname=rel)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 1
                info.mode = (info.mode & 0o555) | 0o200  # writable by its owner: the copy can be removed
                if info.isreg():
                    with open(root / rel, "rb") as member:
                        tar.addfile(info, member)
                else:
                    tar.addfile(info)
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise


def _members(root: Path) -> list[str]:
    found: list[str] = []
    for dirpath, dirs, files in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path("."):
            dirs[:] = [d for d in dirs if d not in LEFT_OUT]
            files = [f for f in files if f not in LEFT_OUT]
        dirs.sort()
        found += [(rel_dir / name).as_posix() for name in [*dirs, *files]]
    return sorted(found)


def spec_entry(lab: Lab, layout: RemoteLayout) -> dict[str, str]:
    """What the job spec says about the Lab tar: where it is, its sha256, where to unpack it."""
    tar = lab_tar(lab)
    return {"path": remote_tar(layout, lab), "sha256": tar.sha256, "dir": local_dir(layout, lab, tar.sha256)}


# Placed like a layer: under a temp name, size and sha256 checked, renamed. Answers "present"
# when the tar on the target already has the Lab's bytes.
_CHECK = r"""
dest=$1 want=$2
if [ -f "$dest" ] && [ ! -L "$dest" ] && sum=$(sha256sum < "$dest") && [ "${sum%% *}" = "$want" ]; then
  echo present
fi
"""

_PLACE = r"""
set -euo pipefail
dest=$1 want=$2 size=$3 dir=${1%/*}
if [ -L "$dir" ]; then echo "$dir is a symbolic link (repx-tui never makes one there)" >&2; exit 3; fi
mkdir -p -- "$dir"
tmp=$(mktemp "$dir/.${dest##*/}.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
got=$(stat -c %s -- "$tmp"); sum=$(sha256sum < "$tmp")
if [ "$got" != "$size" ] || [ "${sum%% *}" != "$want" ]; then
  echo "the Lab tar arrived damaged ($got of $size bytes)" >&2; exit 4
fi
chmod 0444 "$tmp"
mv -fT -- "$tmp" "$dest"
trap - EXIT
"""


async def place_lab_tar(transport: Transport, lab: Lab, layout: RemoteLayout, emit: EventSink) -> bool:
    """Put the Lab tar at <base>/lab-tars/<labId>.tar unless it is there with the same bytes;
    True when it was sent."""
    local_dir(layout, lab, "0" * 16)  # refuse a missing node_local_path before building anything
    tar = await asyncio.to_thread(lab_tar, lab)
    dest = remote_tar(layout, lab)
    check = await transport.run_script(_CHECK, dest, tar.sha256, check=False)
    if check.stdout.strip() == "present":
        emit(Notice("info", f"node-local artifact store: the Lab tar is on the target ({dest})"))
        return False
    result = await transport.run_with_file(
        ["bash", "-c", _PLACE, "repx", dest, tar.sha256, str(tar.size)], tar.path, check=False
    )
    if not result.ok:
        detail = result.stderr.strip().splitlines()[-1:] or [f"exit {result.exit_status}"]
        raise SyncError(
            f"placing the Lab tar at {dest} failed: {detail[0]}", hint="check space and permissions under base_path"
        )
    emit(Notice("info", f"node-local artifact store: sent the Lab tar ({tar.size} bytes) to {dest}"))
    return True
