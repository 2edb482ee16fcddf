"""The test bed's stand-in tools, exercised inside nodes, never on the host.

Most tests use a minimal sandbox of their own: a private mount+PID namespace with an overlay
copy-on-write root over the host's / where install.py runs as in a test-bed node, and
commands run chrooted into it as root. The end-to-end cluster test uses the test bed's
NodePool nodes instead, reached over SSH as the cloud user with sudo, like the real VMs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
    "ubuntu-20.04": 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="20.04"\n'
    'VERSION_CODENAME=focal\nPRETTY_NAME="Ubuntu 20.04.6 LTS"\n',
}


class Sandbox:
    """A node-like sandbox: overlay root over /, own mount and PID namespaces, shims installed."""

    def __init__(self, workdir: Path, ip: str, hostname: str, os_name: str):
        self.root = workdir / "root"
        self.upper = workdir / "upper"
        for d in (self.root, self.upper, workdir / "work"):
            d.mkdir(parents=True)
        self.ip = ip
        family = (
            "rhel" if os_name.startswith(("rocky", "alma", "rhel", "fedora", "redos")) else "debian"
        )
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
        sb = Sandbox(tmp_path / f"node{n}", ip or f"127.0.13.{n}", hostname or f"node{n}", os_name)
        made.append(sb)
        return sb

    yield make
    for sb in made:
        sb.close()


PREPARE_DEBIAN = """
set -e
swapoff -a
sed -i '/ swap / s/^/#/' /etc/fstab
cat <<EOF | tee /etc/modules-load.d/k8s.conf
overlay
br_netfilter
EOF
modprobe overlay
modprobe br_netfilter
cat <<EOF | tee /etc/sysctl.d/k8s.conf
net.bridge.bridge-nf-call-iptables  = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward                 = 1
EOF
sysctl --system
apt-get update
apt-get install -y apt-transport-https ca-certificates curl gpg
mkdir -p -m 755 /etc/apt/keyrings
curl -fsSL https://pkgs.k8s.io/core:/stable:/v{minor}/deb/Release.key \\
    | gpg --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v{minor}/deb/ /' \\
    | tee /etc/apt/sources.list.d/kubernetes.list
apt-get update
apt-get install -y containerd kubelet kubeadm kubectl
apt-mark hold kubelet kubeadm kubectl
mkdir -p /etc/containerd
containerd config default | tee /etc/containerd/config.toml >/dev/null
sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
systemctl restart containerd
systemctl enable --now kubelet
"""

INIT_V1BETA3 = """
cat > /root/kubeadm.yaml <<EOF
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
nodeRegistration:
  criSocket: unix:///var/run/containerd/containerd.sock
  kubeletExtraArgs:
    node-ip: {ip}
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.30.4
networking:
  podSubnet: 10.244.0.0/16
apiServer:
  extraArgs:
    audit-log-maxage: "7"
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
EOF
kubeadm init --config /root/kubeadm.yaml
"""

PREPARE_ROCKY = """
set -e
setenforce 0
sed -i 's/^SELINUX=enforcing$/SELINUX=permissive/' /etc/selinux/config
firewall-cmd --permanent --add-port=6443/tcp --add-port=10250/tcp
firewall-cmd --reload
swapoff -a
sed -i '/ swap / s/^/#/' /etc/fstab
printf 'overlay\\nbr_netfilter\\n' > /etc/modules-load.d/k8s.conf
systemctl restart systemd-modules-load
printf 'net.ipv4.ip_forward = 1\\n' > /etc/sysctl.d/k8s.conf
sysctl --system
dnf install -y dnf-plugins-core
dnf config-manager --add-repo https://download.docker.com/linux/centos/docker-ce.repo
dnf install -y containerd.io
cat > /etc/yum.repos.d/kubernetes.repo <<EOF
[kubernetes]
name=Kubernetes
baseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/
enabled=1
gpgcheck=1
gpgkey=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/repodata/repomd.xml.key
exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni
EOF
dnf install -y kubelet kubeadm kubectl --disableexcludes=kubernetes
systemctl enable --now containerd kubelet
"""

INIT_V1BETA4 = """
cat > /root/kubeadm.yaml <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {ip}
nodeRegistration:
  kubeletExtraArgs:
  - name: node-ip
    value: {ip}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: gimme
networking:
  podSubnet: 192.168.0.0/16
  serviceSubnet: 10.96.0.0/12
apiServer:
  extraArgs:
  - name: audit-log-maxage
    value: "7"
EOF
kubeadm init --config /root/kubeadm.yaml
"""

BINARY_INSTALL = """
set -e
cd /tmp
GH=https://github.com
curl -fsSLO $GH/kubernetes-sigs/cri-tools/releases/download/v1.30.0/crictl-v1.30.0-linux-amd64.tar.gz
tar -C /usr/local/bin -xzf crictl-v1.30.0-linux-amd64.tar.gz
curl -fsSLO $GH/containerd/containerd/releases/download/v2.0.2/containerd-2.0.2-linux-amd64.tar.gz
curl -fsSLO $GH/containerd/containerd/releases/download/v2.0.2/containerd-2.0.2-linux-amd64.tar.gz.sha256sum
sha256sum -c containerd-2.0.2-linux-amd64.tar.gz.sha256sum
tar -C /usr/local -xzf containerd-2.0.2-linux-amd64.tar.gz
mkdir -p /usr/local/lib/systemd/system /opt/cni/bin
curl -fsSL -o /usr/local/lib/systemd/system/containerd.service \\
    https://raw.githubusercontent.com/containerd/containerd/main/containerd.service
curl -fsSL $GH/containernetworking/plugins/releases/download/v1.5.1/cni-plugins-linux-amd64-v1.5.1.tgz \\
    | tar -C /opt/cni/bin -xz
systemctl daemon-reload
systemctl enable --now containerd
"""

ADMIN = "export KUBECONFIG=/etc/kubernetes/admin.conf; "
RAW = "https://raw.githubusercontent.com"


def join_command(init_output: str) -> str:
    """The worker join command kubeadm init printed, on one line."""
    tail = init_output.split("worker nodes by running the following on each as root:")[1]
    return " ".join(tail.replace("\\\n", " ").split())


def test_install_puts_system_tools_and_records_calls(sandbox):
    deb = sandbox("ubuntu-22.04")
    res = deb.run("command -v apt-get systemctl curl; command -v dnf kubeadm containerd || true")
    assert res.stdout.split() == ["/usr/bin/apt-get", "/usr/bin/systemctl", "/usr/bin/curl"]
    deb.run("swapoff -a && modprobe br_netfilter && sysctl -w net.ipv4.ip_forward=1")
    assert [c["tool"] for c in deb.calls()] == ["swapoff", "modprobe", "sysctl"]
    assert deb.calls("sysctl")[0]["argv"] == ["-w", "net.ipv4.ip_forward=1"]
    kernel = deb.state("kernel")
    assert kernel["swap"] == [] and "br_netfilter" in kernel["modules"]
    assert kernel["sysctl"]["net.ipv4.ip_forward"] == "1"
    rocky = sandbox("rocky-9")
    res = rocky.run(
        "command -v dnf rpm firewall-cmd; command -v apt-get dpkg || echo no-apt; getenforce"
    )
    assert res.stdout.split() == [
        "/usr/bin/dnf",
        "/usr/bin/rpm",
        "/usr/bin/firewall-cmd",
        "no-apt",
        "Enforcing",
    ]


def test_debian_bootstrap_1_30_with_v1beta3(sandbox):
    sb = sandbox("ubuntu-22.04")
    sb.run(PREPARE_DEBIAN.format(minor="1.30"))
    installed = sb.state("packages")["installed"]
    assert installed["kubeadm"]["version"].startswith("1.30.") and installed["kubeadm"]["held"]
    assert installed["containerd"]["version"].startswith("1.7.12")
    assert {"cri-tools", "kubernetes-cni", "conntrack"} <= set(installed)
    units = sb.state("units")["units"]
    assert units["containerd.service"]["active"] == "active"
    assert units["containerd.service"]["loaded"]["systemd_cgroup"] is True
    assert (
        units["kubelet.service"]["enabled"] and units["kubelet.service"]["active"] == "activating"
    )
    gpg = sb.calls("gpg")[0]
    assert gpg["argv"] == ["--dearmor", "-o", "/etc/apt/keyrings/kubernetes-apt-keyring.gpg"]
    assert "BEGIN PGP PUBLIC KEY BLOCK" in gpg["stdin"]
    apt_calls = [c["argv"] for c in sb.calls("apt-get")]
    assert ["install", "-y", "containerd", "kubelet", "kubeadm", "kubectl"] in apt_calls

    res = sb.run(INIT_V1BETA3.format(ip=sb.ip))
    assert "Your Kubernetes control-plane has initialized successfully!" in res.stdout
    assert "[init] Using Kubernetes version: v1.30.4" in res.stdout
    join = join_command(res.stdout)
    assert re.match(
        rf"kubeadm join {re.escape(sb.ip)}:6443 --token [a-z0-9]{{6}}\.[a-z0-9]{{16}} ", join
    )
    ca_hash = re.search(r"--discovery-token-ca-cert-hash sha256:([0-9a-f]{64})", join).group(1)
    admin = yaml.safe_load(sb.run("cat /etc/kubernetes/admin.conf").stdout)
    cluster = admin["clusters"][0]["cluster"]
    assert cluster["server"] == f"https://{sb.ip}:6443"
    assert admin["current-context"] == "kubernetes-admin@kubernetes"
    ca = x509.load_pem_x509_certificate(base64.b64decode(cluster["certificate-authority-data"]))
    spki = ca.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert hashlib.sha256(spki).hexdigest() == ca_hash
    sb.run("test -f /etc/kubernetes/super-admin.conf && test -f /etc/kubernetes/pki/ca.key")
    flags = sb.run("cat /var/lib/kubelet/kubeadm-flags.env").stdout
    assert "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock" in flags
    assert f"--node-ip={sb.ip}" in flags
    nodes = sb.run(ADMIN + "kubectl get nodes --no-headers").stdout.split()
    assert nodes[:3] == ["node1", "NotReady", "control-plane"] and nodes[4] == "v1.30.14"
    assert sb.state("units")["units"]["kubelet.service"]["active"] == "active"
    init = sb.calls("kubeadm")[-1]
    assert init["argv"] == ["init", "--config", "/root/kubeadm.yaml"] and init["exit"] == 0


def test_rhel_bootstrap_1_31_with_v1beta4(sandbox):
    sb = sandbox("rocky-9")
    sb.run(PREPARE_ROCKY)
    kernel = sb.state("kernel")
    assert kernel["selinux"] == "Permissive"
    assert kernel["firewall"]["ports"] == ["10250/tcp", "6443/tcp"]
    assert {"overlay", "br_netfilter"} <= set(kernel["modules"])
    installed = sb.state("packages")["installed"]
    assert installed["kubelet"]["version"].startswith("1.31.")
    assert installed["kubelet"]["from"] == "kubernetes"
    assert installed["containerd.io"]["from"] == "docker-ce-stable"
    sb.run("test -f /etc/yum.repos.d/docker-ce.repo")

    # containerd.io ships a config that disables the CRI plugin: kubeadm's preflight says so
    res = sb.run(INIT_V1BETA4.format(ip=sb.ip), check=False)
    assert res.returncode == 1
    assert "[ERROR CRI]: could not connect to the container runtime" in res.stderr
    assert "unknown service runtime.v1.RuntimeService" in res.stderr

    sb.run(
        "containerd config default > /etc/containerd/config.toml && systemctl restart containerd"
    )
    assert "version = 3" in sb.run("cat /etc/containerd/config.toml").stdout
    res = sb.run(INIT_V1BETA4.format(ip=sb.ip))
    assert "[WARNING Firewalld]" in res.stderr
    admin = yaml.safe_load(sb.run("cat /etc/kubernetes/admin.conf").stdout)
    assert admin["clusters"][0]["name"] == "gimme"
    assert admin["current-context"] == "kubernetes-admin@gimme"
    node = json.loads(sb.run(ADMIN + "kubectl get nodes -o json").stdout)["items"][0]
    assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.31.")
    assert node["spec"]["podCIDR"] == "192.168.0.0/24"


def test_failures_look_like_the_real_tools(sandbox):
    sb = sandbox("debian-12")
    res = sb.run("apt-get install -y kubeadm", check=False)
    assert res.returncode == 100 and "E: Unable to locate package kubeadm" in res.stderr
    res = sb.run("curl -fsSL https://get.example.org/install.sh", check=False)
    assert res.returncode == 6
    assert "curl: (6) Could not resolve host: get.example.org" in res.stderr
    assert sb.run("wget -q https://get.example.org/x", check=False).returncode == 4

    # a source whose keyring is missing is refused; a new source is invisible until update
    key = "https://pkgs.k8s.io/core:/stable:/v1.30/deb/Release.key"
    src = "deb [signed-by=/etc/apt/keyrings/k8s.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /"
    sb.run(f"echo '{src}' > /etc/apt/sources.list.d/k8s.list")
    res = sb.run("apt-get update", check=False)
    assert res.returncode == 100 and "NO_PUBKEY 234654DA9A296436" in res.stderr
    sb.run(f"curl -fsSL {key} | gpg --dearmor -o /etc/apt/keyrings/k8s.gpg")
    res = sb.run("apt-get install -y kubeadm", check=False)
    assert res.returncode == 100 and "Unable to locate package kubeadm" in res.stderr
    sb.run("apt-get update && apt-get install -y -qq containerd kubelet kubeadm kubectl")
    sb.run("modprobe br_netfilter && sysctl -w net.ipv4.ip_forward=1")

    # swap still on: 1.30 only warns in preflight, then the kubelet refuses to run
    res = sb.run("kubeadm init --pod-network-cidr=10.244.0.0/16", check=False)
    assert res.returncode == 1 and "[WARNING Swap]" in res.stderr
    assert "The kubelet is not healthy" in res.stderr
    assert "error execution phase wait-control-plane" in res.stderr
    res = sb.run("swapoff -a && kubeadm init --pod-network-cidr=10.244.0.0/16", check=False)
    assert "[ERROR Port-6443]" in res.stderr, "a failed init needs kubeadm reset"
    sb.run("kubeadm reset -f")

    # the runtime is stopped
    sb.run("systemctl stop containerd")
    res = sb.run("kubeadm init --pod-network-cidr=10.244.0.0/16", check=False)
    assert res.returncode == 1 and "[ERROR CRI]: container runtime is not running" in res.stderr
    assert "error execution phase preflight" in res.stderr
    sb.run("systemctl start containerd")

    sb.run(
        "printf 'apiVersion: kubeadm.k8s.io/v1beta3\\nkind: ClusterConfiguration\\n"
        "networking:\\n  podSubnet: 10.244.0.0/16\\n  podCIDR: x\\n' > /root/unknown-field.yaml"
    )
    sb.run(
        "printf 'apiVersion: kubeadm.k8s.io/v1beta4\\nkind: ClusterConfiguration\\n"
        'apiServer:\\n  extraArgs:\\n    v: "2"\\n\' > /root/map-args.yaml'
    )
    res = sb.run("kubeadm init --config /root/unknown-field.yaml", check=False)
    assert res.returncode == 1
    assert 'strict decoding error: unknown field "networking.podCIDR"' in res.stderr
    # a 1.36 kubeadm from dl.k8s.io: no v1beta3 any more, and v1beta4 extraArgs are a list
    sb.run(
        "cd /usr/local/bin && curl -fsSLO https://dl.k8s.io/release/v1.36.0/bin/linux/amd64/kubeadm"
        " && chmod +x kubeadm && kubeadm version -o short | grep -x v1.36.0"
    )
    res = sb.run("kubeadm init --config /root/unknown-field.yaml", check=False)
    assert res.returncode == 1 and 'old API spec: "kubeadm.k8s.io/v1beta3"' in res.stderr
    res = sb.run("kubeadm init --config /root/map-args.yaml", check=False)
    assert res.returncode == 1
    assert "cannot unmarshal object into Go struct field apiServer.extraArgs" in res.stderr
    assert [c["exit"] for c in sb.calls("kubeadm")][-4:] == [1, 0, 1, 1]


def test_kubelet_1_35_refuses_cgroup_v1_unless_told(sandbox):
    sb = sandbox("ubuntu-20.04")
    sb.run(PREPARE_DEBIAN.format(minor="1.35"))
    res = sb.run("kubeadm init --pod-network-cidr=10.244.0.0/16", check=False)
    assert res.returncode == 1 and "[WARNING SystemVerification]: cgroups v1" in res.stderr
    assert "failed while waiting for the kubelet to start" in res.stderr
    sb.run("kubeadm reset -f")
    config = (
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n---\n"
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfailCgroupV1: false\n"
    )
    sb.run(f"printf '{config}' > /root/cg.yaml && kubeadm init --config /root/cg.yaml")
    assert sb.state("units")["units"]["kubelet.service"]["active"] == "active"


def test_binary_installs_unpack_working_tools(sandbox):
    sb = sandbox("ubuntu-22.04")
    sb.run(BINARY_INSTALL)
    res = sb.run(
        "crictl -r unix:///run/containerd/containerd.sock version; ls /opt/cni/bin | wc -l"
    )
    assert "RuntimeVersion:  v2.0.2" in res.stdout and res.stdout.split()[-1] == "18"
    assert sb.state("units")["units"]["containerd.service"]["loaded"]["version"] == "2.0.2"
    # without -L a GitHub download is only the redirect page
    runc = "https://github.com/opencontainers/runc/releases/download/v1.2.4/runc.amd64"
    sb.run(f"curl -so /tmp/runc {runc}")
    assert sb.run("head -c 8 /tmp/runc").stdout == "<a href="


DOCKER_RUNTIME = """
set -e
swapoff -a
modprobe br_netfilter
sysctl -w net.ipv4.ip_forward=1
install -m 0755 -d /etc/apt/keyrings
curl -fsSL https://download.docker.com/linux/ubuntu/gpg -o /etc/apt/keyrings/docker.asc
chmod a+r /etc/apt/keyrings/docker.asc
echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] \\
https://download.docker.com/linux/ubuntu $(. /etc/os-release && echo "$VERSION_CODENAME") stable" \\
    > /etc/apt/sources.list.d/docker.list
curl -fsSL https://pkgs.k8s.io/core:/stable:/v1.29/deb/Release.key | gpg --dearmor -o /etc/apt/keyrings/k8s.gpg
echo 'deb [signed-by=/etc/apt/keyrings/k8s.gpg] https://pkgs.k8s.io/core:/stable:/v1.29/deb/ /' \\
    > /etc/apt/sources.list.d/kubernetes.list
apt-get update
apt-get install -y docker-ce docker-ce-cli containerd.io kubelet kubeadm kubectl
cat > /etc/docker/daemon.json <<EOF
{"exec-opts": ["native.cgroupdriver=systemd"]}
EOF
systemctl restart docker
curl -fsSLO https://github.com/Mirantis/cri-dockerd/releases/download/v0.3.20/cri-dockerd_0.3.20.3-0.ubuntu-jammy_amd64.deb
dpkg -i cri-dockerd_0.3.20.3-0.ubuntu-jammy_amd64.deb
systemctl enable --now cri-docker.socket
"""


def test_docker_with_cri_dockerd_needs_an_explicit_cri_socket(sandbox):
    sb = sandbox("ubuntu-22.04")
    sb.run("mkdir -p /etc/docker")
    sb.run(DOCKER_RUNTIME)
    installed = sb.state("packages")["installed"]
    assert installed["docker-ce"]["version"].startswith("5:28.")
    assert installed["cri-dockerd"]["from"] == "local"
    assert sb.run("docker info --format '{{.CgroupDriver}}'").stdout.strip() == "systemd"
    assert sb.run("cri-dockerd --version").stdout.startswith("cri-dockerd 0.3.20")

    # docker's containerd and cri-dockerd both answer: kubeadm will not guess
    res = sb.run("kubeadm init --pod-network-cidr=10.244.0.0/16", check=False)
    assert res.returncode == 1 and "found multiple CRI endpoints on the host" in res.stderr
    assert (
        "unix:///var/run/containerd/containerd.sock, unix:///var/run/cri-dockerd.sock" in res.stderr
    )
    sb.run(
        "kubeadm init --pod-network-cidr=10.244.0.0/16 --cri-socket unix:///var/run/cri-dockerd.sock"
    )
    flannel = "https://github.com/flannel-io/flannel/releases/latest/download/kube-flannel.yml"
    res = sb.run(
        ADMIN
        + f"kubectl apply -f {flannel} && kubectl wait --for=condition=Ready node/node1 --timeout=30s"
    )
    assert (
        "daemonset.apps/kube-flannel-ds created" in res.stdout
        and "node/node1 condition met" in res.stdout
    )
    node = json.loads(sb.run(ADMIN + "kubectl get node node1 -o json").stdout)
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"] == "docker://28.5.2"
    pods = sb.run(ADMIN + "kubectl get pods -n kube-flannel --no-headers").stdout.split()
    assert pods[2] == "Running"


def test_cilium_via_helm_and_cli_with_pod_cidr_checks(sandbox):
    sb = sandbox("debian-12")
    sb.run(PREPARE_DEBIAN.format(minor="1.31"))
    # without a pod subnet flannel's agents cannot start: nodes stay NotReady
    sb.run("kubeadm init --skip-phases=addon/kube-proxy")
    flannel = f"{RAW}/flannel-io/flannel/master/Documentation/kube-flannel.yml"
    sb.run(ADMIN + f"kubectl apply -f {flannel}")
    res = sb.run(ADMIN + "kubectl wait --for=condition=Ready nodes --all --timeout=2s", check=False)
    assert res.returncode == 1
    assert "CrashLoopBackOff" in sb.run(ADMIN + "kubectl get pods -n kube-flannel").stdout
    sb.run(ADMIN + f"kubectl delete -f {flannel}")

    sb.run(f"curl -fsSL {RAW}/helm/helm/main/scripts/get-helm-3 | bash")
    sb.run(ADMIN + "helm repo add cilium https://helm.cilium.io/ && helm repo update")
    res = sb.run(
        ADMIN + "helm install cilium cilium/cilium --version 9.9.9 -n kube-system", check=False
    )
    assert (
        res.returncode == 1
        and 'chart "cilium" matching 9.9.9 not found in cilium index' in res.stderr
    )
    sb.run(
        ADMIN + "helm install cilium cilium/cilium --version 1.16.5 --namespace kube-system"
        " --set kubeProxyReplacement=true --set k8sServiceHost=node1 --set k8sServicePort=6443 --wait"
    )
    sb.run(
        "cd /tmp && curl -L --remote-name-all https://github.com/cilium/cilium-cli/releases/download/"
        "v0.16.24/cilium-linux-amd64.tar.gz{,.sha256sum} && sha256sum --check cilium-linux-amd64.tar.gz.sha256sum"
        " && tar xzvfC cilium-linux-amd64.tar.gz /usr/local/bin"
    )
    assert "Cilium:             OK" in sb.run(ADMIN + "cilium status --wait").stdout
    res = sb.run(ADMIN + "cilium install --version 1.16.5", check=False)
    assert res.returncode == 1 and "cannot re-use a name that is still in use" in res.stderr
    assert (
        "node/node1 condition met"
        in sb.run(ADMIN + "kubectl wait --for=condition=Ready nodes --all").stdout
    )
    config = json.loads(sb.run(ADMIN + "kubectl get cm -n kube-system -o json").stdout)["items"]
    cilium = next(c for c in config if c["metadata"]["name"] == "cilium-config")
    assert cilium["data"]["kube-proxy-replacement"] == "true"
    assert [c["argv"][:2] for c in sb.calls("helm")][-1] == ["install", "cilium"]


class SshNode:
    """A NodePool node reached like a real VM: OpenSSH as the cloud user, sudo for root."""

    def __init__(self, node, key: paramiko.PKey):
        self.node = node
        self.ip = node.address
        key_type, key_b64 = node.host_public_key.split()[:2]
        self.client = paramiko.SSHClient()
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        host_key = paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64))
        self.client.get_host_keys().add(node.address, key_type, host_key)
        self.client.connect(node.address, username=node.user, pkey=key, allow_agent=False,
                            look_for_keys=False, timeout=10)  # fmt: skip

    def run(
        self, script: str, sudo: bool = True, check: bool = True
    ) -> subprocess.CompletedProcess:
        command = (
            f"sudo -n bash -c {shlex.quote(script)}" if sudo else f"bash -c {shlex.quote(script)}"
        )
        _, stdout, stderr = self.client.exec_command(command, timeout=120)
        out, err = stdout.read().decode(), stderr.read().decode()
        res = subprocess.CompletedProcess(command, stdout.channel.recv_exit_status(), out, err)
        if check and res.returncode != 0:
            raise AssertionError(
                f"exit {res.returncode}\n--- script\n{script}\n--- stdout\n{out}\n--- stderr\n{err}"
            )
        return res

    def calls(self, tool: str) -> list[dict]:
        return [c for c in self.node.calls() if c["tool"] == tool]


@pytest.fixture
def ssh_nodes(tmp_path_factory):
    """Three emulated Ubuntu VMs from the test bed's NodePool, logged in over SSH."""
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("needs openssh-server")
    from tests.testbed.nodes import NodePool

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
    ubuntu = {"NAME": "Ubuntu", "ID": "ubuntu", "ID_LIKE": "debian", "VERSION_ID": "22.04",
              "VERSION_CODENAME": "jammy", "PRETTY_NAME": "Ubuntu 22.04.4 LTS"}  # fmt: skip
    with NodePool(tmp_path_factory.mktemp("shim-cluster")) as pool:
        nodes = []
        for name in ("cp", "w1", "w2"):
            pool.start_node(name, hostname=f"k8s-{name}", user="ubuntu", authorized_keys=public.decode(),
                            os_release=ubuntu)  # fmt: skip
            nodes.append(SshNode(pool.node(name), key))
        yield nodes
        for n in nodes:
            n.client.close()


def test_three_node_cluster_over_ssh_becomes_ready_with_calico(ssh_nodes):
    cp, workers = ssh_nodes[0], ssh_nodes[1:]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda n: n.run(PREPARE_DEBIAN.format(minor="1.30")), ssh_nodes))
    init = cp.run(
        f"kubeadm init --pod-network-cidr=192.168.0.0/16 --apiserver-advertise-address={cp.ip}"
    )
    join = join_command(init.stdout)

    wrong = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, join)
    res = workers[0].run(wrong, check=False)
    assert (
        res.returncode == 1
        and "none of the public keys" in res.stderr
        and "are pinned" in res.stderr
    )
    workers[0].run(join)
    fresh = cp.run("kubeadm token create --print-join-command --ttl 1h").stdout.strip()
    assert fresh.split("--token ")[1].split()[0] != join.split("--token ")[1].split()[0]
    assert (
        fresh.split("--discovery-token-ca-cert-hash ")[1]
        == join.split("--discovery-token-ca-cert-hash ")[1]
    )
    workers[1].run(fresh)

    # kubectl as the cloud user, with the admin kubeconfig copied the documented way
    cp.run("mkdir -p $HOME/.kube && sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config"
           " && sudo chown $(id -u):$(id -g) $HOME/.kube/config", sudo=False)  # fmt: skip
    user = cp.calls("kubectl")
    assert cp.run("kubectl get nodes -o name", sudo=False).stdout.split() == [
        "node/k8s-cp",
        "node/k8s-w1",
        "node/k8s-w2",
    ]
    statuses = cp.run("kubectl get nodes --no-headers", sudo=False).stdout.splitlines()
    assert [line.split()[1] for line in statuses] == ["NotReady"] * 3
    # multus alone is no pod network
    multus = f"{RAW}/k8snetworkplumbingwg/multus-cni/master/deployments/multus-daemonset-thick.yml"
    cp.run(f"kubectl apply -f {multus}", sudo=False)
    res = cp.run(
        "kubectl wait --for=condition=Ready nodes --all --timeout=2s", sudo=False, check=False
    )
    assert res.returncode == 1 and "timed out waiting for the condition" in res.stderr

    calico = f"{RAW}/projectcalico/calico/v3.28.1/manifests/calico.yaml"
    cp.run(
        f"curl -fsSLo calico.yaml {calico} && grep -q '#   value: \"192.168.0.0/16\"' calico.yaml",
        sudo=False,
    )
    cp.run("kubectl apply -f calico.yaml", sudo=False)
    res = cp.run("kubectl wait --for=condition=Ready nodes --all --timeout=60s", sudo=False)
    assert res.stdout.count("condition met") == 3
    listed = json.loads(cp.run("kubectl get nodes -o json", sudo=False).stdout)["items"]
    assert sorted(n["status"]["addresses"][0]["address"] for n in listed) == sorted(
        n.ip for n in ssh_nodes
    )
    path = '{range .items[*]}{.status.conditions[?(@.type=="Ready")].status} {end}'
    assert (
        cp.run(f"kubectl get nodes -o jsonpath='{path}'", sudo=False).stdout.split() == ["True"] * 3
    )
    rollout = cp.run(
        "kubectl -n kube-system rollout status ds/calico-node --timeout=30s", sudo=False
    )
    assert 'daemon set "calico-node" successfully rolled out' in rollout.stdout

    applied = [c for c in cp.calls("kubectl")[len(user) :] if c["argv"][:1] == ["apply"]]
    assert applied[-1]["argv"] == ["apply", "-f", "calico.yaml"] and applied[-1]["uid"] != 0
    assert applied[-1]["exit"] == 0
    assert [c["argv"][0] for c in workers[1].calls("kubeadm")] == ["join"]
    assert (
        workers[0].calls("kubeadm")[0]["exit"] == 1 and workers[0].calls("kubeadm")[1]["exit"] == 0
    )
