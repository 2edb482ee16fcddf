# shellcheck shell=bash
# cri-dockerd: the CRI shim between the kubelet and Docker Engine (dockershim left in 1.24).

log "cri-dockerd ${CRI_DOCKERD_VERSION}"
fetch "$CRI_DOCKERD_URL" "$WORKDIR/cri-dockerd.tgz"
tar -C "$WORKDIR" -xzf "$WORKDIR/cri-dockerd.tgz"
install -m 0755 "$WORKDIR/cri-dockerd/cri-dockerd" /usr/local/bin/cri-dockerd
fetch "$CRI_DOCKERD_SOCKET_URL" /etc/systemd/system/cri-docker.socket
fetch "$CRI_DOCKERD_SERVICE_URL" "$WORKDIR/cri-docker.service"
sed "s|^ExecStart=/usr/bin/cri-dockerd .*|ExecStart=/usr/local/bin/cri-dockerd --container-runtime-endpoint fd:// --network-plugin=cni --pod-infra-container-image=${PAUSE_IMAGE}|" \
  "$WORKDIR/cri-docker.service" >/etc/systemd/system/cri-docker.service
grep -q -- "--pod-infra-container-image=${PAUSE_IMAGE}" /etc/systemd/system/cri-docker.service ||
  die "could not set the pause image in cri-docker.service"
