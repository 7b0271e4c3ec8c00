"""Which units of a job have a log on the target: one `find`, in run order, nothing from out/."""

from __future__ import annotations

from pathlib import Path

from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.logs import list_log_units, log_path
from repx_tui.backend.transport.local import LocalTransport

JOB = "abc123-stage-D-sum-squares"


def write(root: Path, rel: str, text: str = "x\n") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


async def test_units_in_run_order_and_nothing_from_output_dirs(tmp_path):
    base = tmp_path / "base with space"
    job = base / "outputs" / JOB
    for rel in (
        "repx/stdout.log",
        "scatter/repx/stdout.log",
        "gather/repx/stderr.log",
        "branch-10/step-square/repx/stdout.log",
        "branch-2/step-square/repx/stdout.log",
        "branch-2/step-extract/repx/stderr.log",
        "branch-2/repx/work_item.json",
    ):
        write(job, rel)
    # a job's results may hold anything, also files named like logs
    for rel in (
        "out/repx/stdout.log",
        "scatter/out/repx/stdout.log",
        "branch-2/step-square/out/repx/stdout.log",
        "weird/repx/stdout.log",
        "branch-2/stdout.log",
    ):
        write(job, rel)
    layout = RemoteLayout(base=str(base))
    units = await list_log_units(LocalTransport(), layout, JOB)
    assert units == ["", "scatter", "branch-2/step-extract", "branch-2/step-square", "branch-10/step-square", "gather"]
    for unit in units:  # each unit names a log the follower can open
        assert Path(log_path(layout, JOB, "stdout", unit or None)).parent.is_dir()


async def test_no_units_before_the_job_ran(tmp_path):
    assert await list_log_units(LocalTransport(), RemoteLayout(base=str(tmp_path)), JOB) == []
