"""Static inventory of the fake oVirt engine: data centers, clusters and templates.

Identifiers are derived from names (uuid5), so the same inventory gets the same ids in
every run. Each template carries test-bed-only metadata (`os_release`, `cloud_user`) that
the engine passes to the node pool so an emulated node looks like that OS.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

BLANK_TEMPLATE_ID = "00000000-0000-0000-0000-000000000000"
GiB = 1024**3

_ID_NAMESPACE = uuid.UUID("5b0c1a52-3f0e-4c52-9a57-6b1f8f0e7a10")


def stable_id(*parts: str) -> str:
    """A UUID string that depends only on `parts`."""
    return str(uuid.uuid5(_ID_NAMESPACE, "/".join(parts)))


# The account each distribution's cloud images create for cloud-init's default user.
CLOUD_USERS: Mapping[str, str] = {
    "ubuntu": "ubuntu",
    "debian": "debian",
    "astra": "astra",
    "rocky": "rocky",
    "almalinux": "almalinux",
    "redos": "redos",
    "fedora": "fedora",
}

# /etc/os-release of each distribution (the keys the node pool needs).
OS_RELEASES: Mapping[str, Mapping[str, str]] = {
    "ubuntu-20.04": {
        "NAME": "Ubuntu",
        "ID": "ubuntu",
        "ID_LIKE": "debian",
        "VERSION_ID": "20.04",
        "VERSION_CODENAME": "focal",
        "PRETTY_NAME": "Ubuntu 20.04.6 LTS",
    },
    "ubuntu-22.04": {
        "NAME": "Ubuntu",
        "ID": "ubuntu",
        "ID_LIKE": "debian",
        "VERSION_ID": "22.04",
        "VERSION_CODENAME": "jammy",
        "PRETTY_NAME": "Ubuntu 22.04.5 LTS",
    },
    "ubuntu-24.04": {
        "NAME": "Ubuntu",
        "ID": "ubuntu",
        "ID_LIKE": "debian",
        "VERSION_ID": "24.04",
        "VERSION_CODENAME": "noble",
        "PRETTY_NAME": "Ubuntu 24.04.3 LTS",
    },
    "debian-11": {
        "NAME": "Debian GNU/Linux",
        "ID": "debian",
        "VERSION_ID": "11",
        "VERSION_CODENAME": "bullseye",
        "PRETTY_NAME": "Debian GNU/Linux 11 (bullseye)",
    },
    "debian-12": {
        "NAME": "Debian GNU/Linux",
        "ID": "debian",
        "VERSION_ID": "12",
        "VERSION_CODENAME": "bookworm",
        "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)",
    },
    "astra-1.8": {
        "NAME": "Astra Linux",
        "ID": "astra",
        "ID_LIKE": "debian",
        "VERSION_ID": "1.8_x86-64",
        "VERSION_CODENAME": "1.8_x86-64",
        "PRETTY_NAME": "Astra Linux",
    },
    "rocky-8": {
        "NAME": "Rocky Linux",
        "ID": "rocky",
        "ID_LIKE": "rhel centos fedora",
        "VERSION_ID": "8.10",
        "PRETTY_NAME": "Rocky Linux 8.10 (Green Obsidian)",
    },
    "rocky-9": {
        "NAME": "Rocky Linux",
        "ID": "rocky",
        "ID_LIKE": "rhel centos fedora",
        "VERSION_ID": "9.6",
        "PRETTY_NAME": "Rocky Linux 9.6 (Blue Onyx)",
    },
    "alma-9": {
        "NAME": "AlmaLinux",
        "ID": "almalinux",
        "ID_LIKE": "rhel centos fedora",
        "VERSION_ID": "9.6",
        "PRETTY_NAME": "AlmaLinux 9.6 (Sage Margay)",
    },
    "redos-7.3": {
        "NAME": "RED OS",
        "ID": "redos",
        "ID_LIKE": "rhel centos fedora",
        "VERSION_ID": "7.3",
        "PRETTY_NAME": "RED OS MUROM (7.3)",
    },
    "fedora-41": {
        "NAME": "Fedora Linux",
        "ID": "fedora",
        "VERSION_ID": "41",
        "PRETTY_NAME": "Fedora Linux 41 (Cloud Edition)",
    },
}

# The engine's osinfo ids (`<os><type>`) for the templates above; other_linux otherwise.
_OS_TYPES: Mapping[str, str] = {
    "rocky-8": "rhel_8x64",
    "rocky-9": "rhel_9x64",
    "alma-9": "rhel_9x64",
    "redos-7.3": "rhel_7x64",
}


@dataclass(frozen=True)
class DataCenterDef:
    name: str

    @property
    def id(self) -> str:
        return stable_id("datacenter", self.name)


@dataclass(frozen=True)
class ClusterDef:
    name: str
    data_center: str = "dc1"

    @property
    def id(self) -> str:
        return stable_id("cluster", self.name)


@dataclass(frozen=True)
class TemplateDef:
    """A template; versions of one template share `name` and differ in `version`.

    `os_release` and `cloud_user` exist only in the test bed: they describe the guest OS
    for the node pool. An empty `os_release` means "no OS" (nothing boots, no guest agent).
    """

    name: str
    os_release: Mapping[str, str] = field(default_factory=dict)
    version: int = 1
    data_center: str = "dc1"
    memory: int = 2 * GiB
    cpu_cores: int = 2
    os_type: str = "other_linux"
    cloud_user: str | None = None
    description: str | None = None

    @property
    def id(self) -> str:
        if self.name == "Blank":
            return BLANK_TEMPLATE_ID
        return stable_id("template", self.name, str(self.version))

    @property
    def summary(self) -> str:
        """The template's description: given, else the OS's PRETTY_NAME, else the name."""
        return self.description or self.os_release.get("PRETTY_NAME") or self.name

    @property
    def default_user(self) -> str:
        """The user cloud-init creates when the VM's initialization names none."""
        return self.cloud_user or CLOUD_USERS.get(self.os_release.get("ID", ""), "cloud-user")


BLANK_TEMPLATE = TemplateDef(
    name="Blank", data_center="", memory=1 * GiB, cpu_cores=1, description="Blank template"
)


@dataclass
class Inventory:
    """What the engine has besides VMs and tags. The Blank template is always added."""

    data_centers: list[DataCenterDef]
    clusters: list[ClusterDef]
    templates: list[TemplateDef]

    def __post_init__(self) -> None:
        if not self.clusters:
            raise ValueError("an inventory needs at least one cluster (the host lives there)")
        dcs = {dc.name for dc in self.data_centers}
        for item in [*self.clusters, *self.templates]:
            if item.data_center not in dcs:
                raise ValueError(f"{item.name}: unknown data center {item.data_center!r}")
        versions = [(t.name, t.version) for t in self.templates]
        if len(set(versions)) != len(versions) or any(t.name == "Blank" for t in self.templates):
            raise ValueError("template (name, version) pairs must be unique and not 'Blank'")

    @classmethod
    def default(cls) -> Inventory:
        """dc1 with clusters rack-1 and rack-2 and one template per known OS."""
        return cls(
            data_centers=[DataCenterDef("dc1")],
            clusters=[ClusterDef("rack-1"), ClusterDef("rack-2")],
            templates=[
                TemplateDef(
                    name, os_release=dict(release), os_type=_OS_TYPES.get(name, "other_linux")
                )
                for name, release in OS_RELEASES.items()
            ],
        )

    def all_templates(self) -> list[TemplateDef]:
        return [BLANK_TEMPLATE, *self.templates]
