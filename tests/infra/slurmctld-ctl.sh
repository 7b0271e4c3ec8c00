#!/usr/bin/env bash
# Stop or start the test bed's slurmctld (by its PID file only, never by name), so tests can
# take the controller away and bring it back. Jobs survive: their state is in StateSaveLocation.
#   slurmctld-ctl.sh stop | start
set -euo pipefail
# shellcheck source=tests/infra/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CTLD_PID="$REPX_E2E_DIR/slurm/slurmctld.pid"
CONF=/etc/slurm/slurm.conf

ctld_answers() {
    local out
    out="$(scontrol ping 2>/dev/null)" || return 1
    [[ "$out" == *UP* ]]
}

case "${1:-}" in
    stop)
        stop_pidfile "$CTLD_PID" slurmctld 15
        ;;
    start)
        if is_running "$CTLD_PID"; then
            log "slurmctld already running (pid $(read_pidfile "$CTLD_PID"))"
        else
            /usr/sbin/slurmctld -f "$CONF"
            wait_for --timeout 15 --desc "slurmctld pid file" -- is_running "$CTLD_PID" ||
                die "slurmctld did not start; see $REPX_E2E_DIR/slurm/log/slurmctld.log"
        fi
        wait_for --timeout 30 --desc "slurmctld answering" -- ctld_answers ||
            die "slurmctld does not answer; see $REPX_E2E_DIR/slurm/log/slurmctld.log"
        log "slurmctld up (pid $(read_pidfile "$CTLD_PID"))"
        ;;
    *)
        echo "usage: $0 stop|start" >&2
        exit 2
        ;;
esac
