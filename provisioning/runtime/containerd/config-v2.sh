# shellcheck shell=bash
# containerd 1.x configuration (config version 2): the default printout has
# SystemdCgroup = false and sandbox_image under plugins."io.containerd.grpc.v1.cri".

install -d /etc/containerd
containerd config default >/etc/containerd/config.toml
sed -i \
  -e 's/SystemdCgroup = false/SystemdCgroup = true/' \
  -e "s|sandbox_image = \".*\"|sandbox_image = \"${PAUSE_IMAGE}\"|" \
  -e 's|config_path = ""|config_path = "/etc/containerd/certs.d"|' \
  /etc/containerd/config.toml
grep -q 'SystemdCgroup = true' /etc/containerd/config.toml || die "SystemdCgroup not set in containerd config"
grep -q "sandbox_image = \"${PAUSE_IMAGE}\"" /etc/containerd/config.toml || die "sandbox_image not set in containerd config"
