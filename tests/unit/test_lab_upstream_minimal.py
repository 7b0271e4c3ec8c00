"""The smallest Labs upstream RepX's own loader accepts (its test fixtures' shapes) load here too.

Written by hand, not by our generator, so a generator bug cannot hide a loader bug:
hash-prefixed metadata names, root metadata at the Lab root, `files: []`, a fake
`host-tools/default`, no `stage_type`, and a job script not under bin/.
"""

from __future__ import annotations

import json
from pathlib import Path

from repx_tui.backend.lab import Lab


def write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")))


def test_upstream_minimal_lab_loads(tmp_path):
    root = tmp_path / "result"
    job = "abc123-test-job-1.0"
    write(
        root / "lab" / "0123456789abcdef-lab-metadata.json",
        {
            "labId": "0123456789abcdef",
            "lab_version": "1.0.0",
            "metadata": "0123456789abcdef-metadata.json",
            "files": [],
        },
    )
    write(
        root / "0123456789abcdef-metadata.json",
        {"repx_version": "0.4.2", "gitHash": "unknown", "runs": ["revision/0123456789abcdef-metadata-test-run.json"]},
    )
    write(
        root / "revision" / "0123456789abcdef-metadata-test-run.json",
        {
            "name": "test-run",
            "jobs": {
                job: {
                    "name": "test-job",
                    "params": {},
                    "executables": {"main": {"path": f"jobs/{job}/run.sh", "inputs": [], "outputs": {}}},
                }
            },
        },
    )
    (root / "host-tools" / "default" / "bin").mkdir(parents=True)
    (root / "jobs" / job).mkdir(parents=True)
    (root / "jobs" / job / "run.sh").write_text("#!/bin/sh\n")

    lab = Lab.load(root)
    assert lab.lab_id == "0123456789abcdef"
    assert list(lab.runs) == ["test-run"] and lab.runs["test-run"].jobs == (job,)
    assert lab.jobs[job].stage_type == "simple" and lab.jobs[job].dependencies == ()
    assert lab.host_tools_dir == "default"
    assert lab.images == {}
    assert any("0.4.2" in w for w in lab.warnings)  # a version mismatch warns, never rejects
    lab.verify()  # nothing listed, nothing to check
    assert lab.resolve(["test-run"]) == [job]
