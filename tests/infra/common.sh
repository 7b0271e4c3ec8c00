# shellcheck shell=bash
# Shared helpers for the repx-tui real-services test bed (sshd + SLURM).
# Sourced by the other scripts in tests/infra; never executed directly.
#
# Everything the bed creates lives under $REPX_E2E_DIR (default /tmp/repx-e2e),
# except /etc/slurm/{slurm,slurmdbd}.conf (where the SLURM client tools look),
# /run/sshd and /run/munge (required by the daemons) and the user `e2e`.

REPX_E2E_DIR="${REPX_E2E_DIR:-/tmp/repx-e2e}"
export REPX_E2E_DIR

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INFRA_DIR/../.." && pwd)"
export INFRA_DIR REPO_ROOT

log() {
    printf '[repx-e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

die() {
    log "ERROR: $*"
    exit 1
}

# now: wall-clock seconds with microseconds (bash 5 EPOCHREALTIME).
now() {
    printf '%s\n' "${EPOCHREALTIME/,/.}"
}

# elapsed_since START: seconds since START (as printed by `now`), 1 decimal.
elapsed_since() {
    awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f\n", e - s }'
}

# pid_alive PID: true when PID exists and is not a zombie.
# PID 1 here reaps orphaned zombies only after ~1 s, so `kill -0` alone
# keeps succeeding on a daemon that has already exited (state Z).
pid_alive() {
    local pid="$1" stat state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    [[ -n "$stat" ]] || return 1
    # Field 3 follows the last ')' (the comm field may contain spaces/parens).
    state="${stat##*) }"
    state="${state%% *}"
    [[ "$state" != "Z" && "$state" != "X" ]]
}

# read_pidfile FILE: print the PID stored in FILE (empty if none).
read_pidfile() {
    local pid=""
    [[ -r "$1" ]] && read -r pid <"$1" 2>/dev/null
    printf '%s\n' "${pid//[^0-9]/}"
}

# is_running PIDFILE: true when the PID in PIDFILE is alive (not a zombie).
is_running() {
    local pid
    pid="$(read_pidfile "$1")"
    [[ -n "$pid" ]] && pid_alive "$pid"
}

# stop_pidfile PIDFILE [NAME] [TIMEOUT_SECONDS=10]
# SIGTERM the PID in PIDFILE, wait (with a deadline) until it is gone, then
# SIGKILL. Works by PID only -- never by process name.
stop_pidfile() {
    local pidfile="$1" name="${2:-$1}" timeout="${3:-10}" pid t0
    pid="$(read_pidfile "$pidfile")"
    if [[ -z "$pid" ]] || ! pid_alive "$pid"; then
        rm -f "$pidfile"
        return 0
    fi
    t0="$(now)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for --timeout "$timeout" --interval 0.05 --quiet -- pid_dead "$pid"; then
        log "$name (pid $pid) ignored SIGTERM for ${timeout}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_for --timeout 5 --interval 0.05 --quiet -- pid_dead "$pid" ||
            log "WARNING: $name (pid $pid) still alive after SIGKILL"
    fi
    rm -f "$pidfile"
    log "stopped $name (pid $pid) in $(elapsed_since "$t0")s"
}

pid_dead() {
    ! pid_alive "$1"
}

# wait_for [--timeout SECS] [--interval SECS] [--desc TEXT] [--quiet] [--] CMD...
# Run CMD until it succeeds or the deadline passes (no blind sleeps: the
# condition is re-checked every --interval seconds, default 0.1).
# Returns 0 on success, 1 on timeout (and logs the description unless --quiet).
wait_for() {
    local timeout=30 interval=0.1 desc="" quiet=0 deadline
    while (($#)); do
        case "$1" in
        --timeout) timeout="$2"; shift 2 ;;
        --interval) interval="$2"; shift 2 ;;
        --desc) desc="$2"; shift 2 ;;
        --quiet) quiet=1; shift ;;
        --) shift; break ;;
        *) break ;;
        esac
    done
    (($#)) || die "wait_for: no command given"
    deadline="$(awk -v n="$(now)" -v t="$timeout" 'BEGIN { printf "%.6f\n", n + t }')"
    while :; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n >= d) }'; then
            ((quiet)) || log "timed out after ${timeout}s waiting for: ${desc:-$*}"
            return 1
        fi
        sleep "$interval"
    done
}

# tcp_listening PORT: something accepts TCP connections on 127.0.0.1:PORT.
tcp_listening() {
    bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# pkg_installed PKG: dpkg reports PKG as installed.
pkg_installed() {
    local status
    status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" || return 1
    [[ "$status" == "install ok installed" ]]
}

# env_replace PREFIX [KEY=VALUE...]: in $REPX_E2E_DIR/env, drop every line that starts with
# PREFIX and append the given lines (values %q-quoted), atomically. The scripts of services
# that start on their own (2FA sshd, podman) keep their lines in the shared env file this way.
env_replace() {
    local prefix="$1" file="$REPX_E2E_DIR/env" line
    shift
    mkdir -p "$REPX_E2E_DIR"
    {
        [[ ! -e "$file" ]] || awk -v p="$prefix" 'index($0, p) != 1' "$file"
        for line in "$@"; do
            printf '%s=%q\n' "${line%%=*}" "${line#*=}"
        done
    } >"$file.tmp.$$"
    mv -f "$file.tmp.$$" "$file"
}
