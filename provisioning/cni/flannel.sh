# shellcheck shell=bash
# Flannel (namespace kube-flannel); its net-conf.json Network must equal the kubeadm podSubnet.

log "Flannel ${FLANNEL_VERSION}, pod CIDR ${POD_CIDR}"
manifest="$WORKDIR/kube-flannel.yml"
fetch "$FLANNEL_MANIFEST_URL" "$manifest"
sed -i "s|\"Network\": \"[0-9./]*\"|\"Network\": \"${POD_CIDR}\"|" "$manifest"
grep -q "\"Network\": \"${POD_CIDR}\"" "$manifest" || die "could not set the Network in ${FLANNEL_MANIFEST_URL}"
apply_manifest "$manifest" kube-flannel/kube-flannel-ds
