"""The test bed's stand-in tools, exercised inside throwaway sandboxes that behave like nodes.

Each sandbox is a private mount+PID namespace with an overlay copy-on-write root over the
host's / (so installing shims never touches the host), where install.py runs as it does in
a test-bed node; commands then run chrooted into it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SHIMS = Path(__file__).parent / "testbed" / "shims"


def _node_python() -> str:
    """The interpreter the shims run with: the system's, as NodePool picks, if it has their modules."""
    system = "/usr/bin/python3"
    probe = [system, "-I", "-c", "import yaml, cryptography"]
    if os.path.exists(system) and subprocess.run(probe, capture_output=True).returncode == 0:
        return system
    return sys.executable


PYTHON = _node_python()

pytestmark = [
    pytest.mark.nodes,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"),
        reason="needs root, unshare and nsenter",
    ),
]

OS_RELEASE = {
    "ubuntu-22.04": 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n'
    'VERSION_CODENAME=jammy\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n',
    "debian-12": 'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
    "rocky-9": 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'
    'PLATFORM_ID="platform:el9"\nPRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\n',
}


class Sandbox:
    """A node-like sandbox: overlay root over /, own mount and PID namespaces, shims installed."""

    def __init__(self, workdir: Path, ip: str, hostname: str, os_name: str):
        self.root = workdir / "root"
        self.upper = workdir / "upper"
        for d in (self.root, self.upper, workdir / "work"):
            d.mkdir(parents=True)
        self.ip = ip
        family = "rhel" if os_name.startswith(("rocky", "alma", "rhel", "fedora")) else "debian"
        r = shlex.quote(str(self.root))
        setup = textwrap.dedent(f"""\
            set -e
            mount -t overlay overlay -o lowerdir=/,upperdir={self.upper},workdir={workdir / "work"} {r}
            mount -t proc proc {r}/proc
            mount --rbind /dev {r}/dev
            mount -t tmpfs tmpfs {r}/run
            mount -t tmpfs tmpfs {r}/tmp
            rm -rf {r}/opt/gimme-testbed && mkdir -p {r}/opt/gimme-testbed
            cp -r {shlex.quote(str(SHIMS))} {r}/opt/gimme-testbed/shims
            printf %s {shlex.quote(OS_RELEASE[os_name])} > {r}/etc/os-release
            echo {hostname} > {r}/etc/hostname
            chroot {r} {PYTHON} /opt/gimme-testbed/shims/install.py \\
                --family {family} --python {PYTHON} --node-ip {ip}
            echo ready
            exec sleep infinity
            """)
        self.proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--pid",
                "--fork",
                "--propagation",
                "private",
                "bash",
                "-c",
                setup,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", "sandbox setup failed"
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        self.pid = int(children[0])

    def run(
        self, script: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run a bash script as root inside the sandbox."""
        cmd = ["nsenter", "-t", str(self.pid), "-m", "-p", "--", "chroot", str(self.root),
               "/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME=/root", "LANG=C.UTF-8", "/bin/bash", "-c", script]  # fmt: skip
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
        if check and res.returncode != 0:
            raise AssertionError(f"exit {res.returncode}\n--- script\n{script}\n--- stdout\n{res.stdout}"
                                 f"\n--- stderr\n{res.stderr}")  # fmt: skip
        return res

    def calls(self, tool: str | None = None) -> list[dict]:
        path = self.upper / "var/log/gimme-testbed/calls.jsonl"
        entries = [json.loads(line) for line in path.read_text().splitlines()]
        return [e for e in entries if tool is None or e["tool"] == tool]

    def state(self, name: str) -> dict:
        return json.loads((self.upper / f"var/lib/gimme-testbed/{name}.json").read_text())

    def close(self) -> None:
        subprocess.run(["kill", "-KILL", str(self.pid)], check=False)
        self.proc.wait(timeout=10)


@pytest.fixture
def sandbox(tmp_path):
    made = []

    def make(
        os_name: str = "ubuntu-22.04", ip: str | None = None, hostname: str | None = None
    ) -> Sandbox:
        n = len(made) + 1
        sb = Sandbox(
            tmp_path / f"node{n}", ip or f"127.0.10.{200 + n}", hostname or f"node{n}", os_name
        )
        made.append(sb)
        return sb

    yield make
    for sb in made:
        sb.close()


def test_install_puts_system_tools_and_records_calls(sandbox):
    sb = sandbox("ubuntu-22.04")
    res = sb.run("command -v apt-get systemctl curl; command -v dnf kubeadm containerd || true")
    assert res.stdout.split() == ["/usr/bin/apt-get", "/usr/bin/systemctl", "/usr/bin/curl"]
    sb.run("swapoff -a && modprobe br_netfilter && sysctl -w net.ipv4.ip_forward=1")
    assert [c["tool"] for c in sb.calls()] == ["swapoff", "modprobe", "sysctl"]
    assert sb.calls("sysctl")[0]["argv"] == ["-w", "net.ipv4.ip_forward=1"]
    kernel = sb.state("kernel")
    assert kernel["swap"] == [] and "br_netfilter" in kernel["modules"]
    assert kernel["sysctl"]["net.ipv4.ip_forward"] == "1"
