"""Property: any mutation of a valid config.toml or resources.toml either loads, or fails with
exactly a ConfigError whose message is one line naming the file. Never another exception.

Mutations: characters inserted, deleted or replaced (control characters, quotes, brackets,
unicode), TOML fragments spliced in (deep nesting, huge numbers, inf, dates), and whole values
replaced by values of any type, re-serialised as TOML.
"""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repx_tui.backend.config import parse_config
from repx_tui.backend.errors import ConfigError
from repx_tui.backend.resources import parse_resources
from repx_tui.backend.tomlfile import TomlDoc

CONFIG = """\
submission_target = "cluster"
theme = "dark"

[logging]
max_files = 5

[targets.local]
base_path = "~/repx-store"
default_scheduler = "local"

[targets.local.local]
execution_types = ["native", "bwrap"]
local_concurrency = 2

[targets.cluster]
address = "user@login.cluster.edu"
base_path = "/scratch/user/repx work"
default_scheduler = "slurm"
node_local_path = "/tmp/user/repx"
mount_paths = ["/data"]

[targets.cluster.slurm]
execution_types = ["native"]
"""

RESOURCES = """\
[defaults]
time = "01:00:00"
mem = "4G"
cpus-per-task = 1
partition = "standard"
sbatch_opts = ["--account=lab"]

[[rules]]
job_id_glob = "*training*"
target = "cluster"
time = "1-12:00:00"
mem = "64G"
sbatch_opts = ["--gres=gpu:1", "--comment=two words"]

[[rules]]
job_id_glob = "*-heavy-*"
cpus-per-task = 16
[rules.worker_resources]
mem = "16G"
cpus-per-task = 4
"""

PATH = Path("/configs dir/repx/file.toml")  # a space in the name: still one line, still named
ENV = {"HOME": "/home/someone"}
SETTINGS = settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck), database=None)

ODD_CHARS = st.sampled_from(list("\x00\x01\x07\t\n\r\x1b\x7f\u0085\u2028\ufeff\"'[]{}=.,#\\ -~$`;é中"))
FRAGMENTS = st.sampled_from(
    [
        "[",
        "]",
        "[[",
        "]]",
        "{",
        "}",
        '"',
        "'''",
        "=",
        ",",
        "\n",
        ".",
        "#",
        " = 1",
        " = true",
        " = -1",
        " = 0",
        " = 1e999",
        " = nan",
        " = inf",
        " = 1979-05-27T07:32:00Z",
        " = 99999999999999999999999",
        " = " + "9" * 5000,
        " = [1, 2]",
        " = {a = 1}",
        ' = ""',
        ' = " "',
        ' = "a\\nb"',
        ' = "\\u0000"',
        ' = "-oProxyCommand=x"',
        ' = "4 G"',
        ' = "debug --exclusive"',
        " = " + "[" * 3000 + "]" * 3000,
        " = " + "[" * 40 + "]" * 40,
        " = " + "{a=" * 1500 + "1" + "}" * 1500,
        "\n[" + ".".join(["t"] * 50) + "]\n",
        "\n[targets.x]\n",
        "\n[[rules]]\n",
        "\n[defaults]\n",
    ]
)


@st.composite
def text_mutation(draw: st.DrawFn, base: str) -> str:
    text = base
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 12)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "fragment"]))
        if kind == "delete":
            text = text[:start] + text[end:]
        elif kind == "fragment":
            text = text[:start] + draw(FRAGMENTS) + text[start:]
        else:
            piece = draw(st.text(ODD_CHARS, min_size=1, max_size=4) | st.text(max_size=4))
            text = text[:start] + piece + (text[end:] if kind == "replace" else text[start:])
    return text


TOML_SCALARS = (
    st.integers(-(2**63), 2**63 - 1)
    | st.booleans()
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.sampled_from(["4G", "4 G", "", "-x", "--exclusive", "debug\nx", "01:00:00", "~/x", "/", "a\x00b"])
    | st.datetimes(min_value=datetime.datetime(1, 1, 1))
    | st.dates()
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def toml_value(value: Any) -> str:
    """An inline TOML rendering (strings as JSON strings, which TOML basic strings accept)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, (int,)):
        return str(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


@st.composite
def value_mutation(draw: st.DrawFn, base: str) -> str:
    """Replace the value of one `key = value` line by a value of any type."""
    lines = base.splitlines()
    candidates = [i for i, line in enumerate(lines) if " = " in line]
    index = draw(st.sampled_from(candidates))
    key = lines[index].split(" = ", 1)[0]
    lines[index] = f"{key} = {toml_value(draw(TOML_VALUES))}"
    return "\n".join(lines) + "\n"


def mutated(base: str) -> st.SearchStrategy[str]:
    return st.one_of(text_mutation(base), value_mutation(base))


def load_or_config_error(parse: Any, text: str) -> None:
    try:
        parse(TomlDoc.parse(PATH, text))
    except ConfigError as exc:
        assert type(exc) is ConfigError
        assert exc.message.startswith(f"{PATH}"), exc.message
        assert "\n" not in exc.message and "\r" not in exc.message, exc.message


@SETTINGS
@given(mutated(CONFIG))
def test_mutated_config_loads_or_is_one_config_error_line(text):
    load_or_config_error(lambda doc: parse_config(doc, ENV), text)


@SETTINGS
@given(mutated(RESOURCES))
def test_mutated_resources_load_or_is_one_config_error_line(text):
    load_or_config_error(parse_resources, text)


def test_the_unmutated_texts_load():
    assert set(parse_config(TomlDoc.parse(PATH, CONFIG), ENV).targets) == {"local", "cluster"}
    assert len(parse_resources(TomlDoc.parse(PATH, RESOURCES)).rules) == 2
