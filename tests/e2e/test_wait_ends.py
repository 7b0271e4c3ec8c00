"""`repx-tui run --wait` with the real local agent ends when nothing more can happen: the agent is
killed (kill -9, its whole process group) while the producers run and the rest of the run is
queued; the producers still finish (their executors live on), the queued jobs never run, and
--wait exits 1 naming them instead of waiting forever."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.test_agent_dead import REPO, AgentFiles, GatedLab, kill_agent, wait_running
from tests.e2e.test_run_agent import write_config
from tests.helpers import wait_until

DEADLINE = 60  # a bound on the whole `run --wait`, not a pause: it returns as soon as it decides


@pytest.fixture
def gated(tmp_path):
    lab = GatedLab(tmp_path)
    yield lab
    lab.gate.touch()  # a failed test leaves no job waiting


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "lines"])
def test_run_wait_ends_with_exit_1_naming_the_jobs_a_dead_agent_left_queued(tmp_path, gated, as_json):
    base = tmp_path / "store"
    config = write_config(tmp_path / "config.toml", "local", base)
    files = AgentFiles(base, gated.lab)
    argv = [sys.executable, "-m", "repx_tui", "run", "simulation", "--lab", str(gated.dir)]
    argv += ["--target", "local", "--headless", "--wait", *(["--json"] if as_json else [])]
    waiting = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "REPX_CONFIG": str(config)},
    )
    try:
        wait_running(gated, files)
        kill_agent(files, whole_group=True)
        # with no agent left nothing changes these records: what is queued now stays queued
        queued = {j for j, state in files.states().items() if state == "queued"}
        running = {j for j, state in files.states().items() if state == "running"}
        gated.gate.touch()  # the producers' executors outlive the agent and finish
        wait_until(
            lambda: all((base / "outputs" / j / "repx" / "SUCCESS").exists() for j in running),
            timeout=DEADLINE,
            message="the running jobs succeeded",
        )
        out, err = waiting.communicate(timeout=DEADLINE)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 1, out + err
    consumers = {j for j in gated.lab.runs["simulation"].jobs if "stage-C-consumer" in j}
    assert set(gated.producers) <= running and consumers and consumers <= queued
    assert {files.states()[j] for j in queued} == {"queued"}  # nothing ran them meanwhile
    assert "Traceback" not in err
    why = "never ran: no agent is running; `repx-tui run` starts one that resumes the queue"
    if as_json:
        answer = json.loads(out.strip().splitlines()[-1])
        assert set(answer["failed"]) == queued
        assert {f["job"]: (f["state"], f["why"]) for f in answer["failures"]} == dict.fromkeys(queued, ("queued", why))
    else:
        lines = err.splitlines()
        head = lines.index(
            f"{len(queued)} of {len(gated.lab.runs['simulation'].jobs)} jobs did not succeed; nothing more will run:"
        )
        assert sorted(lines[head + 1 :]) == sorted(f"  {job}: {why}" for job in queued)
