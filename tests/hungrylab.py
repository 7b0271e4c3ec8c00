"""A test Lab whose stage-B job really uses memory and CPU, so SLURM's accounting (sacct MaxRSS,
TotalCPU) has real numbers to report: it holds ~MEM_MIB MiB in one `tail` (a line with no
newline is kept whole) for HOLD_SECONDS, long enough for SLURM's memory samples (it samples a
running step; a peak that is gone before a sample is never seen), while it spins a CPU for
CPU_SECONDS; then it writes its usual output."""

from __future__ import annotations

import json
from pathlib import Path

from tests.labgen import job_ids, make_lab, make_writable, rewrite_manifest

MEM_MIB = 200
CPU_SECONDS = 3
HOLD_SECONDS = 5
# Appended before the stage's last line; the host's head/tail/sleep (PATH ends with the system's).
LOAD = f"""{{ head -c {MEM_MIB}M /dev/zero; sleep {HOLD_SECONDS}; }} | tail > /dev/null &
end=$((SECONDS + {CPU_SECONDS}))
while ((SECONDS < end)); do :; done
wait
"""


def make_hungry_lab(dest: Path, **options) -> tuple[Path, str]:
    """(the Lab, the id of its hungry stage-B job)."""
    lab = make_lab(dest, "quick", **options)
    (job,) = job_ids(lab, "stage-B-producer")
    make_writable(lab)
    meta = next(p for p in (lab / "revision").glob("*metadata-simulation*.json"))
    script = lab / json.loads(meta.read_text())["jobs"][job]["executables"]["main"]["path"]
    lines = script.read_text().rstrip("\n").split("\n")
    script.write_text("\n".join([*lines[:-1], LOAD.rstrip("\n"), lines[-1]]) + "\n")
    rewrite_manifest(lab)
    return lab, job
