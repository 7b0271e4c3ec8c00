"""Two-factor login on the real test bed: an sshd that wants a key AND a TOTP code (PAM,
pam_oath), and one that wants a passphrase-protected key AND a password. Codes come from
oathtool; pam_oath takes each code once, so a test that logs in waits (with a deadline) for a
time step nobody used yet (fixtures.Totp.fresh_code).

Proved here: one question for a whole session (sync, submit, polls, log follow, cancel), a clear
error for a wrong code and for no terminal, the terminal prompt with echo off.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.auth import AuthChallenge, AuthFailed
from repx_tui.backend.config import Target
from repx_tui.backend.events import CancelReport, LogChunk
from repx_tui.backend.lab import Lab
from repx_tui.backend.session import TargetSession
from tests import labgen
from tests.bedtargets import answer_key_and_password, login_env
from tests.helpers import async_wait_until, wait_until
from tests.infra.fixtures import twofa_logins

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 90
pytestmark = [pytest.mark.sshd]


class Codes:
    """An Authenticator that answers like a person with oathtool: records what it was asked.
    The code is fetched before connecting (waiting for a fresh one inside the prompt would run
    into the connect timeout)."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.challenges: list[AuthChallenge] = []

    @classmethod
    async def fresh(cls, totp) -> Codes:
        return cls(await asyncio.to_thread(totp.fresh_code))

    async def prompt(self, challenge: AuthChallenge) -> list[str]:
        self.challenges.append(challenge)
        return [self.answer for _ in challenge.prompts]

    @property
    def questions(self) -> list[AuthChallenge]:
        return [c for c in self.challenges if c.prompts]


async def test_one_code_for_a_whole_session(tmp_path, twofa_target, monkeypatch):
    monkeypatch.setenv("REPX_SSH_CONFIG", twofa_target["ssh_config"])
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", sleep_seconds={"stage-A-producer": 60}, log_lines=5)
    lab = Lab.load(lab_dir)
    (producer_b,) = labgen.job_ids(lab_dir, "stage-B-producer")
    producers_a = labgen.job_ids(lab_dir, "stage-A-producer")
    target = Target(name="cluster", address=twofa_target["alias"], base_path=str(tmp_path / "base"),
                    default_scheduler="local")  # fmt: skip
    codes = await Codes.fresh(twofa_target["totp"])
    before = twofa_logins(twofa_target["sshd_log"], "root")
    events: list = []
    async with TargetSession(target, events.append, lab=lab, scheduler="local", authenticator=codes) as session:
        submitted = await session.run(lab.resolve(["simulation"]))  # sync + submit
        assert {j for j, _ in submitted.submitted} >= {producer_b, *producers_a}
        for _ in range(3):
            await session.poll()
        stop = asyncio.Event()
        follow = asyncio.create_task(session.follow_log(producer_b, stop=stop))
        await async_wait_until(lambda: any(isinstance(e, LogChunk) and "done" in e.text for e in events),
                               timeout=DEADLINE, message="stage-B's log to say done")  # fmt: skip
        stop.set()
        await follow
        await async_wait_until(lambda: session.status(), timeout=10)
        report = await session.cancel(producers_a)
        assert isinstance(report, CancelReport)
        transport = session.transport
        assert transport.authentications == 1
    assert len(codes.questions) == 1  # one code, for everything above
    assert codes.questions[0].prompts[0][0].startswith("One-time password (OATH) for `root'")
    assert codes.questions[0].prompts[0][1] is False  # the server asks with echo off
    assert twofa_logins(twofa_target["sshd_log"], "root") == before + 1


async def test_a_wrong_code_is_one_clear_error(tmp_path, twofa_target, monkeypatch):
    monkeypatch.setenv("REPX_SSH_CONFIG", twofa_target["ssh_config"])
    target = Target(name="cluster", address=twofa_target["alias"], base_path=str(tmp_path / "base"))
    codes = Codes(answer=twofa_target["totp"].wrong_code())
    before = twofa_logins(twofa_target["sshd_log"], "root")
    with pytest.raises(AuthFailed) as err:
        async with TargetSession(target, authenticator=codes):
            pass
    assert "cluster: e2e-2fa refused the login after keyboard-interactive" in err.value.message
    assert "wrong or already used code" in err.value.message and "30 s window" in (err.value.hint or "")
    assert 1 <= len(codes.questions) <= 3  # asked again like ssh does, then gave up
    assert twofa_logins(twofa_target["sshd_log"], "root") == before


def test_without_a_terminal_the_cli_says_how_to_log_in_first(tmp_path, twofa_target):
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick")
    env = login_env(tmp_path, twofa_target, tmp_path / "base")
    result = subprocess.run(
        [sys.executable, "-m", "repx_tui", "status", "--lab", str(lab_dir), "--target", "cluster", "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=60, env=env, start_new_session=True,  # no controlling tty
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0] == ("error: cluster: e2e-2fa asks for a one-time code or password (keyboard-interactive) "
                        "and there is no terminal to ask on")  # fmt: skip
    assert lines[1].strip() == "hint: in a terminal, run `repx-tui login cluster`: later commands reuse that login"
    assert "Traceback" not in result.stderr

    check = subprocess.run([sys.executable, "-m", "repx_tui", "targets", "--check", "--json"], capture_output=True,
                           text=True, cwd=REPO, timeout=60, env=env, start_new_session=True)  # fmt: skip
    assert check.returncode == 1
    (target,) = json.loads(check.stdout)["targets"]
    checks = {c["name"]: c for c in target["health"]["checks"]}
    assert checks["reachable"]["ok"] and not checks["login"]["ok"]
    assert checks["login"]["hint"].startswith("repx-tui login cluster")


def test_the_terminal_is_asked_for_passphrase_and_password_with_echo_off(tmp_path, e2e_base, twofa_pw_target):
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick")
    base = e2e_base
    env = login_env(tmp_path, twofa_pw_target, base)
    code = twofa_pw_target["totp"].fresh_code()
    before = twofa_logins(twofa_pw_target["sshd_log"], "e2e", "password")
    status = ["status", "--lab", str(lab_dir), "--target", "cluster"]
    prompts = ("cluster: Passphrase for key ", "cluster: Password for e2e-2fa-pw: ")
    shown = answer_key_and_password(status, env, twofa_pw_target, code, prompts)
    assert "stage-A-producer" in shown or "pending" in shown  # the status table
    assert code not in shown and twofa_pw_target["passphrase"] not in shown  # never echoed
    assert twofa_logins(twofa_pw_target["sshd_log"], "e2e", "password") == before + 1


def test_headless_run_asks_the_terminal_once_for_sync_and_submit(tmp_path, e2e_base, twofa_pw_target):
    """`run --headless` asks on the terminal like every other command (it opens its session itself)."""
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick")
    (producer_b,) = labgen.job_ids(lab_dir, "stage-B-producer")
    env = login_env(tmp_path, twofa_pw_target, e2e_base)
    code = twofa_pw_target["totp"].fresh_code()
    before = twofa_logins(twofa_pw_target["sshd_log"], "e2e", "password")
    run = ["run", "simulation", "--lab", str(lab_dir), "--target", "cluster", "--headless", "--json"]
    prompts = ("cluster: Passphrase for key ", "cluster: Password for e2e-2fa-pw: ")
    shown = answer_key_and_password(run, env, twofa_pw_target, code, prompts)
    (answer,) = [json.loads(line) for line in shown.splitlines() if line.startswith('{"submitted"')]
    assert producer_b in {s["job"] for s in answer["submitted"]} and not answer["errors"]
    assert code not in shown and twofa_pw_target["passphrase"] not in shown
    assert twofa_logins(twofa_pw_target["sshd_log"], "e2e", "password") == before + 1  # sync and submit: one login
    wait_until(lambda: (e2e_base / "outputs" / producer_b / "repx" / "SUCCESS").exists(), timeout=DEADLINE,
               interval=0.2, message="stage-B to succeed")  # fmt: skip


async def test_a_key_in_ssh_agent_needs_no_passphrase(tmp_path, twofa_pw_target, monkeypatch):
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{twofa_pw_target['passphrase']}'\n")
    askpass.chmod(0o700)
    agent = subprocess.run(["ssh-agent", "-s", "-a", str(tmp_path / "agent.sock")], capture_output=True, text=True,
                           check=True, timeout=30)  # fmt: skip
    pid = int(agent.stdout.split("SSH_AGENT_PID=", 1)[1].split(";", 1)[0])
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": str(tmp_path / "agent.sock"), "SSH_ASKPASS": str(askpass),
               "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}  # fmt: skip
        subprocess.run(["ssh-add", twofa_pw_target["key"]], env=env, check=True, capture_output=True, timeout=30)
        monkeypatch.setenv("SSH_AUTH_SOCK", env["SSH_AUTH_SOCK"])
        monkeypatch.setenv("REPX_SSH_CONFIG", twofa_pw_target["ssh_config"])
        codes = await Codes.fresh(twofa_pw_target["totp"])
        target = Target(name="cluster", address=twofa_pw_target["alias"], base_path="/tmp")
        async with TargetSession(target, authenticator=codes) as session:
            assert (await session.transport.run(["id", "-un"])).stdout.strip() == "e2e"
        assert [c.kind for c in codes.questions] == ["password"]  # the agent signed: no passphrase asked
    finally:
        os.kill(pid, 15)  # the agent this test started


async def test_the_connect_timeout_waits_for_a_slow_person(tmp_path, twofa_target, monkeypatch):
    """Fetching a code takes longer than noticing a dead host: time spent answering a prompt does
    not count against the connect timeout (the wrong code keeps this from using a real one)."""
    from repx_tui.backend.transport import ssh

    monkeypatch.setattr(ssh, "CONNECT_TIMEOUT", 1.0)
    monkeypatch.setenv("REPX_SSH_CONFIG", twofa_target["ssh_config"])

    class Slow(Codes):
        async def prompt(self, challenge: AuthChallenge) -> list[str]:
            await asyncio.sleep(1.5)  # a person reading a phone, longer than the whole timeout
            return await super().prompt(challenge)

    slow = Slow(twofa_target["totp"].wrong_code())
    with pytest.raises(AuthFailed):  # the server's verdict on the answer, not a timeout
        async with TargetSession(Target(name="cluster", address=twofa_target["alias"], base_path="/tmp"),
                                 authenticator=slow):  # fmt: skip
            pass
    assert len(slow.questions) >= 1
