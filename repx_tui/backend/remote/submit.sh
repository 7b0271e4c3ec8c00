#!/usr/bin/env bash
# Submit a batch of sbatch scripts in one go, in the order given (topological).
#
#   submit.sh HOST_TOOLS_BIN BASE   < {"lab_id":"..","jobs":[{"id","deps":[job ids],"script"}]}
#
# Answers one line per job:  job<TAB>SLURM_ID | job<TAB>SKIPPED<TAB>reason | job<TAB>ERROR<TAB>msg
# A job that already succeeded, or that an earlier batch from this base_path put in the queue
# and is still queued or running, is skipped (a queued one still anchors its dependants'
# afterok). Writes a submission record
# <BASE>/submissions/<lab_id>/<stamp>.json (job -> SLURM id, time, user, host), atomically.
set -euo pipefail

PATH="$1:$PATH"
export PATH
BASE="$2"

BATCH="$(cat)"
LAB_ID="$(jq -r .lab_id <<<"$BATCH")"
USER_NAME="$(id -un)"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)-$$"
RECORD_DIR="$BASE/submissions/$LAB_ID"
SCRIPT_DIR="$RECORD_DIR/$STAMP"
mkdir -p "$SCRIPT_DIR"

declare -A SLURM_ID=()   # repx job id -> SLURM id (queued before, or submitted now)
declare -A FAILED=()     # repx job ids that could not be submitted
declare -A SUBMITTED=()  # what this batch submitted, for the record

# SLURM ids this Lab was submitted under from this base_path, by earlier batches. Only those
# count as "already queued": the same Lab synced to another base_path has jobs of the same names.
declare -A RECORDED=()   # SLURM id -> repx job id
if compgen -G "$RECORD_DIR/*.json" >/dev/null; then
    while read -r sid name; do
        RECORDED["$sid"]="$name"
    done < <(jq -r '.jobs // {} | to_entries[] | "\(.value) \(.key)"' "$RECORD_DIR"/*.json 2>/dev/null || true)
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

dependency_ids() { # "dep1,dep2"  -> "sid1:sid2" on stdout; non-zero if a dep is unusable
    local dep ids=()
    local -a deps
    IFS=, read -r -a deps <<<"$1"
    for dep in "${deps[@]}"; do
        if [[ -n "${SLURM_ID[$dep]:-}" ]]; then
            ids+=("${SLURM_ID[$dep]}")
        elif [[ -n "${FAILED[$dep]:-}" || ! -e "$BASE/outputs/$dep/repx/SUCCESS" ]]; then
            echo "upstream $dep was not submitted and has not succeeded"
            return 1
        fi
    done
    local IFS=:
    printf '%s' "${ids[*]}"
}

submit_one() { # ID DEPS SCRIPT_B64
    local id="$1" script="$SCRIPT_DIR/$1.sbatch" deps out sid
    local args=(--parsable)
    if [[ -e "$BASE/outputs/$id/repx/SUCCESS" ]]; then
        printf '%s\tSKIPPED\talready succeeded\n' "$id"
        return
    fi
    if [[ -n "${SLURM_ID[$id]:-}" ]]; then
        printf '%s\tSKIPPED\talready queued or running as SLURM job %s\n' "$id" "${SLURM_ID[$id]}"
        return
    fi
    if ! deps="$(dependency_ids "$2")"; then
        FAILED["$id"]=1
        printf '%s\tERROR\t%s\n' "$id" "$deps"
        return
    fi
    [[ -z "$deps" ]] || args+=("--dependency=afterok:$deps" --kill-on-invalid-dep=yes)
    base64 -d <<<"$3" >"$script"
    # sbatch opens the log file before the executor runs: its directory must exist, and an
    # old FAIL marker must not hide the new queue state.
    mkdir -p "$BASE/outputs/$id/repx"
    rm -f "$BASE/outputs/$id/repx/FAIL"
    if out="$(sbatch "${args[@]}" "$script" 2>&1)"; then
        sid="${out%%;*}"
        SLURM_ID["$id"]="$sid"
        SUBMITTED["$id"]="$sid"
        printf '%s\t%s\n' "$id" "$sid"
    else
        FAILED["$id"]=1
        printf '%s\tERROR\t%s\n' "$id" "$(one_line <<<"$out")"
    fi
}

write_record() {
    local record="$RECORD_DIR/$STAMP.json" id jobs
    jobs="$(for id in "${!SUBMITTED[@]}"; do printf '%s\t%s\n' "$id" "${SUBMITTED[$id]}"; done |
        jq -R -n '[inputs | select(length > 0) | split("\t") | {(.[0]): .[1]}] | add // {}')"
    jq -n --arg lab "$LAB_ID" --arg user "$USER_NAME" --arg host "$(uname -n)" \
        --arg time "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --argjson jobs "$jobs" \
        '{lab_id: $lab, user: $user, host: $host, time: $time, jobs: $jobs}' >"$record.tmp"
    mv -f "$record.tmp" "$record"
}

# deps last: a tab is IFS whitespace, so an empty field in the middle would vanish.
while IFS=$'\t' read -r id script deps; do
    submit_one "$id" "$deps" "$script"
done < <(jq -r '.jobs[] | [.id, (.script | @base64), (.deps | join(","))] | @tsv' <<<"$BATCH")

write_record
