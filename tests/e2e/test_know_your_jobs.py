"""Efficiency, the inspector and pulling results, on the REAL single-node SLURM with slurmdbd
through the REAL sshd: a job that holds ~200 MiB and burns ~3 s of CPU gets real MaxRSS and
TotalCPU from sacct (asked once, then cached), `status --json` and `show --json` carry them with
the resources.toml rule that set its memory, and `pull` brings its outputs home laid out as on
the target (incrementally: a second pull sends nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from repx_tui.backend.config import load_config
from repx_tui.backend.events import JobState, JobStateKind
from repx_tui.backend.lab import Lab
from repx_tui.backend.resources import load_resources
from repx_tui.backend.session import TargetSession
from repx_tui.backend.status import parse_sacct, slurm_kind
from repx_tui.backend.status.efficiency import record_complete
from tests.helpers import async_wait_until
from tests.hungrylab import CPU_SECONDS, MEM_MIB, make_hungry_lab

pytestmark = [pytest.mark.slurm, pytest.mark.sshd, pytest.mark.timeout(300)]
REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20


@pytest.fixture
def cluster(tmp_path, monkeypatch, sshd_target, slurm_available):
    config = tmp_path / "config.toml"
    config.write_text(
        f'[targets.cluster]\naddress = "{sshd_target["alias"]}"\nbase_path = "{tmp_path / "store"}"\n'
        'default_scheduler = "slurm"\n[targets.cluster.slurm]\nexecution_types = ["native"]\n'
    )
    resources = tmp_path / "resources.toml"
    # --acctg-freq=1: SLURM samples memory every second (the bed's JobAcctGatherFrequency is 30 s,
    # longer than this job), the way a site's default sampling sees any job that runs long enough.
    # In a rule: the demo Lab's hints carry sbatch_opts of their own, which replace the defaults'.
    resources.write_text(
        f'[defaults]\npartition = "{slurm_available["partition"]}"\ncpus-per-task = 1\nmem = "300M"\n'
        'time = "00:05:00"\n[[rules]]\njob_id_glob = "*"\nsbatch_opts = ["--acctg-freq=1"]\n'
        '[[rules]]\njob_id_glob = "*stage-B-producer*"\nmem = "700M"\n'
    )
    env = {"REPX_CONFIG": str(config), "REPX_SSH_CONFIG": sshd_target["ssh_config"]}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ids: list[str] = []
    yield config, resources, env, ids
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True)


def cli(env: dict[str, str], *argv: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "repx_tui", *argv], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, **env}, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


class SacctCounter:
    """Counts the sacct commands a session's transport runs, which ids each asked for, and
    which ids were asked for again after sacct had already answered them as final."""

    def __init__(self, transport) -> None:
        self.calls: list[str] = []
        self.final: set[str] = set()
        self.asked_after_final: list[str] = []
        self._run = transport.run

        async def run(argv, **kwargs):
            if not (argv and argv[0] == "sacct"):
                return await self._run(argv, **kwargs)
            asked = argv[argv.index("-j") + 1]
            self.calls.append(asked)
            self.asked_after_final += [sid for sid in asked.split(",") if sid in self.final]
            result = await self._run(argv, **kwargs)
            for sid, entry in parse_sacct(result.stdout).items():
                done = slurm_kind(entry.state) not in (JobStateKind.RUNNING, JobStateKind.QUEUED, JobStateKind.UNKNOWN)
                if done and not entry.steps_open and record_complete(entry):
                    self.final.add(sid)
            return result

        transport.run = run


async def test_real_usage_from_sacct_the_inspector_and_an_incremental_pull(cluster, tmp_path):
    config_path, resources_path, env, ids = cluster
    lab_dir, hungry = make_hungry_lab(tmp_path / "lab")
    lab = Lab.load(lab_dir)
    target = load_config().target("cluster")
    async with TargetSession(target, lab=lab, scheduler="slurm") as session:
        result = await session.run(lab.resolve(["simulation"]), resources=load_resources(resources_path))
        ids.extend(sid for _job, sid in result.submitted if sid)
        sacct = SacctCounter(session.transport)
        simulation = set(lab.runs["simulation"].jobs)

        async def usage_known():
            states = await session.poll()
            done = all(states[j].state is JobStateKind.SUCCEEDED for j in simulation)
            return done and states[hungry].efficiency is not None and states[hungry].efficiency.max_rss

        await async_wait_until(usage_known, timeout=180, interval=1.0, message="simulation done, sacct final")
        eff = session.watcher().states[hungry].efficiency
        assert eff is not None and eff.max_rss is not None and eff.cpu_s is not None
        assert eff.max_rss >= MEM_MIB * 0.75 * MIB, eff  # the tail really held the data
        # the loop spun >= 2 s of wall time; a busy 2-core box may give it half of that (a job
        # that only sleeps shows ~0.05 s)
        assert eff.cpu_s >= (CPU_SECONDS - 1) / 2 and eff.cpus == 1, eff
        assert eff.req_mem == 700 * MIB and eff.time_limit_s == 300  # what the rule asked for
        assert eff.mem is not None and 0.2 < eff.mem < 1 and eff.cpu is not None and 0.1 < eff.cpu <= 1.05
        calls_before = len(sacct.calls)
        for _ in range(2):
            await session.poll()
        assert len(sacct.calls) == calls_before  # every job final and cached: no sacct at all
        # and no job was asked for again once sacct had given its complete final record (one that
        # had just left squeue may still be COMPLETING, or partial: that one is rightly asked again)
        assert sacct.asked_after_final == [] and set(ids) <= sacct.final
        assert session.transport.authentications == 1

    status = cli(env, "status", "--lab", str(lab_dir), "--target", "cluster", "--json")
    row = next(j for j in status["jobs"] if j["job"] == hungry)
    assert (
        row["efficiency"]["max_rss_bytes"] >= MEM_MIB * 0.75 * MIB and row["efficiency"]["req_mem_bytes"] == 700 * MIB
    )
    assert 0 < row["efficiency"]["cpu_efficiency"] <= 1.05 and row["efficiency"]["time_efficiency"] < 1

    shown = cli(env, "show", hungry, "--lab", str(lab_dir), "--target", "cluster", "--resources",
                str(resources_path), "--json")  # fmt: skip
    mem = next(r for r in shown["resources"] if r["key"] == "mem")
    assert (mem["value"], mem["kind"], mem["rule"]) == ("700M", "rule", 2)
    assert str(resources_path) in mem["source"] and "job_id_glob = '*stage-B-producer*'" in mem["source"]
    time_value = next(r for r in shown["resources"] if r["key"] == "time")
    assert (time_value["value"], time_value["kind"]) == ("00:05:00", "default")
    assert shown["state"]["state"] == "succeeded" and shown["slurm_ids"] and shown["start"] and shown["end"]
    assert shown["out_path"] == str(tmp_path / "store" / "outputs" / hungry / "out")
    assert [u["unit"] for u in shown["units"]] == [""] and shown["units"][0]["state"] == "succeeded"
    assert shown["downstream"] and set(shown["downstream"]) <= set(lab.jobs)

    home = tmp_path / "home"
    first = cli(env, "pull", "simulation", "--lab", str(lab_dir), "--target", "cluster", "--to", str(home), "--json")
    assert first["counts"] == {"pulled": len(lab.runs["simulation"].jobs)} and first["files"] > 0
    assert (home / "outputs" / hungry / "out" / "list_b.txt").read_text() == (
        tmp_path / "store" / "outputs" / hungry / "out" / "list_b.txt"
    ).read_text()
    assert (home / "outputs" / hungry / "repx" / "SUCCESS").exists()
    assert "done" in (home / "outputs" / hungry / "repx" / "stdout.log").read_text()
    assert_readable_like_repx_py(home, lab)
    again = cli(env, "pull", "simulation", "--lab", str(lab_dir), "--target", "cluster", "--to", str(home), "--json")
    assert again["counts"] == {"unchanged": len(lab.runs["simulation"].jobs)} and again["files"] == 0


def assert_readable_like_repx_py(home: Path, lab: Lab) -> None:
    """What upstream's repx-py does with a Lab dir and a results dir (its reader, restated): the
    first lab/*.json names the root metadata, whose runs list the run metadata, whose jobs have
    outputs `$out/<file>` found at <results>/<job>/out/<file>."""
    lab_root = home / "artifacts"
    (manifest,) = (lab_root / "lab").glob("*.json")
    root = json.loads((lab_root / json.loads(manifest.read_text())["metadata"]).read_text())
    jobs = {}
    for run_path in root["runs"]:
        jobs.update(json.loads((lab_root / run_path).read_text())["jobs"])
    assert set(lab.runs["simulation"].jobs) <= set(jobs)
    for job in lab.runs["simulation"].jobs:
        executables = jobs[job]["executables"]
        outputs = (executables.get("main") or executables["gather"])["outputs"]
        for template in outputs.values():
            if isinstance(template, str) and template.startswith("$out/"):
                assert (home / "outputs" / job / "out" / template[len("$out/") :]).exists(), (job, template)


def test_pull_refuses_a_destination_that_is_a_file_before_connecting(cluster, tmp_path):
    _config, _resources, env, _ids = cluster
    lab_dir = make_hungry_lab(tmp_path / "lab")[0]
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    result = subprocess.run([sys.executable, "-m", "repx_tui", "pull", "--lab", str(lab_dir), "--target", "cluster",
                             "--to", str(blocker)], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, **env, "REPX_SSH_CONFIG": "/nonexistent"}, timeout=60)  # fmt: skip
    assert result.returncode == 1 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "exists and is not a directory" in result.stderr.splitlines()[0] and blocker.read_text() == "x"


async def run_until(
    cluster, lab_dir: Path, job: str, reached: Callable[[JobState], JobState | None], **wait: Any
) -> JobState:
    """Run one job of the Lab on `cluster` (its resources.toml) and poll until `reached` gives its state."""
    _config, resources_path, _env, ids = cluster
    lab = Lab.load(lab_dir)
    async with TargetSession(load_config().target("cluster"), lab=lab, scheduler="slurm") as session:
        result = await session.run([job], resources=load_resources(resources_path))
        ids.extend(sid for _job, sid in result.submitted if sid)

        async def polled() -> JobState | None:
            return reached((await session.poll())[job])

        return await async_wait_until(polled, **wait)


async def test_a_job_past_its_time_limit_is_a_timeout_with_a_hint_naming_the_rule(cluster, tmp_path):
    """SLURM's real TIMEOUT (a 1-minute limit from a rule, a job that sleeps longer): the state,
    time% near 100, and the hint that names that very rule and its file. Takes 1-2 minutes."""
    from tests.labgen import job_ids, make_lab

    _config, resources_path, env, _ids = cluster
    resources_path.write_text(
        resources_path.read_text() + '[[rules]]\njob_id_glob = "*stage-B-producer*"\ntime = "00:01:00"\n'
    )
    lab_dir = make_lab(tmp_path / "lab", "quick", sleep_seconds={"stage-B-producer": 240})
    (sleeper,) = job_ids(lab_dir, "stage-B-producer")

    def timed_out(state: JobState) -> JobState | None:
        return state if state.state is JobStateKind.TIMEOUT and state.efficiency else None

    state = await run_until(cluster, lab_dir, sleeper, timed_out, timeout=240, interval=3.0, message="SLURM's TIMEOUT")
    assert state.efficiency is not None and state.efficiency.time_limit_s == 60
    assert state.efficiency.time is not None and state.efficiency.time >= 0.95
    assert state.hint is not None and state.hint.startswith(
        "timed out (limit 00:01:00): raise time in the [[rules]] entry 3"
    )
    assert "job_id_glob = '*stage-B-producer*'" in state.hint and str(resources_path) in state.hint
    assert 'time = "00:02:00"' in state.hint
    status = cli(env, "status", "--lab", str(lab_dir), "--target", "cluster", "--resources", str(resources_path),
                 "--json")  # fmt: skip
    row = next(j for j in status["jobs"] if j["job"] == sleeper)
    assert row["state"] == "timeout" and row["hint"] == state.hint


async def test_a_job_past_its_memory_is_out_of_memory_with_a_hint_naming_the_rule(cluster, tmp_path):
    """SLURM's real memory enforcement (the bed: JobAcctGatherParams=OverMemoryKill, sampled every
    second): the hungry job gets a 100M rule, holds 200 MiB, is killed; the state is out of memory
    (sacct says FAILED, signal 9), and the hint names that very rule and its file."""
    _config, resources_path, env, _ids = cluster
    resources_path.write_text(
        resources_path.read_text() + '[[rules]]\njob_id_glob = "*stage-B-producer*"\nmem = "100M"\n'
    )
    lab_dir, hungry = make_hungry_lab(tmp_path / "lab")

    def killed(state: JobState) -> JobState | None:
        assert state.state is not JobStateKind.SUCCEEDED, "the job outlived its memory limit"
        return state if state.state is JobStateKind.OUT_OF_MEMORY and state.efficiency else None

    state = await run_until(
        cluster, lab_dir, hungry, killed, timeout=120, interval=1.0, message="killed for its memory"
    )
    assert state.efficiency is not None and state.efficiency.req_mem == 100 * MIB
    assert state.efficiency.max_rss is not None and state.efficiency.max_rss >= 95 * MIB
    assert state.hint is not None and state.hint.startswith("out of memory (peak ")
    assert "[[rules]] entry 3" in state.hint and "job_id_glob = '*stage-B-producer*'" in state.hint
    assert str(resources_path) in state.hint
    status = cli(env, "status", "--lab", str(lab_dir), "--target", "cluster", "--resources", str(resources_path),
                 "--json")  # fmt: skip
    row = next(j for j in status["jobs"] if j["job"] == hungry)
    assert row["state"] == "out-of-memory" and row["hint"] == state.hint
