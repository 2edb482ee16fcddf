# shellcheck shell=bash
# dockerd must use the systemd cgroup driver like the kubelet. Docker only mirrors Docker Hub,
# from a registry root: other images reach the mirror through rewritten references.

install -d /etc/docker
if [ -n "$DOCKER_REGISTRY_MIRROR" ]; then
  registry_mirrors="\"${DOCKER_REGISTRY_MIRROR}\""
else
  registry_mirrors=""
fi
cat >/etc/docker/daemon.json <<CONF
{
  "exec-opts": ["native.cgroupdriver=systemd"],
  "log-driver": "json-file",
  "log-opts": {"max-size": "100m"},
  "storage-driver": "overlay2",
  "registry-mirrors": [${registry_mirrors}]
}
CONF
