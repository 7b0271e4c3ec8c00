#!/usr/bin/env bash
# The local-scheduler agent: runs a Lab's job DAG on this machine, detached from the client.
#
#   agent.sh submit HOST_TOOLS_BIN EXECUTOR AGENT_DIR   < {"concurrency":N|null,"jobs":[{"id","deps","after","spec"}]}
#       (deps must succeed first; "after" jobs are waited for only while queued or running)
#       queue jobs (skipping succeeded / already queued or running ones), start the agent
#       if none runs; prints "job<TAB>QUEUED" or "job<TAB>SKIPPED<TAB>reason" lines
#   agent.sh serve HOST_TOOLS_BIN EXECUTOR AGENT_DIR    the agent loop (started by submit)
#   agent.sh cancel HOST_TOOLS_BIN AGENT_DIR --all | JOB...
#       prints "job<TAB>cancelled" or "job<TAB>not-active<TAB>state"
#
# State lives in files so any client can reconnect and read it:
#   AGENT_DIR/agent.lock            held (flock) for the agent's whole life
#   AGENT_DIR/agent.pid, agent.log, concurrency
#   AGENT_DIR/state.lock            held for each scheduling pass and each cancel
#   AGENT_DIR/jobs/<id>/{spec.json,deps,after,state,reason,pgid,rc,executor.log,run.lock}
#       state: queued | running | succeeded | failed | blocked | cancelled
#       run.lock: held (flock) by the job's executor and everything it starts, for their whole
#       life: free means no process of that run is left (no pid can be reused to fake it).
#       rc: "EXIT_STATUS PGID" of the run it belongs to (a stale writer cannot fool a new run).
#
# The agent may die (kill -9, OOM, reboot) while jobs run. A running job whose executor still
# holds run.lock is adopted by the next agent, which records its outcome from its markers;
# one whose executor is gone gets its outcome from its markers, or fails without one.
set -euo pipefail

PATH="$2:$PATH"
export PATH

COMMAND="$1"
IDLE_EXIT_SECONDS=5
POLL_SECONDS=0.2

set_state() { # JOB STATE [REASON]
    local dir="$JOBS/$1"
    printf '%s\n' "${3:-}" >"$dir/reason.tmp"
    mv -f "$dir/reason.tmp" "$dir/reason"
    printf '%s\n' "$2" >"$dir/state.tmp"
    mv -f "$dir/state.tmp" "$dir/state"
}

state_of() { # JOB -> state, or "" when the agent never saw it
    local file="$JOBS/$1/state"
    if [[ -e "$file" ]]; then cat "$file"; fi
}


marker() { # JOB BASE -> SUCCESS | FAIL | ""
    local repx="$2/outputs/$1/repx"
    if [[ -e "$repx/SUCCESS" ]]; then
        echo SUCCESS
    elif [[ -e "$repx/FAIL" ]]; then
        echo FAIL
    fi
}

agent_alive() { ! flock -n "$AGENT_DIR/agent.lock" true; }

executor_alive() { # JOB -> is any process of its current run left?
    local dir="$JOBS/$1"
    if [[ -e "$dir/run.lock" ]]; then
        flock -n "$dir/run.lock" true && return 1
        return 0
    fi
    # started by an agent older than run.lock: its process group is all there is
    [[ -s "$dir/pgid" ]] && kill -0 -- "-$(cat "$dir/pgid")" 2>/dev/null
}

# --- submit ---------------------------------------------------------------------------------

submit() {
    local dag id base state
    EXECUTOR="$3"
    mkdir -p "$JOBS"
    dag="$(cat)"
    jq -r '.concurrency // empty' <<<"$dag" >"$AGENT_DIR/concurrency.tmp"
    if [[ -s "$AGENT_DIR/concurrency.tmp" ]]; then
        mv -f "$AGENT_DIR/concurrency.tmp" "$AGENT_DIR/concurrency"
    else
        rm -f "$AGENT_DIR/concurrency.tmp"
    fi
    exec 7>>"$AGENT_DIR/state.lock"
    flock -x 7
    # One jq call for the whole batch (jq is slow to start): id, base, compact spec, deps.
    # (deps last: a tab is IFS whitespace, so an empty field in the middle would vanish)
    local alive=false
    if agent_alive; then alive=true; fi
    while IFS=$'\t' read -r id base spec after deps; do
        state="$(state_of "$id")"
        # With no agent alive, "queued" is left over from one that died and is queued again;
        # a "running" job whose executor lives on is kept (the new agent adopts it), never
        # started twice; one whose executor is gone runs again.
        if [[ "$state" == running ]] && executor_alive "$id"; then
            printf '%s\tSKIPPED\talready running\n' "$id"
        elif [[ "$alive" == true && ("$state" == queued || "$state" == running) ]]; then
            printf '%s\tSKIPPED\talready %s\n' "$id" "$state"
        elif [[ "$(marker "$id" "$base")" == SUCCESS ]]; then
            printf '%s\tSKIPPED\talready succeeded\n' "$id"
        else
            mkdir -p "$JOBS/$id"
            rm -f "$JOBS/$id/rc" "$JOBS/$id/pgid" "$JOBS/$id/cancel"
            printf '%s\n' "$spec" >"$JOBS/$id/spec.json"
            tr ',' '\n' <<<"$deps" >"$JOBS/$id/deps"
            if [[ "$after" == - ]]; then : >"$JOBS/$id/after"; else tr ',' '\n' <<<"$after" >"$JOBS/$id/after"; fi
            set_state "$id" queued
            printf '%s\tQUEUED\n' "$id"
        fi
    done < <(jq -r '.jobs[] | "\(.id)\t\(.spec.base)\t\(.spec | tojson)\t\((.after // []) | if length == 0 then "-"
        else join(",") end)\t\(.deps | join(","))"' <<<"$dag")
    # Start the agent before letting go of state.lock: a client that comes next must find it
    # alive, or it would take these jobs for a dead agent's queue and report them submitted too.
    if ! agent_alive; then
        setsid nohup bash "$0" serve "$HOST_TOOLS" "$EXECUTOR" "$AGENT_DIR" \
            </dev/null >>"$AGENT_DIR/agent.log" 2>&1 7>&- &
        local waited=0
        until agent_alive || ((waited >= 50)); do
            sleep 0.1
            waited=$((waited + 1))
        done
    fi
    flock -u 7
}

# --- serve ----------------------------------------------------------------------------------

concurrency() { # a positive integer, whatever the file holds (bad arithmetic would end the agent)
    local limit=""
    [[ ! -s "$AGENT_DIR/concurrency" ]] || read -r limit <"$AGENT_DIR/concurrency" || true
    if [[ "$limit" =~ ^[1-9][0-9]{0,5}$ ]]; then echo "$limit"; else nproc; fi
}

# Start the job in its own session, so its whole process group can be signalled;
# setsid execs in place (the background child is no group leader), so pid == pgid.
# run.lock is taken here, before the state says running, and handed down on fd 6 to the
# executor and everything it starts; the watcher that records rc lets go of it.
# Returns 1 (job stays queued) while any process of an earlier run still holds run.lock.
start_job() { # JOB
    local dir="$JOBS/$1"
    local busy="a process of its previous run is still alive (holds run.lock)"
    exec 6>>"$dir/run.lock"
    if ! flock -n 6; then
        exec 6>&-
        [[ "$(head -n 1 "$dir/reason" 2>/dev/null)" == "$busy" ]] || set_state "$1" queued "$busy"
        return 1
    fi
    rm -f "$dir/rc" "$dir/pgid"
    (
        exec 7>&- 9>&- # the job must not hold the agent's locks
        setsid bash "$EXECUTOR" "$HOST_TOOLS" "$dir/spec.json" </dev/null >>"$dir/executor.log" 2>&1 &
        pgid="$!"
        exec 6>&-
        printf '%s\n' "$pgid" >"$dir/pgid.tmp"
        mv -f "$dir/pgid.tmp" "$dir/pgid"
        rc=0
        wait "$pgid" || rc=$?
        printf '%s %s\n' "$rc" "$pgid" >"$dir/rc.tmp"
        mv -f "$dir/rc.tmp" "$dir/rc"
    ) &
    exec 6>&-
    set_state "$1" running
}

# A running job's rc, when the watcher of its current run wrote it ("" otherwise).
run_rc() { # JOB
    local dir="$JOBS/$1" rc="" owner="" pgid=""
    [[ -e "$dir/rc" && -e "$dir/pgid" ]] || return 0
    read -r rc owner <"$dir/rc" || true
    read -r pgid <"$dir/pgid" || true
    if [[ -n "$rc" && "$owner" == "$pgid" ]]; then echo "$rc"; fi
}

# Outcome of a run nobody watches any more (its agent died): its markers decide.
orphan_outcome() { # JOB -> "STATE<TAB>REASON"
    local repx="$BASE/outputs/$1/repx" code=""
    case "$(marker "$1" "$BASE")" in
        SUCCESS) printf 'succeeded\t\n' ;;
        FAIL)
            [[ ! -e "$repx/exit_code" ]] || read -r code <"$repx/exit_code" || true
            printf 'failed\texit code %s\n' "${code:-unknown}"
            ;;
        *) printf 'failed\texecutor died without an outcome (agent was not watching it)\n' ;;
    esac
}

# A running job: record its outcome once its run is over; returns 1 while it still runs.
settle_running() { # JOB
    local id="$1" dir="$JOBS/$1" rc verdict reason
    rc="$(run_rc "$id")"
    if [[ -z "$rc" ]]; then
        executor_alive "$id" && return 1
        IFS=$'\t' read -r verdict reason < <(orphan_outcome "$id") || true
    elif [[ "$rc" == 0 ]]; then
        verdict=succeeded reason=""
    else
        verdict=failed reason="exit code $rc"
    fi
    if [[ -e "$dir/cancel" ]]; then
        set_state "$id" cancelled "cancelled by request"
    else
        set_state "$id" "${verdict:-failed}" "$reason"
    fi
}

# queued job -> "ready", "wait" or "blocked<TAB>reason"
readiness() { # JOB
    local dep state
    while IFS= read -r dep; do
        [[ -n "$dep" ]] || continue
        state="$(state_of "$dep")"
        case "$state" in
            succeeded) ;;
            failed | blocked | cancelled)
                printf 'blocked\tupstream %s %s\n' "$dep" "$state"
                return
                ;;
            queued | running)
                echo wait
                return
                ;;
            *)
                if [[ "$(marker "$dep" "$BASE")" != SUCCESS ]]; then
                    printf 'blocked\tupstream %s has not succeeded\n' "$dep"
                    return
                fi
                ;;
        esac
    done <"$JOBS/$1/deps"
    if [[ -e "$JOBS/$1/after" ]]; then
        while IFS= read -r dep; do
            case "$(state_of "$dep")" in queued | running)
                echo wait
                return
                ;;
            esac
        done <"$JOBS/$1/after"
    fi
    echo ready
}

# One scheduling pass; sets ACTIVE to how many jobs are still queued or running.
# (Not run in $(...): the jobs it starts would keep that pipe open.)
schedule_pass() {
    local id running=0 active=0 limit verdict reason
    limit="$(concurrency)"
    for dir in "$JOBS"/*/; do
        id="$(basename "$dir")"
        [[ "$(state_of "$id")" == running ]] || continue
        settle_running "$id" || running=$((running + 1))
    done
    for dir in "$JOBS"/*/; do
        id="$(basename "$dir")"
        [[ "$(state_of "$id")" == queued ]] || continue
        active=$((active + 1))
        verdict="" reason=""
        IFS=$'\t' read -r verdict reason < <(readiness "$id") || true
        if [[ "$verdict" == blocked ]]; then
            set_state "$id" blocked "$reason"
            active=$((active - 1))
        elif [[ "$verdict" == ready ]] && ((running < limit)) && start_job "$id"; then
            running=$((running + 1))
        fi
    done
    ACTIVE=$((active + running))
}

serve() {
    local idle_since now
    EXECUTOR="$3"
    exec 9>>"$AGENT_DIR/agent.lock"
    # another agent already serves this directory (waits out a client's brief probe of the lock)
    flock -w 2 9 || exit 0
    printf '%s\n' "$$" >"$AGENT_DIR/agent.pid"
    exec 7>>"$AGENT_DIR/state.lock"
    idle_since="$(date +%s)"
    while true; do
        flock -x 7
        schedule_pass
        now="$(date +%s)"
        if ((ACTIVE > 0)); then
            idle_since="$now"
        elif ((now - idle_since >= IDLE_EXIT_SECONDS)); then
            # Give up agent.lock while still holding state.lock: a submit that queues a
            # job after this point sees no agent and starts a new one.
            rm -f "$AGENT_DIR/agent.pid"
            flock -u 9
            exec 9>&-
            flock -u 7
            break
        fi
        flock -u 7
        sleep "$POLL_SECONDS"
    done
}

# --- cancel ---------------------------------------------------------------------------------

kill_group() { # PGID
    local waited=0
    kill -TERM -- "-$1" 2>/dev/null || return 0
    while kill -0 -- "-$1" 2>/dev/null && ((waited < 50)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL -- "-$1" 2>/dev/null || true
}

cancel_one() { # JOB
    local dir="$JOBS/$1" state
    state="$(state_of "$1")"
    case "$state" in
        queued)
            set_state "$1" cancelled "cancelled by request"
            printf '%s\tcancelled\n' "$1"
            ;;
        running)
            : >"$dir/cancel"
            # only while its run lives: a dead run's pgid may belong to someone else by now
            if [[ -s "$dir/pgid" ]] && executor_alive "$1"; then kill_group "$(cat "$dir/pgid")"; fi
            agent_alive || settle_running "$1" || true # no agent would ever record it
            printf '%s\tcancelled\n' "$1"
            ;;
        *) printf '%s\tnot-active\t%s\n' "$1" "${state:-unknown}" ;;
    esac
}

cancel() { # --all | JOB...
    local ids=() dir
    exec 7>>"$AGENT_DIR/state.lock"
    flock -x 7
    if [[ "${1:-}" == --all ]]; then
        for dir in "$JOBS"/*/; do
            [[ -e "$dir/state" ]] || continue
            case "$(cat "$dir/state")" in queued | running) ids+=("$(basename "$dir")") ;; esac
        done
    else
        ids=("$@")
    fi
    for id in "${ids[@]}"; do cancel_one "$id"; done
    flock -u 7
}

HOST_TOOLS="$2"
case "$COMMAND" in
    submit | serve)
        AGENT_DIR="$4"
        BASE="$(dirname "$(dirname "$AGENT_DIR")")" # AGENT_DIR is <base>/agents/<lab_id>
        JOBS="$AGENT_DIR/jobs"
        mkdir -p "$JOBS"
        "$COMMAND" "$@"
        ;;
    cancel)
        AGENT_DIR="$3"
        BASE="$(dirname "$(dirname "$AGENT_DIR")")"
        JOBS="$AGENT_DIR/jobs"
        mkdir -p "$JOBS"
        shift 3
        cancel "$@"
        ;;
    *)
        echo "usage: agent.sh submit|serve|cancel ..." >&2
        exit 2
        ;;
esac
