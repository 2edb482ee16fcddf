# shellcheck shell=bash
# The kubeadm install guide runs SELinux permissive: CNI agents and static pods need host paths.

if command -v getenforce >/dev/null && [ "$(getenforce)" = Enforcing ]; then
  log "SELinux permissive"
  setenforce 0
fi
if [ -f /etc/selinux/config ]; then
  sed -i 's/^SELINUX=enforcing$/SELINUX=permissive/' /etc/selinux/config
fi
