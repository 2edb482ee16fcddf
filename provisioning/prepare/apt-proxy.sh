# shellcheck shell=bash
# apt ignores the environment under some front ends: give it the proxy explicitly.

cat >/etc/apt/apt.conf.d/95gimme-proxy <<CONF
Acquire::http::Proxy "${HTTP_PROXY_URL}";
Acquire::https::Proxy "${HTTP_PROXY_URL}";
CONF
