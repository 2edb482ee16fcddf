# shellcheck shell=bash
# Base packages on dnf systems.

read -r -a packages <<<"$BASE_PACKAGES"
log "base packages: ${packages[*]}"
dnf install -y "${packages[@]}"
