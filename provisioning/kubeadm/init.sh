# shellcheck shell=bash
# kubeadm init from the rendered configuration, then print the worker join command last
# (gimme reads the last stdout line starting with "kubeadm join ").

export KUBECONFIG=/etc/kubernetes/admin.conf
if [ -f /etc/kubernetes/admin.conf ]; then
  log "control plane already initialised: kubeadm init skipped"
else
  if [ -e /etc/kubernetes/manifests/kube-apiserver.yaml ]; then
    log "an earlier kubeadm init stopped half way: kubeadm reset first"
    kubeadm reset -f --cri-socket "$CRI_SOCKET" >&2
  fi
  endpoint=$(host_port "$GIMME_CONTROL_PLANE_ADDRESS" "$API_SERVER_PORT")
  config=${KUBEADM_CONFIG//@NODE_NAME@/"$GIMME_NODE_NAME"}
  config=${config//@NODE_ADDRESS@/"$GIMME_NODE_ADDRESS"}
  config=${config//@CONTROL_PLANE_ENDPOINT@/"$endpoint"}
  install -d -m 0700 /etc/kubernetes/gimme
  printf '%s\n' "$config" >/etc/kubernetes/gimme/kubeadm-init.yaml
  log "kubeadm init (Kubernetes ${KUBERNETES_VERSION})"
  kubeadm init --config /etc/kubernetes/gimme/kubeadm-init.yaml >&2
fi
kubeadm token create --print-join-command
