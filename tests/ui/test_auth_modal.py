"""The TUI's login modal against the real two-factor sshd: the server's prompt shown with echo
off, asked once for the session (status polls, sync and submit after it ask nothing), Esc
cancels with one notification; and the modal's own behaviour (several prompts, info only)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from textual.widgets import Input

from repx_tui.backend.auth import AuthCancelled, AuthChallenge
from repx_tui.backend.config import load_config
from repx_tui.backend.events import JobsChanged, Phase, PhaseDone, TargetHealth
from repx_tui.backend.keeper.client import KeeperTransport
from repx_tui.ui.app import RepxApp
from repx_tui.ui.screens.auth import AuthScreen, ModalAuthenticator
from tests.helpers import async_wait_until
from tests.infra.fixtures import twofa_logins
from tests.labgen import make_lab
from tests.ui.helpers import Recorder, screen_text

pytestmark = [pytest.mark.timeout(240)]


def twofa_app(tmp_path, target: dict, monkeypatch) -> RepxApp:
    monkeypatch.setenv("REPX_SSH_CONFIG", target["ssh_config"])
    config = tmp_path / "config.toml"
    config.write_text(f'[targets.cluster]\naddress = "{target["alias"]}"\nbase_path = "{tmp_path / "base"}"\n'
                      'default_scheduler = "local"\n')  # fmt: skip
    monkeypatch.setenv("REPX_CONFIG", str(config))
    lab = make_lab(tmp_path / "lab", "quick")
    return RepxApp(load_config(), lab_path=str(lab), target="cluster")


@pytest.mark.sshd
async def test_the_modal_asks_once_for_the_whole_session(tmp_path, twofa_target, monkeypatch):
    app = twofa_app(tmp_path, twofa_target, monkeypatch)
    record = Recorder()
    before = twofa_logins(twofa_target["sshd_log"], "root")
    code = await asyncio.to_thread(twofa_target["totp"].fresh_code)
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        await async_wait_until(lambda: isinstance(app.screen, AuthScreen), timeout=60, message="the login modal")
        await pilot.pause()
        field = app.screen.query_one(Input)
        assert field.password and "One-time password (OATH) for `root'" in screen_text(app)
        await pilot.press(*code)
        await pilot.pause()
        assert field.value == code and code not in screen_text(app)  # shown as dots
        await pilot.press("enter")
        await async_wait_until(lambda: record.events(JobsChanged), timeout=60, message="the first status poll")
        app.controller.run(["simulation"])  # sync + submit on the same session
        await async_wait_until(lambda: {e.phase for e in record.events(PhaseDone)} >= {Phase.LAB, Phase.SUBMIT},
                               timeout=90, message=f"sync and submit {record.failures()}")  # fmt: skip
        await async_wait_until(lambda: len(record.events(JobsChanged)) >= 3, timeout=60, message="more polls")
        session = app.controller._sessions["cluster"]
        assert session.authenticator.shown == 1 and session.transport.authentications == 1
        assert not record.failures()
        checked = len(record.events(TargetHealth))
        app.controller.check_targets()  # on the session's connection: logged in, nothing asked again
        await async_wait_until(lambda: len(record.events(TargetHealth)) > checked, timeout=60,
                               message="the health check")  # fmt: skip
        health = record.events(TargetHealth)[-1]
        assert health.ok and "login" not in {c.name for c in health.checks}, health.checks
        assert session.authenticator.shown == 1 and session.transport.authentications == 1
        await pilot.press("q")
    assert twofa_logins(twofa_target["sshd_log"], "root") == before + 1


@pytest.mark.sshd
async def test_escape_cancels_the_login_with_one_notification(tmp_path, twofa_target, monkeypatch):
    app = twofa_app(tmp_path, twofa_target, monkeypatch)
    record = Recorder()
    before = twofa_logins(twofa_target["sshd_log"], "root")
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        await async_wait_until(lambda: isinstance(app.screen, AuthScreen), timeout=60, message="the login modal")
        await pilot.press("escape")
        await async_wait_until(lambda: record.failures(), timeout=30, message="the cancelled login reported")
        assert not isinstance(app.screen, AuthScreen)
        assert record.failures() == ["cluster: login to e2e-2fa cancelled"]
        await pilot.press("q")
    assert twofa_logins(twofa_target["sshd_log"], "root") == before


async def test_several_prompts_and_an_info_only_round(tmp_path, monkeypatch):
    app = twofa_app(tmp_path, {"alias": "h", "ssh_config": ""}, monkeypatch)
    app.autostart = False
    async with app.run_test(size=(100, 30)) as pilot:
        asker = ModalAuthenticator(app)
        challenge = AuthChallenge("cluster", "u@h", "keyboard-interactive", "Duo", "Enter both",
                                  (("Username: ", True), ("Code: ", False)), attempt=2)  # fmt: skip
        answer = asyncio.ensure_future(asker.prompt(challenge))
        await async_wait_until(lambda: isinstance(app.screen, AuthScreen), timeout=10)
        await pilot.pause()
        text = screen_text(app)
        assert "That was refused; try again (2 of 3)." in text and "Duo" in text and "Enter both" in text
        first, second = app.screen.query(Input)
        assert not first.password and second.password
        await pilot.press("a", "l", "i", "enter", "4", "2", "enter")
        assert await answer == ["ali", "42"]

        info = asyncio.ensure_future(asker.prompt(AuthChallenge("cluster", "u@h", "keyboard-interactive", "",
                                                                "Push sent to your phone", ())))  # fmt: skip
        await async_wait_until(lambda: isinstance(app.screen, AuthScreen), timeout=10)
        await pilot.pause()
        assert "Push sent to your phone" in screen_text(app)
        await pilot.press("enter")
        assert await info == []

        cancelled = asyncio.ensure_future(asker.prompt(challenge))
        await async_wait_until(lambda: isinstance(app.screen, AuthScreen), timeout=10)
        await pilot.press("escape")
        with pytest.raises(AuthCancelled):
            await cancelled


@pytest.mark.sshd
async def test_the_tui_uses_a_kept_login(tmp_path, sshd_target, monkeypatch):
    """After `repx-tui login`, the TUI's session runs through the keeper: no login of its own."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    app = twofa_app(tmp_path, sshd_target, monkeypatch)  # the plain sshd: a key is enough
    env = {**os.environ}
    login = subprocess.run([sys.executable, "-m", "repx_tui", "login", "cluster"], env=env, capture_output=True,
                           text=True, timeout=60, start_new_session=True)  # fmt: skip
    assert login.returncode == 0, login.stderr
    record = Recorder()
    try:
        async with app.run_test(size=(100, 30), message_hook=record) as pilot:
            await async_wait_until(lambda: record.events(JobsChanged), timeout=60, message="a status poll")
            session = app.controller._sessions["cluster"]
            assert isinstance(session.transport, KeeperTransport) and session.authenticator.shown == 0
            await pilot.press("q")
    finally:
        subprocess.run([sys.executable, "-m", "repx_tui", "logout"], env=env, capture_output=True, timeout=60)
