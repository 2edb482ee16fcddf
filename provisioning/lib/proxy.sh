# shellcheck shell=bash
# Route downloads through the configured HTTP proxy; cluster-internal traffic stays direct.

NO_PROXY_LIST="localhost,127.0.0.1,::1,.svc,.cluster.local,${SERVICE_CIDR},${POD_CIDR},${GIMME_NODE_ADDRESS},${GIMME_CONTROL_PLANE_ADDRESS}"
if [ -n "$NO_PROXY_EXTRA" ]; then
  NO_PROXY_LIST="${NO_PROXY_LIST},${NO_PROXY_EXTRA}"
fi
export http_proxy=$HTTP_PROXY_URL https_proxy=$HTTP_PROXY_URL no_proxy=$NO_PROXY_LIST
export HTTP_PROXY=$HTTP_PROXY_URL HTTPS_PROXY=$HTTP_PROXY_URL NO_PROXY=$NO_PROXY_LIST
