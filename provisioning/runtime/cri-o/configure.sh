# shellcheck shell=bash
# CRI-O drop-in: systemd cgroups and the pause image kubeadm expects; no stray bridge network.

install -d /etc/crio/crio.conf.d
cat >/etc/crio/crio.conf.d/90-gimme.conf <<CONF
[crio.runtime]
cgroup_manager = "systemd"

[crio.image]
pause_image = "${PAUSE_IMAGE}"
CONF
# Older packages ship an enabled bridge config that would hand out 10.85.0.0/16 addresses.
rm -f /etc/cni/net.d/100-crio-bridge.conf /etc/cni/net.d/100-crio-bridge.conflist \
  /etc/cni/net.d/10-crio-bridge.conflist
