"""sacct's accounting fields -> Efficiency, attached to finished SLURM jobs by the merge, with the
OOM/TIMEOUT hint; and the watcher asks sacct once per finished job, never again."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from repx_tui.backend.events import JobStateKind as K
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.status import LabView, StatusWatcher
from repx_tui.backend.status.efficiency import efficiency_of, human_seconds, parse_duration, parse_size
from repx_tui.backend.status.merge import StatusInputs, merge_states
from repx_tui.backend.status.slurm import SACCT_COLUMNS, SEP, parse_sacct
from repx_tui.backend.status.snapshot import RemoteSnapshot, Submission
from repx_tui.backend.status.watcher import ASKS_FOR_A_PARTIAL_RECORD, PARTIAL_RECORD_PATIENCE_S
from repx_tui.backend.transport.base import CommandResult


def line(**fields: str) -> str:
    return SEP.join(fields.get(name, "") for name in SACCT_COLUMNS)


# What the test bed's sacct printed for a job that held 200M and burned 3 s of CPU (22.05).
REAL = "\n".join(
    [
        line(JobID="6643", JobName="job", State="COMPLETED", ExitCode="0:0", Elapsed="00:00:03", NodeList="localhost",
             TotalCPU="00:03.094", ReqMem="500M", AllocCPUS="1", Timelimit="00:05:00",
             Submit="2026-12-01T12:31:42", Start="2026-12-01T12:31:43", End="2026-12-01T12:31:46"),
        line(JobID="6643.batch", JobName="batch", State="COMPLETED", ExitCode="0:0", Elapsed="00:00:03",
             MaxRSS="221252K", NodeList="localhost", TotalCPU="00:03.094", AllocCPUS="1"),
    ]
)  # fmt: skip


def test_real_sacct_lines_give_cpu_memory_and_time_efficiency():
    entry = parse_sacct(REAL)["6643"]
    assert entry.max_rss == "221252K" and entry.req_mem == "500M" and entry.time_limit == "00:05:00"
    eff = efficiency_of(entry)
    assert eff.cpu_s is not None and abs(eff.cpu_s - 3.094) < 1e-9
    assert eff.cpu is not None and abs(eff.cpu - 3.094 / 3) < 1e-9  # CPU time / (elapsed x CPUs)
    assert eff.max_rss == 221252 * 1024 and eff.req_mem == 500 << 20
    assert eff.mem is not None and abs(eff.mem - 221252 / (500 * 1024)) < 1e-9
    assert eff.time == 3 / 300
    assert eff.end_epoch is not None and eff.start_epoch is not None and eff.end_epoch - eff.start_epoch == 3


def test_old_slurm_per_cpu_request_unlimited_time_and_no_sample():
    text = line(JobID="9", JobName="j", State="OUT_OF_MEMORY", ExitCode="0:125", Elapsed="1-00:00:00",
                TotalCPU="2-00:00:00", ReqMem="2000Mc", AllocCPUS="4", Timelimit="UNLIMITED")  # fmt: skip
    eff = efficiency_of(parse_sacct(text)["9"])
    assert eff.req_mem == 4 * 2000 << 20  # per CPU x allocated CPUs
    assert eff.cpu == 0.5 and eff.time is None and eff.mem is None  # no MaxRSS sample, no limit


def test_seven_column_lines_still_parse():
    text = SEP.join(["8", "j", "FAILED", "3:0", "00:00:01", "1G", "n1"])
    entry = parse_sacct(text)["8"]
    assert entry.exit_code == 3 and entry.max_rss == "1G" and entry.total_cpu == ""


@settings(deadline=None, max_examples=200)
@given(st.integers(0, 40), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))
def test_durations_round_trip(days, hours, minutes, seconds):
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    text = f"{days}-{hours:02d}:{minutes:02d}:{seconds:02d}" if days else f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    assert parse_duration(text) == total
    assert parse_duration(human_seconds(total)) == total


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=20))
def test_any_text_parses_to_a_number_or_none(text):
    for value in (parse_duration(text), parse_size(text, 2)):
        assert value is None or value >= 0


def snapshot_with(job: str, sid: str, marker: str | None = None) -> RemoteSnapshot:
    snap = RemoteSnapshot(user="me", submissions={job: Submission(job, sid)})
    if marker:
        snap.markers[job] = marker
    return snap


def merged(acct_text: str, marker: str | None, hint_for=None):
    inputs = StatusInputs(
        jobs=("a",), deps={}, run_of={"a": "r"}, snapshot=snapshot_with("a", "6643", marker), queue={},
        acct=parse_sacct(acct_text), hint_for=hint_for,
    )  # fmt: skip
    return merge_states(inputs)["a"]


def test_merge_attaches_efficiency_only_from_a_final_record():
    state = merged(REAL, "SUCCESS")
    assert state.state is K.SUCCEEDED and state.efficiency is not None and state.efficiency.max_rss == 221252 * 1024
    running = REAL.replace("COMPLETED", "RUNNING")
    assert merged(running, None).efficiency is None


def test_out_of_memory_and_timeout_carry_the_hint():
    asked: list = []

    def hint_for(state):
        asked.append(state.state)
        return f"raise it ({state.state.value})"

    oom = merged(REAL.replace("COMPLETED", "OUT_OF_MEMORY", 1), "FAIL", hint_for)
    assert oom.state is K.OUT_OF_MEMORY and oom.hint == "raise it (out-of-memory)"
    timeout = merged(REAL.replace("COMPLETED", "TIMEOUT", 1), None, hint_for)
    assert timeout.state is K.TIMEOUT and timeout.hint == "raise it (timeout)"
    ok = merged(REAL, "SUCCESS", hint_for)
    assert ok.hint is None and asked == [K.OUT_OF_MEMORY, K.TIMEOUT]


class CountingTransport:
    """Answers the marker scan, squeue and sacct like a target whose job finished; counts sacct calls."""

    def __init__(self) -> None:
        self.sacct_calls: list[list[str]] = []

    async def run_script(self, script, *args, **kwargs) -> CommandResult:
        out = f"U{SEP}me\nM{SEP}a{SEP}SUCCESS{SEP}0\nF{SEP}/b/submissions/lab/x.json\n"
        return CommandResult(0, out + '{"job": "a", "slurm_id": "6643"}\n', "")

    async def run(self, argv, **kwargs) -> CommandResult:
        if argv[0] == "sacct":
            self.sacct_calls.append(list(argv))
            return CommandResult(0, REAL, "")
        return CommandResult(0, "", "")  # squeue: the job left the queue


def test_sacct_is_asked_once_per_finished_job_then_cached():
    transport = CountingTransport()
    view = LabView("lab", ("a",), {"a": ()}, {"a": "r"}, {})
    watcher = StatusWatcher(transport, RemoteLayout("/b"), view, None, "slurm", lambda e: None)

    async def three_polls():
        for _ in range(3):
            await watcher.poll_once()

    asyncio.run(three_polls())
    assert len(transport.sacct_calls) == 1
    argv = transport.sacct_calls[0]
    assert argv[argv.index("-j") + 1] == "6643" and "TotalCPU" in argv[argv.index("-o") + 1]
    assert watcher.states["a"].efficiency is not None and watcher.states["a"].efficiency.cpus == 1


# What the bed's sacct printed for a job SLURM killed for its memory (JobAcctGatherParams=
# OverMemoryKill, no cgroups): FAILED with signal 9, the batch step CANCELLED, MaxRSS over ReqMem.
KILLED_FOR_MEMORY = "\n".join(
    [
        line(JobID="6643", JobName="job", State="FAILED", ExitCode="0:9", Elapsed="00:00:01", NodeList="localhost",
             ReqMem="100M", AllocCPUS="1", Timelimit="00:05:00"),
        line(JobID="6643.batch", JobName="batch", State="CANCELLED by 0", ExitCode="0:9", Elapsed="00:00:01",
             MaxRSS="323932K", NodeList="localhost", AllocCPUS="1"),
    ]
)  # fmt: skip


def test_a_job_slurm_killed_for_its_memory_is_out_of_memory_with_or_without_a_marker():
    for marker in (None, "FAIL"):
        state = merged(KILLED_FOR_MEMORY, marker, lambda s: "raise mem")
        assert state.state is K.OUT_OF_MEMORY and state.hint == "raise mem", marker
    # the same kill with a peak far under the request is something else (a user's kill -9)
    other = merged(KILLED_FOR_MEMORY.replace("323932K", "20000K"), None)
    assert other.state is K.FAILED
    # and a plain failure (exit 1, no signal) stays failed however much memory it used
    failed = merged(KILLED_FOR_MEMORY.replace("0:9", "1:0"), "FAIL")
    assert failed.state is K.FAILED and failed.exit_code == 1


class AnsweringTransport(CountingTransport):
    """sacct answers these texts in turn (the last one from then on); no marker on the target."""

    def __init__(self, *answers: str) -> None:
        super().__init__()
        self.answers = list(answers)

    async def run_script(self, script, *args, **kwargs) -> CommandResult:
        return CommandResult(
            0, f"U{SEP}me\nF{SEP}/b/submissions/lab/x.json\n" + '{"job": "a", "slurm_id": "6643"}\n', ""
        )

    async def run(self, argv, **kwargs) -> CommandResult:
        if argv[0] == "sacct":
            self.sacct_calls.append(list(argv))
            return CommandResult(0, self.answers[min(len(self.sacct_calls), len(self.answers)) - 1], "")
        return CommandResult(0, "", "")


def polled(transport: CountingTransport, polls: int, watcher: StatusWatcher | None = None) -> StatusWatcher:
    """A one-job SLURM watcher on `transport` (or the one given), after that many polls."""
    if watcher is None:
        view = LabView("lab", ("a",), {"a": ()}, {"a": "r"}, {})
        watcher = StatusWatcher(transport, RemoteLayout("/b"), view, None, "slurm", lambda e: None)

    async def run(w: StatusWatcher) -> None:
        for _ in range(polls):
            await w.poll_once()

    asyncio.run(run(watcher))
    return watcher


def test_a_partial_sacct_record_is_asked_again_until_it_is_complete():
    """Seen on the bed right after a job ended: the allocation named "allocation", ReqMem "16?",
    no Timelimit. Cached as it was, a job SLURM killed for its memory stayed `failed` for good."""
    partial = KILLED_FOR_MEMORY.replace("job", "allocation", 1).replace("100M", "16?").replace("00:05:00", "")
    transport = AnsweringTransport(partial, KILLED_FOR_MEMORY)
    watcher = polled(transport, 1)
    assert watcher.states["a"].state is K.FAILED  # what the partial record says, for now
    polled(transport, 3, watcher)
    assert watcher.states["a"].state is K.OUT_OF_MEMORY and len(transport.sacct_calls) == 2  # then cached


def test_a_short_job_without_usage_is_asked_once():
    """No MaxRSS at all (a job shorter than a memory sample) is complete unless killed by signal 9."""
    transport = AnsweringTransport(REAL.replace("221252K", ""))
    state = polled(transport, 3).states["a"]
    assert len(transport.sacct_calls) == 1 and state.efficiency is not None and state.efficiency.max_rss is None


def sacct_asks_for_a_partial_record(seconds_between_polls: float, polls: int = 12) -> int:
    """How often a watcher asks sacct for a record that stays partial, polling on a fake clock."""
    now = [0.0]
    transport = AnsweringTransport(KILLED_FOR_MEMORY.replace("00:05:00", ""))
    view = LabView("lab", ("a",), {"a": ()}, {"a": "r"}, {})
    watcher = StatusWatcher(transport, RemoteLayout("/b"), view, None, "slurm", lambda e: None, clock=lambda: now[0])

    async def run() -> None:
        for _ in range(polls):
            now[0] += seconds_between_polls
            await watcher.poll_once()

    asyncio.run(run())
    return len(transport.sacct_calls)


def test_a_record_that_stays_partial_is_taken_as_it_is_after_a_few_asks_over_a_minute():
    for step in (10.0, 30.0):  # seconds between polls
        # first answered at the first poll; taken once asked 4 times AND a minute after that
        asked = max(ASKS_FOR_A_PARTIAL_RECORD, int(PARTIAL_RECORD_PATIENCE_S // step) + 1)
        assert sacct_asks_for_a_partial_record(step) == asked < 12, step
