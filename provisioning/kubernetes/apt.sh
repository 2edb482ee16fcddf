# shellcheck shell=bash
# kubelet, kubeadm and kubectl from the pkgs.k8s.io repository of this minor, pinned and held.

log "Kubernetes ${KUBERNETES_PATCH} packages from ${KUBERNETES_REPO_URL}"
fetch "${KUBERNETES_REPO_URL}Release.key" "$WORKDIR/kubernetes.key"
gpg --batch --yes --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg "$WORKDIR/kubernetes.key"
printf 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] %s /\n' "$KUBERNETES_REPO_URL" \
  >/etc/apt/sources.list.d/kubernetes.list
apt-get update -q
apt-get install -y -q --allow-change-held-packages \
  "kubelet=${KUBERNETES_PATCH}-*" "kubeadm=${KUBERNETES_PATCH}-*" "kubectl=${KUBERNETES_PATCH}-*"
apt-mark hold kubelet kubeadm kubectl
systemctl enable --now kubelet
