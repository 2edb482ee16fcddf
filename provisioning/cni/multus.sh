# shellcheck shell=bash
# Multus (thick plugin) on top of the primary CNI installed above; it wraps the first CNI config
# on each node. The manifest's floating image tag is pinned and its 50Mi memory raised.

log "Multus ${MULTUS_VERSION}"
manifest="$WORKDIR/multus.yml"
fetch "$MULTUS_MANIFEST_URL" "$manifest"
sed -i \
  -e "s|/multus-cni:snapshot-thick|/multus-cni:${MULTUS_VERSION}-thick|" \
  -e "s|memory: \"50Mi\"|memory: \"${MULTUS_MEMORY_LIMIT}\"|" \
  "$manifest"
grep -q "multus-cni:${MULTUS_VERSION}-thick" "$manifest" || die "could not pin the Multus image in ${MULTUS_MANIFEST_URL}"
apply_manifest "$manifest" kube-system/kube-multus-ds
