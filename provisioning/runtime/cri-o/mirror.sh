# shellcheck shell=bash
# Pull every mirrored registry through the image mirror (containers-registries.conf drop-in).

install -d /etc/containers/registries.conf.d
{
  for registry in $MIRRORED_REGISTRIES; do
    printf '[[registry]]\nprefix = "%s"\nlocation = "%s"\n\n[[registry.mirror]]\nlocation = "%s/%s"\n\n' \
      "$registry" "$registry" "$IMAGE_MIRROR" "$registry"
  done
} >/etc/containers/registries.conf.d/90-gimme-mirror.conf
