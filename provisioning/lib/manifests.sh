# shellcheck shell=bash
# Downloaded CNI manifests: image references pointed at the image mirror, then applied.

# localize_images_stream: copy stdin to stdout with every `image:` reference pointed at the image
# mirror (IMAGE_MIRROR/REGISTRY/PATH); Docker Hub short names are made explicit first.
localize_images_stream() {
  local line prefix ref
  local pattern="^([[:space:]-]*image:[[:space:]]*)[\"']?([^\"'[:space:]]+)[\"']?[[:space:]]*\$"
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ $line =~ $pattern ]]; then
      prefix=${BASH_REMATCH[1]}
      ref=${BASH_REMATCH[2]}
      if [[ $ref != */* ]]; then
        ref="docker.io/library/${ref}"
      elif [[ ${ref%%/*} != *.* && ${ref%%/*} != *:* && ${ref%%/*} != localhost ]]; then
        ref="docker.io/${ref}"
      fi
      if [[ " ${MIRRORED_REGISTRIES} " == *" ${ref%%/*} "* ]]; then
        ref="${IMAGE_MIRROR}/${ref}"
      fi
      line="${prefix}${ref}"
    fi
    printf '%s\n' "$line"
  done
}

# localize_images FILE: rewrite FILE's image references when an image mirror is configured.
localize_images() {
  [ -n "$IMAGE_MIRROR" ] || return 0
  localize_images_stream <"$1" >"$1.localized"
  mv "$1.localized" "$1"
}

# apply_manifest FILE NAMESPACE/DAEMONSET [create]: apply FILE (or create it, once) and wait for
# the DaemonSet to roll out.
apply_manifest() {
  localize_images "$1"
  if [ "${3:-apply}" = create ]; then
    if ! kubectl --namespace "${2%%/*}" get daemonset "${2#*/}" >/dev/null 2>&1; then
      kubectl create -f "$1"
    fi
  else
    kubectl apply -f "$1"
  fi
  rollout "$2" daemonset
}
