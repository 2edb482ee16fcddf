# shellcheck shell=bash
# kubeadm join with the token gimme read from the control plane. The join configuration holds
# the token, so it only lives in this run's private work directory.

: "${GIMME_JOIN_ENDPOINT:?is not set: gimme provides it in the node environment file}"
: "${GIMME_JOIN_TOKEN:?is not set: gimme provides it in the node environment file}"
: "${GIMME_JOIN_CA_HASH:?is not set: gimme provides it in the node environment file}"

if [ -f /etc/kubernetes/kubelet.conf ]; then
  log "node already joined: kubeadm join skipped"
else
  if [ -e /etc/kubernetes/pki/ca.crt ]; then
    log "an earlier kubeadm join stopped half way: kubeadm reset first"
    kubeadm reset -f --cri-socket "$CRI_SOCKET" >&2
  fi
  config=${KUBEADM_CONFIG//@JOIN_ENDPOINT@/"$GIMME_JOIN_ENDPOINT"}
  config=${config//@JOIN_TOKEN@/"$GIMME_JOIN_TOKEN"}
  config=${config//@JOIN_CA_HASH@/"$GIMME_JOIN_CA_HASH"}
  config=${config//@NODE_NAME@/"$GIMME_NODE_NAME"}
  config=${config//@NODE_ADDRESS@/"$GIMME_NODE_ADDRESS"}
  (umask 077 && printf '%s\n' "$config" >"$WORKDIR/kubeadm-join.yaml")
  log "kubeadm join ${GIMME_JOIN_ENDPOINT}"
  kubeadm join --config "$WORKDIR/kubeadm-join.yaml" >&2
fi
