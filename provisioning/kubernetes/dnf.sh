# shellcheck shell=bash
# kubelet, kubeadm and kubectl from the pkgs.k8s.io repository of this minor. The repo's
# exclude= line keeps `dnf upgrade` away from them; only this install lifts it.

log "Kubernetes ${KUBERNETES_PATCH} packages from ${KUBERNETES_REPO_URL}"
cat >/etc/yum.repos.d/kubernetes.repo <<CONF
[kubernetes]
name=Kubernetes ${KUBERNETES_MINOR}
baseurl=${KUBERNETES_REPO_URL}
enabled=1
gpgcheck=1
gpgkey=${KUBERNETES_REPO_URL}repodata/repomd.xml.key
exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni
CONF
dnf install -y "$DNF_DISABLE_EXCLUDES" \
  "kubelet-${KUBERNETES_PATCH}-*" "kubeadm-${KUBERNETES_PATCH}-*" "kubectl-${KUBERNETES_PATCH}-*"
systemctl enable --now kubelet
