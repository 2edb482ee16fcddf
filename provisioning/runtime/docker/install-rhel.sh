# shellcheck shell=bash
# Docker Engine from Docker's rpm repository; podman/buildah/runc conflict with containerd.io.

log "Docker Engine from ${DOCKER_REPO_URL} (${DOCKER_RELEASE})"
conflicting=()
for package in podman buildah runc; do
  if rpm -q "$package" >/dev/null 2>&1; then
    conflicting+=("$package")
  fi
done
if [ "${#conflicting[@]}" -gt 0 ]; then
  dnf remove -y "${conflicting[@]}"
fi
cat >/etc/yum.repos.d/docker-ce.repo <<CONF
[docker-ce-stable]
name=Docker CE Stable
baseurl=${DOCKER_REPO_URL}/${DOCKER_RELEASE}/\$basearch/stable
enabled=1
gpgcheck=1
gpgkey=${DOCKER_REPO_URL}/gpg
CONF
dnf install -y docker-ce docker-ce-cli containerd.io
