"""The CLI's terminal prompt on a real pty: a secret typed before the prompt shows is read (not
discarded), and one typed once it shows is not echoed."""

from __future__ import annotations

import asyncio
import os
import pty

from repx_tui.backend.auth import AuthChallenge
from repx_tui.headless.prompt import TerminalAuthenticator


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    out = b""
    try:
        while chunk := os.read(fd, 4096):
            out += chunk
    except (BlockingIOError, OSError):
        pass
    return out


CHALLENGE = AuthChallenge("cluster", "host", "keyboard-interactive", prompts=(("One-time password: ", False),))


async def test_a_secret_typed_ahead_of_the_prompt_is_read_not_discarded():
    master, slave = pty.openpty()
    try:
        os.write(master, b"s3cret code\n")  # typed before the prompt was even written
        answers = await asyncio.wait_for(TerminalAuthenticator(os.ttyname(slave)).prompt(CHALLENGE), 10)
        assert answers == ["s3cret code"]
    finally:
        os.close(master)
        os.close(slave)


async def test_a_secret_typed_once_the_prompt_shows_is_not_echoed():
    master, slave = pty.openpty()
    try:
        asking = asyncio.create_task(TerminalAuthenticator(os.ttyname(slave)).prompt(CHALLENGE))
        shown = b""
        async with asyncio.timeout(10):
            while b"One-time password" not in shown:
                await asyncio.sleep(0.01)  # polling a pty for output, not synchronising on time
                shown += _read_all(master)
        os.write(master, b"s3cret code\n")
        assert await asyncio.wait_for(asking, 10) == ["s3cret code"]
        assert b"s3cret" not in shown + _read_all(master)
    finally:
        os.close(master)
        os.close(slave)
