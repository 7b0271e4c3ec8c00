"""~/.ssh/config is honoured: Host aliases, User, Port, IdentityFile, and ProxyJump through a
bastion (here the same real sshd, reached as root, then hopping to e2e)."""

from __future__ import annotations

import pytest

from repx_tui.backend.config import Target
from repx_tui.backend.session import TargetSession

pytestmark = pytest.mark.sshd


def config_with_jump(sshd_user_target, sshd_target) -> str:
    return (
        f"Host bastion\n  HostName 127.0.0.1\n  Port {sshd_target['port']}\n  User root\n"
        f"  IdentityFile {sshd_target['key']}\n  UserKnownHostsFile {sshd_target['known_hosts']}\n"
        f"Host behind-bastion\n  HostName 127.0.0.1\n  Port {sshd_user_target['port']}\n  User e2e\n"
        f"  IdentityFile {sshd_user_target['key']}\n  UserKnownHostsFile {sshd_user_target['known_hosts']}\n"
        f"  ProxyJump bastion\n"
    )


async def test_alias_user_port_and_key_come_from_ssh_config(sshd_target, monkeypatch, tmp_path):
    monkeypatch.setenv("REPX_SSH_CONFIG", sshd_target["ssh_config"])
    target = Target(name="c", address="e2e-user", base_path=str(tmp_path / "b"))
    async with TargetSession(target) as session:
        assert (await session.transport.run(["id", "-un"])).stdout.strip() == "e2e"


async def test_proxyjump_reaches_the_host_behind_the_bastion(sshd_target, sshd_user_target, monkeypatch, tmp_path):
    path = tmp_path / "ssh_config"
    path.write_text(config_with_jump(sshd_user_target, sshd_target))
    monkeypatch.setenv("REPX_SSH_CONFIG", str(path))
    target = Target(name="c", address="behind-bastion", base_path="~/repx-jump")
    async with TargetSession(target) as session:
        who = await session.transport.run(["id", "-un"])
        again = await session.transport.run(["true"])
        assert who.stdout.strip() == "e2e" and again.ok
        assert session.layout.base == "/home/e2e/repx-jump"  # "~" resolved on the target
        assert session.transport.authentications == 1  # both commands rode the one connection
