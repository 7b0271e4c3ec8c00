"""Switching target and Lab without leaving the app, over the REAL sshd and the local target:
each target keeps its one session (one login, however often the user switches back), and the
table shows the states of the target and Lab picked, never the previous one's."""

from __future__ import annotations

import uuid

import pytest

from repx_tui.backend.config import load_config
from repx_tui.backend.events import JobStateKind
from repx_tui.ui.app import RepxApp
from repx_tui.ui.screens.labpicker import LabPickerScreen
from repx_tui.ui.screens.rundialog import RunScreen
from tests.helpers import async_wait_until
from tests.labgen import make_lab
from tests.ui.conftest import write_config
from tests.ui.helpers import Recorder

pytestmark = [pytest.mark.sshd, pytest.mark.timeout(300)]


async def pick(app, pilot, name: str) -> None:
    await pilot.press("1")
    table = app.screen.query_one("#targets")
    table.move_cursor(row=table.get_row_index(name))
    await pilot.press("enter")
    await async_wait_until(lambda: app.current_mode == "jobs" and app.controller.target.name == name, timeout=10)


async def test_switching_keeps_one_login_per_target_and_shows_each_targets_states(sshd_target, tmp_path, monkeypatch):
    monkeypatch.setenv("REPX_SSH_CONFIG", sshd_target["ssh_config"])
    config = write_config(
        tmp_path / "config.toml", tmp_path / "store", sshd_target, f"/tmp/repx-ui-test/{uuid.uuid4().hex}"
    )
    monkeypatch.setenv("REPX_CONFIG", str(config))
    first = make_lab(tmp_path / "first", "quick")
    second = make_lab(tmp_path / "second", "quick", runs=["simulation"], log_lines=1)  # another Lab id
    work = tmp_path / "work"
    work.mkdir()
    (work / "result").symlink_to(second)
    monkeypatch.chdir(work)
    record = Recorder()
    app = RepxApp(load_config(), lab_path=str(first))
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        await async_wait_until(lambda: len(app.targets_model.health) == 2, timeout=60, message="health")
        await pick(app, pilot, "cluster")
        await async_wait_until(lambda: app.controller.lab is not None, timeout=30)
        simulation = set(app.controller.lab.runs["simulation"].jobs)

        def simulation_is(*kinds: JobStateKind) -> bool:
            return all(app.jobs_model.jobs[j].state.state in kinds for j in simulation)

        app.controller.run(["simulation"])
        await async_wait_until(lambda: simulation_is(JobStateKind.SUCCEEDED), timeout=120,
                               message=f"simulation on cluster {record.failures()}")  # fmt: skip
        cluster = app.controller._sessions["cluster"]
        assert cluster.transport.authentications == 1

        await pick(app, pilot, "local")  # nothing ran here: its own states, not the cluster's
        await async_wait_until(
            lambda: simulation_is(JobStateKind.PENDING, JobStateKind.BLOCKED), timeout=30, message="local states"
        )
        await pick(app, pilot, "cluster")  # back: every state reported again, on the same connection
        await async_wait_until(lambda: simulation_is(JobStateKind.SUCCEEDED), timeout=30, message="cluster again")
        assert app.controller._sessions["cluster"] is cluster and cluster.transport.authentications == 1

        await pilot.press("L")  # another Lab, same target and connection
        await async_wait_until(lambda: isinstance(app.screen, LabPickerScreen), timeout=5)
        await pilot.press("enter")
        await async_wait_until(lambda: isinstance(app.screen, RunScreen), timeout=30, message="Lab read")
        await pilot.press("escape")  # just look at its jobs
        lab = app.controller.lab
        assert lab.source.parent == work and set(app.jobs_model.jobs) == set(lab.jobs)
        await async_wait_until(lambda: all(i.state.state != JobStateKind.UNKNOWN for i in app.jobs_model.jobs.values()),
                               timeout=30, message="the new Lab's states on cluster")  # fmt: skip
        assert app.controller._sessions["cluster"] is cluster and cluster.transport.authentications == 1
        assert not record.failures()
        await pilot.press("q")
