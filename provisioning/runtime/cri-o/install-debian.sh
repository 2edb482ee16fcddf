# shellcheck shell=bash
# CRI-O from its per-minor package stream (CRI-O minor = Kubernetes minor).

log "CRI-O ${KUBERNETES_MINOR} stream"
fetch "${CRIO_REPO_URL}Release.key" "$WORKDIR/cri-o.key"
gpg --batch --yes --dearmor -o /etc/apt/keyrings/cri-o-apt-keyring.gpg "$WORKDIR/cri-o.key"
printf 'deb [signed-by=/etc/apt/keyrings/cri-o-apt-keyring.gpg] %s /\n' "$CRIO_REPO_URL" \
  >/etc/apt/sources.list.d/cri-o.list
apt-get update -q
apt-get install -y -q cri-o
