# shellcheck shell=bash
# Weave Net 2.8.1 (archived upstream). Its default IPALLOC_RANGE is the podSubnet used with it.

log "Weave Net ${WEAVE_VERSION}, pod CIDR ${POD_CIDR}"
manifest="$WORKDIR/weave.yaml"
fetch "$WEAVE_MANIFEST_URL" "$manifest"
apply_manifest "$manifest" kube-system/weave-net
