#!/usr/bin/env bash
# Undo start-2fa-sshd.sh: stop its sshd by PID file, put the original /etc/pam.d/sshd back,
# drop its lines from $REPX_E2E_DIR/env.
set -uo pipefail
# shellcheck source=tests/infra/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

D="$REPX_E2E_DIR/sshd-2fa"
stop_pidfile "$D/sshd.pid" "2FA sshd" 5
if [[ -e "$D/pam.d-sshd.orig" ]]; then
    mv -f "$D/pam.d-sshd.orig" /etc/pam.d/sshd && log "restored /etc/pam.d/sshd"
fi
[[ ! -e "$REPX_E2E_DIR/env" ]] || env_replace REPX_E2E_2FA_
