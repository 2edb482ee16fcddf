# shellcheck shell=bash
# kube-router (routing and network policy, kube-proxy stays). Its manifest names the image
# without a tag, so the tag is pinned here.

log "kube-router ${KUBE_ROUTER_VERSION}, pod CIDR ${POD_CIDR}"
manifest="$WORKDIR/kube-router.yaml"
fetch "$KUBE_ROUTER_MANIFEST_URL" "$manifest"
sed -i "s|image: docker.io/cloudnativelabs/kube-router\$|image: docker.io/cloudnativelabs/kube-router:${KUBE_ROUTER_VERSION}|" "$manifest"
grep -q "kube-router:${KUBE_ROUTER_VERSION}" "$manifest" || die "could not pin the kube-router image in ${KUBE_ROUTER_MANIFEST_URL}"
apply_manifest "$manifest" kube-system/kube-router
