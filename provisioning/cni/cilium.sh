# shellcheck shell=bash
# Cilium with Helm. ipam.mode=kubernetes makes it use the kubeadm podSubnet; with kube-proxy
# replacement kubeadm skipped kube-proxy, so Cilium is told where the API server is.

log "Cilium ${CILIUM_VERSION} with Helm ${HELM_VERSION}"
fetch "$HELM_URL" "$WORKDIR/helm.tar.gz"
tar -C "$WORKDIR" -xzf "$WORKDIR/helm.tar.gz"
install -m 0755 "$WORKDIR/linux-${ARCH}/helm" /usr/local/bin/helm
helm repo add cilium "$CILIUM_CHART_REPO" --force-update >&2

read -r -a settings <<<"$CILIUM_HELM_VALUES"
helm_args=()
for setting in "${settings[@]}"; do
  helm_args+=(--set "$setting")
done
if [ "$KUBE_PROXY_REPLACEMENT" = true ]; then
  helm_args+=(--set "kubeProxyReplacement=${CILIUM_KUBE_PROXY_REPLACEMENT}")
  helm_args+=(--set "k8sServiceHost=${GIMME_CONTROL_PLANE_ADDRESS}" --set "k8sServicePort=${API_SERVER_PORT}")
fi
if [ -n "$IMAGE_MIRROR" ]; then
  # Helm hands the rendered chart to this program, which points its images at the mirror.
  {
    printf '#!/usr/bin/env bash\nset -euo pipefail\n'
    declare -p IMAGE_MIRROR MIRRORED_REGISTRIES
    declare -f localize_images_stream
    printf 'localize_images_stream\n'
  } >"$WORKDIR/localize-images"
  chmod 0755 "$WORKDIR/localize-images"
  helm_args+=(--post-renderer "$WORKDIR/localize-images")
fi
helm upgrade --install cilium cilium/cilium --version "$CILIUM_VERSION" --namespace kube-system \
  "${helm_args[@]}" >&2
rollout kube-system/cilium daemonset
