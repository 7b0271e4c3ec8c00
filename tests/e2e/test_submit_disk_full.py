"""submit.sh on a target whose disk (or quota) fills up just before its sbatch loop, with the real
SLURM: no job may reach sbatch without a place for its id, so nothing is queued unrecorded, and
once there is room again a rerun submits every job exactly once."""

from __future__ import annotations

import gzip
import io
import os
import secrets
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.bedtargets import queued_ids_by_name

REPO = Path(__file__).resolve().parents[2]
SUBMIT = REPO / "repx_tui" / "backend" / "remote" / "submit.sh"

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (root only)"),
]

# The host tools' xargs: does its work, then, once (while @ARMED@ exists), fills the disk after the
# batch's last pass before the sbatch loop (the `xargs -0 rm -f` of old FAIL markers).
XARGS = r"""#!/bin/bash
/usr/bin/xargs "$@"
status=$?
if [ "$2" = rm ] && rm @ARMED@ 2>/dev/null; then dd if=/dev/zero of=@DISK@/filler bs=4k 2>/dev/null; fi
exit "$status"
"""


def batch(names: list[str], partition: str) -> bytes:
    """jobs.tsv (the last job depends on the first) and one held sbatch script per job."""
    rows = [f"{name}\t-\t\n" for name in names[:-1]] + [f"{names[-1]}\t-\t{names[0]}\n"]
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as packed, tarfile.open(fileobj=packed, mode="w") as tar:
        for member, text in [("jobs.tsv", "".join(rows))] + [
            (
                f"{name}.sbatch",
                f"#!/bin/sh\n#SBATCH --job-name={name}\n#SBATCH --hold\n#SBATCH -p {partition}\n"
                "#SBATCH --time=5\n#SBATCH --mem=64M\n#SBATCH -o /dev/null\ntrue\n",
            )
            for name in names
        ]:
            info = tarfile.TarInfo(member)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


def recorded(base: Path) -> list[str]:
    return [line for path in (base / "submissions").glob("*/*.json") for line in path.read_text().splitlines()]


def test_a_full_disk_before_the_loop_submits_nothing_and_a_rerun_submits_each_job_once(tmp_path, slurm_available):
    disk = tmp_path / "small"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    tools = tmp_path / "tools"
    tools.mkdir()
    armed = tmp_path / "armed"
    armed.touch()
    (tools / "xargs").write_text(XARGS.replace("@DISK@", str(disk)).replace("@ARMED@", str(armed)))
    (tools / "xargs").chmod(0o755)
    base = disk / "base"
    names = [f"repx-full-{secrets.token_hex(3)}-{i}" for i in range(5)]
    archive = batch(names, slurm_available["partition"])
    submit = ["bash", str(SUBMIT), str(tools), str(base), "lab-full"]
    try:
        full = subprocess.run(submit, input=archive, capture_output=True, timeout=60)
        assert full.returncode != 0, full.stdout.decode()
        assert queued_ids_by_name(names) == {}, "a job reached sbatch with no place left for its id"
        assert not armed.exists()  # the disk was full from before the loop on
        (disk / "filler").unlink()
        again = subprocess.run(submit, input=archive, capture_output=True, timeout=60)
        assert again.returncode == 0, again.stderr.decode()
        found = queued_ids_by_name(names)
        assert sorted(found) == sorted(names) and all(len(ids) == 1 for ids in found.values()), found
        assert len(recorded(base)) == len(names)
    finally:
        stray = [sid for ids in queued_ids_by_name(names).values() for sid in ids]
        if stray:
            subprocess.run(["scancel", *stray], capture_output=True)
        subprocess.run(["umount", str(disk)], capture_output=True)
