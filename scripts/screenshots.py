#!/usr/bin/env python3
"""Regenerate screenshots/*.svg: every screen of the real RepxApp, at 100x30.

The app is driven exactly like the snapshot tests (tests/ui/test_snapshots.py): fixed jobs and
backend events fed through Controller.feed, fixed paths, a fixed clock, so the SVGs only change
when the UI does. Run from the project root:  python scripts/screenshots.py [NAME...]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ui.fixed import fixed_app  # noqa: E402
from tests.ui.test_snapshots import SCREENS  # noqa: E402
from tests.ui.test_workflow_snapshots import SCREENS as WORKFLOW_SCREENS  # noqa: E402
from tests.ui.test_workflow_snapshots import workspace  # noqa: E402

SIZE = (100, 30)


async def _login(pilot) -> None:
    """The login modal, as a two-factor login node asks for its one-time code (code typed)."""
    from repx_tui.backend.auth import AuthChallenge
    from repx_tui.ui.screens.auth import AuthScreen
    from tests.ui.test_snapshots import _jobs

    await _jobs(pilot)
    challenge = AuthChallenge("cluster", "me@login.example", "keyboard-interactive",
                              prompts=(("One-time password (OATH) for `me': ", False),))  # fmt: skip
    pilot.app.push_screen(AuthScreen(challenge))
    await pilot.pause()
    await pilot.press(*"123456")


SHOTS = {**SCREENS, "login": _login, **WORKFLOW_SCREENS}


@contextlib.contextmanager
def in_workspace(name: str) -> Iterator[None]:
    """The workflow screens run in the snapshot tests' fixed folder (./result, labs/, a recent
    Lab in a throwaway XDG state dir), so what the picker shows does not depend on this machine."""
    if name not in WORKFLOW_SCREENS:
        yield
        return
    cwd, state = Path.cwd(), os.environ.get("XDG_STATE_HOME")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_STATE_HOME"] = str(Path(tmp, "state"))
        work = Path(tmp, "work")
        work.mkdir()
        workspace(work)
        os.chdir(work)
        try:
            yield
        finally:
            os.chdir(cwd)
            if state is None:
                os.environ.pop("XDG_STATE_HOME", None)
            else:
                os.environ["XDG_STATE_HOME"] = state


async def shoot(name: str, out_dir: Path) -> Path:
    # Like the tests: no saved view (filter, efficiency columns) of this machine's user, and none
    # left behind by one screen (`e` saves the columns) for the next.
    os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="repx-shots-")
    app = fixed_app()
    with in_workspace(name):
        async with app.run_test(size=SIZE) as pilot:
            await SHOTS[name](pilot)
            await pilot.pause()
            path = out_dir / f"{name}.svg"
            path.write_text(app.export_screenshot(title=f"repx-tui — {name}"))
    return path


async def main() -> int:
    out_dir = ROOT / "screenshots"
    out_dir.mkdir(exist_ok=True)
    for name in sys.argv[1:] or SHOTS:  # python scripts/screenshots.py [NAME...]
        print(await shoot(name, out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
