"""Login prompt: the server's questions (a one-time code, a password, a key's passphrase) in a modal.

The backend asks through an Authenticator (repx_tui/backend/auth.py); `ModalAuthenticator` is
the TUI's: it shows `AuthScreen` and waits for the answers. The session asks once (its one
login), so the modal appears once per target however many views poll, follow logs or cancel.
"""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from repx_tui.backend.auth import AuthCancelled, AuthChallenge


class AuthScreen(ModalScreen[list[str] | None]):
    """One question of a login: each prompt an input, hidden where the server says so."""

    DEFAULT_CSS = """
    AuthScreen { align: center middle; }
    #auth-box { width: 72; max-width: 95%; height: auto; border: thick $accent; background: $surface; padding: 0 1; }
    #auth-box Input { margin-bottom: 1; }
    #auth-refused { color: $error; }
    #auth-help { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel login")]

    def __init__(self, challenge: AuthChallenge) -> None:
        super().__init__()
        self.challenge = challenge

    def compose(self) -> ComposeResult:
        challenge = self.challenge
        with Vertical(id="auth-box"):
            yield Static(Text.assemble(("Log in to ", "bold"), (challenge.target, "bold"), f"  ({challenge.address})"),
                         id="auth-title")  # fmt: skip
            if challenge.attempt > 1 and challenge.prompts:
                yield Static(f"That was refused; try again ({challenge.attempt} of 3).", id="auth-refused")
            for text in (challenge.name, challenge.instructions):
                if text.strip():
                    yield Static(Text(text.strip()))
            for index, (prompt, echo) in enumerate(challenge.prompts):
                yield Static(Text(prompt.strip()), classes="auth-prompt")
                yield Input(password=not echo, id=f"auth-answer-{index}")
            help_text = "Enter: send   Esc: cancel" if challenge.prompts else "Enter: continue"
            yield Static(help_text, id="auth-help")

    def on_mount(self) -> None:
        inputs = self.query(Input)
        if inputs:
            inputs.first().focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        inputs = list(self.query(Input))
        position = inputs.index(event.input)
        if position + 1 < len(inputs):
            inputs[position + 1].focus()
        else:
            self.dismiss([field.value for field in inputs])

    def key_enter(self) -> None:
        if not self.challenge.prompts:  # only informs
            self.dismiss([])

    def action_cancel(self) -> None:
        self.dismiss(None)


class ModalAuthenticator:
    """The TUI's Authenticator: one AuthScreen per question, awaited by the backend's login."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.shown = 0

    async def prompt(self, challenge: AuthChallenge) -> list[str]:
        answered: asyncio.Future[list[str] | None] = asyncio.get_running_loop().create_future()

        def done(answers: list[str] | None) -> None:
            if not answered.done():
                answered.set_result(answers)

        self.shown += 1
        self.app.push_screen(AuthScreen(challenge), done)
        answers = await answered
        if answers is None:
            raise AuthCancelled(f"{challenge.target}: login cancelled")
        return answers
