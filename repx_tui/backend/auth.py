"""Interactive login: what the backend asks a person, through whichever front end holds the session.

A login may need more than a key: a one-time code or a password (keyboard-interactive or password
authentication, usually through PAM), or the passphrase of an encrypted key. The backend stays
UI-free: the SSH transport turns each such request into an `AuthChallenge` and awaits an
`Authenticator`, which the front end supplies (the CLI reads the controlling terminal, the TUI
shows a modal, the keeper forwards it to the client that asked to log in). Without one, nothing
is asked and the login fails with `AuthRequired`, which says how to log in first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from repx_tui.backend.errors import TransportError

#: how often one kind of question is asked per login before giving up (OpenSSH asks 3 times)
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class AuthChallenge:
    """One question from the server (or for a key): prompts are (text, echo)."""

    target: str
    address: str
    kind: str  # "keyboard-interactive" | "password" | "passphrase"
    name: str = ""
    instructions: str = ""
    prompts: tuple[tuple[str, bool], ...] = ()
    attempt: int = 1

    @property
    def title(self) -> str:
        what = {"passphrase": "key passphrase", "password": "password"}.get(self.kind, "login")
        return f"{self.target} ({self.address}): {self.name or what}"

    def to_json(self) -> dict:
        return {
            "target": self.target, "address": self.address, "kind": self.kind, "name": self.name,
            "instructions": self.instructions, "prompts": [list(p) for p in self.prompts], "attempt": self.attempt,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict) -> AuthChallenge:
        prompts = tuple((str(text), bool(echo)) for text, echo in data.get("prompts", ()))
        return cls(str(data["target"]), str(data["address"]), str(data["kind"]), str(data.get("name", "")),
                   str(data.get("instructions", "")), prompts, int(data.get("attempt", 1)))  # fmt: skip


class Authenticator(Protocol):
    async def prompt(self, challenge: AuthChallenge) -> list[str]:
        """One answer per prompt (none for a challenge without prompts, which only informs).
        Raise CannotPrompt when nobody can be asked, AuthCancelled when the person declined."""
        ...


class CannotPrompt(Exception):
    """Nobody to ask: no terminal, a script, a background process."""


class AuthCancelled(TransportError):
    """The person declined to answer (Esc in the TUI, Ctrl-D on the terminal)."""


class AuthRequired(TransportError):
    """The target wants a code, password or passphrase and nobody can be asked here."""


class AuthFailed(TransportError):
    """The answers were refused (a wrong or reused code, a wrong password or passphrase)."""


class NoAuthenticator:
    """The default: never asks (health checks, scripts). The login then fails with AuthRequired."""

    async def prompt(self, challenge: AuthChallenge) -> list[str]:
        raise CannotPrompt()


@dataclass
class Login:
    """The bookkeeping of one login attempt (one connect): what was asked and answered, so a
    refused login becomes the right one-line error."""

    target: str
    address: str
    authenticator: Authenticator
    asked: dict[str, int] = field(default_factory=dict)  # kind -> questions answered
    needed: str | None = None  # a kind nobody could be asked
    cancelled: bool = False
    prompting: bool = False  # a person is being asked right now (the connect timeout waits)
    waited: float = 0.0  # seconds spent asking so far in this login

    def reset(self) -> None:
        self.asked.clear()
        self.needed = None
        self.cancelled = False
        self.prompting = False
        self.waited = 0.0

    async def answer(
        self, kind: str, prompts: Sequence[tuple[str, bool]], name: str = "", instructions: str = ""
    ) -> list[str] | None:
        """Answers for one question, or None to give this method up."""
        if self.cancelled or self.needed:
            return None
        if not prompts and not (name + instructions).strip():
            return []  # an empty round (PAM's closing message): nothing to show or answer
        attempt = self.asked.get(kind, 0) + 1
        if prompts and attempt > MAX_ATTEMPTS:
            return None
        challenge = AuthChallenge(self.target, self.address, kind, name, instructions, tuple(prompts), attempt)
        started = time.monotonic()
        self.prompting = True
        try:
            answers = await self.authenticator.prompt(challenge)
        except CannotPrompt:
            if not prompts:
                return []  # only informs: nothing is lost by not showing it
            self.needed = kind
            return None
        except AuthCancelled:
            self.cancelled = True
            return None
        finally:
            self.prompting = False
            self.waited += time.monotonic() - started
        if prompts:
            self.asked[kind] = attempt
        return list(answers)[: len(prompts)] if prompts else []

    async def passphrase(self, filename: str) -> str | None:
        answers = await self.answer("passphrase", [(f"Passphrase for key {filename}: ", False)])
        return answers[0] if answers else None

    def refused(self, reason: str) -> TransportError:
        """The error for a login the server refused, by what happened while it was tried."""
        hint_login = f"in a terminal, run `repx-tui login {self.target}`: later commands reuse that login"
        if self.cancelled:
            return AuthCancelled(f"{self.target}: login to {self.address} cancelled")
        if self.needed:
            what = {"passphrase": "the passphrase of its key"}.get(self.needed, "a one-time code or password")
            return AuthRequired(
                f"{self.target}: {self.address} asks for {what} ({self.needed}) and there is no terminal to ask on",
                hint=hint_login + " (or load the key into ssh-agent)" * (self.needed == "passphrase"),
            )
        if self.asked:
            kinds = " and ".join(sorted(self.asked))
            return AuthFailed(
                f"{self.target}: {self.address} refused the login after {kinds}: wrong or already used code, "
                f"or wrong password ({reason})",
                hint="a one-time code works once, within its 30 s window: wait for the next code and try again",
            )
        return TransportError(
            f"{self.target}: SSH authentication failed for {self.address}: {reason}",
            hint="check that your key is loaded (ssh-agent) or set IdentityFile in ~/.ssh/config",
        )
