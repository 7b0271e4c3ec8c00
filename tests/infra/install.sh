#!/usr/bin/env bash
# Install what the real-services test bed needs (sshd, SLURM, the two-factor
# sshd's PAM module and TOTP tool, root podman with runc). Idempotent: only missing
# Debian packages are installed, all of them in ONE apt-get call (each extra
# call costs ~5 s of dpkg/man-db triggers), and the project's editable install
# is redone only when pyproject.toml changed.
set -euo pipefail
# shellcheck source=tests/infra/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
    openssh-server openssh-sftp-server openssh-client rsync
    slurmctld slurmd slurm-client munge slurmdbd mariadb-server
    bubblewrap shellcheck jq procps iproute2 tmux
    libpam-oath oathtool
    podman runc
)

t0="$(now)"
missing=()
for p in "${PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
    ((EUID == 0)) || die "need root to install: ${missing[*]}"
    log "installing ${#missing[@]} missing package(s): ${missing[*]}"
    # Another apt/dpkg may still hold the lock (e.g. a provisioning step).
    apt_opts=(-o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
    apt-get "${apt_opts[@]}" update -qq
    apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}"
    log "apt install done in $(elapsed_since "$t0")s"
else
    log "all ${#PACKAGES[@]} Debian packages already installed"
fi

# Python side: editable install of the project with its test extras.
PYTHON="${PYTHON:-python3}"
mkdir -p "$REPX_E2E_DIR"
stamp="$REPX_E2E_DIR/.pip-stamp"
want="$(cd "$REPO_ROOT" && sha256sum pyproject.toml | awk '{print $1}')|$REPO_ROOT|$("$PYTHON" -c 'import sys; print(sys.prefix)')"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" == "$have" ]] && "$PYTHON" -c 'import repx_tui, asyncssh, pytest, pytest_asyncio, pytest_timeout' 2>/dev/null; then
    log "python project already installed (pyproject.toml unchanged)"
else
    t1="$(now)"
    log "pip install -e '.[test]'"
    (cd "$REPO_ROOT" && "$PYTHON" -m pip install -q -e '.[test]')
    printf '%s\n' "$want" >"$stamp"
    log "pip install done in $(elapsed_since "$t1")s"
fi
log "install.sh finished in $(elapsed_since "$t0")s"
