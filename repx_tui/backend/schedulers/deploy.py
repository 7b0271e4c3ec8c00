"""Deploy the remote helper scripts to <base>/bin/<sha256>/, once, atomically.

The directory name is the sha256 of the helpers' names and contents, so a changed helper gets
a new directory and running jobs keep the version they started with. One round trip: the
helpers go as a tar on stdin, are unpacked into a temporary directory and renamed into place
(a concurrent client that loses the rename race just drops its copy). The same script finds
the Lab's host tools on the target and reports their bin directory, and registers the Lab as
an upstream GC root (gcroots/auto/<project>/<time>_<labId>) so upstream's `repx gc` keeps
the Lab's jobs and outputs.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import tarfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from repx_tui.backend.errors import SchedulerError
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.schedulers.jobspec import host_tools_candidates
from repx_tui.backend.transport.base import Transport

HELPERS = ("executor.sh", "agent.sh", "submit.sh")

_DEPLOY_SCRIPT = r"""
set -euo pipefail
dest="$1"; gcdir="$2"; gclink="$3"; manifest="$4"; shift 4
tools=""
for candidate in "$@"; do
    if [ -x "$candidate/jq" ] && [ -x "$candidate/bash" ]; then tools="$candidate"; break; fi
done
if [ -z "$tools" ]; then
    cat >/dev/null
    echo "the Lab's host tools are not on the target (looked in: $*)" >&2
    exit 3
fi
PATH="$tools:$PATH"
if [ -e "$dest/.complete" ]; then
    cat >/dev/null
else
    mkdir -p "$(dirname "$dest")"
    tmp="$(mktemp -d "$dest.tmp.XXXXXX")"
    tar -xf - -C "$tmp"
    chmod 0755 "$tmp"/*.sh
    : >"$tmp/.complete"
    mv -T "$tmp" "$dest" 2>/dev/null || rm -rf "$tmp"
fi
if [ -e "$manifest" ]; then
    mkdir -p "$gcdir"
    ln -sfn "$manifest" "$gcdir/$gclink"
    # upstream keeps the five newest roots per project
    find "$gcdir" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -r | tail -n +6 |
        while IFS= read -r old; do rm -f -- "${gcdir:?}/$old"; done
fi
printf '%s\n' "$tools"
"""


@dataclass(frozen=True)
class DeployedHelpers:
    dir: str  # <base>/bin/<sha>
    tools_bin: str  # the Lab's host tools on the target

    @property
    def executor(self) -> str:
        return posixpath.join(self.dir, "executor.sh")

    @property
    def agent(self) -> str:
        return posixpath.join(self.dir, "agent.sh")

    @property
    def submit(self) -> str:
        return posixpath.join(self.dir, "submit.sh")


def helper_sources() -> dict[str, bytes]:
    remote = resources.files("repx_tui").joinpath("backend", "remote")
    return {name: remote.joinpath(name).read_bytes() for name in HELPERS}


def helpers_digest(sources: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + sources[name] + b"\0")
    return digest.hexdigest()


def _tar(sources: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(sources.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def gc_root(layout: RemoteLayout, lab: Lab, now: float | None = None) -> tuple[str, str]:
    """(directory, link name) of this submission's upstream auto GC root."""
    lab_path = str(Path(lab.source).resolve())
    project = "no_remote_" + hashlib.sha256(lab_path.encode()).hexdigest()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now))
    return posixpath.join(layout.base, "gcroots", "auto", project), f"{stamp}_{lab.lab_id}"


async def deploy_helpers(transport: Transport, layout: RemoteLayout, lab: Lab) -> DeployedHelpers:
    sources = helper_sources()
    dest = layout.helper_dir(helpers_digest(sources))
    gc_dir, gc_link = gc_root(layout, lab)
    manifest = layout.lab_manifest(lab.lab_id)  # the Lab's own manifest: GC keeps exactly this Lab
    result = await transport.run_script(
        _DEPLOY_SCRIPT,
        dest,
        gc_dir,
        gc_link,
        manifest,
        *host_tools_candidates(layout, lab),
        input=_tar(sources),
        check=False,
    )
    if not result.ok:
        detail = result.stderr.strip() or f"exit {result.exit_status}"
        raise SchedulerError(
            f"cannot deploy the job helpers to {dest}: {detail}",
            hint="sync the Lab to the target first (repx-tui sync)",
        )
    return DeployedHelpers(dir=dest, tools_bin=result.stdout.strip().splitlines()[-1])
