# shellcheck shell=bash
# (Re)start the runtime with the configuration above and wait for its CRI socket.

read -r -a services <<<"$RUNTIME_SERVICES"
systemctl daemon-reload
systemctl enable "${services[@]}"
systemctl restart "${services[@]}"
wait_for 120 "the CRI socket ${CRI_SOCKET}" test -S "${CRI_SOCKET#unix://}"
