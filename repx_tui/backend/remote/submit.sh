#!/usr/bin/env bash
# Submit a batch of sbatch scripts in one go, in the order given (topological).
#
#   submit.sh HOST_TOOLS_BIN BASE LAB_ID < tar.gz{jobs.tsv, <job>.sbatch...}
#
# jobs.tsv has one line per job, in submission order:  job<TAB>after<TAB>deps  ("after" is "-"
# when empty; deps, comma-separated, come last and may be empty).
# Answers one line per job:  job<TAB>SLURM_ID | job<TAB>SKIPPED<TAB>reason | job<TAB>ERROR<TAB>msg
# `deps` must each be in this batch, queued from this base_path, or succeeded; `after` (inter-run
# sources the user chose to go without) are waited for only when queued.
#
# One job, one submission: the whole check-submit-record runs under one lock per base_path, so
# any number of clients (and Labs sharing job ids) submitting at once see each other's work. A
# job that already succeeded, or is queued or running under any SLURM id recorded here, is
# skipped (a queued one still anchors its dependants' afterok). Each id is appended to the
# record <BASE>/submissions/<lab_id>/<stamp>.json (JSON lines) as soon as sbatch returns it, and
# sbatch itself writes the id into its own <stamp>.<slot>.inflight first, so a cut between
# sbatch's answer and the record line loses nothing either: the next submission under the lock
# records it.
#
# Speed: one pass unpacks every script (one tar) and creates every output dir (one mkdir); then
# the loop starts nothing per job but `sbatch`, up to LANES of them at once among the jobs
# whose dependencies already have their SLURM ids.
set -euo pipefail

PATH="$1:$PATH"
export PATH
BASE="$2"
LAB_ID="$3"
USER_NAME="$(id -un)"
SUBMISSIONS="$BASE/submissions"
RECORD_DIR="$SUBMISSIONS/$LAB_ID"
STAMP="$(date -u +%Y%m%dT%H%M%S.%NZ)-$$"
RECORD="$RECORD_DIR/$STAMP.json"
ERRORS="$RECORD_DIR/$STAMP.err"
SCRIPT_DIR="$RECORD_DIR/$STAMP"
mkdir -p "$SCRIPT_DIR"
tar -xzf - -C "$SCRIPT_DIR"
# Fields every record line shares after the id, JSON-escaped once.
COMMON="$(jq -cn --arg lab "$LAB_ID" --arg user "$USER_NAME" --arg host "$(uname -n)" \
    '{lab_id: $lab, user: $user, host: $host}')"

exec 9>>"$SUBMISSIONS/.lock"
flock -x 9

# A batch cut after sbatch answered but before its record line: the id is in its .inflight
# (line 1 the record's head, line 2 its tail, line 3 written by sbatch). Nobody else holds the
# lock, so every .inflight left is such a batch's.
adopt_inflight() {
    local file first last sid stamp
    for file in "$SUBMISSIONS"/*/*.inflight; do
        [[ -f "$file" ]] || continue
        { IFS= read -r first && IFS= read -r last && IFS= read -r sid; } <"$file" || sid=""
        sid="${sid%%;*}"
        stamp="${file%.inflight}" # <stamp>.<slot>, or <stamp> from versions with one sbatch at a time
        [[ ! "$stamp" =~ ^(.*)\.[0-9]+$ ]] || stamp="${BASH_REMATCH[1]}"
        if [[ "$sid" =~ ^[0-9]+$ ]] && ! grep -qsF "\"slurm_id\":\"$sid\"" "$stamp.json"; then
            printf '%s%s%s\n' "$first" "$sid" "$last" >>"$stamp.json"
        fi
        rm -f -- "$file" "${file%.inflight}.err" "$stamp.err"
    done
}
adopt_inflight

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

# Our jobs already in the queue. Without an answer from squeue (slurmctld busy or down) a queued
# job cannot be told from one never submitted: refuse the batch rather than submit it again.
if ! QUEUE="$(squeue -h -u "$USER_NAME" -o '%i %j %T' 2>"$ERRORS")"; then
    printf 'cannot read the SLURM queue, so nothing was submitted (squeue: %s)\n' \
        "$(tr '\n\t' '  ' <"$ERRORS" | sed 's/ *$//')" >&2
    rm -f -- "$ERRORS"
    exit 1
fi
while read -r sid name state; do
    [[ -n "$sid" && "${RECORDED[$sid]:-}" == "$name" ]] || continue
    case "$state" in
        PENDING | RUNNING | CONFIGURING | COMPLETING | REQUEUED | RESIZING | SUSPENDED)
            SLURM_ID["$name"]="$sid"
            ;;
    esac
done <<<"$QUEUE"

succeeded() { [[ -e "$BASE/outputs/$1/repx/SUCCESS" ]]; }

# DEPS="sid1:sid2" for "dep1,dep2" "after1,after2"; non-zero (DEPS = the reason) if a dep is
# unusable. Sets a variable instead of printing: no subshell per job.
DEPS=""
dependency_ids() {
    local dep ids=()
    local -a deps=() after=()
    [[ -z "$1" ]] || IFS=, read -r -a deps <<<"$1"
    [[ "$2" == - ]] || IFS=, read -r -a after <<<"$2"
    for dep in "${deps[@]}"; do
        if [[ -n "${SLURM_ID[$dep]:-}" ]]; then
            ids+=("${SLURM_ID[$dep]}")
        elif [[ -n "${FAILED[$dep]:-}" ]] || ! succeeded "$dep"; then
            DEPS="upstream $dep was not submitted and has not succeeded"
            return 1
        fi
    done
    for dep in "${after[@]}"; do
        [[ -z "${SLURM_ID[$dep]:-}" ]] || ids+=("${SLURM_ID[$dep]}")
    done
    local IFS=:
    DEPS="${ids[*]}"
}

# Pass 1, no process per job: what is skipped is known before anything is submitted; every
# other job gets its output dir (sbatch opens the log there before the executor runs) and loses
# an old FAIL marker (it must not hide the new queue state), all in one mkdir and one rm.
IDS=() AFTER=() DEPENDS=()
OUT_DIRS=() OLD_FAILS=()
# A tab is IFS whitespace, so an empty field in the middle would vanish: "after" is "-" when
# empty, and deps come last.
while IFS=$'\t' read -r id after deps; do
    if succeeded "$id"; then
        printf '%s\tSKIPPED\talready succeeded\n' "$id"
    elif [[ -n "${SLURM_ID[$id]:-}" ]]; then
        printf '%s\tSKIPPED\talready queued or running as SLURM job %s\n' "$id" "${SLURM_ID[$id]}"
    else
        IDS+=("$id") AFTER+=("$after") DEPENDS+=("$deps")
        OUT_DIRS+=("$BASE/outputs/$id/repx")
        OLD_FAILS+=("$BASE/outputs/$id/repx/FAIL")
    fi
done <"$SCRIPT_DIR/jobs.tsv"
if ((${#IDS[@]})); then
    printf '%s\0' "${OUT_DIRS[@]}" | xargs -0 mkdir -p --
    printf '%s\0' "${OLD_FAILS[@]}" | xargs -0 rm -f --
fi

one_line() { tr '\n\t' '  ' <"$1" | sed 's/ *$//'; }

# Pass 2: per job, only sbatch, several at once. A job's level is one more than its deepest
# dependency in this batch, so the jobs of one level depend only on ids already known: they
# go LANES at a time (slurmctld takes RPCs in parallel; one sbatch mostly waits on it). Each
# job in flight has its own .inflight file: sbatch writes the id there, then the record gets
# it, so a cut anywhere loses nothing.
LANES="$(nproc 2>/dev/null || echo 2)"
((LANES >= 2)) || LANES=2
((LANES <= 4)) || LANES=4
declare -A LEVEL=()
BY_LEVEL=()
for i in "${!IDS[@]}"; do
    level=0
    IFS=, read -r -a upstream <<<"${DEPENDS[$i]},${AFTER[$i]#-}"
    for dep in "${upstream[@]}"; do
        if [[ -n "$dep" && -n "${LEVEL[$dep]:-}" ]] && ((LEVEL[$dep] >= level)); then
            level=$((LEVEL[$dep] + 1))
        fi
    done
    LEVEL["${IDS[$i]}"]=$level
    BY_LEVEL[level]+=" $i"
done

FIRST=() LAST=() IN_FLIGHT=()
# Start job $1 in slot $2 (in the background); non-zero if it cannot be submitted.
start_job() {
    local i=$1 slot=$2 id="${IDS[$1]}" now
    local -a args=(--parsable)
    if ! dependency_ids "${DEPENDS[$i]}" "${AFTER[$i]}"; then
        FAILED["$id"]=1
        printf '%s\tERROR\t%s\n' "$id" "$DEPS"
        return 1
    fi
    [[ -z "$DEPS" ]] || args+=("--dependency=afterok:$DEPS" --kill-on-invalid-dep=yes)
    TZ=UTC0 printf -v now '%(%Y-%m-%dT%H:%M:%SZ)T' -1
    FIRST[slot]="{\"job\":\"$id\",\"slurm_id\":\""
    LAST[slot]="\",\"time\":\"$now\",${COMMON#\{}"
    # exit, not return: called as a condition, so set -e does not stop the batch here, and a job
    # whose id cannot be kept (disk or quota full) must not go to sbatch at all
    printf '%s\n%s\n' "${FIRST[slot]}" "${LAST[slot]}" >"$RECORD_DIR/$STAMP.$slot.inflight" || exit 1
    sbatch "${args[@]}" "$SCRIPT_DIR/$id.sbatch" >>"$RECORD_DIR/$STAMP.$slot.inflight" \
        2>"$RECORD_DIR/$STAMP.$slot.err" &
}
# Job $1 of slot $2 has finished its sbatch: record its id, or say why there is none.
finish_job() {
    local i=$1 slot=$2 id="${IDS[$1]}" sid="" message
    local inflight="$RECORD_DIR/$STAMP.$slot.inflight"
    { read -r _ && read -r _ && IFS= read -r sid; } <"$inflight" || true
    sid="${sid%%;*}"
    if [[ "$sid" =~ ^[0-9]+$ ]]; then
        printf '%s%s%s\n' "${FIRST[slot]}" "$sid" "${LAST[slot]}" >>"$RECORD"
        : >"$inflight"
        SLURM_ID["$id"]="$sid"
        printf '%s\t%s\n' "$id" "$sid"
    else
        FAILED["$id"]=1
        message="$(one_line "$RECORD_DIR/$STAMP.$slot.err")"
        printf '%s\tERROR\t%s\n' "$id" "${message:-sbatch answered no job id}"
    fi
}
for level in "${!BY_LEVEL[@]}"; do
    read -r -a members <<<"${BY_LEVEL[level]}"
    for ((first = 0; first < ${#members[@]}; first += LANES)); do
        IN_FLIGHT=()
        for i in "${members[@]:first:LANES}"; do
            if start_job "$i" "${#IN_FLIGHT[@]}"; then IN_FLIGHT+=("$i"); fi
        done
        wait
        for slot in "${!IN_FLIGHT[@]}"; do finish_job "${IN_FLIGHT[slot]}" "$slot"; done
    done
done
# Only now: a batch killed mid-loop leaves its .inflight files for the next one to adopt.
rm -f -- "$ERRORS" "$RECORD_DIR/$STAMP".*.inflight "$RECORD_DIR/$STAMP".*.err
