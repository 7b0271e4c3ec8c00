"""sbatch script headers: whatever the values, every `#SBATCH` line is exactly one option.

Values come from config.toml (base_path, in --output/--error), resources.toml and the Lab's
resource hints. resources.toml is checked at load (tests/unit/test_input_validation.py); Lab
hints and a base_path resolved on the target ("~") only reach sbatch_script, which checks too.
The real SLURM's reading of these headers is tested in tests/e2e/test_sbatch_values.py.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path

import pytest

from repx_tui.backend.errors import SchedulerError
from repx_tui.backend.lab import Lab
from repx_tui.backend.layout import RemoteLayout
from repx_tui.backend.resources import Directives, Resources
from repx_tui.backend.schedulers.deploy import DeployedHelpers
from repx_tui.backend.schedulers.slurm import job_directives, sbatch_script

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import labgen  # noqa: E402

JOB = "abc123-stage-A-producer-1.1"


def helpers(base: str) -> DeployedHelpers:
    return DeployedHelpers(dir=f"{base}/bin/abc", tools_bin=f"{base}/host-tools/h/bin")


def header_words(script: str) -> list[list[str]]:
    """The words of each #SBATCH line, split as sbatch's script parser does (quotes group)."""
    return [shlex.split(line[len("#SBATCH") :]) for line in script.splitlines() if line.startswith("#SBATCH")]


def script_for(directives: Directives, base: str = "/srv/base") -> str:
    return sbatch_script(JOB, {"job": JOB}, directives, RemoteLayout(base=base), helpers(base))


def test_base_path_with_a_space_and_percent_is_one_quoted_output_value():
    script = script_for(Directives(partition="debug"), base="/srv/my store %u")
    words = header_words(script)
    assert all(len(w) == 1 and w[0].startswith("--") for w in words), words
    log = f"/srv/my store %%u/outputs/{JOB}/repx/slurm-%j.out"  # %% is a literal % for SLURM
    assert [f"--output={log}"] in words and [f"--error={log}"] in words
    # the interpreter line cannot hold a path with a space; the host tools' bash is exec'd quoted
    assert script.splitlines()[0] == "#!/bin/sh"
    assert "exec '/srv/my store %u/host-tools/h/bin/bash' '/srv/my store %u/bin/abc/executor.sh'" in script


@pytest.mark.parametrize("base", ['/srv/a"b', "/srv/a\\b", "/srv/a\nb", "/srv/a\rb"])
def test_base_path_sbatch_cannot_hold_is_refused_naming_it(base):
    with pytest.raises(SchedulerError) as info:
        script_for(Directives(), base=base)
    assert "base_path" in info.value.message and repr(base + f"/outputs/{JOB}/repx/") in info.value.message
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    "directives, key",
    [
        (Directives(partition="debug --mem=1"), "partition"),
        (Directives(partition="debug\n#SBATCH --mem=1"), "partition"),
        (Directives(mem="1G --exclusive"), "mem"),
        (Directives(mem=4096), "mem"),  # type: ignore[arg-type]  (a Lab hint of the wrong type)
        (Directives(time="01:00:00 --exclusive"), "time"),
        (Directives(cpus_per_task="4 --exclusive"), "cpus-per-task"),  # type: ignore[arg-type]
        (Directives(sbatch_opts=("-p debug",)), "sbatch_opts"),
        (Directives(sbatch_opts=("--account=a\n--qos=b",)), "sbatch_opts"),
        (Directives(sbatch_opts=("exclusive",)), "sbatch_opts"),
    ],
)
def test_a_value_that_would_add_an_option_is_refused(directives, key):
    with pytest.raises(SchedulerError) as info:
        script_for(directives)
    assert f"job {JOB}" in info.value.message and key in info.value.message
    assert "\n" not in info.value.message


def test_an_option_value_with_spaces_stays_one_option():
    script = script_for(Directives(sbatch_opts=("--comment=two words --partition=nope", '--mail-user="a b"')))
    words = header_words(script)
    assert ["--comment=two words --partition=nope"] in words and ["--mail-user=a b"] in words
    assert all(len(w) == 1 for w in words)
    assert not any(w[0].startswith("--partition") for w in words)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    return Lab.load(labgen.make_lab(tmp_path_factory.mktemp("lab") / "lab", "quick"))


@pytest.mark.parametrize(
    "hints, problem",
    [
        ({"mem": 4096}, r"resource mem: wrong type \(int: 4096\)"),
        ({"cpus": "4"}, r"resource cpus-per-task: wrong type \(str: '4'\)"),
    ],
)
def test_hint_of_the_wrong_type_on_scatter_gather_is_a_clear_error_not_a_traceback(lab, hints, problem):
    sg_id = next(j for j in lab.jobs if "stage-D" in j)
    job = dataclasses.replace(lab.jobs[sg_id], resource_hints=hints)
    with pytest.raises(SchedulerError, match=problem):
        job_directives(Resources(), job, "cluster")  # compared sizes with a TypeError before
