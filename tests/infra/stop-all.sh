#!/usr/bin/env bash
# Stop everything start-all.sh started, by PID file only (never by name).
# Running jobs are cancelled first: their slurmstepd processes would
# otherwise outlive slurmd.
#   --purge-state   also wipe the slurmctld state and the accounting DB
#                   (job ids restart at 1 next time; wiping only one of the
#                   two would give duplicate job ids in sacct)
set -uo pipefail
# shellcheck source=tests/infra/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

purge=0
[[ "${1:-}" == "--purge-state" ]] && purge=1

t0="$(now)"
S="$REPX_E2E_DIR/slurm"

if is_running "$S/slurmctld.pid" && [[ -r /etc/slurm/slurm.conf ]]; then
    jobs="$(squeue -h -o %i 2>/dev/null || true)"
    if [[ -n "$jobs" ]]; then
        # shellcheck disable=SC2086 # one argument per job id
        scancel $jobs 2>/dev/null || true
        no_jobs_left() {
            local out
            out="$(squeue -h -o %i 2>/dev/null)" || return 1
            [[ -z "$out" ]]
        }
        wait_for --timeout 15 --interval 0.1 --desc "cancelled jobs to leave squeue" -- no_jobs_left ||
            log "WARNING: jobs still listed: $(squeue -h -o '%i %T' 2>&1 | tr '\n' ' ')"
        log "cancelled jobs: $(tr '\n' ' ' <<<"$jobs")"
    fi
fi

stop_pidfile "$S/slurmd.pid" slurmd 15
stop_pidfile "$S/slurmctld.pid" slurmctld 15
stop_pidfile "$S/slurmdbd.pid" slurmdbd 15
stop_pidfile "$S/mysql/mariadbd.pid" mariadbd 30
stop_pidfile "$S/munge/munged.pid" munged 5
stop_pidfile "$REPX_E2E_DIR/sshd/sshd.pid" sshd 5
bash "$INFRA_DIR/stop-2fa-sshd.sh"
bash "$INFRA_DIR/stop-podman.sh"

# The shaped "login host" of start-netns.sh, if it was started: its processes by PID file,
# then the namespace (deleting it removes both veth ends).
stop_pidfile "$REPX_E2E_DIR/netns/proxy.pid" "netns delay proxy" 5
stop_pidfile "$REPX_E2E_DIR/netns/sshd.pid" "netns sshd" 5
if ip netns list 2>/dev/null | awk '$1 == "e2elogin" { found = 1 } END { exit !found }'; then
    ip netns del e2elogin && log "deleted netns e2elogin"
    rm -f "$REPX_E2E_DIR/netns/env"
fi

if ((purge)); then
    rm -rf "$S/state" "$S/mysql/data"
    log "purged slurmctld state and accounting DB"
fi
log "stop-all finished in $(elapsed_since "$t0")s"
