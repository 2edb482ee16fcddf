# shellcheck shell=bash
# containerd 2.x configuration (config version 3): the default printout has no SystemdCgroup
# line, so it is inserted under the runc options table; the pause image is pinned_images.sandbox.

install -d /etc/containerd
containerd config default >/etc/containerd/config.toml
sed -i \
  -e "/^[[:space:]]*\[plugins\.'io\.containerd\.cri\.v1\.runtime'\.containerd\.runtimes\.runc\.options\]/a SystemdCgroup = true" \
  -e "s|^\([[:space:]]*\)sandbox = .*|\1sandbox = '${PAUSE_IMAGE}'|" \
  -e "s|config_path = ''|config_path = '/etc/containerd/certs.d'|" \
  /etc/containerd/config.toml
grep -q 'SystemdCgroup = true' /etc/containerd/config.toml || die "SystemdCgroup not set in containerd config"
grep -q "sandbox = '${PAUSE_IMAGE}'" /etc/containerd/config.toml || die "sandbox image not set in containerd config"
