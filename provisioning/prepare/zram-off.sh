# shellcheck shell=bash
# zram-generator creates a swap device at every boot; an empty configuration turns it off.

log "zram swap off"
: >/etc/systemd/zram-generator.conf
systemctl mask dev-zram0.swap
