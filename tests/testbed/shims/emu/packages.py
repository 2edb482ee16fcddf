"""Installed-package state shared by apt/dpkg and dnf/rpm: versions, conflicts, install effects."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from . import catalog, content, core, system

CONFLICTS = {
    "containerd.io": ["containerd", "runc"],
    "containerd": ["containerd.io"],
    "runc": ["containerd.io"],
    "docker.io": ["docker-ce", "docker-ce-cli", "containerd.io"],
    "docker-ce": ["docker.io", "moby-engine"],
    "moby-engine": ["docker-ce"],
}


def version_key(version: str) -> tuple:
    """Sort key approximating dpkg/rpm version ordering (epoch, then digit/alpha runs, '~' first)."""
    epoch, _, rest = version.rpartition(":") if ":" in version else ("0", "", version)
    parts: list = [int(epoch) if epoch.isdigit() else 0]
    for tok in re.findall(r"~|\d+|[A-Za-z]+|[.+\-_]", rest):
        if tok == "~":
            parts.append((-1, 0, ""))
        elif tok.isdigit():
            parts.append((1, int(tok), ""))
        elif tok.isalpha():
            parts.append((0, 0, tok))
    parts.append((0, -1, ""))
    return tuple(parts)


def installed() -> dict[str, dict]:
    return core.load("packages", {"installed": {}})["installed"]


def is_installed(name: str) -> bool:
    return name in installed()


def remove_package(name: str) -> None:
    fam = core.family()
    with core.edit("packages", {"installed": {}}) as st:
        info = st["installed"].pop(name, None)
    if not info:
        return
    for path, _tool, _v in catalog.package_files(name, info["version"], fam):
        with contextlib.suppress(FileNotFoundError):
            Path(path).unlink()
    for unit in catalog.PACKAGE_UNITS.get(name, []):
        if not any(unit in catalog.PACKAGE_UNITS.get(p, []) for p in installed()):
            system.stop_unit(unit)
            system.set_unit(unit, enabled=False)
            with contextlib.suppress(FileNotFoundError):
                Path("/usr/lib/systemd/system", unit).unlink()


def install_package(name: str, version: str, origin: str) -> None:
    """Record `name` at `version` and lay down what the package ships."""
    fam = core.family()
    for path, tool, v in catalog.package_files(name, version, fam):
        core.install_tool(path, tool, v)
    for unit in catalog.PACKAGE_UNITS.get(name, []):
        Path("/usr/lib/systemd/system").mkdir(parents=True, exist_ok=True)
        Path("/usr/lib/systemd/system", unit).write_text(content.unit_text(unit))
    _conffiles(name, version, fam)
    with core.edit("packages", {"installed": {}}) as st:
        held = st["installed"].get(name, {}).get("held", False)
        st["installed"][name] = {"version": version, "from": origin, "held": held}


def _conffiles(name: str, version: str, fam: str) -> None:
    def conffile(path: str, text: str) -> None:
        p = Path(path)
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)

    if name == "containerd.io":
        conffile("/etc/containerd/config.toml", content.DOCKER_CONTAINERD_TOML)
    elif name == "kubelet":
        conffile(
            "/etc/default/kubelet" if fam == "debian" else "/etc/sysconfig/kubelet",
            "KUBELET_EXTRA_ARGS=\n",
        )
    elif name == "kubeadm":
        defaults = "/etc/default/kubelet" if fam == "debian" else "/etc/sysconfig/kubelet"
        conffile("/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
                 content.KUBEADM_DROPIN.replace("{defaults}", defaults))  # fmt: skip
    elif name == "cri-o":
        conffile("/etc/crio/crio.conf.d/10-crio.conf", content.CRIO_DROPIN)
    elif name == "kubernetes-cni":
        Path("/etc/cni/net.d").mkdir(parents=True, exist_ok=True)


def post_install(names: list[str]) -> None:
    """Debian maintainer scripts enable and start the services of newly installed packages."""
    if core.family() != "debian":
        return
    for name in names:
        if name in catalog.DEB_AUTOSTART_EXCEPT:
            continue
        for unit in catalog.PACKAGE_UNITS.get(name, []):
            system.set_unit(unit, enabled=True)
            if unit.endswith(".service"):
                with contextlib.suppress(system.UnitFailed):
                    system.start_unit(unit)


def marker_package(path: str) -> tuple[str, str] | None:
    """(name, version) of a stand-in .deb/.rpm file."""
    try:
        head = Path(path).read_bytes()[:200].decode("utf-8", "replace")
    except OSError:
        return None
    m = re.match(r"GIMME-TESTBED-PACKAGE name=(\S+) version=(\S+)", head)
    return (m.group(1), m.group(2)) if m else None
