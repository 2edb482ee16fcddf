# shellcheck shell=bash
# Antrea (Open vSwitch); node pod CIDRs come from the kubeadm podSubnet.

log "Antrea ${ANTREA_VERSION}, pod CIDR ${POD_CIDR}"
manifest="$WORKDIR/antrea.yml"
fetch "$ANTREA_MANIFEST_URL" "$manifest"
apply_manifest "$manifest" kube-system/antrea-agent
