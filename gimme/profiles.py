"""OS profiles and foundations: shipped data under profiles/, merged with the user's config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from gimme.errors import ConfigError
from gimme.resources import data_dir, load_yaml

FAMILIES = {"debian": "apt", "rhel": "dnf"}


@dataclass(frozen=True)
class OsProfile:
    """What the bootstrap scripts need to know about a guest OS (profiles/os/<name>.yaml)."""

    name: str
    family: str
    package_manager: str
    default_user: str
    template: str
    codename: str | None
    docker_distro: str | None
    docker_release: str | None
    cgroup_version: int
    kernel: str
    iptables_backend: str
    iptables_version: str
    selinux: bool
    firewalld: bool
    network_manager: bool
    zram_swap: bool
    dnf5: bool
    base_packages: tuple[str, ...]
    checked: str


@dataclass(frozen=True)
class Foundation:
    """Where a cluster's VMs come from: engine, oVirt cluster, template and the OS on it."""

    name: str
    engine: str
    cluster: str
    template: str
    os: str
    memory_mib: int = 4096
    cpus: int = 2


def _read_yaml(path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return load_yaml(handle)


def _profile(path) -> OsProfile:
    raw = dict(_read_yaml(path))
    iptables = raw.pop("iptables")
    raw["iptables_backend"] = iptables["backend"]
    raw["iptables_version"] = str(iptables["version"])
    raw["base_packages"] = tuple(raw["base_packages"])
    raw["kernel"] = str(raw["kernel"])
    profile = OsProfile(**raw)
    if profile.name != path.stem:
        raise ConfigError(f"OS profile {path.name} names itself {profile.name!r}")
    if FAMILIES.get(profile.family) != profile.package_manager:
        raise ConfigError(
            f"OS profile {profile.name}: family {profile.family!r} does not use {profile.package_manager!r}"
        )
    return profile


@cache
def load_os_profiles() -> dict[str, OsProfile]:
    """Every profiles/os/*.yaml, by name."""
    paths = sorted((data_dir("profiles") / "os").glob("*.yaml"))
    return {path.stem: _profile(path) for path in paths}


_FOUNDATION_KEYS = {f.name for f in fields(Foundation)} - {"name"}
_REQUIRED_KEYS = ("engine", "cluster", "template", "os")


def _foundation(
    name: str, entry: Mapping[str, Any], profiles: Mapping[str, OsProfile]
) -> Foundation:
    unknown = sorted(set(entry) - _FOUNDATION_KEYS)
    if unknown:
        raise ConfigError(f"foundation {name!r}: unknown key(s) {', '.join(unknown)}")
    missing = [key for key in _REQUIRED_KEYS if not entry.get(key)]
    if missing:
        raise ConfigError(f"foundation {name!r}: missing {', '.join(missing)}")
    if entry["os"] not in profiles:
        raise ConfigError(
            f"foundation {name!r}: unknown os {entry['os']!r} (known: {', '.join(sorted(profiles))})"
        )
    try:
        return Foundation(name=name, **{key: entry[key] for key in entry})
    except TypeError as exc:
        raise ConfigError(f"foundation {name!r}: {exc}") from None


def load_foundations(extra: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Foundation]:
    """Shipped foundations (one per OS profile on rack-1) overlaid with the user's entries.

    A user entry with a shipped name overrides the keys it sets; a new name adds a foundation.
    """
    profiles = load_os_profiles()
    shipped = _read_yaml(data_dir("profiles") / "foundations.yaml")["per_os_profile"]
    defaults = {key: value for key, value in shipped.items() if key != "name"}
    entries: dict[str, dict[str, Any]] = {
        shipped["name"].format(os=os_name): {
            **defaults,
            "template": profile.template,
            "os": os_name,
        }
        for os_name, profile in profiles.items()
    }
    for name, entry in (extra or {}).items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"foundation {name!r}: expected a mapping of keys")
        entries[name] = {**entries.get(name, {}), **entry}
    return {name: _foundation(name, entry, profiles) for name, entry in sorted(entries.items())}
