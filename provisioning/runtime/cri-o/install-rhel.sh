# shellcheck shell=bash
# CRI-O from its per-minor package stream (CRI-O minor = Kubernetes minor).

log "CRI-O ${KUBERNETES_MINOR} stream"
cat >/etc/yum.repos.d/cri-o.repo <<CONF
[cri-o]
name=CRI-O ${KUBERNETES_MINOR}
baseurl=${CRIO_REPO_URL}
enabled=1
gpgcheck=1
gpgkey=${CRIO_REPO_URL}repodata/repomd.xml.key
CONF
dnf install -y container-selinux cri-o
