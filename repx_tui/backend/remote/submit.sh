#!/usr/bin/env bash
# Submit a batch of sbatch scripts in one go, in the order given (topological).
#
#   submit.sh HOST_TOOLS_BIN BASE
#       < {"lab_id":"..","jobs":[{"id","deps":[job ids],"after":[job ids],"script"}]}
#
# Answers one line per job:  job<TAB>SLURM_ID | job<TAB>SKIPPED<TAB>reason | job<TAB>ERROR<TAB>msg
# `deps` must each be in this batch, queued from this base_path, or succeeded; `after` (inter-run
# sources the user chose to go without) are waited for only when queued.
#
# One job, one submission: the whole check-submit-record runs under one lock per base_path, so
# any number of clients (and Labs sharing job ids) submitting at once see each other's work. A
# job that already succeeded, or is queued or running under any SLURM id recorded here, is
# skipped (a queued one still anchors its dependants' afterok). Each id is appended to the
# record <BASE>/submissions/<lab_id>/<stamp>.json (JSON lines) as soon as sbatch returns it, so
# a cut mid-batch loses nothing.
set -euo pipefail

PATH="$1:$PATH"
export PATH
BASE="$2"

BATCH="$(cat)"
LAB_ID="$(jq -r .lab_id <<<"$BATCH")"
USER_NAME="$(id -un)"
SUBMISSIONS="$BASE/submissions"
RECORD_DIR="$SUBMISSIONS/$LAB_ID"
STAMP="$(date -u +%Y%m%dT%H%M%S.%NZ)-$$"
RECORD="$RECORD_DIR/$STAMP.json"
SCRIPT_DIR="$RECORD_DIR/$STAMP"
mkdir -p "$SCRIPT_DIR"
# Fields every record line shares, JSON-escaped once.
COMMON="$(jq -cn --arg lab "$LAB_ID" --arg user "$USER_NAME" --arg host "$(uname -n)" \
    '{lab_id: $lab, user: $user, host: $host}')"

exec 9>>"$SUBMISSIONS/.lock"
flock -x 9

declare -A SLURM_ID=()   # repx job id -> SLURM id (queued before, or submitted now)
declare -A FAILED=()     # repx job ids that could not be submitted

# Every SLURM id recorded under this base_path, by any Lab: the same job (same id, same outputs
# dir) may belong to several Labs, and the same Lab in another base_path is not ours.
declare -A RECORDED=()   # SLURM id -> repx job id
recorded_ids() {
    local -a files=("$SUBMISSIONS"/*/*.json) legacy
    # one JSON object per line; a line cut short by a dropped connection is skipped
    cat "${files[@]}" | jq -rR 'fromjson? | select(has("job")) | "\(.slurm_id) \(.job)"'
    # records of earlier versions: one pretty-printed object per file, {"jobs": {job: id}}
    mapfile -t legacy < <(grep -lx '{' "${files[@]}" || true)
    if ((${#legacy[@]})); then
        jq -r '.jobs // {} | to_entries[] | "\(.value) \(.key)"' "${legacy[@]}"
    fi
}
if compgen -G "$SUBMISSIONS/*/*.json" >/dev/null; then
    while read -r sid name; do
        RECORDED["$sid"]="$name"
    done < <(recorded_ids 2>/dev/null || true)
fi

# Our jobs already in the queue.
while read -r sid name state; do
    [[ "${RECORDED[$sid]:-}" == "$name" ]] || continue
    case "$state" in
        PENDING | RUNNING | CONFIGURING | COMPLETING | REQUEUED | RESIZING | SUSPENDED)
            SLURM_ID["$name"]="$sid"
            ;;
    esac
done < <(squeue -h -u "$USER_NAME" -o '%i %j %T' 2>/dev/null || true)

one_line() { tr '\n\t' '  ' | sed 's/ *$//'; }

succeeded() { [[ -e "$BASE/outputs/$1/repx/SUCCESS" ]]; }

# "dep1,dep2" "after1,after2" -> "sid1:sid2" on stdout; non-zero if a dep is unusable
dependency_ids() {
    local dep ids=()
    local -a deps after=()
    IFS=, read -r -a deps <<<"$1"
    [[ "$2" == - ]] || IFS=, read -r -a after <<<"$2"
    for dep in "${deps[@]}"; do
        if [[ -n "${SLURM_ID[$dep]:-}" ]]; then
            ids+=("${SLURM_ID[$dep]}")
        elif [[ -n "${FAILED[$dep]:-}" ]] || ! succeeded "$dep"; then
            echo "upstream $dep was not submitted and has not succeeded"
            return 1
        fi
    done
    for dep in "${after[@]}"; do
        [[ -z "${SLURM_ID[$dep]:-}" ]] || ids+=("${SLURM_ID[$dep]}")
    done
    local IFS=:
    printf '%s' "${ids[*]}"
}

record() { # JOB SLURM_ID
    printf '{"job":"%s","slurm_id":"%s","time":"%s",%s\n' "$1" "$2" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "${COMMON#\{}" >>"$RECORD"
}

submit_one() { # ID DEPS AFTER SCRIPT_B64
    local id="$1" script="$SCRIPT_DIR/$1.sbatch" deps out sid
    local args=(--parsable)
    if succeeded "$id"; then
        printf '%s\tSKIPPED\talready succeeded\n' "$id"
        return
    fi
    if [[ -n "${SLURM_ID[$id]:-}" ]]; then
        printf '%s\tSKIPPED\talready queued or running as SLURM job %s\n' "$id" "${SLURM_ID[$id]}"
        return
    fi
    if ! deps="$(dependency_ids "$2" "$3")"; then
        FAILED["$id"]=1
        printf '%s\tERROR\t%s\n' "$id" "$deps"
        return
    fi
    [[ -z "$deps" ]] || args+=("--dependency=afterok:$deps" --kill-on-invalid-dep=yes)
    base64 -d <<<"$4" >"$script"
    # sbatch opens the log file before the executor runs: its directory must exist, and an
    # old FAIL marker must not hide the new queue state.
    mkdir -p "$BASE/outputs/$id/repx"
    rm -f "$BASE/outputs/$id/repx/FAIL"
    if out="$(sbatch "${args[@]}" "$script" 2>&1)" && sid="${out%%;*}" && [[ "$sid" =~ ^[0-9]+$ ]]; then
        record "$id" "$sid"
        SLURM_ID["$id"]="$sid"
        printf '%s\t%s\n' "$id" "$sid"
    else
        FAILED["$id"]=1
        printf '%s\tERROR\t%s\n' "$id" "$(one_line <<<"$out")"
    fi
}

# A tab is IFS whitespace, so an empty field in the middle would vanish: "after" is "-" when
# empty, and deps come last.
while IFS=$'\t' read -r id script after deps; do
    submit_one "$id" "$deps" "$after" "$script"
done < <(jq -r '.jobs[] | [.id, (.script | @base64),
    ((.after // []) | if length == 0 then "-" else join(",") end), (.deps | join(","))] | @tsv' <<<"$BATCH")
