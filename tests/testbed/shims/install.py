"""Install the gimme test-bed stand-ins into a node (run as root inside the node's chroot).

    <python> /opt/gimme-testbed/shims/install.py --family debian|rhel --python <python>
        [--node-ip 127.0.10.N] [--hostname NAME]

Puts the system tools at their real paths, removes the other family's package tools,
and writes the node's initial emulated state under /var/lib/gimme-testbed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from emu import catalog, content, core  # noqa: E402

COMMON_TOOLS = {
    "/usr/bin/curl": "curl", "/usr/bin/wget": "wget", "/usr/bin/gpg": "gpg", "/usr/bin/systemctl": "systemctl",
    "/usr/sbin/modprobe": "modprobe", "/usr/sbin/lsmod": "lsmod", "/usr/sbin/sysctl": "sysctl",
    "/usr/sbin/swapoff": "swapoff", "/usr/sbin/swapon": "swapon", "/usr/sbin/setenforce": "setenforce",
    "/usr/sbin/getenforce": "getenforce", "/usr/bin/hostnamectl": "hostnamectl", "/usr/bin/hostname": "hostname",
    "/usr/sbin/ip": "ip",
}  # fmt: skip
FAMILY_TOOLS = {
    "debian": {
        "/usr/bin/apt-get": "apt-get", "/usr/bin/apt": "apt", "/usr/bin/apt-mark": "apt-mark",
        "/usr/bin/apt-cache": "apt-cache", "/usr/bin/apt-key": "apt-key", "/usr/bin/dpkg": "dpkg",
        "/usr/bin/dpkg-query": "dpkg-query",
    },
    "rhel": {
        "/usr/bin/dnf": "dnf", "/usr/bin/yum": "yum", "/usr/bin/rpm": "rpm",
        "/usr/bin/firewall-cmd": "firewall-cmd", "/usr/bin/update-crypto-policies": "update-crypto-policies",
    },
}  # fmt: skip
OTHER_FAMILY = {
    "debian": ["dnf", "dnf-3", "yum", "rpm", "rpmkeys", "firewall-cmd", "update-crypto-policies"],
    "rhel": ["apt", "apt-get", "apt-cache", "apt-mark", "apt-key", "apt-config", "dpkg", "dpkg-query",
             "dpkg-deb", "add-apt-repository"],
}  # fmt: skip
# installed only with their package, whatever the host has
ONLY_WHEN_INSTALLED = ["kubeadm", "kubelet", "kubectl", "crictl", "containerd", "ctr", "runc", "crio", "docker",
                       "dockerd", "cri-dockerd", "helm", "cilium", "conntrack", "socat", "add-apt-repository"]  # fmt: skip


def remove(path: str) -> None:
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def install_tools(fam: str) -> None:
    for d in ("/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"):
        for name in OTHER_FAMILY[fam] + ONLY_WHEN_INSTALLED:
            remove(f"{d}/{name}")
    for path, tool in {**COMMON_TOOLS, **FAMILY_TOOLS[fam]}.items():
        core.install_tool(path, tool)
    os_id, version_id = core.os_id()
    if fam == "debian" and os_id == "ubuntu":
        core.install_tool("/usr/bin/add-apt-repository", "add-apt-repository")


def write_distro_sources(fam: str) -> None:
    os_id, version_id = core.os_id()
    codename = core.os_release().get("VERSION_CODENAME") or catalog.CODENAMES.get(
        catalog.distro_key(os_id, version_id), "bookworm"
    )
    if fam == "debian":
        for p in [
            "/etc/apt/sources.list",
            "/etc/apt/sources.list.d",
            "/etc/apt/trusted.gpg.d",
            "/etc/apt/keyrings",
        ]:
            remove(p)
        Path("/etc/apt/sources.list.d").mkdir(parents=True)
        Path("/etc/apt/trusted.gpg.d").mkdir(parents=True)
        if not (os_id == "debian" and version_id.split(".")[0] in ("10", "11")):
            Path("/etc/apt/keyrings").mkdir(mode=0o755)
        if os_id == "ubuntu":
            Path("/etc/apt/sources.list.d/ubuntu.sources").write_text(
                f"Types: deb\nURIs: http://archive.ubuntu.com/ubuntu/\nSuites: {codename} {codename}-updates\n"
                "Components: main restricted universe multiverse\n"
                "Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n"
            )
        elif os_id == "astra":
            Path("/etc/apt/sources.list").write_text(
                f"deb https://dl.astralinux.ru/astra/stable/{version_id}/repository-main/ {codename} main contrib non-free\n"
            )
        else:
            Path("/etc/apt/sources.list.d/debian.sources").write_text(
                f"Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {codename} {codename}-updates\n"
                "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            )
    else:
        remove("/etc/yum.repos.d")
        Path("/etc/yum.repos.d").mkdir(parents=True)
        host = {"almalinux": "repo.almalinux.org/almalinux", "fedora": "dl.fedoraproject.org/pub/fedora/linux",
                "redos": "repo1.red-soft.ru/redos"}.get(os_id, "dl.rockylinux.org/pub/rocky")  # fmt: skip
        major = version_id.split(".")[0]
        repos = "".join(
            f"[{r}]\nname={os_id} {major} - {r}\nbaseurl=https://{host}/{major}/{r}/x86_64/os/\n"
            "gpgcheck=1\nenabled=1\n\n"
            for r in ("baseos", "appstream", "extras")
        )
        Path(f"/etc/yum.repos.d/{os_id}.repo").write_text(repos)


def write_units(fam: str) -> dict:
    unit_dir = Path("/usr/lib/systemd/system")
    unit_dir.mkdir(parents=True, exist_ok=True)
    names = ["ssh.service", "systemd-modules-load.service", "systemd-sysctl.service"]
    if fam == "rhel":
        names.append("firewalld.service")
    for name in names:
        (unit_dir / name).write_text(content.unit_text(name))
    return {n: {"enabled": True, "active": "active", "masked": False} for n in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", required=True, choices=["debian", "rhel"])
    ap.add_argument("--python", required=True)
    ap.add_argument("--node-ip")
    ap.add_argument("--hostname")
    opts = ap.parse_args()

    core.STATE_DIR.mkdir(parents=True, exist_ok=True)
    core.LOG_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(core.LOG_DIR, 0o1777)
    core.CALLS.touch()
    os.chmod(core.CALLS, 0o666)
    node = {"family": opts.family, "python": opts.python}
    if opts.node_ip:
        node["ip"] = opts.node_ip
    core.save("node", node)
    if opts.hostname:
        Path("/etc/hostname").write_text(opts.hostname + "\n")

    install_tools(opts.family)
    write_distro_sources(opts.family)
    os_id, version_id = core.os_id()
    distro = catalog.distro_packages(os_id, version_id, opts.family)
    core.save(
        "packages",
        {
            "installed": {
                p: {"version": distro.get(p, "1.0-1"), "from": "distro", "held": False}
                for p in catalog.BASE_INSTALLED[opts.family]
            }
        },  # fmt: skip
    )
    core.save("units", {"units": write_units(opts.family)})
    swap = "/swap.img" if opts.family == "debian" else "/dev/mapper/rl-swap"
    fstab = Path("/etc/fstab").read_text() if Path("/etc/fstab").exists() else ""
    if " swap " not in fstab:
        Path("/etc/fstab").write_text(fstab + f"{swap}\tnone\tswap\tsw\t0\t0\n")
    kernel = {"modules": [], "sysctl": {}, "swap": [swap], "selinux": "Disabled"}
    if opts.family == "rhel":
        kernel["selinux"] = "Enforcing"
        kernel["firewall"] = {"running": True, "ports": [], "permanent_ports": []}
        Path("/etc/selinux").mkdir(exist_ok=True)
        Path("/etc/selinux/config").write_text("SELINUX=enforcing\nSELINUXTYPE=targeted\n")
    core.save("kernel", kernel)
    for stale in ("apt", "apiserver", "kubeadm", "runtime"):
        remove(str(core.STATE_DIR / f"{stale}.json"))


if __name__ == "__main__":
    main()
