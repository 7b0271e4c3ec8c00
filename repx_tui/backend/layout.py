"""Where things live under a target's base_path (compatible with upstream RepX).

<base>/
  artifacts/               the merged Lab trees (jobs/, store/, images/, host-tools/, lab/, revision/)
    store/<digest>-layer.tar      image layers, content-addressed
    images/<h>-<name>.tar/        image dirs: manifest.json, config, <digest>/layer.tar links
  host-tools/<hash>/bin/   the Lab's static tools, bootstrapped before anything else
  bin/<sha256>/            deployed helpers (executor, agent, submit), content-addressed
  outputs/<job-id>/{out,repx}/   results and run metadata per job
  outputs/completions.jsonl
  submissions/             records of what was submitted, by whom (jobs -> SLURM ids)
<node_local_path>/store/<digest>-layer.tar   node-local layer cache (reused by image sync)
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+@:=-]*\Z")


def safe_component(value: str, what: str = "name") -> str:
    """Validate one path component that will be used on a remote shell."""
    from repx_tui.backend.errors import RepxError

    if not _SAFE_COMPONENT.match(value) or ".." in value:
        raise RepxError(f"unsafe {what} {value!r}: only letters, digits and ._+@:=- are allowed")
    return value


def own_metadata_name(lab_id: str, directory: str, name: str) -> str:
    """`<dir>/<labId>-<name>`: each Lab's metadata under a name no other Lab writes.

    The fixed names upstream 0.5 uses (lab/lab-metadata.json, revision/metadata-<run>.json) are
    overwritten by whichever Lab was synced last, so running jobs of one Lab would read another's
    run metadata. Upstream's readers accept the older hash-prefixed form of these names (they
    glob `lab/*lab-metadata.json` and follow its pointers), and its GC keeps what a root's
    manifest lists, so these copies stay readable and alive for upstream too.
    """
    return f"{directory}/{safe_component(lab_id, 'lab id')}-{name}"


@dataclass(frozen=True)
class RemoteLayout:
    base: str  # absolute, "~" already resolved
    node_local: str | None = None

    def _join(self, *parts: str) -> str:
        return posixpath.join(self.base, *parts)

    @property
    def artifacts(self) -> str:
        return self._join("artifacts")

    @property
    def outputs(self) -> str:
        return self._join("outputs")

    @property
    def bin(self) -> str:
        return self._join("bin")

    @property
    def submissions(self) -> str:
        return self._join("submissions")

    def host_tools(self, tools_hash: str) -> str:
        return self._join("host-tools", safe_component(tools_hash, "host-tools hash"))

    def host_tools_bin(self, tools_hash: str) -> str:
        return posixpath.join(self.host_tools(tools_hash), "bin")

    def lab_manifest(self, lab_id: str) -> str:
        """This Lab's own copy of its manifest (see own_metadata_name)."""
        return self.artifact(own_metadata_name(lab_id, "lab", "lab-metadata.json"))

    def run_metadata(self, lab_id: str, run: str) -> str:
        """This Lab's own copy of a run's metadata: what its inter-run inputs read."""
        return self.artifact(own_metadata_name(lab_id, "revision", f"metadata-{run}.json"))

    def artifact(self, lab_relative: str) -> str:
        return posixpath.join(self.artifacts, lab_relative)

    def layer(self, digest: str) -> str:
        return posixpath.join(self.artifacts, "store", f"{safe_component(digest, 'layer digest')}-layer.tar")

    def helper_dir(self, sha: str) -> str:
        return posixpath.join(self.bin, safe_component(sha, "helper hash"))

    def job_dir(self, job_id: str) -> str:
        return posixpath.join(self.outputs, safe_component(job_id, "job id"))

    def job_repx(self, job_id: str) -> str:
        return posixpath.join(self.job_dir(job_id), "repx")
