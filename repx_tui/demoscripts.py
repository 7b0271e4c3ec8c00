"""The demo Lab's stage scripts: upstream's calling convention (`<script> <out> <inputs.json>
<parameters.json>`), with the demo's options (log lines, sleeps, injected failures) woven in."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from repx_tui.demolab import DemoOptions, _Exe, _Stage

_PREAMBLE = r"""#!/usr/bin/env bash
# RepX demo stage __LABEL__
# Calling convention: <script> <out_dir> <inputs.json> <parameters.json>
set -euo pipefail
if [ "$#" -ne 3 ]; then
  echo "usage: $0 <out_dir> <inputs.json> <parameters.json>" >&2
  exit 64
fi
out="$1"
declare -A inputs=() params=()
# One jq run for both files: jq's start-up time dominates these tiny stages.
entries=$(jq -r -n 'input as $i | input as $p
  | if ($i | type) != "object" or ($p | type) != "object" then error("not a JSON object") else empty end,
    ($i | to_entries[] | ["i", .key, (.value | if type == "string" then . else tojson end)] | @tsv),
    ($p | to_entries[] | ["p", .key, (.value | if type == "string" then . else tojson end)] | @tsv)' "$2" "$3") \
  || { echo "__LABEL__: $2 and $3 must hold JSON objects" >&2; exit 65; }
while IFS=$'\t' read -r kind key value; do
  case "$kind" in
    i) inputs["$key"]="$value" ;;
    p) params["$key"]="$value" ;;
  esac
done <<< "$entries"
for key in "${!inputs[@]}"; do
  [ -e "${inputs[$key]}" ] || { echo "__LABEL__: input '$key' not found: ${inputs[$key]}" >&2; exit 66; }
done
mkdir -p "$out"
# Like upstream: start from an empty $out, but keep SLURM's own log files.
find "$out" -mindepth 1 -maxdepth 1 ! -name 'slurm-*.out' -exec rm -rf {} +
cd "$out"
echo "__LABEL__: started with ${#params[@]} parameter(s), ${#inputs[@]} input(s)" >&2
"""


def stage_script(stage: _Stage, exe: _Exe, options: DemoOptions) -> str:
    label = f"{stage.pname}/{exe.name}"
    parts = [_PREAMBLE.replace("__LABEL__", label)]
    if options.log_lines > 0:
        pause = f"; sleep {options.log_delay}" if options.log_delay > 0 else ""
        parts.append(
            f"for ((line = 1; line <= {options.log_lines}; line++)); do "
            f'echo "{label} log line $line/{options.log_lines}"{pause}; done\n'
        )
    seconds = _sleep_for(stage, options)
    if seconds > 0:
        parts.append(f"sleep {seconds}\n")
    if _fails(stage, exe, options):
        failure = f'echo "{label}: injected failure (demo fail_job)" >&2\nexit 3\n'
        if options.fail_unless:
            failure = f"if [ ! -e {shlex.quote(options.fail_unless)} ]; then\n{failure}fi\n"
        parts.append(failure)
    parts.append(exe.body.rstrip("\n") + "\n")
    parts.append(f'echo "{label}: done"\n')
    return "".join(parts)


def _sleep_for(stage: _Stage, options: DemoOptions) -> float:
    value = options.sleep_seconds
    if isinstance(value, Mapping):
        return float(value.get(stage.pname, value.get(stage.id, 0.0)))
    return float(value)


def _fails(stage: _Stage, exe: _Exe, options: DemoOptions) -> bool:
    if not options.fail_job:
        return False
    target, _, exe_name = options.fail_job.partition(":")
    if target not in (stage.pname, stage.name, stage.id):
        return False
    default = "gather" if stage.stage_type == "scatter-gather" else "main"
    return exe.name == (exe_name or default)
