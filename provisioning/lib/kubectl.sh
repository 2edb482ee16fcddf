# shellcheck shell=bash
# Helpers for steps that talk to the API server from the control plane.

export KUBECONFIG=/etc/kubernetes/admin.conf

# rollout NAMESPACE/NAME KIND: wait until the DaemonSet or Deployment is fully rolled out.
rollout() {
  kubectl --namespace "${1%%/*}" rollout status "$2/${1#*/}" --timeout="${ROLLOUT_TIMEOUT}s" ||
    die "$2 $1 did not roll out within ${ROLLOUT_TIMEOUT}s"
}
