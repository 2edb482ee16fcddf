# shellcheck shell=bash
# The runtime pulls images itself: give its service the proxy settings.

read -r -a services <<<"$RUNTIME_SERVICES"
for service in "${services[@]}"; do
  case $service in
    *.socket) continue ;;
  esac
  install -d "/etc/systemd/system/${service%.service}.service.d"
  cat >"/etc/systemd/system/${service%.service}.service.d/90-gimme-proxy.conf" <<CONF
[Service]
Environment="HTTP_PROXY=${HTTP_PROXY_URL}" "HTTPS_PROXY=${HTTP_PROXY_URL}" "NO_PROXY=${NO_PROXY_LIST}"
CONF
done
