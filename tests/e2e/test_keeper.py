"""The keeper: `repx-tui login` logs in once, later commands reuse that connection, `logout` ends
it. On the real two-factor sshd (a command that logged in itself would need a code it cannot
ask for without a terminal) and the plain one; each test has its own private keeper directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from repx_tui.backend.keeper import paths
from repx_tui.backend.keeper.client import find_keeper
from tests import labgen
from tests.bedtargets import answer_key_and_password, login_env
from tests.helpers import wait_until
from tests.infra.fixtures import twofa_logins

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 90
pytestmark = [pytest.mark.sshd]


def repx(env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    """A fresh CLI process without a controlling terminal: it can ask nobody for anything."""
    result = subprocess.run([sys.executable, "-m", "repx_tui", *args], capture_output=True, text=True, cwd=REPO,
                            timeout=120, env=env, start_new_session=True)  # fmt: skip
    assert result.returncode == expect, result.stdout + result.stderr
    return result


def keeper_pid(env: dict[str, str]) -> int:
    (log,) = (Path(env["XDG_RUNTIME_DIR"]) / "repx-tui").glob("cluster.*.log")
    return int(log.read_text().split(", pid ", 1)[1].split(",", 1)[0])


def pid_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")


@pytest.fixture
def logged_out():
    """Never leave a keeper behind: log out, and end by its pid any this test started that did
    not go (e.g. its directory was opened up on purpose, so logout refuses to use it)."""
    envs: list[dict[str, str]] = []
    yield envs
    for env in envs:
        subprocess.run([sys.executable, "-m", "repx_tui", "logout"], env=env, cwd=REPO, capture_output=True, timeout=60)
        for log in (Path(env["XDG_RUNTIME_DIR"]) / "repx-tui").glob("*.log"):
            for pid in {int(part.split(",", 1)[0]) for part in log.read_text().split(", pid ")[1:]}:
                if not pid_gone(pid):
                    os.kill(pid, signal.SIGTERM)


def test_one_login_serves_every_later_command_until_logout(tmp_path, e2e_base, twofa_pw_target, logged_out):
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", sleep_seconds={"stage-A-producer": 60}, log_lines=3)
    base = e2e_base
    env = login_env(tmp_path, twofa_pw_target, base)
    logged_out.append(env)
    lab = ["--lab", str(lab_dir), "--target", "cluster"]
    code = twofa_pw_target["totp"].fresh_code()
    before = twofa_logins(twofa_pw_target["sshd_log"], "e2e", "password")

    shown = answer_key_and_password(["login", "cluster", "--idle", "5m"], env, twofa_pw_target, code)
    assert "logged in to cluster (e2e-2fa-pw); kept by pid" in shown and "5 min" in shown

    # no terminal from here on: any command that logged in itself would fail
    synced = json.loads(repx(env, "sync", *lab, "--json").stdout.strip().splitlines()[-1])
    assert synced["ssh_connections"] == 0 and synced["bytes_sent"] > 0
    ran = json.loads(repx(env, "run", "simulation", *lab, "--headless", "--json").stdout.strip().splitlines()[-1])
    (producer_b,) = labgen.job_ids(lab_dir, "stage-B-producer")
    assert producer_b in {s["job"] for s in ran["submitted"]}
    wait_until(lambda: (base / "outputs" / producer_b / "repx" / "SUCCESS").exists(), timeout=DEADLINE, interval=0.2,
               message="stage-B to succeed")  # fmt: skip
    states = {j["job"]: j["state"] for j in json.loads(repx(env, "status", *lab, "--json").stdout)["jobs"]}
    assert states[producer_b] == "succeeded"
    assert "stage-B-producer/main log line 3/3" in repx(env, "logs", producer_b[:12], *lab).stdout
    # (exit 1: some of the run's jobs had already finished, or were never submitted)
    cancel = repx(env, "cancel", "simulation", *lab, "--yes", "--json", expect=1)
    outcomes = {r["job"]: r["ok"] for r in json.loads(cancel.stdout.strip().splitlines()[-1])["results"]}
    assert all(outcomes[j] for j in labgen.job_ids(lab_dir, "stage-A-producer"))  # the running ones, stopped
    assert twofa_logins(twofa_pw_target["sshd_log"], "e2e", "password") == before + 1  # the login, nothing else

    (health,) = json.loads(repx(env, "targets", "--check", "--json").stdout)["targets"]
    assert health["health"]["ok"] and "login" not in {c["name"] for c in health["health"]["checks"]}

    out = repx(env, "logout", "cluster").stdout
    assert out.startswith("logged out of cluster (e2e-2fa-pw): keeper pid")
    failed = repx(env, "status", *lab, expect=1)
    assert "no terminal to ask on" in failed.stderr and "repx-tui login cluster" in failed.stderr


@pytest.fixture
def reachable_runtime_dir():
    """A keeper directory's parent another user could reach (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="repx-keeper-test-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_keeper_is_private_to_its_user(tmp_path, sshd_target, reachable_runtime_dir, logged_out, monkeypatch):
    env = login_env(tmp_path, sshd_target, tmp_path / "base", runtime=reachable_runtime_dir)
    logged_out.append(env)
    repx(env, "login", "cluster")
    directory = Path(env["XDG_RUNTIME_DIR"]) / "repx-tui"
    (sock,) = directory.glob("*.sock")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700 and stat.S_IMODE(sock.stat().st_mode) == 0o600
    for key in ("XDG_RUNTIME_DIR", "REPX_SSH_CONFIG"):
        monkeypatch.setenv(key, env[key])
    assert find_keeper("cluster", sshd_target["alias"]) is not None

    # Even with the directory and socket opened up by mistake, another user gets nothing.
    directory.chmod(0o755)
    sock.chmod(0o666)
    Path(env["XDG_RUNTIME_DIR"]).chmod(0o755)
    hello = ("import json, socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
             "s.sendall(json.dumps({'op': 'home'}).encode() + b'\\n'); data = b''\n"
             "while chunk := s.recv(4096): data += chunk\n"
             "print(data[5:].decode())")  # fmt: skip
    other = subprocess.run(["runuser", "-u", "e2e", "--", "/usr/bin/python3", "-c", hello, str(sock)],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    assert other.returncode == 0, other.stderr
    answer = json.loads(other.stdout)
    assert answer["type"] == "RepxError" and answer["message"] == "this keeper belongs to another user"
    assert find_keeper("cluster", sshd_target["alias"]) is None  # and a directory others can enter is not used
    with pytest.raises(paths.UnsafeKeeperDir):
        paths.runtime_dir()
    directory.chmod(0o700)


def test_an_idle_keeper_ends_itself(tmp_path, sshd_target, logged_out):
    env = login_env(tmp_path, sshd_target, tmp_path / "base")
    logged_out.append(env)
    repx(env, "login", "cluster", "--idle", "2")
    pid = keeper_pid(env)
    directory = Path(env["XDG_RUNTIME_DIR"]) / "repx-tui"
    assert list(directory.glob("*.sock"))
    wait_until(lambda: pid_gone(pid) and not list(directory.glob("*.sock")), timeout=20, interval=0.2,
               message="the idle keeper to end and remove its socket")  # fmt: skip
    assert "idle for 2 s: ending" in next(directory.glob("*.log")).read_text()
    assert repx(env, "logout").stdout == "no kept login\n"


def test_a_killed_keeper_is_not_used_and_login_starts_a_new_one(tmp_path, sshd_target, logged_out):
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick")
    env = login_env(tmp_path, sshd_target, tmp_path / "base")
    logged_out.append(env)
    repx(env, "login", "cluster")
    first = keeper_pid(env)
    os.kill(first, signal.SIGKILL)  # the keeper this test started
    wait_until(lambda: pid_gone(first), timeout=10, message="the keeper to die")
    assert list((Path(env["XDG_RUNTIME_DIR"]) / "repx-tui").glob("*.sock"))  # left behind
    status = repx(env, "status", "--lab", str(lab_dir), "--target", "cluster", "--json")  # logs in itself
    assert json.loads(status.stdout)["jobs"]
    repx(env, "login", "cluster")
    assert keeper_pid(env) != first and not pid_gone(keeper_pid(env))


@pytest.mark.parametrize(("given", "seconds"), [("600", 600), ("10m", 600), ("1h", 3600), ("2.5s", 2.5), (None, 600)])
def test_idle_times(given, seconds, monkeypatch):
    monkeypatch.delenv("REPX_KEEPER_IDLE", raising=False)
    assert paths.idle_seconds(given) == seconds


@pytest.mark.parametrize("given", ["0", "-1", "ten", "10d", "1e9"])
def test_bad_idle_times_are_one_error(given):
    with pytest.raises(paths.TransportError, match="idle time"):
        paths.idle_seconds(given)
