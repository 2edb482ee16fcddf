"""The compatibility matrix (provisioning/matrix.yaml): what is pinned, what is impossible and why.

One table serves `check` (refuse a spec before anything is created), `rows` (`gimme runtimes`
and the README) and the renderer (versions and URLs for the bootstrap scripts).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from gimme.errors import SpecError
from gimme.profiles import OsProfile, load_os_profiles
from gimme.resources import data_dir, load_yaml
from gimme.spec import CNIS, RUNTIMES, ClusterSpec


def version_key(text: str) -> tuple[int, ...]:
    """`v1.18.6` -> (1, 18, 6); numbers only, so `1.10` sorts after `1.9`."""
    return tuple(int(part) for part in str(text).lstrip("v").split("."))


@dataclass(frozen=True)
class VersionRange:
    """`1.23-1.30`, `1.31-`, `-1.27` or `1.35`; both ends inclusive, compared by prefix."""

    low: tuple[int, ...] | None
    high: tuple[int, ...] | None

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        text = str(text)
        if "-" not in text:
            return cls(version_key(text), version_key(text))
        low, high = text.split("-", 1)
        return cls(version_key(low) if low else None, version_key(high) if high else None)

    def __contains__(self, version: str) -> bool:
        key = version_key(version)
        if self.low is not None and key[: len(self.low)] < self.low:
            return False
        return self.high is None or key[: len(self.high)] <= self.high


@dataclass(frozen=True)
class Combo:
    """One point of the matrix; None means "any" (used when building rows)."""

    minor: str
    runtime: str | None = None
    cni: str | None = None  # the pod network CNI (multus's primary when multus is on top)
    multus: bool = False
    os: OsProfile | None = None


@dataclass(frozen=True)
class Rule:
    """An impossible combination, with the reason shown to the user."""

    id: str
    title: str
    when: Mapping[str, Any]
    reason: str

    def applies(self, combo: Combo, cni_version: str | None) -> bool:
        """True if every condition holds; a condition on an unknown (None) subject never holds."""
        return all(self._holds(key, value, combo, cni_version) for key, value in self.when.items())

    @staticmethod
    def _holds(key: str, value: Any, combo: Combo, cni_version: str | None) -> bool:
        os = combo.os
        match key:
            case "k8s":
                return combo.minor in VersionRange.parse(value)
            case "runtime":
                return combo.runtime == value
            case "cni":
                return combo.cni == value
            case "cni_version":
                return cni_version is not None and cni_version in VersionRange.parse(value)
            case "os_without":
                return os is not None and not getattr(os, value)
            case "os_kernel_below":
                return os is not None and version_key(os.kernel) < version_key(value)
            case "os_iptables_nft_from":
                return (
                    os is not None
                    and os.iptables_backend == "nft"
                    and version_key(os.iptables_version) >= version_key(value)
                )
            case "except_os":
                return os is not None and os.name not in value
        raise ValueError(f"matrix rule: unknown condition {key!r}")

    @property
    def about_os(self) -> bool:
        return any(key.startswith(("os_", "except_os")) for key in self.when)

    def explain(self, combo: Combo, cni_version: str | None) -> str:
        os = combo.os
        return self.reason.format(
            minor=combo.minor,
            os=os.name if os else "",
            kernel=os.kernel if os else "",
            iptables=os.iptables_version if os else "",
            cni_version=cni_version or "",
        )


class Matrix:
    """Supported Kubernetes minors x runtimes x CNIs, with pinned versions and rules."""

    def __init__(self, data: Mapping[str, Any]):
        self.data = data
        self.minors: list[str] = sorted(data["kubernetes"]["minors"], key=version_key)
        self.rules = [Rule(**rule) for rule in data["rules"]]

    # -- lookups used by the renderer -------------------------------------------------------

    def kubernetes(self, minor: str) -> Mapping[str, Any]:
        return self.data["kubernetes"]["minors"][minor]

    def kubeadm_api(self, minor: str) -> str:
        apis = self.data["kubernetes"]["kubeadm_api"]
        return next(api for api, span in apis.items() if minor in VersionRange.parse(span))

    def runtime(self, name: str) -> Mapping[str, Any]:
        return self.data["runtimes"][name]

    def cni(self, name: str) -> Mapping[str, Any]:
        return self.data["cnis"][name]

    def runtime_release(self, name: str, minor: str) -> Mapping[str, Any] | None:
        return _release_for(self.runtime(name)["releases"], minor)

    def cni_release(self, name: str, minor: str) -> Mapping[str, Any] | None:
        return _release_for(self.cni(name)["releases"], minor)

    def network_cni(self, spec: ClusterSpec) -> str:
        """The CNI that gives pods their addresses: multus's primary, or the CNI itself."""
        if spec.cni == "multus":
            return spec.cni_primary or self.cni("multus")["default_primary"]
        return spec.cni

    def pod_cidr(self, spec: ClusterSpec) -> str:
        """The kubeadm podSubnet for the spec's pod network CNI."""
        return self.cni(self.network_cni(spec))["pod_cidr"]

    # -- the rules --------------------------------------------------------------------------

    def check(self, spec: ClusterSpec, os: OsProfile) -> None:
        """Raise SpecError with the reason and the nearest working alternative if impossible."""
        combo = self._combo(spec, os)
        if spec.k8s not in self.minors:
            nearest = (replace(combo, minor=m) for m in self._nearest_minors(spec.k8s))
            alternatives = self._suggest(combo, [nearest, self._neighbours(combo)])
            raise SpecError(
                f"Kubernetes {spec.k8s} is not supported (gimme supports {self.minors[0]} to "
                f"{self.minors[-1]}); nearest working alternative: {alternatives}"
            )
        failure = self._failure(combo)
        if failure:
            reason, rule = failure
            alternatives = self._suggest(combo, self._alternatives(combo, rule))
            raise SpecError(f"{reason}; nearest working alternative: {alternatives}")

    def _combo(self, spec: ClusterSpec, os: OsProfile) -> Combo:
        return Combo(
            minor=spec.k8s,
            runtime=spec.cri,
            cni=self.network_cni(spec),
            multus=spec.cni == "multus",
            os=os,
        )

    def _failure(self, combo: Combo) -> tuple[str, Rule | None] | None:
        """The first reason the combination is impossible, or None."""
        cni_release = self.cni_release(combo.cni, combo.minor) if combo.cni else None
        cni_version = str(cni_release["version"]) if cni_release else None
        for rule in self.rules:
            if rule.applies(combo, cni_version):
                return rule.explain(combo, cni_version), rule
        # Every gap in the release tables must be explained by a rule; this is the safety net.
        if combo.runtime and not self.runtime_release(combo.runtime, combo.minor):
            return f"no {combo.runtime} release is pinned for Kubernetes {combo.minor}", None
        needed = [combo.cni] if combo.cni else []
        needed += ["multus"] if combo.multus else []
        for cni in needed:
            if not self.cni_release(cni, combo.minor):
                return f"no {cni} release is pinned for Kubernetes {combo.minor}", None
        return None

    def _nearest_minors(self, minor: str) -> list[str]:
        """Supported minors ordered by distance from `minor` (newer first on a tie)."""
        target = version_key(minor)[:2]

        def distance(candidate: str) -> tuple[int, int]:
            key = version_key(candidate)
            gap = abs((key[0] - target[0]) * 1000 + key[1] - target[1])
            return gap, -key[1]

        return sorted((m for m in self.minors if m != minor), key=distance)

    def _alternatives(self, combo: Combo, rule: Rule | None) -> list[Iterator[Combo]]:
        """Candidate groups, nearest first: swap what the rule is about, change the minor, the OS."""
        about = set(rule.when) if rule else {"runtime", "cni"}
        swaps: list[Combo] = []
        if "runtime" in about:
            swaps += [replace(combo, runtime=r) for r in RUNTIMES if r != combo.runtime]
        if about & {"cni", "cni_version"}:
            others = [c for c in self.data["cnis"] if c not in (combo.cni, "multus")]
            swaps += [replace(combo, cni=c) for c in others]
        groups = [iter(swaps), (replace(combo, minor=m) for m in self._nearest_minors(combo.minor))]
        if rule and rule.about_os and combo.os:
            profiles = sorted(load_os_profiles().items())
            groups.append(replace(combo, os=p) for n, p in profiles if n != combo.os.name)
        groups.append(self._neighbours(combo))
        return groups

    def _neighbours(self, combo: Combo) -> Iterator[Combo]:
        """Every runtime x CNI x minor on the same OS, fewest changes first, then nearest minor."""
        minors = [combo.minor, *self._nearest_minors(combo.minor)]
        cnis = [c for c in self.data["cnis"] if c != "multus"]
        candidates = [
            replace(combo, minor=m, runtime=r, cni=c)
            for m in minors
            for r in RUNTIMES
            for c in cnis
        ]

        def changes(candidate: Combo) -> tuple[int, int]:
            changed = (candidate.minor != combo.minor) + (candidate.runtime != combo.runtime)
            return changed + (candidate.cni != combo.cni), minors.index(candidate.minor)

        return iter(sorted(candidates, key=changes))

    def _suggest(self, original: Combo, groups: list[Iterator[Combo]]) -> str:
        """The first working candidate of each group, at most two."""
        found: list[str] = []
        for group in groups:
            described = (_describe(c, original) for c in group if self._failure(c) is None)
            text = next((d for d in described if d not in found), None)
            if text is not None:
                found.append(text)
            if len(found) == 2:
                break
        return " or ".join(found) if found else "none in the matrix"

    # -- the support matrix -----------------------------------------------------------------

    def rows(self) -> list[dict[str, Any]]:
        """Per minor: patch, kubeadm API, pause, package source, runtimes and CNIs with versions.

        Each runtime/CNI entry is {"supported", "version", "reason", "not_on"}; `not_on` maps OS
        profiles where it cannot run to the reason.
        """
        profiles = load_os_profiles()
        rows = []
        for minor in self.minors:
            k8s = self.kubernetes(minor)
            runtimes = {
                name: self._cell(
                    Combo(minor, runtime=name), self.runtime_label(name, minor), profiles
                )
                for name in RUNTIMES
            }
            cnis = {
                name: self._cell(
                    Combo(minor, cni=self.cni("multus")["default_primary"], multus=True)
                    if name == "multus"
                    else Combo(minor, cni=name),
                    self.cni_label(name, minor),
                    profiles,
                )
                for name in CNIS
            }
            rows.append(
                {
                    "kubernetes": minor,
                    "patch": str(k8s["patch"]),
                    "kubeadm_api": self.kubeadm_api(minor),
                    "pause": str(k8s["pause"]),
                    "packages": (
                        f"pkgs.k8s.io v{minor}"
                        if k8s["source"] == "packages"
                        else "release binaries (dl.k8s.io)"
                    ),
                    "runtimes": runtimes,
                    "cnis": cnis,
                }
            )
        return rows

    def _cell(
        self, combo: Combo, label: str | None, profiles: Mapping[str, OsProfile]
    ) -> dict[str, Any]:
        failure = self._failure(combo)
        if failure:
            return {"supported": False, "version": None, "reason": failure[0], "not_on": {}}
        not_on = {}
        for name, profile in profiles.items():
            os_failure = self._failure(replace(combo, os=profile))
            if os_failure:
                not_on[name] = os_failure[0]
        return {"supported": True, "version": label, "reason": None, "not_on": not_on}

    def runtime_label(self, name: str, minor: str) -> str | None:
        """What the runtime is at `minor`, e.g. "1.7.34" or "Docker Engine + cri-dockerd 0.3.25"."""
        release = self.runtime_release(name, minor)
        if release is None:
            return None
        if name == "containerd":
            return str(release["version"])
        if name == "cri-o":
            return f"{minor}.x from isv:cri-o v{minor}"
        return f"Docker Engine + cri-dockerd {release['cri_dockerd']}"

    def cni_label(self, name: str, minor: str) -> str | None:
        """The CNI's pinned version at `minor`, e.g. "v3.28.5"."""
        release = self.cni_release(name, minor)
        return str(release["version"]) if release else None


def _release_for(releases: list[Mapping[str, Any]], minor: str) -> Mapping[str, Any] | None:
    return next((r for r in releases if minor in VersionRange.parse(r["k8s"])), None)


def _describe(candidate: Combo, original: Combo) -> str:
    network = f"multus over {candidate.cni}" if candidate.multus else candidate.cni
    text = f"{candidate.runtime} + {network} on Kubernetes {candidate.minor}"
    if candidate.os and original.os and candidate.os.name != original.os.name:
        text += f" with {candidate.os.name}"
    return text


@cache
def load_matrix() -> Matrix:
    """provisioning/matrix.yaml, parsed once."""
    with open(data_dir("provisioning") / "matrix.yaml", encoding="utf-8") as handle:
        return Matrix(load_yaml(handle))


def markdown_table(matrix: Matrix) -> str:
    """The README support matrix: one row per minor, a column per runtime and CNI, then notes."""
    rows = matrix.rows()
    header = ["Kubernetes", "kubeadm API", "pause", "kubelet/kubeadm from", *RUNTIMES, *CNIS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def cell(entry: dict[str, Any]) -> str:
        if not entry["supported"]:
            return "no"
        if entry["not_on"]:
            return f"{entry['version']} (not on {', '.join(sorted(entry['not_on']))})"
        return str(entry["version"])

    for row in rows:
        cells = [
            row["patch"],
            row["kubeadm_api"],
            row["pause"],
            row["packages"],
            *(cell(row["runtimes"][name]) for name in RUNTIMES),
            *(cell(row["cnis"][name]) for name in CNIS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Why a combination is refused (`gimme create` names the nearest working one):")
    lines.append("")
    lines.extend(f"- {rule.title}." for rule in matrix.rules)
    lines.append("- multus runs on top of a primary CNI (default flannel; `--cni-primary`).")
    return "\n".join(lines) + "\n"
