# shellcheck shell=bash
# dnf reads its proxy from dnf.conf (dnf 4 and dnf 5 alike).

sed -i '/^proxy=/d' /etc/dnf/dnf.conf
sed -i "/^\[main\]/a proxy=${HTTP_PROXY_URL}" /etc/dnf/dnf.conf
