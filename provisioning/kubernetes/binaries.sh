# shellcheck shell=bash
# No package repository exists for this minor (pkgs.k8s.io starts at v1.24, the legacy repos are
# gone): release binaries, the kubelet unit and kubeadm drop-in, CNI plugins and crictl.

log "Kubernetes ${KUBERNETES_PATCH} from release binaries"
for binary in kubeadm kubelet kubectl; do
  fetch "${KUBERNETES_BINARY_URL}/${binary}" "$WORKDIR/${binary}"
  install -m 0755 "$WORKDIR/${binary}" "/usr/local/bin/${binary}"
done
install -d /opt/cni/bin
fetch "$CNI_PLUGINS_URL" "$WORKDIR/cni-plugins.tgz"
tar -C /opt/cni/bin -xzf "$WORKDIR/cni-plugins.tgz"
fetch "$CRICTL_URL" "$WORKDIR/crictl.tgz"
tar -C /usr/local/bin -xzf "$WORKDIR/crictl.tgz"
# The upstream unit and drop-in expect /usr/bin/kubelet.
fetch "$KUBELET_SERVICE_URL" "$WORKDIR/kubelet.service"
sed 's|/usr/bin/kubelet|/usr/local/bin/kubelet|g' "$WORKDIR/kubelet.service" >/etc/systemd/system/kubelet.service
install -d /etc/systemd/system/kubelet.service.d
fetch "$KUBEADM_DROPIN_URL" "$WORKDIR/10-kubeadm.conf"
sed 's|/usr/bin/kubelet|/usr/local/bin/kubelet|g' "$WORKDIR/10-kubeadm.conf" \
  >/etc/systemd/system/kubelet.service.d/10-kubeadm.conf
systemctl daemon-reload
systemctl enable --now kubelet
