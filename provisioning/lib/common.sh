# shellcheck shell=bash
# Helpers every step starts with. The header above this file holds the readonly settings;
# per-node values come from the environment file gimme uploads and sources before the run.

: "${GIMME_NODE_NAME:?is not set: gimme provides it in the node environment file}"
: "${GIMME_NODE_ADDRESS:?is not set: gimme provides it in the node environment file}"
: "${GIMME_CONTROL_PLANE_ADDRESS:?is not set: gimme provides it in the node environment file}"

# sudo's secure_path leaves out /usr/local on the RHEL family; our static binaries live there.
export PATH="/usr/local/sbin:/usr/local/bin:${PATH}"
umask 022

WORKDIR=$(mktemp -d /tmp/gimme.XXXXXX)
trap 'rm -rf "$WORKDIR"' EXIT

log() { printf 'gimme: %s\n' "$*" >&2; }

die() {
  log "error: $*"
  exit 1
}

# fetch URL FILE: download to FILE, retrying transient failures, failing on HTTP errors.
fetch() {
  curl --fail --silent --show-error --location --retry 5 --retry-delay 3 --retry-connrefused \
    --connect-timeout 20 --output "$2" "$1" || die "download failed: $1"
}

# host_port HOST PORT: HOST:PORT, with brackets around an IPv6 address.
host_port() {
  case $1 in
    *:*) printf '[%s]:%s' "$1" "$2" ;;
    *) printf '%s:%s' "$1" "$2" ;;
  esac
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s until it succeeds.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${limit}s waiting for ${what}"
    sleep 0.5
  done
}
