"""The Sync view's model: a layer waiting for an upload slot is waiting (not sent at 0 %), its rate
counts from its first bytes, and one overall rate and the bytes left give the ETA."""

from __future__ import annotations

from repx_tui.backend.events import LayerAction, LayerProgress, Phase, PhaseDone, PhaseProgress, PhaseStarted
from repx_tui.ui.model import SyncModel

MIB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def layer(digest: str, sent: int, action: LayerAction = LayerAction.TRANSFERRED, done: bool = False) -> LayerProgress:
    return LayerProgress("img", digest * 64, 4 * MIB, sent, action, done)


def test_waiting_layers_rates_and_eta():
    clock = Clock()
    model = SyncModel(clock=clock)
    model.apply(PhaseStarted(Phase.HOST_TOOLS))
    model.apply(PhaseDone(Phase.HOST_TOOLS))
    model.apply(PhaseStarted(Phase.IMAGES, total_bytes=12 * MIB))
    model.apply(layer("a", 0, LayerAction.REUSED, done=True))
    model.apply(layer("b", 0))
    model.apply(layer("c", 0))
    rows = {row.digest[0]: row for row in model.layers.values()}
    assert rows["b"].waiting and rows["c"].waiting and not rows["a"].waiting
    clock.now = 10.0  # b waited 10 s for a slot: not part of its rate
    model.apply(layer("b", 1 * MIB))
    clock.now = 11.0
    model.apply(layer("b", 3 * MIB))
    assert not rows["b"].waiting and rows["b"].rate == 2 * MIB
    totals = model.totals()
    assert (totals["sent"], totals["to_send"], totals["reused"]) == (3 * MIB, 8 * MIB, 4 * MIB)
    sent, rate, left = model.overall()
    assert sent == 3 * MIB and rate == 3 * MIB / 11.0 and left == 5 * MIB
    model.apply(layer("b", 4 * MIB, done=True))
    model.apply(layer("c", 4 * MIB, done=True))
    model.apply(PhaseStarted(Phase.LAB))
    model.apply(PhaseProgress(Phase.LAB, bytes_done=MIB))
    clock.now = 16.0
    model.apply(PhaseDone(Phase.LAB, bytes_sent=MIB))
    model.apply(PhaseDone(Phase.IMAGES, bytes_sent=8 * MIB))
    clock.now = 100.0  # ended at 16 s: the rate no longer falls, nothing is left
    assert model.overall() == (9 * MIB, 9 * MIB / 16.0, 0)
    model.outcome = (True, "done")
    model.reset()
    assert not model.layers and model.outcome is None and model.overall() == (0, None, 0)
    assert all(row.state == "waiting" for row in model.phases.values())


def test_the_totals_line_of_a_lab_without_images_says_what_was_sent():
    """No layers: not "0 layers ↑ 0 Bytes of 0 Bytes sent" beside a rate of what the Lab phase sent."""
    from repx_tui.ui.screens.sync import totals_line

    clock = Clock()
    model = SyncModel(clock=clock)
    model.apply(PhaseStarted(Phase.LAB))
    clock.now = 2.0
    model.apply(PhaseDone(Phase.LAB, bytes_sent=4 * MIB))
    model.apply(PhaseDone(Phase.IMAGES))
    text = totals_line(model).plain
    assert "0 layers" not in text and "0 Bytes of" not in text, text
    assert "no image layers" in text and "4.0 MiB sent" in text and "2.0 MiB/s overall" in text, text
