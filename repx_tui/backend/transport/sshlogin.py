"""The SSH side of an interactive login: asyncssh's client callbacks and its refusals, mapped
onto backend/auth.py's Login (which asks the front end's Authenticator)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import asyncssh

from repx_tui.backend.auth import Login
from repx_tui.backend.errors import TransportError


class LoginClient(asyncssh.SSHClient):
    """Reports a lost connection, and hands the server's questions (a one-time code, a password)
    to the session's Login."""

    def __init__(self, on_lost: Callable[[Exception | None], None], login: Login) -> None:
        self._on_lost = on_lost
        self._login = login

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost(exc)

    def kbdint_auth_requested(self) -> str:
        return ""  # let the server choose its submethods (PAM)

    async def kbdint_challenge_received(
        self, name: str, instructions: str, lang: str, prompts: Sequence[tuple[str, bool]]
    ) -> list[str] | None:
        return await self._login.answer("keyboard-interactive", prompts, name, instructions)

    async def password_auth_requested(self) -> str | None:
        answers = await self._login.answer("password", [(f"Password for {self._login.address}: ", False)])
        return answers[0] if answers else None


def refused_login(exc: Exception, login: Login) -> TransportError | None:
    """The one error for a connect that failed in authentication, or None for other failures."""
    if isinstance(exc, asyncssh.PermissionDenied):
        return login.refused(exc.reason)
    if isinstance(exc, asyncssh.KeyEncryptionError):
        return login.refused(f"the key's passphrase: {exc}")
    if isinstance(exc, asyncssh.ProtocolError) and (login.asked or login.needed or login.cancelled):
        return login.refused(exc.reason)  # e.g. too many authentication failures
    return None


T = TypeVar("T")


async def within_connect_timeout(connect: Awaitable[T], login: Login, timeout: float) -> T:
    """`connect` within `timeout` seconds, not counting the time a person takes to answer a
    prompt (fetching a code from a phone takes longer than a dead host needs to be noticed);
    the server's own LoginGraceTime still bounds a login."""
    task = asyncio.ensure_future(connect)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            left = 1.0 if login.prompting else deadline + login.waited - loop.time()
            if left <= 0:
                raise TimeoutError()
            done, _ = await asyncio.wait({task}, timeout=left)
            if done:
                return task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
