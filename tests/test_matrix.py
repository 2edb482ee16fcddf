"""The compatibility matrix, OS profiles and foundations: the whole matrix is walked here."""

from __future__ import annotations

import re

import pytest

from gimme.errors import ConfigError, SpecError
from gimme.matrix import VersionRange, load_matrix, markdown_table, version_key
from gimme.profiles import load_foundations, load_os_profiles
from gimme.render import ROLE_PHASES, render
from gimme.spec import CNIS, RUNTIMES, build_spec
from tests.shellcheck_matrix import all_specs

MATRIX = load_matrix()
PROFILES = load_os_profiles()
ALTERNATIVE = "; nearest working alternative: "


def refusal(spec, os_name: str) -> str:
    with pytest.raises(SpecError) as caught:
        MATRIX.check(spec, PROFILES[os_name])
    return str(caught.value)


def alternatives(message: str) -> list[str]:
    return message.split(ALTERNATIVE, 1)[1].split(" or ")


def spec_from(alternative: str):
    """Parse "<runtime> + <cni|multus over cni> on Kubernetes <minor>[ with <os>]"."""
    match = re.fullmatch(
        r"(\S+) \+ (?:multus over (\S+)|(\S+)) on Kubernetes (\S+?)(?: with (\S+))?", alternative
    )
    assert match, alternative
    runtime, primary, cni, minor, os_name = match.groups()
    if primary:
        spec = build_spec(k8s=minor, cri=runtime, cni="multus", cni_primary=primary)
    else:
        spec = build_spec(k8s=minor, cri=runtime, cni=cni)
    return spec, os_name


@pytest.mark.parametrize("minor", MATRIX.minors)
def test_whole_matrix_renders_or_refuses_with_a_working_alternative(minor):
    supported = refused = 0
    for spec in all_specs(minor):
        for os_name, profile in PROFILES.items():
            try:
                MATRIX.check(spec, profile)
            except SpecError as error:
                refused += 1
                message = str(error)
                assert ALTERNATIVE in message, message
                assert not message.startswith("no "), (
                    f"a release-table gap no rule explains: {message}"
                )
                suggested = alternatives(message)
                assert suggested and suggested != ["none in the matrix"], message
                for text in suggested:
                    alt_spec, alt_os = spec_from(text)
                    MATRIX.check(alt_spec, PROFILES[alt_os or os_name])
                continue
            supported += 1
            for role, phases in ROLE_PHASES.items():
                steps = render(spec, profile, role)
                assert [step.phase for step in steps] == list(phases)
                for step in steps:
                    assert step.script.startswith("#!/usr/bin/env bash\n")
                    assert "\nset -euo pipefail\n" in step.script
    assert supported > refused


def test_minors_run_from_1_23_to_the_newest_stable_without_gaps():
    assert MATRIX.minors[0] == "1.23"
    assert MATRIX.minors[-1] == "1.37"
    numbers = [version_key(m)[1] for m in MATRIX.minors]
    assert numbers == list(range(23, 38))


def test_every_minor_pins_an_existing_patch_of_itself():
    for minor in MATRIX.minors:
        patch = str(MATRIX.kubernetes(minor)["patch"])
        assert patch.startswith(minor + "."), patch


@pytest.mark.parametrize(
    ("minor", "api"),
    [("1.23", "v1beta3"), ("1.30", "v1beta3"), ("1.31", "v1beta4"), ("1.37", "v1beta4")],
)
def test_kubeadm_api_per_minor(minor, api):
    assert MATRIX.kubeadm_api(minor) == api


def test_containerd_versions_meet_the_kubernetes_floor():
    for minor in MATRIX.minors:
        release = MATRIX.runtime_release("containerd", minor)
        version = version_key(release["version"])
        if version_key(minor) >= (1, 26):
            assert version >= (1, 6, 15), (minor, version)  # CRI v1 only from 1.26
        if version_key(minor) >= (1, 36):
            assert version >= (2, 0), (minor, version)  # containerd 1.x support ends with 1.35
        assert release["layout"] == ("v2" if version < (2,) else "v3")


def test_pause_tags_per_minor():
    expected = {"1.23": "3.6", "1.24": "3.7", "1.25": "3.8", "1.26": "3.9", "1.30": "3.9"}
    expected |= {
        "1.31": "3.10",
        "1.33": "3.10",
        "1.34": "3.10.1",
        "1.35": "3.10.1",
        "1.36": "3.10.2",
    }
    for minor, tag in expected.items():
        assert MATRIX.kubernetes(minor)["pause"] == tag


def test_only_1_23_installs_from_binaries():
    sources = {m: MATRIX.kubernetes(m)["source"] for m in MATRIX.minors}
    assert [m for m, s in sources.items() if s == "binaries"] == ["1.23"]


def test_every_fact_says_where_it_was_checked():
    data = MATRIX.data
    sections = [
        data["kubernetes"],
        data["kubernetes"]["binaries"],
        data["downloads"],
        data["repos"],
    ]
    sections += [data["runtimes"][r] for r in RUNTIMES] + [data["cnis"][c] for c in CNIS]
    for section in sections:
        assert section.get("checked"), section
    for profile in PROFILES.values():
        assert profile.checked


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("1.23-1.30", ["1.23", "1.30"], ["1.22", "1.31"]),
        ("1.31-", ["1.31", "1.99"], ["1.30"]),
        ("-1.27", ["1.2", "1.27"], ["1.28"]),
        ("1.35", ["1.35"], ["1.34", "1.36"]),
        ("1.18-", ["1.18.6", "1.20.1"], ["1.17.7"]),
    ],
)
def test_version_ranges(text, inside, outside):
    span = VersionRange.parse(text)
    assert all(v in span for v in inside)
    assert not any(v in span for v in outside)


# -- the rules, with their reasons and alternatives -------------------------------------------------


def test_cri_o_before_1_28_is_refused_with_containerd_or_a_newer_minor():
    message = refusal(build_spec(k8s="1.27", cri="cri-o"), "ubuntu-22.04")
    assert "isv:cri-o streams start at v1.28" in message
    assert alternatives(message) == [
        "containerd + calico on Kubernetes 1.27",
        "cri-o + calico on Kubernetes 1.28",
    ]
    MATRIX.check(build_spec(k8s="1.28", cri="cri-o"), PROFILES["ubuntu-22.04"])


def test_docker_on_red_os_is_refused():
    message = refusal(build_spec(k8s="1.30", cri="docker"), "redos-7.3")
    assert message.startswith("Docker Engine has no package repository for redos-7.3")
    assert alternatives(message) == [
        "containerd + calico on Kubernetes 1.30",
        "docker + calico on Kubernetes 1.30 with alma-9",
    ]


def test_weave_ends_at_1_29():
    message = refusal(build_spec(k8s="1.30", cni="weave"), "ubuntu-22.04")
    assert "Weave Net is archived" in message
    assert alternatives(message) == [
        "containerd + calico on Kubernetes 1.30",
        "containerd + weave on Kubernetes 1.29",
    ]
    MATRIX.check(build_spec(k8s="1.29", cni="weave"), PROFILES["ubuntu-22.04"])


def test_weave_is_refused_on_hosts_with_new_iptables_nft():
    message = refusal(build_spec(k8s="1.28", cni="weave"), "rocky-9")
    assert "iptables 1.8.10" in message and "weaveworks/weave#3968" in message
    MATRIX.check(build_spec(k8s="1.28", cni="weave"), PROFILES["ubuntu-22.04"])  # nft 1.8.7
    MATRIX.check(build_spec(k8s="1.28", cni="weave"), PROFILES["ubuntu-20.04"])  # legacy


def test_multus_inherits_the_rules_of_its_primary():
    message = refusal(build_spec(k8s="1.31", cni="multus", cni_primary="weave"), "ubuntu-22.04")
    assert "Weave Net is archived" in message
    assert any(a.startswith("containerd + multus over ") for a in alternatives(message))


def test_cilium_1_18_needs_linux_5_10_except_on_rhel_8_10():
    message = refusal(build_spec(k8s="1.33", cni="cilium"), "ubuntu-20.04")
    assert "Cilium 1.18.6 needs Linux 5.10" in message and "runs 5.4" in message
    assert alternatives(message) == [
        "containerd + calico on Kubernetes 1.33",
        "containerd + cilium on Kubernetes 1.32",
    ]
    MATRIX.check(build_spec(k8s="1.32", cni="cilium"), PROFILES["ubuntu-20.04"])  # cilium 1.17
    MATRIX.check(build_spec(k8s="1.33", cni="cilium"), PROFILES["rocky-8"])  # RHEL 8.10 kernel


@pytest.mark.parametrize(
    ("asked", "nearest"), [("1.22", "1.23"), ("1.38", "1.37"), ("2.0", "1.37")]
)
def test_unknown_minor_names_the_nearest_supported_one(asked, nearest):
    message = refusal(build_spec(k8s=asked), "ubuntu-22.04")
    assert message.startswith(f"Kubernetes {asked} is not supported (gimme supports 1.23 to 1.37)")
    assert alternatives(message)[0] == f"containerd + calico on Kubernetes {nearest}"


def test_pod_cidr_is_the_network_cni_s():
    assert MATRIX.pod_cidr(build_spec(cni="weave")) == "10.32.0.0/12"
    assert MATRIX.pod_cidr(build_spec(cni="flannel")) == "10.244.0.0/16"
    assert MATRIX.pod_cidr(build_spec(cni="multus")) == "10.244.0.0/16"  # default primary flannel
    assert MATRIX.pod_cidr(build_spec(cni="multus", cni_primary="weave")) == "10.32.0.0/12"


# -- rows and the README table ----------------------------------------------------------------------


def test_rows_describe_every_minor_runtime_and_cni():
    rows = {row["kubernetes"]: row for row in MATRIX.rows()}
    assert list(rows) == MATRIX.minors
    row = rows["1.23"]
    assert (row["patch"], row["kubeadm_api"], row["pause"]) == ("1.23.17", "v1beta3", "3.6")
    assert row["packages"] == "release binaries (dl.k8s.io)"
    assert row["runtimes"]["cri-o"]["supported"] is False
    assert "v1.28" in row["runtimes"]["cri-o"]["reason"]
    assert row["runtimes"]["containerd"]["version"] == "1.7.34"
    assert rows["1.37"]["packages"] == "pkgs.k8s.io v1.37"
    assert rows["1.30"]["cnis"]["weave"]["supported"] is False
    assert "redos-7.3" in rows["1.30"]["runtimes"]["docker"]["not_on"]
    assert set(rows["1.33"]["cnis"]["cilium"]["not_on"]) == {"ubuntu-20.04"}
    assert set(rows["1.28"]["cnis"]["weave"]["not_on"]) >= {"rocky-9", "fedora-41", "debian-12"}
    assert rows["1.36"]["runtimes"]["containerd"]["version"] == "2.3.4"
    assert rows["1.36"]["cnis"]["multus"]["version"] == "v4.2.2"


def test_markdown_table_has_a_line_per_minor_and_the_rule_titles():
    table = markdown_table(MATRIX)
    lines = table.splitlines()
    assert lines[0].startswith("| Kubernetes | kubeadm API | pause |")
    for minor in MATRIX.minors:
        assert any(line.startswith(f"| {MATRIX.kubernetes(minor)['patch']} |") for line in lines)
    for rule in MATRIX.rules:
        assert f"- {rule.title}." in lines


# -- OS profiles and foundations --------------------------------------------------------------------


def test_profiles_cover_the_supported_distributions():
    assert set(PROFILES) == {
        "ubuntu-20.04", "ubuntu-22.04", "ubuntu-24.04", "debian-11", "debian-12", "astra-1.8",
        "rocky-8", "rocky-9", "alma-9", "rhel-9", "redos-7.3", "fedora-41",
    }  # fmt: skip
    for profile in PROFILES.values():
        assert (profile.family, profile.package_manager) in {("debian", "apt"), ("rhel", "dnf")}
        assert profile.default_user and profile.template
    assert [p.name for p in PROFILES.values() if p.dnf5] == ["fedora-41"]
    assert (
        PROFILES["astra-1.8"].docker_distro == "debian"
        and PROFILES["astra-1.8"].codename == "bookworm"
    )


def test_shipped_foundations_one_per_profile_on_rack_1():
    foundations = load_foundations()
    assert set(foundations) == {f"ovirt-rack-1-{name}" for name in PROFILES}
    ubuntu = foundations["ovirt-rack-1-ubuntu-22.04"]
    assert (ubuntu.engine, ubuntu.cluster, ubuntu.template, ubuntu.os) == (
        "rack-1", "rack-1", "ubuntu-22.04", "ubuntu-22.04",
    )  # fmt: skip
    assert (ubuntu.memory_mib, ubuntu.cpus) == (4096, 2)


def test_user_foundations_override_and_add():
    foundations = load_foundations(
        {
            "ovirt-rack-1-ubuntu-22.04": {"template": "ubuntu-22.04-golden", "cpus": 4},
            "lab": {"engine": "lab", "cluster": "Default", "template": "deb12", "os": "debian-12"},
        }
    )
    assert foundations["ovirt-rack-1-ubuntu-22.04"].template == "ubuntu-22.04-golden"
    assert foundations["ovirt-rack-1-ubuntu-22.04"].cpus == 4
    assert foundations["ovirt-rack-1-ubuntu-22.04"].engine == "rack-1"
    assert foundations["lab"].os == "debian-12" and foundations["lab"].memory_mib == 4096


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        (
            {"engine": "e", "cluster": "c", "template": "t", "os": "beos-5"},
            ["'broken'", "unknown os 'beos-5'"],
        ),
        ({"engine": "e", "cluster": "c", "os": "debian-12"}, ["'broken'", "missing template"]),
        (
            {"engine": "e", "cluster": "c", "template": "t", "os": "debian-12", "disk": 9},
            ["'broken'", "disk"],
        ),
    ],
)
def test_bad_user_foundations_name_the_foundation(entry, words):
    with pytest.raises(ConfigError) as caught:
        load_foundations({"broken": entry})
    assert all(word in str(caught.value) for word in words)
