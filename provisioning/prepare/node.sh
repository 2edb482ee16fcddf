# shellcheck shell=bash
# OS prerequisites every node needs: its name, no swap, bridge netfilter and IP forwarding.

log "hostname ${GIMME_NODE_NAME}"
hostnamectl set-hostname "$GIMME_NODE_NAME"
if ! grep -Eq "[[:space:]]${GIMME_NODE_NAME//./\\.}([[:space:]]|\$)" /etc/hosts; then
  printf '%s %s\n' "$GIMME_NODE_ADDRESS" "$GIMME_NODE_NAME" >>/etc/hosts
fi

log "swap off (the kubelet refuses to start with swap on)"
swapoff -a
sed -i -E 's/^([^#[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+swap[[:space:]].*)$/# disabled by gimme: \1/' /etc/fstab

log "kernel modules and sysctls for bridged pod traffic"
cat >/etc/modules-load.d/gimme-kubernetes.conf <<'CONF'
overlay
br_netfilter
CONF
modprobe overlay
modprobe br_netfilter
cat >/etc/sysctl.d/90-gimme-kubernetes.conf <<'CONF'
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
CONF
sysctl --system >/dev/null
