#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) for gimme's demo and tests:
# the C toolchain and headers ovirt-engine-sdk-python (and pycurl) build from,
# OpenSSH and sudo for the emulated nodes, and a virtualenv with nox in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# python3-yaml and python3-cryptography: the emulated nodes' command shims run on the
# system Python, which every node user can execute.
packages=(gcc python3-dev python3-venv libxml2-dev libcurl4-openssl-dev libssl-dev
          openssh-server openssh-client sudo iproute2 util-linux ca-certificates
          python3-yaml python3-cryptography)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# A host sshd may listen on 0.0.0.0:22; the nox sessions run the test bed in a
# network namespace of its own, so the emulated nodes can still bind 127.0.10.N:22.
if [ ! -x .venv/bin/nox ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q nox
fi
