# shellcheck shell=bash
# Calico from its single manifest (kube-system). The manifest carries the IPv4 pool CIDR commented
# out at its 192.168.0.0/16 default: it is enabled and set to the kubeadm podSubnet.

log "Calico ${CALICO_VERSION}, pod CIDR ${POD_CIDR}"
manifest="$WORKDIR/calico.yaml"
fetch "$CALICO_MANIFEST_URL" "$manifest"
sed -i \
  -e 's|# - name: CALICO_IPV4POOL_CIDR|- name: CALICO_IPV4POOL_CIDR|' \
  -e "s|#   value: \"192.168.0.0/16\"|  value: \"${POD_CIDR}\"|" \
  "$manifest"
grep -q "value: \"${POD_CIDR}\"" "$manifest" || die "could not set CALICO_IPV4POOL_CIDR in ${CALICO_MANIFEST_URL}"
# Calico's CRDs are too large for client-side apply's annotation: create them.
apply_manifest "$manifest" kube-system/calico-node create
