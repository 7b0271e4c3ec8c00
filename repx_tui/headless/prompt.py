"""The CLI's Authenticator: asks on the controlling terminal (/dev/tty), never on stdin/stdout.

So `repx-tui status --json | jq` still asks for a one-time code on the terminal, and a command
without a terminal (CI, cron) is told to log in first instead of hanging. Answers the server
marks secret are read with echo off; the terminal is restored however the read ends.
"""

from __future__ import annotations

import asyncio
import os
import termios

from repx_tui.backend.auth import AuthCancelled, AuthChallenge, CannotPrompt


class TerminalAuthenticator:
    def __init__(self, tty: str = "/dev/tty") -> None:
        self.tty = tty
        self.asked = 0  # answers given on this terminal (for the hint about `repx-tui login`)

    async def prompt(self, challenge: AuthChallenge) -> list[str]:
        try:
            fd = os.open(self.tty, os.O_RDWR | os.O_NOCTTY)
        except OSError:
            raise CannotPrompt() from None
        try:
            os.write(fd, _header(challenge).encode())
            answers = []
            for text, echo in challenge.prompts:
                answers.append(await _read_line(fd, f"{challenge.target}: {text}", echo))
                self.asked += 1
            return answers
        finally:
            os.close(fd)


def _header(challenge: AuthChallenge) -> str:
    lines = []
    if challenge.attempt > 1 and challenge.prompts:
        lines.append(f"{challenge.target}: that was refused; try again ({challenge.attempt} of 3)")
    lines += [f"{challenge.target}: {text}" for text in (challenge.name, challenge.instructions) if text.strip()]
    return "".join(f"{line.rstrip()}\n" for line in lines)


async def _read_line(fd: int, prompt: str, echo: bool) -> str:
    saved = None
    if not echo:
        # Echo goes off BEFORE the prompt is shown, and nothing typed is discarded: an answer
        # typed as soon as the prompt appears is neither shown nor lost.
        saved = termios.tcgetattr(fd)
        quiet = termios.tcgetattr(fd)
        quiet[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    os.write(fd, prompt.encode())
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()
    buffer = bytearray()

    def readable() -> None:
        data = os.read(fd, 4096)
        if not data:  # Ctrl-D on an empty line
            if not done.done():
                done.set_exception(AuthCancelled("login cancelled at the terminal"))
            return
        buffer.extend(data)
        if b"\n" in buffer and not done.done():
            done.set_result(buffer.split(b"\n", 1)[0].decode(errors="replace").rstrip("\r"))

    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        loop.remove_reader(fd)
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            os.write(fd, b"\n")  # the newline the hidden answer did not echo
