"""pytest plugin: fixtures for the real-services test bed (tests/infra).

Enabled from tests/conftest.py with ``pytest_plugins = ["tests.infra.fixtures"]``.
The bed is brought up by ``bash tests/infra/start-all.sh`` (``tests/run-all.sh``
does it automatically), which writes ``$REPX_E2E_DIR/env`` (default
``/tmp/repx-e2e/env``).  When the bed is missing, the fixtures skip the test
with an explanation -- except under CI (env var ``CI`` set), where a missing
bed is a failure, so CI can never go green by skipping everything.

Fixtures
--------
``e2e_env``          (session) dict[str, str] of the env file.
``sshd_target``      dict for root@127.0.0.1:<port> (see ``_target``).
``sshd_user_target`` same for the unprivileged user ``e2e``.
``sshd_auth_count``  callable ``count(user=None, source_port=None) -> int``:
                     number of ``Accepted publickey`` lines in sshd.log so far.
``slurm_available``  (session) dict(partition=, node=, cpus=) once SLURM answers.
``twofa_target``     root@ the two-factor sshd (key + TOTP through keyboard-interactive).
``twofa_pw_target``  e2e@ the two-factor sshd (passphrase-protected key + password = TOTP).
                     Both carry ``totp``: a ``Totp`` whose ``fresh_code()`` waits for a code
                     pam_oath has not seen yet (it refuses a code used once).
``podman_available`` (session) root podman configured by start-podman.sh.
``docker_available`` (session) the docker CLI answered by a daemon (podman's API here).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

DEFAULT_E2E_DIR = "/tmp/repx-e2e"
START_HINT = "run `bash tests/infra/start-all.sh` (or the whole suite via `bash tests/run-all.sh`)"

_ACCEPTED_RE = re.compile(r"Accepted publickey for (\S+) from (\S+) port (\d+)")


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(message: str) -> None:
    """Skip locally; fail under CI (a missing bed must not look like a pass)."""
    if _under_ci():
        pytest.fail(f"{message} (CI is set, so this is a failure; {START_HINT})", pytrace=False)
    pytest.skip(f"{message}; {START_HINT}")


def e2e_dir() -> Path:
    return Path(os.environ.get("REPX_E2E_DIR") or DEFAULT_E2E_DIR)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse the shell ``KEY=VALUE`` lines written by start-all.sh."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        words = shlex.split(raw) if raw else [""]
        env[key.strip()] = words[0] if words else ""
    return env


def _tcp_open(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def e2e_env() -> dict[str, str]:
    """Contents of ``$REPX_E2E_DIR/env``; skips/fails if the bed is not up."""
    env_file = e2e_dir() / "env"
    if not env_file.is_file():
        _unavailable(f"real-services test bed not set up ({env_file} missing)")
    env = read_env_file(env_file)
    required = (
        "REPX_E2E_SSH_PORT",
        "REPX_E2E_SSH_KEY",
        "REPX_E2E_KNOWN_HOSTS",
        "REPX_E2E_SSH_CONFIG",
        "REPX_E2E_SSHD_LOG",
    )
    missing = [k for k in required if not env.get(k)]
    if missing:
        _unavailable(f"{env_file} lacks {', '.join(missing)}")
    host = env.get("REPX_E2E_SSH_HOST", "127.0.0.1")
    port = int(env["REPX_E2E_SSH_PORT"])
    if not _tcp_open(host, port):
        _unavailable(f"test-bed sshd not listening on {host}:{port} (stale {env_file}?)")
    return env


def _target(env: dict[str, str], user: str, alias: str) -> dict:
    host = env.get("REPX_E2E_SSH_HOST", "127.0.0.1")
    port = int(env["REPX_E2E_SSH_PORT"])
    key = env["REPX_E2E_SSH_KEY"]
    known_hosts = env["REPX_E2E_KNOWN_HOSTS"]
    return {
        "host": host,
        "port": port,
        "user": user,
        "key": key,  # path of the passphrase-less ed25519 private key
        "known_hosts": known_hosts,  # has the "[127.0.0.1]:<port> ssh-ed25519 ..." line
        "ssh_config": env["REPX_E2E_SSH_CONFIG"],  # OpenSSH config file ...
        "alias": alias,  # ... with this Host alias: ssh -F <ssh_config> <alias>
        "sshd_log": env["REPX_E2E_SSHD_LOG"],
        # Ready-made keyword arguments for asyncssh.connect(**t["connect_kwargs"]).
        "connect_kwargs": {
            "host": host,
            "port": port,
            "username": user,
            "client_keys": [key],
            "known_hosts": known_hosts,
        },
    }


@pytest.fixture
def sshd_target(e2e_env) -> dict:
    """root@127.0.0.1:<port> of the test-bed sshd (fresh dict per test)."""
    return _target(e2e_env, "root", "e2e-cluster")


@pytest.fixture
def sshd_user_target(e2e_env) -> dict:
    """e2e@127.0.0.1:<port> (unprivileged user) of the test-bed sshd."""
    return _target(e2e_env, "e2e", "e2e-user")


@pytest.fixture
def sshd_auth_count(e2e_env) -> Callable[..., int]:
    """Return ``count(user=None, source_port=None) -> int``.

    Counts ``Accepted publickey`` lines the sshd logged since this test began (the log is
    shared by the whole bed: a client port an earlier test used may come round again). Other
    tests may run at the same time: filter by ``user`` and/or by the client's ``source_port``
    (``conn.get_extra_info("sockname")[1]`` in asyncssh) to count only your own connections.
    """
    log_path = Path(e2e_env["REPX_E2E_SSHD_LOG"])
    try:
        start = log_path.stat().st_size
    except FileNotFoundError:
        start = 0

    def count(user: str | None = None, source_port: int | None = None) -> int:
        try:
            with log_path.open("rb") as log:
                log.seek(start)
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return 0
        n = 0
        for m in _ACCEPTED_RE.finditer(text):
            if user is not None and m.group(1) != user:
                continue
            if source_port is not None and int(m.group(3)) != int(source_port):
                continue
            n += 1
        return n

    return count


@pytest.fixture(scope="session")
def slurm_available(e2e_env) -> dict:
    """Skip/fail unless the test-bed SLURM answers and its node is usable."""
    if e2e_env.get("REPX_E2E_SLURM") != "1":
        _unavailable("test bed was started without SLURM (REPX_E2E_SLURM != 1)")
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N|%t|%c|%P"],
            capture_output=True,
            text=True,
            timeout=15,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"sinfo failed: {exc!r}")
    if out.returncode != 0 or not out.stdout.strip():
        _unavailable(f"SLURM not answering: sinfo rc={out.returncode} {out.stderr.strip()!r}")
    node, state, cpus, partition = out.stdout.strip().splitlines()[0].split("|")
    if not state.startswith(("idle", "mix", "alloc")):
        _unavailable(f"SLURM node {node} is {state!r}")
    return {"node": node, "partition": partition.rstrip("*"), "cpus": int(cpus)}


# --- two-factor sshd (tests/infra/start-2fa-sshd.sh) -----------------------------------------

TOTP_STEP = 30


class Totp:
    """TOTP codes for one user of the two-factor sshd. pam_oath refuses a code that was used
    once (it records the last login in its users file), so a test that logs in waits, with a
    deadline, for a time step after the recorded one; it never sleeps blindly."""

    def __init__(self, user: str, secret: str, users_file: Path) -> None:
        self.user, self.secret, self.users_file = user, secret, users_file

    def code(self, at: float | None = None) -> str:
        moment = f"@{int(at if at is not None else time.time())}"
        out = subprocess.run(
            ["oathtool", "--totp", "-N", moment, self.secret], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()

    def last_used_step(self) -> int:
        """The time step of this user's last accepted code (-1 when none), from pam_oath's file."""
        try:
            lines = self.users_file.read_text().splitlines()
        except OSError:
            return -1
        for line in lines:
            fields = line.split()
            if len(fields) >= 7 and fields[1] == self.user:
                stamp = fields[6].rstrip("L")
                return int(time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))) // TOTP_STEP
        return -1

    def fresh_code(self, timeout: float = 2 * TOTP_STEP + 5) -> str:
        """A code of a time step after the last one used, waiting (bounded) for that step."""
        from tests.helpers import wait_until

        last = self.last_used_step()
        wait_until(
            lambda: time.time() // TOTP_STEP > last,
            timeout=timeout,
            interval=0.2,
            message=f"a TOTP time step after the last one used for {self.user}",
        )
        return self.code()

    def wrong_code(self) -> str:
        """A 6-digit code that is no valid code of the steps pam_oath's window accepts now."""
        now = time.time()
        valid = {self.code(now + k * TOTP_STEP) for k in range(-21, 22)}
        return next(c for c in (f"{n:06d}" for n in range(123456, 1_000_000, 7919)) if c not in valid)


@pytest.fixture(scope="session")
def twofa_env(e2e_env) -> dict[str, str]:
    env = read_env_file(e2e_dir() / "env")  # start-2fa-sshd.sh appends its lines on its own
    if not env.get("REPX_E2E_2FA_PORT"):
        _unavailable("the two-factor sshd is not up (no REPX_E2E_2FA_PORT; bash tests/infra/start-2fa-sshd.sh)")
    if not _tcp_open(env["REPX_E2E_2FA_HOST"], int(env["REPX_E2E_2FA_PORT"])):
        _unavailable(f"the two-factor sshd is not listening on port {env['REPX_E2E_2FA_PORT']}")
    return env


def _twofa(env: dict[str, str], user: str, alias: str, key: str, secret: str) -> dict:
    return {
        "host": env["REPX_E2E_2FA_HOST"],
        "port": int(env["REPX_E2E_2FA_PORT"]),
        "user": user,
        "alias": alias,
        "key": env[key],
        "ssh_config": env["REPX_E2E_2FA_SSH_CONFIG"],
        "known_hosts": env["REPX_E2E_2FA_KNOWN_HOSTS"],
        "sshd_log": env["REPX_E2E_2FA_LOG"],
        "passphrase": env["REPX_E2E_2FA_PASSPHRASE"],
        "totp": Totp(user, env[secret], Path(env["REPX_E2E_2FA_USERS"])),
    }


@pytest.fixture
def twofa_target(twofa_env) -> dict:
    """root@ the two-factor sshd: its key, then a TOTP code through keyboard-interactive."""
    return _twofa(twofa_env, "root", "e2e-2fa", "REPX_E2E_2FA_KEY", "REPX_E2E_2FA_SECRET_ROOT")


@pytest.fixture
def twofa_pw_target(twofa_env) -> dict:
    """e2e@ the two-factor sshd: a passphrase-protected key, then a password (its TOTP code)."""
    return _twofa(twofa_env, "e2e", "e2e-2fa-pw", "REPX_E2E_2FA_PASS_KEY", "REPX_E2E_2FA_SECRET_E2E")


def twofa_logins(log: str | Path, user: str, method: str = "keyboard-interactive/pam") -> int:
    """Completed logins of `user` by `method` in the two-factor sshd's log so far."""
    try:
        text = Path(log).read_text(errors="replace")
    except FileNotFoundError:
        return 0
    return len(re.findall(rf"Accepted {re.escape(method)} for {re.escape(user)} from", text))


# --- containers (tests/infra/start-podman.sh) ---------------------------------------------------


@pytest.fixture(scope="session")
def podman_available(e2e_env) -> None:
    env = read_env_file(e2e_dir() / "env")
    if env.get("REPX_E2E_CONTAINERS_PODMAN") != "1":
        _unavailable("podman is not set up (bash tests/infra/start-podman.sh)")


@pytest.fixture(scope="session")
def docker_available(podman_available) -> None:
    env = read_env_file(e2e_dir() / "env")
    if env.get("REPX_E2E_CONTAINERS_DOCKER") != "1":
        _unavailable("no docker daemon (nor podman's docker-compatible service) answers the docker CLI")
