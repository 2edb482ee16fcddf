# shellcheck shell=bash
# Base packages on apt systems.

export DEBIAN_FRONTEND=noninteractive
read -r -a packages <<<"$BASE_PACKAGES"
log "base packages: ${packages[*]}"
apt-get update -q
apt-get install -y -q "${packages[@]}"
# /etc/apt/keyrings only exists by default from Debian 12 / Ubuntu 22.04 on.
install -d -m 0755 /etc/apt/keyrings
