"""The sync view says what compression bought: bytes on the wire beside the bytes of content, and
the ratio (issue 15); a phase sent as it is says nothing more."""

from __future__ import annotations

from repx_tui.backend.events import Phase, PhaseDone, PhaseProgress, PhaseStarted
from tests.helpers import async_wait_until
from tests.ui.fixed import fixed_app

MIB = 1 << 20


def _phases_text(app) -> str:
    table = app.screen.query_one("#phases").content  # the rich Table the screen updated it with
    return " ".join(str(cell) for column in table.columns for cell in column.cells)


async def test_the_sync_view_shows_wire_bytes_and_the_ratio_of_a_compressed_phase():
    app = fixed_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2")
        for event in (
            PhaseStarted(Phase.LAB),
            PhaseDone(
                Phase.LAB, files_sent=40, bytes_sent=6 * MIB, seconds=1.0, wire_bytes=2 * MIB, compression="zstd-6"
            ),
            PhaseStarted(Phase.IMAGES, total_bytes=100 * MIB),
            PhaseProgress(Phase.IMAGES, bytes_done=40 * MIB, total_bytes=100 * MIB, wire_bytes=16 * MIB),
        ):
            app.controller.feed(event)
        await async_wait_until(lambda: "16.0 MiB on the wire" in _phases_text(app), timeout=5)
        text = _phases_text(app)
        assert "2.0 MiB on the wire (3.0:1, zstd-6)" in text  # the Lab: content 6 MiB, 2 on the wire
        assert "40.0 MiB sent of 100.0 MiB" in text and "16.0 MiB on the wire (2.5:1)" in text


async def test_a_phase_sent_as_it_is_shows_no_wire_line():
    app = fixed_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2")
        app.controller.feed(PhaseStarted(Phase.LAB))
        app.controller.feed(
            PhaseDone(
                Phase.LAB,
                files_sent=3,
                bytes_sent=MIB,
                seconds=0.2,
                wire_bytes=MIB,
                compression="off",
                detail="3 files changed",
            )
        )
        await async_wait_until(lambda: "3 files changed" in _phases_text(app), timeout=5)
        assert "on the wire" not in _phases_text(app)


async def test_the_submit_phase_counts_the_jobs_settled_so_far():
    """A big batch's answers stream (schedulers/slurm.py STREAM_FROM): its row says how far it got."""
    app = fixed_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2")
        app.controller.feed(PhaseStarted(Phase.SUBMIT, detail="1008 jobs via slurm", total_files=1008))
        app.controller.feed(PhaseProgress(Phase.SUBMIT, bytes_done=0, files_done=412, total_files=1008))
        await async_wait_until(lambda: "412 of 1008 jobs" in _phases_text(app), timeout=5)
        app.controller.feed(PhaseDone(Phase.SUBMIT, files_sent=1008, seconds=3.2, detail="1008 submitted, 0 skipped"))
        await async_wait_until(lambda: "1008 submitted" in _phases_text(app), timeout=5)
        assert "of 1008 jobs" not in _phases_text(app)  # done: the count gives way to the outcome
