"""Cluster specs: the original service's rules and defaults, checked before any engine call."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gimme.errors import SpecError

RUNTIMES = ("containerd", "cri-o", "docker")
RUNTIME_ALIASES = {"crio": "cri-o"}
CNIS = ("calico", "flannel", "weave", "cilium", "kube-router", "antrea", "multus")
MIN_NODES, MAX_NODES, DEFAULT_NODES = 2, 6, 2
MAX_TTL, DEFAULT_TTL = 86400, 3600
DEFAULT_K8S = "1.23"
DEFAULT_FOUNDATION = "ovirt-rack-1-ubuntu-22.04"
MAX_COMMENT = 512

_K8S_RE = re.compile(r"^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$")
_TTL_RE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class ClusterSpec:
    """What the user asked for. Compatibility with the matrix is checked separately."""

    foundation: str = DEFAULT_FOUNDATION
    k8s: str = DEFAULT_K8S
    cri: str = "containerd"
    cni: str = "calico"
    nodes: int = DEFAULT_NODES
    ttl: int = DEFAULT_TTL
    comment: str = ""
    cni_primary: str | None = None
    kube_proxy_replacement: bool = False

    @property
    def k8s_minor(self) -> int:
        return int(self.k8s.split(".")[1])


def parse_ttl(text: str | int) -> int:
    """Seconds from `3600`, `90m`, `2h`, `1d`; range 0..86400."""
    if isinstance(text, int):
        seconds = text
    else:
        match = _TTL_RE.match(text.lower())
        if not match:
            raise SpecError(f"invalid TTL {text!r}: use seconds or a number with s, m, h or d")
        seconds = int(match.group(1)) * _TTL_UNITS[match.group(2)]
    if not 0 <= seconds <= MAX_TTL:
        raise SpecError(f"TTL {seconds}s is out of range 0..{MAX_TTL} seconds")
    return seconds


def parse_k8s(text: str) -> str:
    """A `MAJOR.MINOR` Kubernetes version, returned normalised."""
    if not _K8S_RE.match(text.strip()):
        raise SpecError(f"invalid Kubernetes version {text!r}: expected MAJOR.MINOR, e.g. 1.30")
    return text.strip()


def parse_runtime(text: str) -> str:
    name = RUNTIME_ALIASES.get(text, text)
    if name not in RUNTIMES:
        raise SpecError(f"unknown container runtime {text!r}: choose one of {', '.join(RUNTIMES)}")
    return name


def parse_cni(text: str, *, field: str = "CNI") -> str:
    if text not in CNIS:
        raise SpecError(f"unknown {field} {text!r}: choose one of {', '.join(CNIS)}")
    return text


def build_spec(
    *,
    foundation: str = DEFAULT_FOUNDATION,
    k8s: str = DEFAULT_K8S,
    cri: str = "containerd",
    cni: str = "calico",
    nodes: int = DEFAULT_NODES,
    ttl: str | int = DEFAULT_TTL,
    comment: str = "",
    cni_primary: str | None = None,
    kube_proxy_replacement: bool = False,
) -> ClusterSpec:
    """Check every field against the service's rules and return the spec."""
    if not MIN_NODES <= nodes <= MAX_NODES:
        raise SpecError(f"node count {nodes} is out of range {MIN_NODES}..{MAX_NODES}")
    if len(comment) > MAX_COMMENT or any(ord(c) < 32 and c != "\t" for c in comment):
        raise SpecError(f"comment must be one line of at most {MAX_COMMENT} characters")
    cni = parse_cni(cni)
    if cni_primary is not None:
        if cni != "multus":
            raise SpecError("--cni-primary only applies to --cni multus")
        cni_primary = parse_cni(cni_primary, field="primary CNI")
        if cni_primary == "multus":
            raise SpecError("multus needs a primary CNI other than multus")
    if kube_proxy_replacement and cni != "cilium":
        raise SpecError("kube-proxy replacement is only available with --cni cilium")
    return ClusterSpec(
        foundation=foundation,
        k8s=parse_k8s(k8s),
        cri=parse_runtime(cri),
        cni=cni,
        nodes=nodes,
        ttl=parse_ttl(ttl),
        comment=comment,
        cni_primary=cni_primary,
        kube_proxy_replacement=kube_proxy_replacement,
    )
