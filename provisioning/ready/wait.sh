# shellcheck shell=bash
# Done means: every node registered and Ready, the pod network and kube-proxy rolled out, CoreDNS up.

count_nodes() { kubectl get nodes --no-headers 2>/dev/null | awk -v want="$1" '$2 ~ want' | wc -l; }
all_registered() { [ "$(count_nodes .)" -ge "$EXPECTED_NODES" ]; }

log "waiting for ${EXPECTED_NODES} nodes"
wait_for "$NODES_TIMEOUT" "${EXPECTED_NODES} nodes to register" all_registered
kubectl wait --for=condition=Ready nodes --all --timeout="${NODES_TIMEOUT}s" >&2 ||
  die "nodes not Ready after ${NODES_TIMEOUT}s: $(kubectl get nodes --no-headers | tr '\n' ';')"
ready=$(count_nodes '^Ready')
[ "$ready" -eq "$EXPECTED_NODES" ] || die "${ready} nodes Ready, expected ${EXPECTED_NODES}"

for daemonset in $CNI_DAEMONSETS; do
  rollout "$daemonset" daemonset
done
for deployment in $CNI_DEPLOYMENTS; do
  rollout "$deployment" deployment
done
if [ "$KUBE_PROXY_REPLACEMENT" != true ]; then
  rollout kube-system/kube-proxy daemonset
fi
rollout kube-system/coredns deployment
kubectl get nodes -o wide >&2
