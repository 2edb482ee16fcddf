# shellcheck shell=bash
# Pull every mirrored registry through the image mirror (containerd hosts.toml, one per registry).

for registry in $MIRRORED_REGISTRIES; do
  install -d "/etc/containerd/certs.d/${registry}"
  cat >"/etc/containerd/certs.d/${registry}/hosts.toml" <<CONF
[host."${IMAGE_MIRROR_URL}/v2/${registry}"]
  capabilities = ["pull", "resolve"]
  override_path = true
CONF
done
