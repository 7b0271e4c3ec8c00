"""How much of a Lab a target has (session.presence, the sync's own probe: one round trip) and
what a run would do (session.plan_run: one status poll + that probe), on the real local target
and over the real sshd."""

from __future__ import annotations

import pytest

from repx_tui.backend.config import Target
from repx_tui.backend.events import JobStateKind, LabPresence, RunPlan
from repx_tui.backend.lab import Lab
from repx_tui.backend.session import TargetSession
from tests import labgen
from tests.helpers import async_wait_until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["local", "ssh"])
def target(request, tmp_path) -> Target:
    base = str(tmp_path / "base")
    if request.param == "local":
        return Target(name="local", base_path=base, default_scheduler="local")
    sshd = request.getfixturevalue("sshd_target")
    request.getfixturevalue("monkeypatch").setenv("REPX_SSH_CONFIG", sshd["ssh_config"])
    return Target(name="e2e", address=sshd["alias"], base_path=base, default_scheduler="local")


@pytest.fixture(scope="module")
def labs(tmp_path_factory) -> tuple[Lab, Lab]:
    """Two Labs of two layers that differ in their last layer only."""
    root = tmp_path_factory.mktemp("labs")
    first = labgen.make_lab(root / "a", "quick", image_layers=2, layer_size_kib=64)
    second = labgen.make_lab(root / "b", "quick", image_layers=2, layer_size_kib=64, layer_seed=7)
    return Lab.load(first), Lab.load(second)


def layers(lab: Lab) -> dict[str, int]:
    return {layer.digest: layer.size for image in lab.images.values() for layer in image.layers}


async def test_presence_says_what_is_there_in_one_round_trip(target, labs):
    first, second = labs
    events: list = []
    async with TargetSession(target, events.append, lab=first) as session:
        empty = await session.presence(first)
        assert (empty.current, empty.layers_there, empty.layers_total) == (False, 0, 2)
        assert empty.bytes_to_send == sum(layers(first).values())
        await session.sync(first)
        synced = await session.presence(first)
        assert synced == LabPresence(target.name, first.lab_id, True, 2, 2, 0) and synced in events
        other = await session.presence(second)  # shares the first layer only
        new = {d: s for d, s in layers(second).items() if d not in layers(first)}
        assert (other.current, other.layers_there, other.bytes_to_send) == (False, 1, sum(new.values()))


async def test_plan_run_skips_done_jobs_and_says_what_is_sent(target, labs):
    first, _second = labs
    simulation = first.resolve(["simulation"])
    async with TargetSession(target, lab=first) as session:
        cold = await session.plan_run(simulation)
        assert isinstance(cold, RunPlan) and cold.submit == tuple(simulation) and not cold.skipped
        assert cold.lab_bytes > 0 and cold.presence.layers_there == 0
        await session.run(simulation)

        async def simulation_done() -> bool:
            states = await session.poll()
            return all(states[j].state.finished for j in simulation)

        await async_wait_until(simulation_done, timeout=120, interval=0.5, message="simulation finished")
        everything = first.resolve(["simulation", "analysis"])
        warm = await session.plan_run(everything)
        assert {job for job, _state in warm.skipped} == set(simulation)
        assert all(state == JobStateKind.SUCCEEDED.value for _job, state in warm.skipped)
        assert warm.submit == tuple(j for j in everything if j not in simulation)
        assert warm.presence.current and warm.lab_bytes == 0 and not warm.missing_runs
