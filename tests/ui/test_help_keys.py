"""The help (`?`) lists each key once: a screen's binding that only repeats an App key (the Jobs
screen binds `?` to app.help so its key bar shows it) is listed under "Everywhere" alone."""

from __future__ import annotations

import re

from repx_tui.ui.screens.help import HelpScreen
from tests.helpers import async_wait_until
from tests.ui.fixed import fixed_app, job_states
from tests.ui.helpers import screen_text

ROW = re.compile(r"█ {3}(\S+) +(\S.*?) *█$")  # one key of the help box: "█   ?    Help   █"


async def test_the_help_lists_each_key_once():
    app = fixed_app()
    async with app.run_test(size=(100, 200)) as pilot:  # tall: the whole help on screen
        app.controller.feed(job_states())
        await async_wait_until(lambda: app.screen.query_one("#jobs").row_count == 8, timeout=5)
        assert "? Help" in screen_text(app)  # the Jobs key bar still offers it
        await pilot.press("question_mark")
        await async_wait_until(lambda: isinstance(app.screen, HelpScreen), timeout=5)
        lines = screen_text(app).splitlines()
    rows = [(m[1], m[2]) for line in lines if (m := ROW.search(line))]
    assert [row for row in rows if row[0] == "?"] == [("?", "Help")]
    assert len(rows) == len(set(rows)), sorted(r for r in rows if rows.count(r) > 1)
    everywhere = next(i for i, line in enumerate(lines) if "█ Everywhere" in line)
    assert any(ROW.search(line) and ROW.search(line)[1] == "?" for line in lines[everywhere:])
    assert ("i", "Inspect") in rows and ("q", "Quit") in rows  # the screen's and the App's keys both there
