"""The inspector's log sizes mean the same in `show --json` and in its human form: a log the unit
has not written is 0 bytes in both (the target script looked: it is not there), and null in JSON
is "?" for people, never "0B" (the size could not be read)."""

from __future__ import annotations

import io
import json

from repx_tui.backend.events import JobInspection, UnitState
from repx_tui.backend.inspection import INSPECT_SCRIPT, parse_units
from repx_tui.backend.status.slurm import SEP
from repx_tui.backend.transport.local import LocalTransport
from repx_tui.headless.render import renderer


def shown(inspection: JobInspection, as_json: bool) -> str:
    out = io.StringIO()
    renderer(as_json, out)(inspection)
    return out.getvalue()


async def test_a_log_never_written_is_zero_bytes_in_json_and_in_words(tmp_path):
    root = tmp_path / "outputs" / "job"
    (root / "repx").mkdir(parents=True)
    (root / "repx" / "stdout.log").write_text("hello\n")  # no stderr.log: the job wrote nothing there
    (root / "repx" / "SUCCESS").touch()
    (root / "scatter" / "repx").mkdir(parents=True)
    (root / "scatter" / "repx" / "SUCCESS").touch()  # a unit with neither log
    answer = await LocalTransport().run_script(INSPECT_SCRIPT, str(root), check=True)
    units = parse_units(answer.stdout, str(root))
    assert [(u.unit, u.stdout_bytes, u.stderr_bytes) for u in units] == [("", 6, 0), ("scatter", 0, 0)]

    inspection = JobInspection("job", "name", "run", "scatter-gather", "local", units=units)
    (data,) = [json.loads(line) for line in shown(inspection, True).splitlines()]
    assert [(u["stdout_bytes"], u["stderr_bytes"]) for u in data["units"]] == [(6, 0), (0, 0)]
    lines = shown(inspection, False).splitlines()
    assert lines[lines.index("units:") + 1].endswith("succeeded  stdout 6B, stderr 0B")


def test_a_size_that_could_not_be_read_is_null_and_a_question_mark():
    root = "/b/outputs/job"
    listed_not_stated = f"F{SEP}{root}/repx/stdout.log{SEP}\nF{SEP}{root}/repx/stderr.log{SEP}\n"
    listed_not_stated += f"S{SEP}{root}/repx/stdout.log{SEP}12{SEP}1700000000\n"  # stderr.log went before the stat
    (unit,) = parse_units(listed_not_stated, root)
    assert (unit.stdout_bytes, unit.stderr_bytes) == (12, None)
    inspection = JobInspection("job", "n", "r", "scatter-gather", "local", units=(unit, UnitState("gather", "running")))
    assert json.loads(shown(inspection, True))["units"][0]["stderr_bytes"] is None
    assert "(job)                        running  stdout 12B, stderr ?" in shown(inspection, False)
