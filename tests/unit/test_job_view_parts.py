"""The pure parts behind the Jobs screen's new views: `/` filter terms, the saved view per
target, run progress (throughput, ETA), the table's columns with efficiency, units parsing."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from repx_tui.backend.events import Efficiency, JobState
from repx_tui.backend.events import JobStateKind as K
from repx_tui.backend.inspection import parse_units
from repx_tui.backend.status.progress import run_progress
from repx_tui.backend.status.slurm import SEP
from repx_tui.ui.jobcolumns import layout_columns
from repx_tui.ui.jobfilter import SavedView, compile_terms, load_view, parse_filter, save_view
from repx_tui.ui.model import JobInfo


def info(job: str, run: str, kind: K, node: str | None = None, **params) -> JobInfo:
    return JobInfo(job, job.split("-", 1)[1], run, "simple", 0, JobState(job, run, kind, node=node), dict(params))


JOBS = [
    info("h1-stage-A", "simulation", K.SUCCEEDED, "n01", alpha=0.5, mode="fast"),
    info("h2-stage-A", "simulation", K.FAILED, "n02", alpha=1, mode="slow"),
    info("h3-stage-B", "simulation", K.OUT_OF_MEMORY, "n02", alpha=0.5, path="/nix/store/abc-in"),
    info("h4-report", "analysis", K.TIMEOUT, "gpu1"),
    info("h5-report", "analysis", K.QUEUED),
]


def shown(text: str) -> list[str]:
    matches = compile_terms(parse_filter(text), lambda i: f"{i.id}\0{i.name}\0{i.run}\0{i.stage}".lower())
    return [j.id for j in JOBS if matches is None or matches(j)]


def test_column_terms_and_parameters_are_anded():
    assert shown("run:analysis") == ["h4-report", "h5-report"]
    assert shown("state:fail,oom") == ["h2-stage-A", "h3-stage-B"]  # alternatives; oom = out-of-memory
    assert shown("state:time") == ["h4-report"]
    assert shown("node:n02 run:sim") == ["h2-stage-A", "h3-stage-B"]
    assert shown("alpha=0.5") == ["h1-stage-A", "h3-stage-B"]  # numbers compare as JSON text
    assert shown("alpha=1 mode=slow") == ["h2-stage-A"]
    assert shown("path=*abc-in") == ["h3-stage-B"]  # a glob
    assert shown("!state:succeeded run:simulation") == ["h2-stage-A", "h3-stage-B"]
    assert shown("stage-a") == ["h1-stage-A", "h2-stage-A"]  # plain text as before
    assert shown("'stage-B'") == ["h3-stage-B"]
    assert shown("") == [j.id for j in JOBS] and shown("missing=1") == []
    assert shown("STATE:Out") == ["h3-stage-B"]  # column names and states in any case


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=40))
def test_any_filter_text_parses_and_filters_without_error(text):
    assert set(shown(text)) <= {j.id for j in JOBS}


def test_views_are_saved_per_target_whole_and_survive_a_bad_file(tmp_path):
    path = tmp_path / "repx" / "tui-filters.json"
    save_view("cluster", SavedView("run:sim state:fail", "failed", True), path)
    save_view("local", SavedView("x", "all", False), path)
    assert load_view("cluster", path) == SavedView("run:sim state:fail", "failed", True)
    assert load_view("local", path).text == "x" and load_view("nowhere", path) == SavedView()
    assert sorted(p.name for p in path.parent.iterdir()) == ["tui-filters.json"]  # no temp file left
    path.write_text("{not json")
    assert load_view("cluster", path) == SavedView()
    save_view("cluster", SavedView("y"), path)  # a broken file is replaced, not an error
    assert json.loads(path.read_text())["cluster"]["text"] == "y"


def finished(job: str, start: float, end: float, kind: K = K.SUCCEEDED) -> JobState:
    return JobState(job, "r", kind, efficiency=Efficiency(start_epoch=start, end_epoch=end))


def test_throughput_from_slurm_times_and_eta_for_what_can_still_run():
    states = [finished("a", 1000, 1060), finished("b", 1000, 1120), finished("c", 1030, 1180, K.FAILED),
              JobState("d", "r", K.RUNNING), JobState("e", "r", K.QUEUED),
              JobState("f", "r", K.BLOCKED, reason="upstream failed: c")]  # fmt: skip
    progress = run_progress("r", states, {}, None, now=5000)
    assert progress.finished == 3 and progress.remaining == 2 and progress.basis == "sacct"
    assert progress.rate_per_min == 3 / 180 * 60  # 3 jobs between the first start and the last end
    assert progress.eta_seconds == 2 / progress.rate_per_min * 60


def test_throughput_from_jobs_seen_finishing_and_no_eta_when_idle():
    states = [JobState("a", "r", K.SUCCEEDED), JobState("b", "r", K.SUCCEEDED), JobState("c", "r", K.RUNNING)]
    seen = run_progress("r", states, {"a": 130.0}, watch_started=100.0, now=160.0)
    assert seen.basis == "seen" and seen.rate_per_min == 1.0 and seen.eta_seconds == 60.0
    none_yet = run_progress("r", states, {}, watch_started=100.0, now=160.0)
    assert none_yet.rate_per_min is None and none_yet.eta_seconds is None
    done = run_progress("r", states[:2], {"a": 130.0}, 100.0, 160.0)
    assert done.remaining == 0 and done.eta_seconds is None


def test_columns_without_efficiency_are_as_before_and_efficiency_fits_at_80():
    # what the screen laid out before efficiency existed (checked against it for widths 40-259)
    assert [c.key for c in layout_columns(100, tree=True)] == [
        "sel",
        "job",
        "state",
        "slurm",
        "elapsed",
        "node",
        "reason",
    ]
    assert [c.key for c in layout_columns(140, tree=True)][:3] == ["sel", "job", "stage"]
    for width in (80, 100, 120, 200):
        for tree in (True, False):
            columns = layout_columns(width, tree, efficiency=True)
            keys = [c.key for c in columns]
            assert {"cpu", "mem", "tlim", "job", "state", "reason"} <= set(keys)
            assert sum(c.width for c in columns) + len(columns) - 1 <= width
    assert "node" not in [c.key for c in layout_columns(80, True, efficiency=True)]  # given up for room
    assert "node" in [c.key for c in layout_columns(160, True, efficiency=True)]


def test_units_of_a_scatter_gather_job_from_the_one_round_trip():
    root = "/b/outputs/j"
    lines = [
        f"F{SEP}{root}/repx/stdout.log{SEP}", f"F{SEP}{root}/repx/job-spec.json{SEP}",
        f"F{SEP}{root}/scatter/repx/SUCCESS{SEP}", f"F{SEP}{root}/scatter/repx/exit_code{SEP}0",
        f"F{SEP}{root}/branch-10/step-sq/repx/FAIL{SEP}", f"F{SEP}{root}/branch-10/step-sq/repx/exit_code{SEP}137",
        f"F{SEP}{root}/branch-2/step-sq/repx/stderr.log{SEP}",
        f"S{SEP}{root}/repx/stdout.log{SEP}120{SEP}1700000100", f"S{SEP}{root}/repx/job-spec.json{SEP}9{SEP}1700000000",
        f"S{SEP}{root}/branch-2/step-sq/repx/stderr.log{SEP}7{SEP}1700000050",
        f"F{SEP}{root}/../evil/repx/SUCCESS{SEP}",
    ]  # fmt: skip
    units = {u.unit: u for u in parse_units("\n".join(lines), root)}
    assert list(units) == ["", "scatter", "branch-2/step-sq", "branch-10/step-sq"]  # run order, numeric
    assert units[""].state == "running" and units[""].stdout_bytes == 120 and units[""].started == 1700000000
    assert units["scatter"].state == "succeeded" and units["scatter"].exit_code == 0
    assert units["branch-10/step-sq"].state == "failed" and units["branch-10/step-sq"].exit_code == 137
    assert units["branch-2/step-sq"].state == "running" and units["branch-2/step-sq"].stderr_bytes == 7


def test_jobs_the_local_agent_blocked_behind_a_failure_get_no_eta_and_keep_their_reason():
    """The agent's own words ("upstream <job> failed"), not the DAG's: those jobs never run until a
    retry, so the overview gives no ETA for them, and a job reading another run is not said to be
    "waiting on run ..." (it is not waiting: it is blocked)."""
    from repx_tui.backend.status import AgentJob, RemoteSnapshot, StatusInputs, merge_states

    jobs, finals = ("a", "b", "c", "d"), {"r": ("c",)}  # d reads run r, whose final job is c
    snap = RemoteSnapshot(
        markers={"a": "SUCCESS", "b": "FAIL"}, exit_codes={"b": 3},
        agent={"a": AgentJob("succeeded"), "b": AgentJob("failed"), "c": AgentJob("blocked", reason="upstream b failed"),
               "d": AgentJob("blocked", reason="upstream c blocked")},
    )  # fmt: skip
    inputs = StatusInputs(
        jobs=jobs, deps={"a": (), "b": ("a",), "c": ("b",), "d": ("c",)}, run_of=dict.fromkeys(jobs, "r"),
        snapshot=snap, queue={}, acct={}, source_runs={"d": finals},
    )  # fmt: skip
    states = merge_states(inputs)
    assert states["d"].state is K.BLOCKED and states["d"].reason == "upstream c blocked", states["d"]
    progress = run_progress("r", states.values(), {"b": 130.0}, watch_started=100.0, now=160.0)
    assert progress.rate_per_min == 1.0  # b was seen finishing
    assert progress.remaining == 0 and progress.eta_seconds is None
