"""Every bad value in config.toml and resources.toml is one line `file:line: key: problem`,
found at load, before anything is contacted or written; a config or resources "file" that is a
FIFO, a device or a directory, or too big, or nested too deeply, is one line too (never a hang or
a traceback). Through the real CLI where it matters: exit 1, one `error:` line."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.config import load_config
from repx_tui.backend.errors import ConfigError
from repx_tui.backend.resources import load_resources
from repx_tui.backend.tomlfile import MAX_TOML_BYTES

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import labgen  # noqa: E402

TARGET = '[targets.c]\naddress = "h"\nbase_path = "/x"\n'


def one_line_error(error: ConfigError, path: Path, line: int | None, key: str) -> None:
    where = f"{path}:{line}: " if line else f"{path}: "
    assert error.message.startswith(where), error.message
    assert f"{key}: " in error.message
    assert "\n" not in error.message and "\r" not in error.message


@pytest.mark.parametrize(
    "text, line, key, words",
    [
        ('[defaults]\nmem = "4 G"\n', 2, "defaults.mem", "not a memory size"),
        ('[defaults]\nmem = "lots"\n', 2, "defaults.mem", "not a memory size"),
        ('[defaults]\nmem = "4G\\n#SBATCH --exclusive"\n', 2, "defaults.mem", "control character"),
        ('[defaults]\ntime = "1h"\n', 2, "defaults.time", "not a SLURM time"),
        ('[defaults]\ntime = "1:2:3:4"\n', 2, "defaults.time", "not a SLURM time"),
        ("[defaults]\ncpus-per-task = 0\n", 2, "defaults.cpus-per-task", "between 1 and"),
        ("[defaults]\ncpus-per-task = 99999999999999999999\n", 2, "defaults.cpus-per-task", "between 1 and"),
        ('[defaults]\npartition = "debug --exclusive"\n', 2, "defaults.partition", "not a partition name"),
        ('[defaults]\npartition = "debug\\n#SBATCH --x"\n', 2, "defaults.partition", "control character"),
        ('[defaults]\npartition = ""\n', 2, "defaults.partition", "not a partition name"),
        ('[[rules]]\nsbatch_opts = ["-p debug"]\n', 2, "rules.sbatch_opts", "not one option"),
        ('[[rules]]\nsbatch_opts = ["--qos=a\\n--x"]\n', 2, "rules.sbatch_opts", "control character"),
        ('[[rules]]\nsbatch_opts = ["exclusive"]\n', 2, "rules.sbatch_opts", "must start with -"),
        # options repx-tui sets itself (or that stop sbatch queueing the script), however spelled
        (
            '[[rules]]\nsbatch_opts = ["--job-name=x"]\n',
            2,
            "rules.sbatch_opts",
            "sets --job-name itself: the job table",
        ),
        ('[[rules]]\nsbatch_opts = ["-o/tmp/x"]\n', 2, "rules.sbatch_opts", "-o is --output; repx-tui sets --output"),
        ('[defaults]\nsbatch_opts = ["--dependency=singleton"]\n', 2, "defaults.sbatch_opts", "sets --dependency"),
        ('[[rules]]\nsbatch_opts = ["--x", "--wait"]\n', 2, "rules.sbatch_opts", "entry 2: '--wait': --wait would"),
        ('[[rules]]\nsbatch_opts = ["--array=1-3"]\n', 2, "rules.sbatch_opts", "--array would queue"),
        ('[[rules]]\nsbatch_opts = ["--test-only"]\n', 2, "rules.sbatch_opts", "--test-only would queue nothing"),
        ('[[rules]]\nsbatch_opts = ["--wrap=echo hi"]\n', 2, "rules.sbatch_opts", "--wrap would queue a command"),
        ('[[rules]]\nsbatch_opts = ["--job=x"]\n', 2, "rules.sbatch_opts", "--job abbreviates --job-name"),
        ('[[rules]]\nsbatch_opts = ["--out=x"]\n', 2, "rules.sbatch_opts", "--out abbreviates --output"),
        ('[[rules]]\nsbatch_opts = ["--depend=x"]\n', 2, "rules.sbatch_opts", "--depend abbreviates --dependency"),
        ('[[rules]]\nsbatch_opts = ["--Job-Name"]\n', 2, "rules.sbatch_opts", "sets --job-name itself"),
        ('[[rules]]\nsbatch_opts = ["-HJx"]\n', 2, "rules.sbatch_opts", "-J is --job-name"),
        ('[[rules]]\nsbatch_opts = ["-e", "x"]\n', 2, "rules.sbatch_opts", "-e is --error"),
        ('[[rules]]\nsbatch_opts = ["--chdir=/"]\n', 2, "rules.sbatch_opts", "sets --chdir itself"),
        ('[[rules]]\nsbatch_opts = ["--parsable"]\n', 2, "rules.sbatch_opts", "sets --parsable itself"),
        (
            '[[rules]]\njob_id_glob = "*"\n[rules.worker_resources]\nsbatch_opts = ["-W"]\n',
            4,
            "rules.worker_resources.sbatch_opts",
            "-W is --wait",
        ),
        ('[[rules]]\njob_id_glob = ""\n', 2, "rules.job_id_glob", "is empty"),
        ('[[rules]]\njob_id_glob = "a\\u0007b"\n', 2, "rules.job_id_glob", "printable"),
        ('[[rules]]\njob_id_glob = "a"\n\n[[rules]]\njob_id_glob = "b"\nmem = "x"\n', 6, "rules.mem", "memory"),
        (
            '[[rules]]\njob_id_glob = "a"\n[rules.worker_resources]\ntime = "soon"\n',
            4,
            "rules.worker_resources.time",
            "SLURM time",
        ),
        ("rules = [1]\n", 1, "rules", "must be a table"),
    ],
)
def test_bad_resources_value_is_one_line_naming_file_line_and_key(tmp_path, text, line, key, words):
    path = tmp_path / "resources.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_resources(path, cwd=tmp_path / "elsewhere", env={"HOME": str(tmp_path)})
    one_line_error(info.value, path, line, key)
    assert words in info.value.message


def load_defaults(tmp_path: Path, body: str) -> dict:
    path = tmp_path / "resources.toml"
    path.write_text("[defaults]\n" + body)
    return dict(load_resources(path, cwd=tmp_path, env={"HOME": str(tmp_path)}).defaults)


def refused(tmp_path: Path, body: str) -> bool:
    try:
        load_defaults(tmp_path, body)
    except ConfigError:
        return True
    return False


def test_sbatch_opts_take_single_options_and_nothing_else(tmp_path):
    good = ["--exclusive", "-N1", "--gres=gpu:1", "--comment=two words", '--comment="a b"']
    for opt in good:
        assert load_defaults(tmp_path, f"sbatch_opts = ['{opt}']\n")["sbatch_opts"] == [opt]
    bad = ["--exclusive --gres=gpu:1 x", "-p debug", "--partition debug", "exclusive", "", '--c="a" b']
    assert [opt for opt in bad if not refused(tmp_path, f"sbatch_opts = ['{opt}']\n")] == []


def test_sbatch_opts_that_repx_tui_does_not_set_stay_accepted(tmp_path):
    good = ["--exclusive", "--qos=x", "--constraint=a b", "-N1", "--mem-per-cpu=1G", "--wait-all-nodes=1"]
    good += ["--export=ALL", "--hold", "-Hv", "--comment=--job-name=x"]
    for opt in good:
        assert load_defaults(tmp_path, f"sbatch_opts = ['{opt}']\n")["sbatch_opts"] == [opt]


def test_time_takes_every_slurm_format_and_nothing_else(tmp_path):
    good = ["30", "30:00", "02:00:00", "1-12", "1-12:30", "1-12:30:00", "UNLIMITED", "infinite"]
    for value in good:
        assert load_defaults(tmp_path, f'time = "{value}"\n')["time"] == value
    bad = ["1h", "1:2:3:4", "1-", "-1", "12:00 ", "1 day", "0x10", "1-2-3"]
    assert [value for value in bad if not refused(tmp_path, f'time = "{value}"\n')] == []


def test_mem_takes_digits_with_a_unit_and_nothing_else(tmp_path):
    good = ["0", "512", "512M", "512MB", "4G", "4gb", "1T", "100K"]
    for value in good:
        assert load_defaults(tmp_path, f'mem = "{value}"\n')["mem"] == value
    bad = ["4 G", "4GiB", "G", "-1G", "1.5G", "4P", "٤G"]
    assert [value for value in bad if not refused(tmp_path, f'mem = "{value}"\n')] == []


@pytest.mark.parametrize(
    "text, line, key, words",
    [
        (
            '[targets.c]\naddress = "-oProxyCommand=touch /tmp/x"\nbase_path = "/x"\n',
            2,
            "targets.c.address",
            "not an SSH address",
        ),
        ('[targets.c]\naddress = "login node"\nbase_path = "/x"\n', 2, "targets.c.address", "not an SSH address"),
        ('[targets.c]\naddress = "user@"\nbase_path = "/x"\n', 2, "targets.c.address", "not an SSH address"),
        (
            '[targets.c]\naddress = "h\\nProxyCommand x"\nbase_path = "/x"\n',
            2,
            "targets.c.address",
            "not an SSH address",
        ),
        ('[targets.c]\naddress = "h"\nbase_path = "/x\\ny"\n', 3, "targets.c.base_path", "control character"),
        ('[targets.c]\naddress = "h"\nbase_path = "/x\\u0000y"\n', 3, "targets.c.base_path", "control character"),
        (f'[targets.c]\naddress = "h"\nbase_path = "/{"x" * 2000}"\n', 3, "targets.c.base_path", "characters long"),
        (TARGET + 'node_local_path = "/tmp/a\\tb"\n', 4, "targets.c.node_local_path", "control character"),
        (TARGET + 'mount_paths = ["data"]\n', 4, "targets.c.mount_paths", "absolute path"),
        (TARGET + 'mount_paths = ["/data\\n/etc"]\n', 4, "targets.c.mount_paths", "absolute path"),
        ('[targets."a b"]\naddress = "h"\nbase_path = "/x"\n', None, "targets.a b", "target name"),
        ('theme = "dark\\u001b[2J"\n' + TARGET, 1, "theme", "control character"),
        (TARGET + "[logging]\nmax_files = 99999999999999999999999\n", 5, "logging.max_files", "wrong type"),
    ],
)
def test_bad_config_value_is_one_line_naming_file_line_and_key(tmp_path, text, line, key, words):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"HOME": str(tmp_path)})
    one_line_error(info.value, path, line, key)
    assert words in info.value.message


def test_addresses_take_hosts_users_and_aliases_and_no_options(tmp_path):
    names = ["h", "user@login.cluster.edu", "e2e-cluster", "u_1@10.0.0.1", "[fe80::1]", "user@host-2.example"]
    body = "".join(f'[targets.t{i}]\naddress = "{a}"\nbase_path = "~/repx store"\n' for i, a in enumerate(names))
    path = tmp_path / "config.toml"
    path.write_text(body)
    config = load_config(path, env={"HOME": str(tmp_path)})
    assert [t.address for t in config.targets.values()] == names
    for bad in ["-J evil", "-oProxyCommand=x", "a;b", "$(id)", "@host", "host name", "a'b"]:
        path.write_text(f'[targets.t]\naddress = "{bad}"\nbase_path = "/x"\n')
        with pytest.raises(ConfigError, match="not an SSH address"):
            load_config(path)


# --- files that are not regular files, too big, nested too deeply ---------------------------


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "fifo.toml"
    os.mkfifo(path)
    return path


LOAD_SNIPPET = """
import sys
from pathlib import Path
from repx_tui.backend.config import load_config
from repx_tui.backend.errors import ConfigError
from repx_tui.backend.resources import load_resources
try:
    if sys.argv[1] == "config":
        load_config(sys.argv[2])
    else:
        load_resources(sys.argv[2], cwd=Path("/nonexistent"))
except ConfigError as exc:
    print(exc.message)
"""


def limited_memory() -> None:
    """A child that reads /dev/zero whole must fail, not take the machine's memory."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.parametrize("loader", ["config", "resources"])
@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_not_a_regular_file_is_one_line(tmp_path, fifo, loader, kind):
    # in a child with a deadline: before the fix a FIFO blocked in open() and /dev/zero never ended
    path = {"fifo": fifo, "device": Path("/dev/zero"), "directory": tmp_path}[kind]
    out = subprocess.run(
        [sys.executable, "-c", LOAD_SNIPPET, loader, str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=20,
        preexec_fn=limited_memory,
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.startswith(f"{path}: not a regular file (a ") and out.stdout.count("\n") == 1


def test_an_oversized_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "config.toml"
    with path.open("wb") as f:
        f.truncate(MAX_TOML_BYTES + 1)  # sparse: stat says big, nothing to read
    with pytest.raises(ConfigError, match="MiB is refused"):
        load_config(path)


@pytest.mark.parametrize(
    "nesting",
    [
        "x = " + "[" * 5000 + "]" * 5000,
        "x = " + "{a=" * 3000 + "1" + "}" * 3000,
        "x = " + "[" * 40 + "]" * 40,
        "[" + ".".join(["a"] * 40) + "]\n",
    ],
)
@pytest.mark.parametrize("loader", [load_config, lambda p: load_resources(p, cwd=Path("/nonexistent"))])
def test_deep_nesting_is_one_line(tmp_path, nesting, loader):
    path = tmp_path / "deep.toml"
    path.write_text(nesting + "\n")
    with pytest.raises(ConfigError) as info:
        loader(path)
    assert info.value.message.startswith(f"{path}: ") and "\n" not in info.value.message
    assert "nested" in info.value.message


def test_not_utf8_and_huge_integers_are_one_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b'theme = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)
    path.write_text("theme = " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)


def test_xdg_config_that_is_a_directory_is_an_error_not_the_default(tmp_path):
    (tmp_path / "repx" / "config.toml").mkdir(parents=True)
    with pytest.raises(ConfigError, match="a directory"):
        load_config(env={"XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)})


# --- through the real CLI ------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repx_tui", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        preexec_fn=limited_memory,
    )


def assert_one_error_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("  hint:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], result.stderr


@pytest.mark.parametrize("how", ["env", "flag"])
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_cli_config_fifo_or_device_fails_at_once(fifo, how, kind):
    path = str(fifo) if kind == "fifo" else "/dev/zero"
    args, env = (["targets"], {"REPX_CONFIG": path}) if how == "env" else (["--config", path, "targets"], {})
    assert_one_error_line(cli(*args, env=env, timeout=20), path, "not a regular file")


def test_cli_deeply_nested_config_is_one_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert_one_error_line(cli("--config", str(path), "targets"), str(path), "nested too deeply")


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory) -> Path:
    return labgen.make_lab(tmp_path_factory.mktemp("lab") / "lab", "quick")


@pytest.mark.parametrize(
    "resources_text, needle",
    [
        ('[defaults]\npartition = "debug\\n#SBATCH --exclusive"\n', ":2: defaults.partition: "),
        ('[defaults]\nmem = "4 GB"\n', ":2: defaults.mem: "),
        ('[[rules]]\ntime = "2 hours"\n', ":2: rules.time: "),
        ('[[rules]]\nsbatch_opts = ["--job=x"]\n', ":2: rules.sbatch_opts: entry 1: '--job=x': --job abbreviates"),
        ('[defaults]\nsbatch_opts = ["-o/tmp/x"]\n', "-o is --output; repx-tui sets --output itself"),
        (None, "not a regular file"),  # a FIFO given as --resources
    ],
)
def test_cli_run_with_bad_resources_fails_before_connecting_or_writing(tmp_path, lab_dir, resources_text, needle):
    base = tmp_path / "store"
    config = tmp_path / "config.toml"
    # an address that cannot resolve: any attempt to connect would fail with another message
    config.write_text(
        f'[targets.cluster]\naddress = "nowhere.invalid"\nbase_path = "{base}"\ndefault_scheduler = "slurm"\n'
    )
    resources = tmp_path / "resources.toml"
    if resources_text is None:
        os.mkfifo(resources)
    else:
        resources.write_text(resources_text)
    result = cli(
        "run",
        "simulation",
        "--lab",
        str(lab_dir),
        "--target",
        "cluster",
        "--resources",
        str(resources),
        "--headless",
        env={"REPX_CONFIG": str(config)},
        timeout=20,
    )
    assert_one_error_line(result, str(resources), needle)
    assert "nowhere.invalid" not in result.stderr + result.stdout and "connect" not in result.stdout
    assert not base.exists()


@pytest.mark.parametrize("front", ["headless", "tui"])
@pytest.mark.parametrize("given", ["device", "bad-value"])
def test_a_bad_resources_file_is_refused_for_a_local_target_too(tmp_path, lab_dir, front, given):
    """The local scheduler takes no SLURM directives, but a --resources file the user named is
    still read and refused, never silently ignored."""
    base = tmp_path / "store"
    config = tmp_path / "config.toml"
    config.write_text(f'[targets.local]\nbase_path = "{base}"\ndefault_scheduler = "local"\n')
    resources = tmp_path / "resources.toml"
    resources.write_text('[defaults]\nmem = "4 GB"\n')
    path = "/dev/zero" if given == "device" else str(resources)
    needle = "not a regular file" if given == "device" else ":2: defaults.mem: "
    if front == "headless":
        argv = ["run", "simulation", "--lab", str(lab_dir), "--target", "local", "--resources", path, "--headless"]
        assert_one_error_line(cli(*argv, env={"REPX_CONFIG": str(config)}, timeout=20), path, needle)
    else:
        from repx_tui.headless.tui import run_options

        args = argparse.Namespace(
            scheduler=None, resources=path, execution_type=None, allow_missing_runs=False, compress="auto"
        )
        with pytest.raises(ConfigError, match=re.escape(needle)):
            run_options(args, load_config(config), "local")
    assert not base.exists()
