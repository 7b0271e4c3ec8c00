"""Labs for tests, in the exact upstream RepX 0.5.0 format.

A thin layer over repx_tui.demolab (which `repx-tui demo` uses too): named presets and
small helpers to find jobs and to edit a written (read-only, Nix-like) Lab. Import it as
`labgen` after putting tests/ on sys.path, or as `tests.labgen` from the project root.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repx_tui.demolab import (  # noqa: F401  (re-exported for tests)
    DEMO_GROUPS,
    DEMO_RUNS,
    HOST_TOOLS,
    NIX32_ALPHABET,
    SCATTER_ITEMS,
    DemoOptions,
    compact_json,
    fake_store_hash,
    list_lab_files,
    nix32,
    sha256_file,
    write_demo_lab,
    write_lab_tar,
)

# Enough for every demo stage script; copying fewer binaries keeps unit tests quick.
SCRIPT_TOOLS = ("bash", "env", "jq", "cat", "sed", "find", "rm", "mkdir", "sleep")

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "quick": {"host_tools": SCRIPT_TOOLS},
    "image": {"image_layers": 2},
    "big_layers": {"image_layers": 3, "layer_size_kib": 4096},
    "slow": {"sleep_seconds": 3.0},
    "logs": {"log_lines": 40, "log_delay": 0.05},
    "failing": {"fail_job": "stage-C-consumer"},
    "big_dag": {"scale": 500, "host_tools": SCRIPT_TOOLS},
    "legacy_names": {"hash_prefixed_names": True},
}


def make_lab(dest: str | Path, preset: str = "default", **overrides: Any) -> Path:
    """Write a Lab at dest from a preset, with any DemoOptions field overridden."""
    return write_demo_lab(dest, **{**PRESETS[preset], **overrides})


def make_lab_tar(
    directory: str | Path, preset: str = "default", *, prefix: str = "result", name: str = "lab.tar", **overrides: Any
) -> Path:
    """Write a Lab into directory/lab and pack it as directory/name."""
    directory = Path(directory)
    lab = make_lab(directory / "lab-src", preset, **overrides)
    return write_lab_tar(lab, directory / name, prefix=prefix)


def job_ids(lab_dir: str | Path, pname: str) -> list[str]:
    """Sorted ids of the jobs of one stage (e.g. "stage-A-producer"), read from the metadata."""
    found = []
    for meta in sorted(Path(lab_dir, "revision").glob("*metadata-*.json")):
        data = json.loads(meta.read_text())
        if data.get("type") == "run":
            found += [j for j, job in data["jobs"].items() if job["name"].rsplit("-", 1)[0] == pname]
    return sorted(set(found))


def make_writable(path: str | Path) -> None:
    """Add u+w everywhere, so a test can edit a Nix-like (read-only) Lab."""
    for dirpath, dirs, files in os.walk(path):
        for name in [*dirs, *files, ""]:
            target = Path(dirpath, name)
            if not target.is_symlink():
                target.chmod(stat.S_IMODE(target.stat().st_mode) | stat.S_IWUSR)


def edit_json(path: str | Path, change: Callable[[Any], Any]) -> None:
    """Rewrite a JSON file after change(data) edited it in place (its return value is ignored)."""
    path = Path(path)
    data = json.loads(path.read_text())
    change(data)
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
    path.write_text(compact_json(data))


def rewrite_manifest(lab_dir: str | Path) -> None:
    """Recompute the manifest's file list after a test changed files on purpose."""
    lab_dir = Path(lab_dir)
    manifest = next((lab_dir / "lab").glob("*lab-metadata.json"))
    files = [{"path": rel, "sha256": sha256_file(lab_dir / rel)} for rel in list_lab_files(lab_dir)]
    edit_json(manifest, lambda data: data.update(files=files))
