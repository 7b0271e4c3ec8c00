"""`pull` on a local target with the real rsync: the tree laid out as on the target with the Lab's
metadata beside it, per-job progress, an unchanged re-pull transfers nothing, a job without
outputs is `missing`, a link in the local tree is never written through."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from repx_tui.backend.config import SchedulerConfig, Target
from repx_tui.backend.events import PullProgress, PullSummary
from repx_tui.backend.lab import Lab
from repx_tui.backend.session import TargetSession
from tests.labgen import make_lab


def fake_outputs(base: Path, jobs: list[str]) -> None:
    """What the executor leaves on the target for finished jobs (no job has to run)."""
    for n, job in enumerate(jobs):
        out, repx = base / "outputs" / job / "out", base / "outputs" / job / "repx"
        (out / "nested").mkdir(parents=True)
        repx.mkdir()
        (out / "result.txt").write_text(f"result {n}\n")
        (out / "nested" / "data.bin").write_bytes(bytes(range(256)) * (n + 1))
        (repx / "stdout.log").write_text("done\n")
        (repx / "SUCCESS").write_text("")


def pull(session: TargetSession, jobs: list[str], dest: Path, events: list) -> PullSummary:
    session.emit = events.append
    return asyncio.run(session.pull(jobs, dest))


def test_local_pull_is_laid_out_as_on_the_target_and_incremental(tmp_path):
    lab = Lab.load(make_lab(tmp_path / "lab", "quick"))
    jobs = sorted(lab.runs["simulation"].jobs)
    base = tmp_path / "store"
    fake_outputs(base, jobs[:-1])  # the last job has no outputs yet
    target = Target("local", str(base), default_scheduler="local", local=SchedulerConfig(("native",)))
    session = TargetSession(target, lab=lab, scheduler="local")
    dest = tmp_path / "home"
    events: list = []

    first = pull(session, jobs, dest, events)
    by_job = {r.job: r for r in first.jobs}
    assert {r.status for j, r in by_job.items() if j != jobs[-1]} == {"pulled"} and by_job[jobs[-1]].status == "missing"
    assert by_job[jobs[0]].files == 4 and by_job[jobs[0]].bytes == len("result 0\n") + 256 + len("done\n")
    done = [e for e in events if isinstance(e, PullProgress) and e.done]
    assert sorted(e.job for e in done) == sorted(jobs[:-1])
    for job in jobs[:-1]:
        for rel in ("out/result.txt", "out/nested/data.bin", "repx/stdout.log", "repx/SUCCESS"):
            assert (dest / "outputs" / job / rel).read_bytes() == (base / "outputs" / job / rel).read_bytes()
    manifest = json.loads((dest / "artifacts" / "lab" / f"{lab.lab_id}-lab-metadata.json").read_text())
    assert (dest / "artifacts" / manifest["metadata"]).is_file()  # the manifest's pointer resolves there

    events.clear()
    again = pull(session, jobs, dest, events)
    assert {r.status for r in again.jobs} == {"unchanged", "missing"} and again.bytes == 0

    # the target's out/nested is a directory; a link of the same name here is replaced, not followed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    nested = dest / "outputs" / jobs[0] / "out" / "nested"
    for child in nested.iterdir():
        child.unlink()
    nested.rmdir()
    nested.symlink_to(elsewhere)
    (base / "outputs" / jobs[0] / "out" / "nested" / "data.bin").write_bytes(b"changed")
    third = pull(session, jobs[:1], dest, events)
    assert third.jobs[0].status == "pulled" and not list(elsewhere.iterdir())
    assert not nested.is_symlink() and (nested / "data.bin").read_bytes() == b"changed"
