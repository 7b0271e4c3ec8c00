"""sbatch_opts may not set what repx-tui sets in every script (or sbatch's command line): not by
the option's name, not by an abbreviation sbatch accepts (getopt_long takes any unambiguous
prefix: --job=x is --job-name=x), not hidden in a group of single-letter options (-HJx is
-H -J x). Refused when resources.toml is loaded, when a Lab is loaded, and when a script is
built from Directives that reached it any other way. Hand-written resources.toml cases and the
CLI are in test_input_validation.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repx_tui.backend.errors import LabError, SchedulerError
from repx_tui.backend.lab import Lab
from repx_tui.backend.resources import Directives
from repx_tui.backend.schedulers.slurm import checked_directives
from repx_tui.backend.slurmvalues import sbatch_opt_error
from tests.labgen import edit_json, make_lab

# Long options repx-tui sets itself or that make sbatch do something other than queue the script.
RESERVED = ("job-name", "output", "error", "chdir", "dependency", "array", "wait", "wrap", "parsable", "test-only")
RESERVED_LETTERS = "JoeDdaW"  # -J -o -e -D -d -a -W
FLAGS = "HOQsv"  # sbatch's single-letter options without an argument (-k takes an optional one)
GOOD = [
    "--exclusive",
    "--qos=x",
    '--constraint="a b"',
    "--constraint=a b",
    "-N1",
    "-n4",
    "-Hv",
    "--mem-per-cpu=1G",
    "--wait-all-nodes=1",
    "--export=ALL",
    "--export=NONE",
    "--exp=ALL",
    "--hold",
    "--comment=--job-name=x",  # a value, not an option: it stays one quoted word
    "--acctg-freq=1",
    "--gres=gpu:1",
    "-A",
    "-pdebug",
    "-koff",  # -k's optional argument, attached
]
SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@st.composite
def reserved_long(draw: st.DrawFn) -> str:
    """A reserved long option, or any prefix of one, in any case, bare or with a value."""
    name = draw(st.sampled_from(RESERVED))
    prefix = name[: draw(st.integers(min_value=1, max_value=len(name)))]
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in prefix)
    value = draw(st.one_of(st.none(), st.text("abc/x-1:", max_size=8), st.just("two words")))
    return f"--{cased}" if value is None else f"--{cased}={value}"


@st.composite
def reserved_short(draw: st.DrawFn) -> str:
    """A reserved letter after any run of argument-less flags, with or without an argument."""
    flags = draw(st.text(FLAGS, max_size=4))
    letter = draw(st.sampled_from(RESERVED_LETTERS))
    return f"-{flags}{letter}{draw(st.text('x/1', max_size=4))}"


@SETTINGS
@given(option=st.one_of(reserved_long(), reserved_short()))
def test_every_spelling_of_a_reserved_option_is_refused_naming_it(option):
    problem = sbatch_opt_error(option)
    assert problem is not None, option
    named = problem.split(": ", 1)[1]  # after the quoted option itself
    assert any(f"--{name}" in named for name in RESERVED), problem
    assert "\n" not in problem


@pytest.mark.parametrize("option", GOOD)
def test_ordinary_options_stay_accepted(option):
    assert sbatch_opt_error(option) is None


@SETTINGS
@given(option=st.sampled_from(GOOD), index=st.integers(min_value=0, max_value=3))
def test_a_reserved_option_anywhere_in_the_list_is_refused_at_build_time(option, index):
    opts = [option] * 3
    opts.insert(index, "--job=x")
    with pytest.raises(SchedulerError) as info:
        checked_directives("j1", Directives(sbatch_opts=tuple(opts)))
    assert f"entry {index + 1}: " in info.value.message and "--job-name" in info.value.message
    assert checked_directives("j1", Directives(sbatch_opts=(option,))) != []


@pytest.mark.parametrize(
    "option, words",
    [
        ("--job-name=x", "repx-tui sets --job-name itself: the job table finds jobs by it"),
        ("-o/tmp/x", "-o is --output; repx-tui sets --output itself: log tailing reads the job's log there"),
        ("--depend=x", "--depend abbreviates --dependency"),
        ("-HJx", "-J is --job-name"),
        ("--wait", "--wait would hold the submission"),
        ("--array=1-3", "--array would queue the script as several tasks"),
        ("--test-only", "--test-only would queue nothing"),
        ("--wrap=echo hi", "--wrap would queue a command"),
        ("--parsable", "repx-tui sets --parsable itself"),
        ("-D/tmp", "-D is --chdir"),
        ("--clusters=other", "another cluster"),
        ("-Mother", "another cluster"),
        ("--usage", "queue nothing"),
    ],
)
def test_the_message_names_the_option_and_why(option, words):
    with pytest.raises(SchedulerError) as info:
        checked_directives("j1", Directives(sbatch_opts=(option,)))
    message = info.value.message
    assert message.startswith(f"job j1: sbatch_opts: entry 1: {option!r}: ") and words in message, message


def test_a_lab_hint_with_a_reserved_option_is_refused_at_load(tmp_path: Path):
    lab_dir = make_lab(tmp_path / "lab", "quick")
    metadata = lab_dir / "revision" / "metadata-simulation.json"
    job = sorted(json.loads(metadata.read_text())["jobs"])[0]
    hint = {"sbatch_opts": ["--exclusive", "--out=/tmp/x"]}
    edit_json(metadata, lambda doc: doc["jobs"][job].setdefault("resource_hints", {}).update(hint))
    with pytest.raises(LabError) as info:
        Lab.load(lab_dir)
    assert f"job {job}, resource_hints.sbatch_opts: entry 2: '--out=/tmp/x': " in info.value.message
    assert "--out abbreviates --output" in info.value.message
