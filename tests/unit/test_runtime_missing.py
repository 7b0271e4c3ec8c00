"""A container runtime the target does not have is said before anything runs: by `targets
--check`, by a run (before the sync), and by a submission alone (the TUI's retry). This machine
is the target, with a PATH that has every program but podman and docker."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from repx_tui.backend.config import SchedulerConfig, Target
from repx_tui.backend.errors import SchedulerError
from repx_tui.backend.health import check_target
from repx_tui.backend.lab import Lab
from repx_tui.backend.session import TargetSession
from tests import labgen

ENGINES = ("podman", "docker")
MISSING = re.escape("1 job(s) would run in podman on here, but podman is not installed")


@pytest.fixture
def no_engines(tmp_path, monkeypatch) -> None:
    """PATH: one directory linking every program of the current PATH except podman and docker."""
    bin_dir = tmp_path / "bin-without-engines"
    bin_dir.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or not Path(directory).is_dir():
            continue
        for program in Path(directory).iterdir():
            link = bin_dir / program.name
            if program.name in ENGINES or link.exists() or not os.access(program, os.X_OK) or program.is_dir():
                continue
            link.symlink_to(program)
    monkeypatch.setenv("PATH", str(bin_dir))


def podman_target(base: Path) -> Target:
    return Target(name="here", base_path=str(base), default_scheduler="local", default_execution_type="podman",
                  local=SchedulerConfig(execution_types=("podman", "native")))  # fmt: skip


async def test_targets_check_names_the_missing_runtime(tmp_path, no_engines):
    health = await check_target(podman_target(tmp_path / "base"))
    (check,) = [c for c in health.checks if c.name == "runtime podman"]
    assert not check.ok and not health.ok
    assert check.detail == "podman is not installed (not on the PATH of a non-interactive login)"
    assert check.hint and check.hint.startswith("podman version")


async def test_run_and_a_submission_alone_refuse_before_anything_runs(tmp_path, no_engines):
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", image_layers=2)
    (producer,) = labgen.job_ids(lab_dir, "stage-B-producer")
    base = tmp_path / "base"
    async with TargetSession(podman_target(base), lab=Lab.load(lab_dir), scheduler="local") as session:
        with pytest.raises(SchedulerError, match=MISSING) as refused:
            await session.run([producer])
        assert "nothing was submitted" in refused.value.message
        assert not (base / "artifacts").exists()  # refused before the sync
        await session.sync()  # the Lab is there now, as for a retry
        with pytest.raises(SchedulerError, match=MISSING):
            await session.submit([producer])  # what the TUI's retry calls
    assert not (base / "outputs" / producer).exists()
