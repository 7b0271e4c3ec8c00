"""A submission cut mid-batch on the real SLURM over the real sshd: nothing sbatch accepted is
lost, and running again submits the rest, one SLURM id per job (issue 15).

The cut is the worst moment there is: the target's `sbatch` (a wrapper shipped as one of the
Lab's host tools, first on submit.sh's PATH) hands its job id back and, before the batch can
write its record line, kills the whole submission with SIGKILL."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from repx_tui.backend.lab import Lab
from tests.bedtargets import queued_ids_by_name, recorded_ids, slurm_cluster, wrapped_tool

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import labgen  # noqa: E402

pytestmark = [pytest.mark.slurm, pytest.mark.sshd]
CUT_AT = 4  # the 4th sbatch of the batch answers, then the batch dies

# Kills the outermost process running submit.sh (old versions ran sbatch in a subshell) once,
# on call number $CUT_AT, after the real sbatch answered; later calls (and those running beside
# it) go straight through.
WRAPPER = r"""#!/bin/bash
state=@STATE@
out=$(/usr/bin/sbatch "$@") || exit $?
printf '%s\n' "$out"
{  # calls counted under a lock: several sbatch run at once
    flock 8
    { read -r n < "$state/count"; } 2>/dev/null || n=0
    n=$((n + 1))
    printf '%s\n' "$n" > "$state/count"
} 8>"$state/lock"
if [ "$n" = @CUT_AT@ ] && [ -e "$state/armed" ]; then
    rm -f "$state/armed"
    pid=$PPID top=
    while [ "$pid" -gt 1 ]; do
        if tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q 'submit\.sh'; then top=$pid; fi
        read -r _ _ _ pid _ < "/proc/$pid/stat"
    done
    kill -9 "$top"
fi
"""


@pytest.fixture
def cut_lab(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A Lab whose host tools include the cutting sbatch wrapper; (Lab dir, wrapper state dir)."""
    state = tmp_path / "sbatch-state"
    state.mkdir()
    (state / "armed").touch()
    wrapped_tool(
        tmp_path, monkeypatch, "sbatch", WRAPPER.replace("@STATE@", str(state)).replace("@CUT_AT@", str(CUT_AT))
    )
    lab_dir = labgen.make_lab(tmp_path / "lab", "quick", host_tools=(*labgen.SCRIPT_TOOLS, "sbatch"), scale=6)
    return lab_dir, state


def test_a_batch_cut_after_sbatch_answered_loses_nothing_and_a_rerun_submits_each_job_once(
    cut_lab, tmp_path, sshd_target, slurm_available
):
    lab_dir, state = cut_lab
    lab = Lab.load(lab_dir)
    held = '[[rules]]\njob_id_glob = "*"\nsbatch_opts = ["--hold"]\n'  # a rule: rules come after the Lab's hints
    bed = slurm_cluster(tmp_path, sshd_target, slurm_available["partition"], mem="64M", rules=held)
    base = bed.base  # held: nothing runs, everything stays queued

    try:
        cut = bed.run(lab_dir, "@all")
        assert cut.returncode != 0, cut.stdout  # the batch died under the client
        assert not (state / "armed").exists()
        answer = bed.run(lab_dir, "@all")
        assert answer.returncode == 0, answer.stdout + answer.stderr
        result = json.loads(answer.stdout.strip().splitlines()[-1])
        recorded = recorded_ids(base, lab.lab_id)
        queued = queued_ids_by_name(set(lab.jobs))
        # the cut job's id was recorded, and so were those of the jobs submitted beside it (several
        # sbatch run at once): the rerun skipped them all and submitted the rest, each job once
        assert len(result["skipped"]) >= CUT_AT
        assert int((state / "count").read_text()) == len(lab.jobs)  # sbatch calls, both runs
        assert sorted([s["job"] for s in result["submitted"]] + [s["job"] for s in result["skipped"]]) == sorted(
            lab.jobs
        )
        assert set(recorded) == set(lab.jobs) and all(len(ids) == 1 for ids in recorded.values()), recorded
        assert queued == recorded  # one SLURM job per Lab job, and it is the recorded one
        # adopted ids went into the cut batch's own record, and nothing of the cut batch is left over
        left = sorted(p.name for p in (base / "submissions" / lab.lab_id).iterdir() if p.is_file())
        assert all(re.fullmatch(r"\d{8}T\d{6}\.\d+Z-\d+\.json", name) for name in left), left
    finally:
        stray = [sid for ids in queued_ids_by_name(set(lab.jobs)).values() for sid in ids]
        if stray:
            subprocess.run(["scancel", *stray], capture_output=True)
