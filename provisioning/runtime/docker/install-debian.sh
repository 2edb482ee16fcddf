# shellcheck shell=bash
# Docker Engine from Docker's apt repository for this distribution and release.

log "Docker Engine from ${DOCKER_REPO_URL} (${DOCKER_RELEASE})"
fetch "${DOCKER_REPO_URL}/gpg" "$WORKDIR/docker.key"
gpg --batch --yes --dearmor -o /etc/apt/keyrings/docker.gpg "$WORKDIR/docker.key"
printf 'deb [arch=%s signed-by=/etc/apt/keyrings/docker.gpg] %s %s stable\n' \
  "$ARCH" "$DOCKER_REPO_URL" "$DOCKER_RELEASE" >/etc/apt/sources.list.d/docker.list
apt-get update -q
apt-get install -y -q docker-ce docker-ce-cli containerd.io
