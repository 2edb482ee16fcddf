"""What the emulated package world holds: distro packages, upstream repos, versions, files."""

from __future__ import annotations

import re

from .core import minor

# Latest patch per Kubernetes minor (what pkgs.k8s.io / dl.k8s.io serve).
K8S_PATCH = {
    23: 17, 24: 17, 25: 16, 26: 15, 27: 16, 28: 15, 29: 15, 30: 14,
    31: 14, 32: 13, 33: 13, 34: 11, 35: 8, 36: 4, 37: 1,
}  # fmt: skip
K8S_LATEST = max(K8S_PATCH)
CRIO_PATCH = {
    23: 5, 24: 6, 25: 4, 26: 4, 27: 6, 28: 11, 29: 13, 30: 14,
    31: 13, 32: 11, 33: 9, 34: 7, 35: 5, 36: 3, 37: 1,
}  # fmt: skip
# cri-tools and kubernetes-cni versions shipped next to each Kubernetes minor
CRI_TOOLS = {m: f"1.{m}.{0 if m >= 35 else 1}" for m in K8S_PATCH}
K8S_CNI = {24: "1.1.1", 25: "1.1.1", 26: "1.2.0", 27: "1.2.0", 28: "1.2.0", 29: "1.3.0", 30: "1.4.0",
           31: "1.5.1", 32: "1.6.0", 33: "1.6.0", 34: "1.7.1", 35: "1.7.1", 36: "1.8.0", 37: "1.8.0"}  # fmt: skip

# control-plane images per minor: (pause, coredns, etcd)
IMAGES = {
    23: ("3.6", "v1.8.6", "3.5.6-0"), 24: ("3.7", "v1.8.6", "3.5.6-0"),
    25: ("3.8", "v1.9.3", "3.5.6-0"), 26: ("3.9", "v1.9.3", "3.5.6-0"),
    27: ("3.9", "v1.10.1", "3.5.7-0"), 28: ("3.9", "v1.10.1", "3.5.9-0"),
    29: ("3.9", "v1.11.1", "3.5.10-0"), 30: ("3.9", "v1.11.3", "3.5.12-0"),
    31: ("3.10", "v1.11.3", "3.5.15-0"), 32: ("3.10", "v1.11.3", "3.5.16-0"),
    33: ("3.10", "v1.12.0", "3.5.21-0"), 34: ("3.10.1", "v1.12.1", "3.6.4-0"),
    35: ("3.10.1", "v1.13.1", "3.6.5-0"), 36: ("3.10.2", "v1.13.1", "3.6.6-0"),
    37: ("3.10.2", "v1.13.2", "3.6.6-0"),
}  # fmt: skip

CONTAINERD_IO = ["1.7.28", "2.1.5"]  # versions download.docker.com offers, oldest first
DOCKER_CE = ["27.5.1", "28.5.2"]

# Key ids of the stand-in signing keys, by vendor.
KEY_IDS = {
    "k8s": "234654DA9A296436",
    "docker": "8D81803C0EBFCD88",
    "opensuse": "4D64390375060AA4",
    "helm": "294AC4827C1A168A",
}


def k8s_full(m: int) -> str:
    return f"1.{m}.{K8S_PATCH[m]}"


def k8s_images(version: str, repo: str = "registry.k8s.io") -> list[str]:
    pause, coredns, etcd = IMAGES[minor(version)]
    v = "v" + version.lstrip("v")
    return [
        f"{repo}/kube-apiserver:{v}",
        f"{repo}/kube-controller-manager:{v}",
        f"{repo}/kube-scheduler:{v}",
        f"{repo}/kube-proxy:{v}",
        f"{repo}/coredns/coredns:{coredns}"
        if repo == "registry.k8s.io"
        else f"{repo}/coredns:{coredns}",
        f"{repo}/pause:{pause}",
        f"{repo}/etcd:{etcd}",
    ]


# --- distributions ---------------------------------------------------------

CODENAMES = {
    ("debian", "10"): "buster", ("debian", "11"): "bullseye", ("debian", "12"): "bookworm",
    ("debian", "13"): "trixie", ("ubuntu", "20.04"): "focal", ("ubuntu", "22.04"): "jammy",
    ("ubuntu", "24.04"): "noble", ("astra", "1.7"): "buster", ("astra", "1.8"): "bookworm",
}  # fmt: skip

COMMON_DEB = {
    "apt-transport-https": "2.4.13", "ca-certificates": "20240203", "curl": "7.88.1-10",
    "gpg": "2.2.40-1.1", "gnupg": "2.2.40-1.1", "gnupg2": "2.2.40-1.1", "conntrack": "1:1.4.7-1+b2",
    "socat": "1.7.4.4-2", "ebtables": "2.0.11-5", "ethtool": "1:6.1-1", "iptables": "1.8.9-2",
    "ipset": "7.17-1", "ipvsadm": "1:1.31-1+b1", "jq": "1.6-2.1", "lsb-release": "12.0-1",
    "software-properties-common": "0.99.22", "wget": "1.21.3-1+b2", "tar": "1.34+dfsg-1.2",
    "iproute2": "6.1.0-3", "kmod": "30+20221128-1", "procps": "2:4.0.2-3", "sudo": "1.9.13p3-1",
    "openssh-server": "1:9.2p1-2", "systemd": "252.30-1", "util-linux": "2.38.1-5", "mount": "2.38.1-5",
    "nfs-common": "1:2.6.2-4", "open-iscsi": "2.1.8-1", "bash-completion": "1:2.11-6", "apparmor": "3.0.8-3",
    "containernetworking-plugins": "1.1.1+ds1-3+b10", "apt": "2.6.1", "dpkg": "1.21.22",
}  # fmt: skip
DISTRO_DEB = {
    ("debian", "11"): {"containerd": "1.4.13~ds1-1~deb11u4", "docker.io": "20.10.5+dfsg1-1+deb11u2",
                       "runc": "1.0.0~rc93+ds1-5+deb11u3"},
    ("debian", "12"): {"containerd": "1.6.20~ds1-1+b1", "docker.io": "20.10.24+dfsg1-1+b3",
                       "runc": "1.1.5+ds1-1+deb12u1"},
    ("debian", "13"): {"containerd": "1.7.24~ds1-6+b2", "docker.io": "26.1.5+dfsg1-9+b7",
                       "runc": "1.1.15+ds1-2"},
    ("ubuntu", "20.04"): {"containerd": "1.7.12-0ubuntu2~20.04.1", "docker.io": "24.0.7-0ubuntu2~20.04.1",
                          "runc": "1.1.12-0ubuntu2~20.04.1"},
    ("ubuntu", "22.04"): {"containerd": "1.7.12-0ubuntu2~22.04.1", "docker.io": "24.0.7-0ubuntu2~22.04.1",
                          "runc": "1.1.12-0ubuntu2~22.04.1"},
    ("ubuntu", "24.04"): {"containerd": "1.7.12-0ubuntu4.1", "docker.io": "24.0.7-0ubuntu4.1",
                          "runc": "1.1.12-0ubuntu3.1"},
    ("astra", "1.7"): {"containerd": "1.4.13~ds1-1+astra1", "docker.io": "20.10.5+dfsg1-1+astra3",
                       "runc": "1.0.0~rc93+ds1-5+astra1"},
    ("astra", "1.8"): {"containerd": "1.6.20~ds1-1+astra1", "docker.io": "20.10.24+dfsg1-1+astra1",
                       "runc": "1.1.5+ds1-1+astra1"},
}  # fmt: skip
COMMON_RPM = {
    "ca-certificates": "2024.2.69_v8.0.303-91.4.el9", "curl": "7.76.1-29.el9", "gnupg2": "2.3.3-4.el9",
    "conntrack-tools": "1.4.7-2.el9", "socat": "1.7.4.1-5.el9", "iptables-nft": "1.8.10-4.el9",
    "iptables-ebtables": "1.8.10-4.el9", "ethtool": "2:6.2-1.el9", "ipset": "7.11-8.el9",
    "ipvsadm": "1.31-6.el9", "jq": "1.6-16.el9", "tar": "2:1.34-6.el9", "wget": "1.21.1-7.el9",
    "iproute": "6.2.0-5.el9", "iproute-tc": "6.2.0-5.el9", "kmod": "28-9.el9", "procps-ng": "3.3.17-14.el9",
    "sudo": "1.9.5p2-10.el9", "openssh-server": "8.7p1-38.el9", "systemd": "252-32.el9",
    "util-linux": "2.37.4-18.el9", "dnf": "4.14.0-9.el9", "dnf-plugins-core": "4.3.0-13.el9",
    "yum-utils": "4.3.0-13.el9", "yum": "4.14.0-9.el9", "rpm": "4.16.1.3-29.el9",
    "firewalld": "1.3.4-1.el9", "container-selinux": "3:2.229.0-1.el9", "libselinux-utils": "3.6-1.el9",
    "policycoreutils": "3.6-2.1.el9", "selinux-policy-targeted": "38.1.35-2.el9",
    "crypto-policies-scripts": "20240202-1.git283706d.el9", "runc": "4:1.1.12-4.el9",
    "device-mapper-persistent-data": "0.9.0-13.el9", "lvm2": "9:2.03.23-2.el9", "bash-completion": "1:2.11-5.el9",
    "nfs-utils": "1:2.5.4-26.el9", "iscsi-initiator-utils": "6.2.1.9-1.gita65a472.el9",
    "containernetworking-plugins": "1:1.4.0-2.el9", "python3-dnf-plugin-versionlock": "4.3.0-13.el9",
}  # fmt: skip
DISTRO_RPM = {
    "fedora": {"containerd": "1.7.23-1.fc41", "moby-engine": "27.3.1-1.fc41", "docker-cli": "27.3.1-1.fc41"},
    "redos": {"containerd": "1.6.21-1.el7", "docker-ce": "3:20.10.24-1.el7", "docker-ce-cli": "1:20.10.24-1.el7"},
}  # fmt: skip

BASE_INSTALLED = {
    "debian": ["apt", "dpkg", "ca-certificates", "curl", "gpg", "gnupg", "iproute2", "kmod", "procps",
               "sudo", "openssh-server", "systemd", "tar", "util-linux", "mount", "wget"],
    "rhel": ["dnf", "yum", "rpm", "dnf-plugins-core", "ca-certificates", "curl", "gnupg2", "iproute", "kmod",
             "procps-ng", "sudo", "openssh-server", "systemd", "tar", "util-linux", "firewalld",
             "libselinux-utils", "policycoreutils", "selinux-policy-targeted", "crypto-policies-scripts"],
}  # fmt: skip


def distro_key(os_id: str, version_id: str) -> tuple[str, str]:
    if os_id in ("debian", "rocky", "almalinux", "rhel", "centos", "redos", "fedora"):
        return os_id, version_id.split(".")[0]
    if os_id == "astra":
        return os_id, ".".join(version_id.split(".")[:2]).split("_")[0]
    return os_id, version_id


def distro_packages(os_id: str, version_id: str, fam: str) -> dict[str, str]:
    """Packages the distribution's own repositories offer: name -> version."""
    if fam == "debian":
        pkgs = dict(COMMON_DEB)
        key = distro_key(os_id, version_id)
        pkgs.update(DISTRO_DEB.get(key, DISTRO_DEB[("debian", "12")]))
        if os_id == "debian" and key[1] == "11":
            pkgs.pop("software-properties-common", None)
        return pkgs
    major = version_id.split(".")[0]
    pkgs = {n: v.replace(".el9", f".el{major}") for n, v in COMMON_RPM.items()}
    if os_id in ("fedora", "redos"):
        pkgs = {
            n: v.replace(".el9", ".fc41" if os_id == "fedora" else ".el7")
            for n, v in COMMON_RPM.items()
        }
    pkgs.update(DISTRO_RPM.get(os_id, {}))
    return pkgs


# names dnf resolves through what a package provides
RPM_PROVIDES = {"iptables": "iptables-nft", "ebtables": "iptables-ebtables", "conntrack": "conntrack-tools",
}  # fmt: skip


DISTRO_HOSTS = {
    "deb.debian.org", "security.debian.org", "archive.ubuntu.com", "security.ubuntu.com",
    "ports.ubuntu.com", "download.astralinux.ru", "dl.astralinux.ru", "dl.rockylinux.org",
    "mirrors.rockylinux.org", "repo.almalinux.org", "mirrors.almalinux.org", "mirrors.fedoraproject.org",
    "dl.fedoraproject.org", "cdn.redhat.com", "repo1.red-soft.ru", "repo.red-soft.ru",
}  # fmt: skip


def is_distro_host(host: str) -> bool:
    return host in DISTRO_HOSTS or host.endswith(".archive.ubuntu.com")


# --- upstream repositories -------------------------------------------------


class Repo:
    """An upstream package repository: vendor (signing key) and its packages' versions."""

    def __init__(self, vendor: str, packages: dict[str, list[str]]):
        self.vendor = vendor
        self.packages = packages


class RepoMissing(Exception):
    """The URL is on a known host but no repository is there (HTTP 404)."""


def _k8s_repo(m: int, fmt: str) -> Repo:
    if m not in K8S_PATCH or m < 24:
        raise RepoMissing
    rel = "-1.1" if fmt == "deb" else "-150500.1.1"
    patches = range(max(0, K8S_PATCH[m] - 3), K8S_PATCH[m] + 1)
    kube = [f"1.{m}.{p}{rel}" for p in patches]
    return Repo(
        "k8s",
        {
            "kubelet": kube,
            "kubeadm": kube,
            "kubectl": kube,
            "cri-tools": [CRI_TOOLS[m] + rel],
            "kubernetes-cni": [K8S_CNI[m] + rel],
        },
    )


def _crio_repo(m: int, fmt: str, vendor: str) -> Repo:
    if m not in CRIO_PATCH:
        raise RepoMissing
    rel = "-1.1" if fmt == "deb" else "-150500.1.1"
    return Repo(vendor, {"cri-o": [f"1.{m}.{p}{rel}" for p in range(CRIO_PATCH[m] + 1)]})


DOCKER_SUITES = {
    "ubuntu": {"focal", "jammy", "noble", "oracular", "plucky"},
    "debian": {"buster", "bullseye", "bookworm", "trixie"},
    "raspbian": {"bullseye", "bookworm"},
}


def _docker_repo(fmt: str, dist_tag: str) -> Repo:
    if fmt == "deb":
        cio = [f"{v}-1" for v in CONTAINERD_IO]
        ce = [f"5:{v}-1~{dist_tag}" for v in DOCKER_CE]
        cli = ce
    else:
        cio = [f"{v}-3.1.{dist_tag}" for v in CONTAINERD_IO]
        ce = [f"3:{v}-1.{dist_tag}" for v in DOCKER_CE]
        cli = [f"1:{v}-1.{dist_tag}" for v in DOCKER_CE]
    return Repo(
        "docker",
        {
            "containerd.io": cio,
            "docker-ce": ce,
            "docker-ce-cli": cli,
            "docker-buildx-plugin": ["0.29.1-1"],
            "docker-compose-plugin": ["2.40.3-1"],
            "docker-ce-rootless-extras": ce,
        },
    )


def find_repo(url: str, suite: str, fmt: str, dist_tag: str = "") -> Repo:
    """The repository at `url` (deb: with `suite`); RepoMissing when nothing is there.

    Unknown hosts are the caller's business; distro mirrors are not handled here.
    """
    url = url.rstrip("/") + "/"
    if m := re.match(r"https?://pkgs\.k8s\.io/core:/stable:/v1\.(\d+)/(deb|rpm)/", url):
        if m.group(2) != fmt or (fmt == "deb" and suite != "/"):
            raise RepoMissing
        return _k8s_repo(int(m.group(1)), fmt)
    if m := re.match(r"https?://pkgs\.k8s\.io/addons:/cri-o:/stable:/v1\.(\d+)/(deb|rpm)/", url):
        if m.group(2) != fmt or int(m.group(1)) < 28 or int(m.group(1)) > 32:
            raise RepoMissing
        return _crio_repo(int(m.group(1)), fmt, "k8s")
    if m := re.match(
        r"https?://download\.opensuse\.org/repositories/isv:/cri-o:/stable:/v1\.(\d+)/(deb|rpm)/",
        url,
    ):
        if m.group(2) != fmt or int(m.group(1)) < 28:
            raise RepoMissing
        return _crio_repo(int(m.group(1)), fmt, "opensuse")
    if m := re.match(
        r"https?://download\.opensuse\.org/repositories/devel:/kubic:/libcontainers:/stable:/cri-o:/1\.(\d+)/",
        url,
    ):
        if not 23 <= int(m.group(1)) <= 28:
            raise RepoMissing
        return _crio_repo(int(m.group(1)), fmt, "opensuse")
    if m := re.match(r"https?://download\.docker\.com/linux/(ubuntu|debian|raspbian)/", url):
        if fmt != "deb" or suite not in DOCKER_SUITES[m.group(1)]:
            raise RepoMissing
        return _docker_repo("deb", suite)
    if m := re.match(
        r"https?://download\.docker\.com/linux/(centos|rhel|fedora)/(\d+)/x86_64/stable/", url
    ):
        if fmt != "rpm":
            raise RepoMissing
        tag = ("fc" if m.group(1) == "fedora" else "el") + m.group(2)
        return _docker_repo("rpm", tag)
    if re.match(
        r"https?://(baltocdn\.com/helm/stable/debian/|packages\.buildkite\.com/helm-linux/helm-debian/)",
        url,
    ):
        return Repo("helm", {"helm": ["3.16.4-1", "3.19.0-1"]})
    raise RepoMissing


# --- what installing a package puts on disk ---------------------------------

# package -> dependencies (names in the same family)
DEPENDS = {
    "kubelet": ["kubernetes-cni", "conntrack", "ebtables", "ethtool", "iptables", "socat"],
    "kubeadm": ["cri-tools", "kubernetes-cni"],
    "docker-ce": ["containerd.io", "docker-ce-cli"],
    "docker.io": ["containerd", "runc"],
    "moby-engine": ["containerd", "runc", "docker-cli"],
    "containerd": ["runc"],
    "cri-o": [],
}
RPM_NAMES = {
    "conntrack": "conntrack-tools",
    "ebtables": "iptables-ebtables",
    "iptables": "iptables-nft",
}


def depends(name: str, fam: str) -> list[str]:
    deps = DEPENDS.get(name, [])
    return [RPM_NAMES.get(d, d) for d in deps] if fam == "rhel" else deps


def upstream(version: str) -> str:
    """'5:28.5.2-1~ubuntu' -> '28.5.2'; '1.30.14-1.1' -> '1.30.14'."""
    v = version.split(":", 1)[-1]
    return re.split(r"[-~+]", v)[0]


def package_files(name: str, version: str, fam: str) -> list[tuple[str, str, str | None]]:
    """Executables a package installs: (path, tool, version)."""
    v = upstream(version)
    bins = {
        "kubelet": [("/usr/bin/kubelet", "kubelet", v)],
        "kubeadm": [("/usr/bin/kubeadm", "kubeadm", v)],
        "kubectl": [("/usr/bin/kubectl", "kubectl", v)],
        "cri-tools": [("/usr/bin/crictl", "crictl", v)],
        "containerd": [
            ("/usr/bin/containerd", "containerd", v),
            ("/usr/bin/ctr", "ctr", v),
            ("/usr/bin/containerd-shim-runc-v2", "containerd-shim-runc-v2", v),
        ],
        "containerd.io": [
            ("/usr/bin/containerd", "containerd", v),
            ("/usr/bin/ctr", "ctr", v),
            ("/usr/bin/containerd-shim-runc-v2", "containerd-shim-runc-v2", v),
            ("/usr/bin/runc", "runc", "1.3.3"),
        ],
        "runc": [("/usr/sbin/runc" if fam == "debian" else "/usr/bin/runc", "runc", v)],
        "docker-ce": [("/usr/bin/dockerd", "dockerd", v)],
        "docker-ce-cli": [("/usr/bin/docker", "docker", v)],
        "docker-cli": [("/usr/bin/docker", "docker", v)],
        "docker.io": [("/usr/bin/docker", "docker", v), ("/usr/sbin/dockerd", "dockerd", v)],
        "moby-engine": [("/usr/bin/dockerd", "dockerd", v)],
        "cri-o": [
            ("/usr/bin/crio", "crio", v),
            ("/usr/libexec/crio/conmon", "conmon", "2.1.12"),
            ("/usr/libexec/crio/crun", "crun", "1.17"),
        ],
        "cri-dockerd": [("/usr/bin/cri-dockerd", "cri-dockerd", v)],
        "conntrack": [("/usr/sbin/conntrack", "conntrack", v)],
        "conntrack-tools": [("/usr/sbin/conntrack", "conntrack", v)],
        "helm": [("/usr/bin/helm", "helm", v)],
    }
    files = list(bins.get(name, []))
    if name == "kubernetes-cni":
        files = [(f"/opt/cni/bin/{p}", "cni-plugin", v) for p in CNI_PLUGINS]
    return files


CNI_PLUGINS = ["bridge", "host-local", "loopback", "portmap", "bandwidth", "firewall", "tuning", "host-device",
               "ipvlan", "macvlan", "ptp", "vlan", "dhcp", "static", "sbr", "vrf", "dummy", "tap"]  # fmt: skip

# package -> systemd units it ships (unit name -> stand-in unit file text)
PACKAGE_UNITS = {
    "kubelet": ["kubelet.service"],
    "containerd": ["containerd.service"],
    "containerd.io": ["containerd.service"],
    "docker-ce": ["docker.service", "docker.socket"],
    "docker.io": ["docker.service", "docker.socket"],
    "moby-engine": ["docker.service", "docker.socket"],
    "cri-o": ["crio.service"],
    "cri-dockerd": ["cri-docker.service", "cri-docker.socket"],
    "firewalld": ["firewalld.service"],
    "openssh-server": ["ssh.service"],
}
# Debian packages start their services at install; cri-o's is left stopped (its docs start it).
DEB_AUTOSTART_EXCEPT = {"cri-o"}
