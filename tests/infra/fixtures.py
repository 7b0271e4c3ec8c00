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
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
from pathlib import Path
from typing import Callable

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

    Counts ``Accepted publickey`` lines in the sshd log (it only grows, the
    bed is shared), so tests diff before/after. The sshd is shared with other
    tests running at the same time: filter by ``user`` and/or by the client's
    ``source_port`` (``conn.get_extra_info("sockname")[1]`` in asyncssh) to
    count only your own connections.
    """
    log_path = Path(e2e_env["REPX_E2E_SSHD_LOG"])

    def count(user: str | None = None, source_port: int | None = None) -> int:
        try:
            text = log_path.read_text(errors="replace")
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
