# shellcheck shell=bash
# firewalld blocks pod-to-pod and overlay traffic between nodes (Calico's docs say disable it);
# these clusters are disposable and isolated by the rack network, so it is turned off.

if systemctl is-enabled --quiet firewalld 2>/dev/null || systemctl is-active --quiet firewalld; then
  log "firewalld off"
  systemctl disable --now firewalld
fi
