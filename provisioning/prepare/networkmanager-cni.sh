# shellcheck shell=bash
# NetworkManager must not manage (and reset) the interfaces the CNI creates.

install -d /etc/NetworkManager/conf.d
read -r -a patterns <<<"$NM_UNMANAGED_INTERFACES"
devices=""
for pattern in "${patterns[@]}"; do
  devices="${devices:+${devices};}interface-name:${pattern}"
done
cat >/etc/NetworkManager/conf.d/90-gimme-cni.conf <<CONF
[keyfile]
unmanaged-devices=${devices}
CONF
if systemctl is-active --quiet NetworkManager; then
  systemctl reload NetworkManager
fi
