from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from repx_tui.backend.config import embedded_default, load_config
from repx_tui.backend.errors import ConfigError
from repx_tui.cli import main as cli_main

GOOD = """\
submission_target = "cluster"

[targets.local]
base_path = "~/repx-store"
default_scheduler = "local"

[targets.local.local]
execution_types = ["native", "bwrap"]
local_concurrency = 2

[targets.cluster]
address = "user@login.cluster.edu"
base_path = "/scratch/user/repx_work"
default_scheduler = "slurm"
node_local_path = "/tmp/user/repx"

[targets.cluster.slurm]
execution_types = ["native"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_loads_upstream_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", "/home/someone")
    config = load_config(write(tmp_path, GOOD))
    cluster = config.target(None)
    assert cluster.name == "cluster"
    assert cluster.address == "user@login.cluster.edu"
    assert cluster.base_path == "/scratch/user/repx_work"
    assert cluster.node_local_path == "/tmp/user/repx"
    assert cluster.scheduler() == "slurm"
    assert cluster.execution_types("slurm") == ("native",)
    local = config.targets["local"]
    assert local.is_local and local.base_path == "/home/someone/repx-store"
    assert local.local is not None and local.local.local_concurrency == 2


def test_remote_tilde_is_kept_for_the_target(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", "/home/local-user")
    config = load_config(write(tmp_path, '[targets.c]\naddress = "h"\nbase_path = "~/work"\n'))
    assert config.targets["c"].base_path == "~/work"  # resolved on the target, not here


@pytest.mark.parametrize(
    "text, line, words",
    [
        ('[targets.c]\naddress = "h"\nbase_path = "/x"\nbogus = 1\n', 4, "unknown key"),
        ('[targets.c]\naddress = "h"\nbase_path = 5\n', 3, "wrong type"),
        ('[targets.c]\naddress = "h"\nbase_path = "relative/dir"\n', 3, "absolute"),
        ('[targets.c]\naddress = "h"\nbase_path = "/x"\ndefault_scheduler = "pbs"\n', 4, "wrong type"),
        ('[targets.c]\nbase_path = "/x"\n', 1, "no address"),
        ('[targets.c]\naddress = "h"\n', 1, "base_path is required"),
        ('[targets.c]\naddress = "h"\nbase_path = "/x\'; rm -rf /"\n', 3, "unsafe"),
        (
            '[targets.c]\naddress = "h"\nbase_path = "/x"\n[targets.c.slurm]\nexecution_types = ["vm"]\n',
            5,
            "wrong type",
        ),
    ],
)
def test_bad_config_names_file_line_and_key(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path}:{line}" in message
    assert words in message


def test_invalid_toml_names_the_file_and_line(tmp_path):
    path = write(tmp_path, '[targets.c]\naddress = "h\n')
    with pytest.raises(ConfigError, match=r"config.toml: invalid TOML.*line 2"):
        load_config(path)


def test_missing_named_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_repx_config_env_and_xdg_lookup(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("REPX_CONFIG", str(path))
    assert "cluster" in load_config().targets
    monkeypatch.delenv("REPX_CONFIG")
    xdg = Path(tmp_path / "xdg")
    (xdg / "repx").mkdir(parents=True)
    (xdg / "repx" / "config.toml").write_text(GOOD)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert set(load_config().targets) == {"local", "cluster"}


def test_embedded_default_without_any_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    config = load_config()
    assert list(config.targets) == ["local"]
    local = config.target(None)
    assert local.is_local and local.scheduler() == "local"
    assert local.base_path == str(tmp_path / "data" / "repx-tui" / "store")
    assert config == embedded_default()


def test_unknown_target_lists_the_configured_ones(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="configured: local, cluster"):
        config.target("nope")


def test_targets_json_cli(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert cli_main(["--config", str(path), "targets", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [t["name"] for t in data["targets"]]
    assert names == ["local", "cluster"]
    assert data["targets"][1]["default_scheduler"] == "slurm"


def test_bad_config_via_cli_is_one_clear_line(tmp_path, capsys):
    path = write(tmp_path, '[targets.c]\naddress = "h"\nbase_path = "/x"\nbogus = 1\n')
    assert cli_main(["--config", str(path), "targets"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{path}:4" in err and "bogus" in err
