"""Render bootstrap steps: provisioning/ scripts + matrix data -> one bash script per phase.

Each script is a header of `readonly NAME=value` settings taken from the matrix, the OS profile
and the mirrors, followed by the provisioning/ files that provisioning/phases.yaml selects for
the phase. Per-node values and secrets are never rendered: the scripts read them from GIMME_*
environment variables at run time.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gimme.errors import ConfigError
from gimme.matrix import Matrix, load_matrix
from gimme.profiles import OsProfile
from gimme.resources import data_dir, load_yaml
from gimme.spec import ClusterSpec

PHASES = ("prepare", "init", "join", "cni", "ready")
ROLE_PHASES = {"control": ("prepare", "init", "cni", "ready"), "worker": ("prepare", "join")}


@dataclass(frozen=True)
class Mirrors:
    """Where nodes fetch from instead of upstream (user config); every field is optional.

    packages: base URL for package repositories. https://HOST/PATH (pkgs.k8s.io,
        download.docker.com, download.opensuse.org) becomes PACKAGES/HOST/PATH.
    images: a registry, HOST[:PORT][/PREFIX] (https unless http:// is given), that proxies every
        upstream registry under a path named after it: registry.k8s.io/pause:3.10 is pulled as
        IMAGES/registry.k8s.io/pause:3.10. Used for kubeadm's imageRepository, the pause image,
        containerd hosts.toml and CRI-O registries.conf for registry.k8s.io, docker.io, quay.io
        and ghcr.io, the image references of every CNI manifest, and Docker's registry-mirrors
        (root URL only; Docker can mirror nothing else).
    manifests: base URL for downloads. https://HOST/PATH (github.com,
        raw.githubusercontent.com, dl.k8s.io, get.helm.sh, helm.cilium.io) becomes
        MANIFESTS/HOST/PATH.
    http_proxy: proxy URL for downloads, package managers and the container runtime.
    no_proxy: extra comma-separated no_proxy entries (cluster addresses are always added).
    """

    packages: str | None = None
    images: str | None = None
    manifests: str | None = None
    http_proxy: str | None = None
    no_proxy: str | None = None


@dataclass(frozen=True)
class Step:
    """One phase's complete bash script for one role."""

    phase: str
    name: str
    script: str


def render(spec: ClusterSpec, os: OsProfile, role: str, mirrors: Mirrors = Mirrors()) -> list[Step]:
    """The scripts for `role` ("control" or "worker"), one per phase of ROLE_PHASES[role].

    Raises SpecError (via the matrix check) for impossible combinations and ConfigError for
    mirrors that would put credentials into the scripts.
    """
    if role not in ROLE_PHASES:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLE_PHASES)}")
    matrix = load_matrix()
    matrix.check(spec, os)
    _check_mirrors(mirrors)
    settings = _settings(matrix, spec, os, mirrors)
    context = _context(matrix, spec, os, mirrors)
    recipe = _recipe()
    summary = _summary(matrix, spec, os)
    steps = []
    for phase in ROLE_PHASES[role]:
        files = [entry["file"] for entry in recipe[phase]["files"] if _selected(entry, context)]
        body = "\n".join(_fragment(name) for name in files)
        phase_settings = dict(settings)
        if phase in ("init", "join"):
            phase_settings["KUBEADM_CONFIG"] = _kubeadm_config(matrix, spec, os, phase, mirrors)
        header = _header(phase, role, recipe[phase]["title"], summary, body, phase_settings)
        steps.append(
            Step(phase=phase, name=f"{phase}: {recipe[phase]['title']}", script=header + body)
        )
    return steps


# -- recipe and fragments ------------------------------------------------------------------------


def _provisioning() -> Path:
    return data_dir("provisioning")


@cache
def _recipe() -> dict[str, Any]:
    with open(_provisioning() / "phases.yaml", encoding="utf-8") as handle:
        recipe = load_yaml(handle)
    for phase in recipe.values():
        phase["files"] = [e if isinstance(e, dict) else {"file": e} for e in phase["files"]]
    return recipe


@cache
def _fragment(name: str) -> str:
    text = (_provisioning() / name).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line != "# shellcheck shell=bash"]
    return f"# --- {name}\n" + "\n".join(lines).strip("\n") + "\n"


def _selected(entry: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    for key, wanted in entry.get("when", {}).items():
        if key not in context:
            raise KeyError(f"phases.yaml: unknown condition {key!r} for {entry['file']}")
        if context[key] != wanted:
            return False
    return True


def _context(matrix: Matrix, spec: ClusterSpec, os: OsProfile, mirrors: Mirrors) -> dict[str, Any]:
    """The facts phases.yaml selects files by."""
    containerd = matrix.runtime_release(spec.cri, spec.k8s) if spec.cri == "containerd" else None
    return {
        "family": os.family,
        "runtime": spec.cri,
        "source": matrix.kubernetes(spec.k8s)["source"],
        "containerd_layout": containerd["layout"] if containerd else None,
        "cni": matrix.network_cni(spec),
        "multus": spec.cni == "multus",
        "images_mirror": bool(mirrors.images),
        "proxy": bool(mirrors.http_proxy),
        "selinux": os.selinux,
        "firewalld": os.firewalld,
        "network_manager": os.network_manager,
        "zram_swap": os.zram_swap,
    }


# -- settings (the header) -----------------------------------------------------------------------


def _check_mirrors(mirrors: Mirrors) -> None:
    for field in ("packages", "images", "manifests", "http_proxy"):
        value = getattr(mirrors, field)
        if value and "@" in urlsplit(value if "://" in value else f"https://{value}").netloc:
            raise ConfigError(
                f"mirror {field} must not contain credentials: bootstrap scripts are stored and logged"
            )


def _mirrored(url: str, base: str | None) -> str:
    """https://HOST/PATH -> BASE/HOST/PATH when a mirror base is configured."""
    return f"{base.rstrip('/')}/{url.split('://', 1)[1]}" if base else url


def _image_mirror(images: str | None) -> tuple[str, str, str]:
    """(reference prefix HOST[:PORT][/PREFIX], its URL, its root URL) of the image mirror."""
    if not images:
        return "", "", ""
    parts = urlsplit(images if "://" in images else f"https://{images}")
    prefix = (parts.netloc + parts.path).rstrip("/")
    return prefix, f"{parts.scheme}://{prefix}", f"{parts.scheme}://{parts.netloc}"


def _settings(matrix: Matrix, spec: ClusterSpec, os: OsProfile, mirrors: Mirrors) -> dict[str, str]:
    """Every header setting the selected fragments may read, by name."""
    minor = spec.k8s
    k8s = matrix.kubernetes(minor)
    data = matrix.data
    arch = data["arch"]
    downloads, repos = data["downloads"], data["repos"]

    def download(key: str, **fields: Any) -> str:
        return _mirrored(downloads[key].format(arch=arch, **fields), mirrors.manifests)

    def repo(key: str, **fields: Any) -> str:
        return _mirrored(repos[key].format(**fields), mirrors.packages)

    image_prefix, image_url, image_root = _image_mirror(mirrors.images)
    runtime = matrix.runtime(spec.cri)
    network = matrix.network_cni(spec)
    package_format = "deb" if os.family == "debian" else "rpm"
    settings = {
        "ARCH": arch,
        "API_SERVER_PORT": str(data["api_server_port"]),
        "KUBERNETES_MINOR": minor,
        "KUBERNETES_PATCH": str(k8s["patch"]),
        "KUBERNETES_VERSION": f"v{k8s['patch']}",
        "POD_CIDR": matrix.pod_cidr(spec),
        "SERVICE_CIDR": data["service_cidr"],
        "CRI_SOCKET": runtime["cri_socket"],
        "RUNTIME_SERVICES": " ".join(runtime["services"]),
        "PAUSE_IMAGE": f"{_image_repository(matrix, image_prefix)}/pause:{k8s['pause']}",
        "BASE_PACKAGES": " ".join(os.base_packages),
        "NM_UNMANAGED_INTERFACES": " ".join(matrix.cni(network)["unmanaged"]),
        "DNF_DISABLE_EXCLUDES": data["kubernetes"]["dnf_disable_excludes"][
            "dnf5" if os.dnf5 else "dnf4"
        ],
        "KUBERNETES_REPO_URL": repo("kubernetes", minor=minor, format=package_format),
        "HTTP_PROXY_URL": mirrors.http_proxy or "",
        "NO_PROXY_EXTRA": mirrors.no_proxy or "",
        "IMAGE_MIRROR": image_prefix,
        "IMAGE_MIRROR_URL": image_url,
        "MIRRORED_REGISTRIES": " ".join(data["images"]["mirrored"]) if image_prefix else "",
        "KUBE_PROXY_REPLACEMENT": "true" if spec.kube_proxy_replacement else "false",
        "EXPECTED_NODES": str(spec.nodes),
        "NODES_TIMEOUT": str(data["timeouts"]["nodes"]),
        "ROLLOUT_TIMEOUT": str(data["timeouts"]["rollout"]),
    }
    if k8s["source"] == "binaries":
        binaries = data["kubernetes"]["binaries"]
        settings |= {
            "KUBERNETES_BINARY_URL": download("kubernetes_binaries", patch=k8s["patch"]),
            "CNI_PLUGINS_URL": download("cni_plugins", **binaries),
            "CRICTL_URL": download("crictl", **binaries),
            "KUBELET_SERVICE_URL": download("kubelet_service", **binaries),
            "KUBEADM_DROPIN_URL": download("kubeadm_dropin", **binaries),
        }
    release = _pinned(matrix.runtime_release(spec.cri, minor))
    if spec.cri == "containerd":
        settings |= {
            "CONTAINERD_VERSION": str(release["version"]),
            "CONTAINERD_URL": download("containerd", version=release["version"]),
            "CONTAINERD_SERVICE_URL": download("containerd_service", version=release["version"]),
            "RUNC_VERSION": release["runc"],
            "RUNC_URL": download("runc", runc=release["runc"]),
        }
    elif spec.cri == "cri-o":
        settings["CRIO_REPO_URL"] = repo("cri-o", minor=minor, format=package_format)
    else:
        version = release["cri_dockerd"]
        settings |= {
            "DOCKER_REPO_URL": repo("docker", distro=os.docker_distro),
            "DOCKER_RELEASE": str(os.docker_release),
            "DOCKER_REGISTRY_MIRROR": image_root,
            "CRI_DOCKERD_VERSION": version,
            "CRI_DOCKERD_URL": download("cri_dockerd", cri_dockerd=version),
            "CRI_DOCKERD_SERVICE_URL": download(
                "cri_dockerd_unit", cri_dockerd=version, unit="cri-docker.service"
            ),
            "CRI_DOCKERD_SOCKET_URL": download(
                "cri_dockerd_unit", cri_dockerd=version, unit="cri-docker.socket"
            ),
        }
    cnis = [network] + (["multus"] if spec.cni == "multus" else [])
    daemonsets, deployments = [], []
    for name in cnis:
        cni, cni_release = matrix.cni(name), _pinned(matrix.cni_release(name, minor))
        prefix = name.upper().replace("-", "_")
        settings[f"{prefix}_VERSION"] = str(cni_release["version"])
        daemonsets += cni["daemonsets"]
        deployments += cni.get("deployments", [])
        if cni["install"] == "manifest":
            manifest = cni["manifest"].format(version=cni_release["version"])
            settings[f"{prefix}_MANIFEST_URL"] = _mirrored(manifest, mirrors.manifests)
        else:
            values = dict(cni["values"]) | (cni["multus_values"] if spec.cni == "multus" else {})
            settings |= {
                "HELM_VERSION": cni["helm"],
                "HELM_URL": download("helm", helm=cni["helm"]),
                f"{prefix}_CHART_REPO": _mirrored(cni["chart_repo"], mirrors.manifests),
                f"{prefix}_HELM_VALUES": " ".join(
                    f"{k}={_helm_value(v)}" for k, v in values.items()
                ),
                f"{prefix}_KUBE_PROXY_REPLACEMENT": str(cni_release["kube_proxy_replacement"]),
            }
    if spec.cni == "multus":
        settings["MULTUS_MEMORY_LIMIT"] = matrix.cni("multus")["memory_limit"]
    settings["CNI_DAEMONSETS"] = " ".join(daemonsets)
    settings["CNI_DEPLOYMENTS"] = " ".join(deployments)
    return settings


def _pinned(release: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A release the matrix check has guaranteed to exist."""
    if release is None:
        raise RuntimeError("the matrix check passed a combination without a pinned release")
    return release


def _helm_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _image_repository(matrix: Matrix, image_prefix: str) -> str:
    upstream = matrix.data["images"]["kubernetes"]
    return f"{image_prefix}/{upstream}" if image_prefix else upstream


def _kubeadm_config(
    matrix: Matrix, spec: ClusterSpec, os: OsProfile, phase: str, mirrors: Mirrors
) -> str:
    """The kubeadm init/join configuration with everything but the per-node @TOKENS@ filled in."""
    minor = spec.k8s
    template = _kubeadm_template(f"{matrix.kubeadm_api(minor)}-{phase}.yaml")
    values = {
        "api_server_port": str(matrix.data["api_server_port"]),
        "cri_socket": matrix.runtime(spec.cri)["cri_socket"],
        "skip_phases": "[addon/kube-proxy]" if spec.kube_proxy_replacement else "[]",
        "kubernetes_version": f"v{matrix.kubernetes(minor)['patch']}",
        "image_repository": _image_repository(matrix, _image_mirror(mirrors.images)[0]),
        "pod_subnet": matrix.pod_cidr(spec),
        "service_subnet": matrix.data["service_cidr"],
        "fail_cgroup_v1": "false" if os.cgroup_version == 1 else "true",
    }
    return re.sub(r"\{([a-z_0-9]+)\}", lambda match: values[match.group(1)], template)


@cache
def _kubeadm_template(name: str) -> str:
    """provisioning/kubeadm/<name> without its comment lines."""
    text = (_provisioning() / "kubeadm" / name).read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip() + "\n"


# -- the header ------------------------------------------------------------------------------------

_SHELL_NAMES = {"PATH", "SECONDS", "BASH_REMATCH", "KUBECONFIG", "DEBIAN_FRONTEND"}


def _summary(matrix: Matrix, spec: ClusterSpec, os: OsProfile) -> str:
    minor = spec.k8s
    runtime = f"{spec.cri} ({matrix.runtime_label(spec.cri, minor)})"
    network = matrix.network_cni(spec)
    cni = f"{network} {matrix.cni_label(network, minor)}"
    if spec.cni == "multus":
        cni = f"multus {matrix.cni_label('multus', minor)} over {cni}"
    patch = matrix.kubernetes(minor)["patch"]
    return f"Kubernetes {patch}, {runtime}, {cni}, {os.name}, {spec.nodes} nodes"


def _header(
    phase: str, role: str, title: str, summary: str, body: str, settings: Mapping[str, str]
) -> str:
    """Shebang, description and the settings the body reads (only those), sorted by name."""
    referenced = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", body))
    assigned = set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", body))
    missing = (
        referenced
        - set(settings)
        - assigned
        - _SHELL_NAMES
        - {n for n in referenced if n.startswith("GIMME_")}
    )
    if missing:
        raise RuntimeError(
            f"{phase} step reads settings nobody provides: {', '.join(sorted(missing))}"
        )
    lines = [
        "#!/usr/bin/env bash",
        f"# gimme {phase} step for the {role} node: {title}.",
        f"# {summary}.",
        "# Rendered by gimme.render from provisioning/ (see provisioning/README.md).",
        "set -euo pipefail",
        "",
    ]
    lines += [
        f"readonly {name}={shlex.quote(settings[name])}"
        for name in sorted(referenced & set(settings))
    ]
    return "\n".join(lines) + "\n\n"
