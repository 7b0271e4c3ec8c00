"""The submit phase's progress: AnswerReader turns each answer line into its event as it comes,
and counts the jobs settled so far; the headless renderer says it in jobs, not bytes."""

from __future__ import annotations

from repx_tui.backend.events import JobSkipped, JobSubmitted, Notice, Phase, PhaseProgress
from repx_tui.backend.schedulers import AnswerReader
from repx_tui.headless.render import describe


def test_each_answer_line_is_its_event_at_once_and_the_count_ends_at_the_total():
    seen: list = []
    reader = AnswerReader(seen.append, total=3)
    reader.line("a\t101\n")
    assert isinstance(seen[0], JobSubmitted) and seen[0].slurm_id == "101"  # before the batch is over
    reader.line("b\tSKIPPED\talready succeeded\n")
    reader.line("c\tERROR\tupstream a was not submitted\n")
    reader.line("noise without a tab\n")
    result = reader.result()
    assert result.submitted == (("a", "101"),) and result.skipped == (("b", "already succeeded"),)
    assert result.errors == (("c", "upstream a was not submitted"),)
    assert [type(e) for e in seen if not isinstance(e, PhaseProgress)] == [JobSubmitted, JobSkipped, Notice]
    counts = [e.files_done for e in seen if isinstance(e, PhaseProgress)]
    assert counts[0] == 1 and counts[-1] == 3 and counts == sorted(counts)  # throttled, always ends at the total


def test_without_a_total_there_is_no_progress_event():
    seen: list = []
    reader = AnswerReader(seen.append)
    reader.line("a\tQUEUED\n")
    reader.result()
    assert [type(e) for e in seen] == [JobSubmitted] and seen[0].slurm_id is None


def test_the_headless_line_counts_jobs():
    assert describe(PhaseProgress(Phase.SUBMIT, bytes_done=0, files_done=412, total_files=1008)) == (
        "[submit] 412 of 1008 jobs"
    )
