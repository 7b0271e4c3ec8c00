"""Which resources.toml rule, Lab hint or default produced each value of a job's request, and the
OUT_OF_MEMORY / TIMEOUT hint that names it."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repx_tui.backend.events import Efficiency, JobState
from repx_tui.backend.events import JobStateKind as K
from repx_tui.backend.inspection import allocation_explained, raise_hint, resource_hint_for
from repx_tui.backend.lab import Lab
from repx_tui.backend.resources import Resources, Rule, load_resources
from tests.labgen import make_lab

USER = """\
[defaults]
time = "01:00:00"
mem = "4G"
"""
PROJECT = """\
[defaults]
mem = "8G"

[[rules]]
job_id_glob = "*stage-B*"
mem = "16G"

[[rules]]
job_id_glob = "*stage-B*"
target = "other"
mem = "99G"

[[rules]]
job_id_glob = "*stage-D*"
time = "02:00:00"
[rules.worker_resources]
mem = "32G"
"""


def files(tmp_path: Path) -> Resources:
    xdg = tmp_path / "xdg"
    (xdg / "repx").mkdir(parents=True)
    (xdg / "repx" / "resources.toml").write_text(USER)
    (tmp_path / "resources.toml").write_text(PROJECT)
    return load_resources(cwd=tmp_path, env={"XDG_CONFIG_HOME": str(xdg), "HOME": str(tmp_path)})


def test_each_value_names_the_file_and_rule_that_set_it(tmp_path):
    resources = files(tmp_path)
    directives, source = resources.explain("x-stage-B-producer-1.1", {"cpus": 2, "mem": "1G"}, "cluster")
    assert directives == resources.resolve("x-stage-B-producer-1.1", {"cpus": 2, "mem": "1G"}, "cluster")
    assert (source["mem"].kind, source["mem"].rule, source["mem"].job_id_glob) == ("rule", 1, "*stage-B*")
    assert source["mem"].file == str(tmp_path / "resources.toml")
    assert source["time"].kind == "default" and source["time"].file == str(tmp_path / "xdg" / "repx" / "resources.toml")
    assert source["cpus_per_task"].kind == "hint" and source["partition"].kind == "unset"
    assert "[[rules]] entry 1 (job_id_glob = '*stage-B*')" in source["mem"].describe()
    assert "[defaults]" in source["time"].describe() and "cluster's default" in source["partition"].describe()
    # the rule scoped to another target does not apply here, and is named there
    _d, other = resources.explain("x-stage-B-producer-1.1", None, "other")
    assert other["mem"].rule == 2 and other["mem"].target == "other"


def test_scatter_gather_allocation_attributes_worker_values(tmp_path):
    lab = Lab.load(make_lab(tmp_path / "lab", "quick"))
    sg = next(j for j in lab.jobs.values() if j.is_scatter_gather)
    directives, source = allocation_explained(files(tmp_path), sg, "cluster")
    assert directives.mem == "32G" and source["mem"].kind == "worker" and source["mem"].rule == 3
    assert directives.time == "02:00:00" and source["time"].kind == "rule"


def test_hints_name_the_rule_to_raise_or_tell_where_to_add_one(tmp_path):
    lab = Lab.load(make_lab(tmp_path / "lab", "quick"))
    b = next(j for j in lab.jobs.values() if "stage-B" in j.id)
    eff = Efficiency(elapsed_s=60, max_rss=15 << 30, req_mem=16 << 30, time_limit_s=3600)
    hint = resource_hint_for(files(tmp_path), lab, "cluster")
    oom = hint(JobState(b.id, b.run, K.OUT_OF_MEMORY, efficiency=eff))
    assert oom is not None and "raise mem in the [[rules]] entry 1" in oom and "resources.toml" in oom
    assert "peak 15.0G of 16.0G" in oom and 'mem = "32G"' in oom
    timeout = hint(JobState(b.id, b.run, K.TIMEOUT, efficiency=eff))
    assert timeout is not None and "raise time in the [defaults]" in timeout and "01:00:00" in timeout
    # nothing in resources.toml: the hint says where a rule for this stage would go
    bare = raise_hint(JobState(b.id, b.run, K.TIMEOUT), *_time(Resources(), b))
    assert f'job_id_glob = "*-{b.name}"' in bare and "not set" in bare


def _time(resources: Resources, job):
    directives, source = resources.explain(job.id, job.resource_hints, "cluster")
    return directives, source["time"], job


FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "mem": st.sampled_from(["1G", "2G", "512M"]),
        "time": st.sampled_from(["00:10:00", "01:00:00"]),
        "cpus-per-task": st.integers(1, 8),
        "partition": st.sampled_from(["a", "b"]),
        "sbatch_opts": st.lists(st.sampled_from(["--exclusive", "--qos=x"]), max_size=2),
    },
)
RULES = st.lists(
    st.builds(Rule, values=FIELDS, job_id_glob=st.sampled_from([None, "*", "*-b*", "a*"]),
              target=st.sampled_from([None, "t", "u"])),
    max_size=4,
)  # fmt: skip


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(FIELDS, RULES, st.dictionaries(st.sampled_from(["mem", "cpus", "time"]), st.sampled_from(["3G", 2, "00:01:00"])),
       st.sampled_from(["x-b-1", "a-c-2"]))  # fmt: skip
def test_explain_gives_what_resolve_gives_and_the_last_writer(defaults, rules, hints, job):
    resources = Resources(defaults=defaults, rules=tuple(rules))
    directives, source = resources.explain(job, hints, "t")
    assert directives == resources.resolve(job, hints, "t")
    matching = [n for n, rule in enumerate(rules, 1) if rule.matches(job, "t")]
    for key, attr in (("mem", "mem"), ("time", "time"), ("partition", "partition")):
        writers = [n for n in matching if rules[n - 1].values.get(key) is not None]
        if writers:
            assert source[attr].kind == "rule" and source[attr].rule == writers[-1]
        elif hints.get(key) is not None:
            assert source[attr].kind == "hint"
        elif defaults.get(key) is not None:
            assert source[attr].kind == "default"
        else:
            assert source[attr].kind == "unset" and getattr(directives, attr) is None


@settings(deadline=None, max_examples=200)
@given(st.integers(1, 1 << 44))
def test_suggested_memory_is_a_valid_sbatch_value_at_least_as_big(n):
    from repx_tui.backend.inspection import sbatch_mem
    from repx_tui.backend.slurmvalues import mem_error
    from repx_tui.backend.status.efficiency import parse_size

    text = sbatch_mem(n)
    assert mem_error(text) is None
    size = parse_size(text)
    assert size is not None and n <= size < n + (1 << 20)
