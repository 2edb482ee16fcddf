"""Entry point of every stand-in executable: dispatch by tool name, record the call."""

from __future__ import annotations

import importlib
import sys
import traceback

from . import latency
from .core import Call, Fail

# tool name -> module in this package that has `main(call) -> int`
TOOLS = {
    **dict.fromkeys(
        [
            "systemctl", "modprobe", "lsmod", "sysctl", "swapoff", "swapon", "setenforce",
            "getenforce", "firewall-cmd", "hostnamectl", "hostname", "ip", "update-crypto-policies",
        ],
        "system",
    ),
    **dict.fromkeys(
        ["apt-get", "apt", "apt-mark", "apt-cache", "apt-key", "dpkg", "dpkg-query", "add-apt-repository"],
        "apt",
    ),
    **dict.fromkeys(["dnf", "yum", "rpm"], "dnf"),
    **dict.fromkeys(["curl", "wget", "gpg"], "fetch"),
    **dict.fromkeys(
        [
            "containerd", "ctr", "crictl", "crio", "docker", "dockerd", "cri-dockerd", "runc",
            "kubelet", "containerd-shim-runc-v2", "conmon", "crun", "cni-plugin", "conntrack",
        ],
        "runtimes",
    ),
    "kubeadm": "kubeadm",
    "kubectl": "kubectl",
    "helm": "helm",
    "cilium": "helm",
}  # fmt: skip


def run(tool: str, version: str | None = None) -> None:
    """Run emulated `tool` with sys.argv, record the call, exit with its code."""
    call = Call(tool, sys.argv[1:], version)
    try:
        module = importlib.import_module(f"emu.{TOOLS[tool]}")
        code = module.main(call) or 0
    except Fail as e:
        if e.message:
            sys.stderr.write(e.message.rstrip("\n") + "\n")
        code = e.code
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BrokenPipeError:
        code = 141
    except PermissionError as e:
        sys.stderr.write(f"{tool}: {e.filename or ''}: permission denied\n")
        code = 1
    except Exception:
        traceback.print_exc()
        code = 70
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    latency.hold(tool, call.args)
    call.record(code)
    sys.exit(code)
