"""Resource resolution, with cases taken from upstream's documented behaviour."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from repx_tui.backend.errors import ConfigError
from repx_tui.backend.resources import Directives, load_resources

SEED = """\
[defaults]
time = "01:00:00"
mem = "4G"
cpus-per-task = 1
partition = "standard"

[[rules]]
job_id_glob = "*training*"
time = "12:00:00"
mem = "64G"
sbatch_opts = ["--gres=gpu:1"]

[[rules]]
job_id_glob = "*preprocess*"
mem = "32G"
partition = "highmem"

[[rules]]
job_id_glob = "*preprocess*"
target = "other"
partition = "never"

[[rules]]
job_id_glob = "*-heavy-*"
cpus-per-task = 16
[rules.worker_resources]
mem = "16G"
cpus-per-task = 4
"""


@pytest.fixture
def resources(tmp_path):
    path = tmp_path / "resources.toml"
    path.write_text(SEED)
    return load_resources(path, cwd=tmp_path)


def test_defaults_only(resources):
    d = resources.resolve("abc-plain-1.1", None, "cluster")
    assert d == Directives(partition="standard", cpus_per_task=1, mem="4G", time="01:00:00")
    assert d.sbatch_lines() == ["--partition=standard", "--cpus-per-task=1", "--mem=4G", "--time=01:00:00"]


def test_hints_then_rules_in_file_order(resources):
    # hints override defaults; a later matching rule overrides hints field by field
    d = resources.resolve("abc-training-preprocess-1.1", {"mem": "8G", "cpus": 2}, "cluster")
    assert d.mem == "32G"  # second rule wins over the first and over the hint
    assert d.time == "12:00:00"
    assert d.cpus_per_task == 2  # from the hint; no rule sets it
    assert d.partition == "highmem"
    assert d.sbatch_opts == ("--gres=gpu:1",)


def test_target_restricted_rule(resources):
    assert resources.resolve("x-preprocess-1", None, "other").partition == "never"
    assert resources.resolve("x-preprocess-1", None, "cluster").partition == "highmem"


def test_sbatch_opts_replaced_not_appended(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(
        textwrap.dedent(
            """\
            [defaults]
            sbatch_opts = ["--account=a"]
            [[rules]]
            job_id_glob = "*"
            sbatch_opts = ["--qos=b"]
            [[rules]]
            job_id_glob = "*"
            sbatch_opts = []
            """
        )
    )
    d = load_resources(path, cwd=tmp_path).resolve("j", {"sbatch_opts": ["--hint"]}, "t")
    assert d.sbatch_opts == ("--qos=b",)  # the empty list changes nothing


def test_worker_resources_from_last_matching_rule_only(resources):
    d = resources.resolve_worker("x-heavy-1", {"mem": "1G"}, {"time": "00:05:00", "mem": "512M"}, "cluster")
    assert d.mem == "16G" and d.cpus_per_task == 4 and d.time == "00:05:00"
    plain = resources.resolve_worker("x-plain-1", None, {"mem": "512M"}, "cluster")
    assert plain.mem == "512M" and plain.cpus_per_task == 1


def test_merge_order_xdg_cwd_explicit(tmp_path, monkeypatch):
    xdg = tmp_path / "xdg"
    (xdg / "repx").mkdir(parents=True)
    (xdg / "repx" / "resources.toml").write_text('[defaults]\nmem = "1G"\ntime = "00:10:00"\n[[rules]]\nmem = "2G"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "resources.toml").write_text('[defaults]\nmem = "3G"\n')
    explicit = tmp_path / "e.toml"
    explicit.write_text('[[rules]]\njob_id_glob = "z*"\npartition = "p"\n')
    r = load_resources(explicit, cwd=cwd)
    d = r.resolve("a", None, "t")
    assert d.mem == "3G" and d.time == "00:10:00"  # tables merge
    assert len(r.rules) == 1 and r.resolve("zz", None, "t").partition == "p"  # rules replaced whole


def test_no_files_means_no_directives(tmp_path):
    assert load_resources(None, cwd=tmp_path).resolve("j", None, "t").sbatch_lines() == []


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[defaults]\nstep_resources = 1\n", ":2: defaults.step_resources: unknown key"),
        ('[defaults]\ncpus-per-task = "two"\n', ":2: defaults.cpus-per-task: wrong type"),
        ('[[rules]]\nsbatch_opts = "--x"\n', ":2: rules.sbatch_opts: wrong type"),
        (
            '[[rules]]\n[rules.worker_resources]\njob_id_glob = "x"\n',
            ":3: rules.worker_resources.job_id_glob: unknown key",
        ),
    ],
)
def test_bad_resources(tmp_path, text, needle):
    path = tmp_path / "resources.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_resources(path, cwd=tmp_path / "elsewhere")
    assert needle in str(info.value)


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_resources(Path(tmp_path / "missing.toml"), cwd=tmp_path)
