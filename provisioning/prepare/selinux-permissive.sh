# shellcheck shell=bash
# The kubeadm install guide runs SELinux permissive: CNI agents and static pods need host paths.

log "SELinux permissive"
if [ "$(getenforce)" = Enforcing ]; then
  setenforce 0
fi
sed -i 's/^SELINUX=enforcing$/SELINUX=permissive/' /etc/selinux/config
