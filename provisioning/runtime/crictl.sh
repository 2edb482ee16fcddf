# shellcheck shell=bash
# crictl talks to our runtime only (otherwise it probes every known socket and warns).

cat >/etc/crictl.yaml <<CONF
runtime-endpoint: ${CRI_SOCKET}
image-endpoint: ${CRI_SOCKET}
timeout: 10
CONF
