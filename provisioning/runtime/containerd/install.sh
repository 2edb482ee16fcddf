# shellcheck shell=bash
# containerd and runc from their upstream release builds, the same on every OS.

log "containerd ${CONTAINERD_VERSION} and runc ${RUNC_VERSION}"
fetch "$CONTAINERD_URL" "$WORKDIR/containerd.tar.gz"
tar -C /usr/local -xzf "$WORKDIR/containerd.tar.gz"
fetch "$RUNC_URL" "$WORKDIR/runc"
install -m 0755 "$WORKDIR/runc" /usr/local/sbin/runc
install -d /usr/local/lib/systemd/system
fetch "$CONTAINERD_SERVICE_URL" /usr/local/lib/systemd/system/containerd.service
