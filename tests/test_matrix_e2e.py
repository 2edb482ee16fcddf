"""The matrix on the test bed: every pair of (minor, runtime, CNI, OS family) values that the
matrix allows is covered by at least one real create, and each node's recorded commands are
checked against what that combination needs.

Minors: 1.23 (release binaries), 1.30 (last kubeadm v1beta3 minor), 1.33 (v1beta4).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gimme.errors import SpecError
from gimme.matrix import load_matrix
from gimme.profiles import load_os_profiles
from gimme.spec import CNIS, RUNTIMES, build_spec
from tests.testbed.bed import TestBed

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="emulated nodes need root")

MINORS = ("1.23", "1.30", "1.33")
FAMILY_OSES = {"debian": ("ubuntu-22.04", "debian-12"), "rhel": ("rocky-9", "rocky-8")}
CRI_SOCKETS = {
    "containerd": "unix:///var/run/containerd/containerd.sock",
    "cri-o": "unix:///var/run/crio/crio.sock",
    "docker": "unix:///var/run/cri-dockerd.sock",
}
CNI_SOURCES = {  # what the control plane must have fetched or installed for each CNI
    "calico": "projectcalico/calico",
    "flannel": "flannel-io/flannel",
    "weave": "weaveworks/weave",
    "cilium": "helm upgrade --install cilium cilium/cilium",
    "kube-router": "cloudnativelabs/kube-router",
    "antrea": "antrea-io/antrea",
    "multus": "k8snetworkplumbingwg/multus-cni",
}


def _valid_runs() -> list[tuple[str, str, str, str]]:
    """(minor, runtime, cni, os) for every value combination the matrix allows, first OS of
    the family that works."""
    matrix, profiles = load_matrix(), load_os_profiles()
    runs = []
    for minor, runtime, cni, family in itertools.product(MINORS, RUNTIMES, CNIS, FAMILY_OSES):
        for os_name in FAMILY_OSES[family]:
            spec = build_spec(k8s=minor, cri=runtime, cni=cni, foundation=f"ovirt-rack-1-{os_name}")
            try:
                matrix.check(spec, profiles[os_name])
            except SpecError:
                continue
            runs.append((minor, runtime, cni, os_name))
            break
    return runs


def _family(os_name: str) -> str:
    return next(f for f, names in FAMILY_OSES.items() if os_name in names)


def _pairs(run: tuple[str, str, str, str]) -> set[tuple[int, str, int, str]]:
    values = (*run[:3], _family(run[3]))
    return {(i, values[i], j, values[j]) for i, j in itertools.combinations(range(4), 2)}


def pairwise_runs() -> list[tuple[str, str, str, str]]:
    """A small set of valid runs covering every valid value pair (greedy, deterministic)."""
    candidates = _valid_runs()
    uncovered = set().union(*(_pairs(r) for r in candidates))
    chosen = []
    while uncovered:
        best = max(candidates, key=lambda r: len(_pairs(r) & uncovered))
        chosen.append(best)
        uncovered -= _pairs(best)
    return chosen


RUNS = pairwise_runs()


def test_runs_cover_every_allowed_pair() -> None:
    covered = set().union(*(_pairs(r) for r in RUNS))
    assert covered == set().union(*(_pairs(r) for r in _valid_runs()))
    for position, values in enumerate((MINORS, RUNTIMES, CNIS, tuple(FAMILY_OSES))):
        seen = {p[1] for p in covered if p[0] == position} | {
            p[3] for p in covered if p[2] == position
        }
        assert seen == set(values)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory):
    with TestBed(tmp_path_factory.mktemp("matrix-bed"), delay_scale=0.01) as bed:
        yield bed


def _calls(bed: TestBed, vm_id: str) -> list[list[str]]:
    return [[c["tool"], *c["argv"]] for c in bed.pool.node(vm_id).calls()]


def _text(bed: TestBed, vm_id: str, path: str) -> str:
    data = bed.pool.node(vm_id).read_file(path)
    assert data is not None, f"{path} missing on the node"
    return data.decode()


@pytest.mark.parametrize(
    ("minor", "runtime", "cni", "os_name"), RUNS, ids=["-".join(r) for r in RUNS]
)
def test_create_on_the_test_bed(
    bed: TestBed, tmp_path: Path, minor: str, runtime: str, cni: str, os_name: str
) -> None:
    env = bed.gimme_env(tmp_path / "home").environ()
    args = [
        "--k8s",
        minor,
        "--cri",
        runtime,
        "--cni",
        cni,
        "--nodes",
        "2",
        "--foundation",
        f"ovirt-rack-1-{os_name}",
    ]
    created = subprocess.run(
        [sys.executable, "-m", "gimme", "create", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    cluster_id = created.stdout.strip()
    try:
        vms = {vm["name"]: vm["id"] for vm in bed.engine.vms()}
        control, worker = vms[f"gimme-{cluster_id}-1"], vms[f"gimme-{cluster_id}-2"]
        spec = build_spec(k8s=minor, cri=runtime, cni=cni, foundation=f"ovirt-rack-1-{os_name}")
        matrix = load_matrix()
        patch = matrix.kubernetes(minor)["patch"]
        for vm_id in (control, worker):
            calls = _calls(bed, vm_id)
            flat = [" ".join(a) for a in calls]
            # Kubernetes packages from the right place for the minor.
            if minor == "1.23":
                assert any(f"dl.k8s.io/release/v{patch}/bin/linux/amd64/kubeadm" in c for c in flat)
            elif _family(os_name) == "debian":
                assert f"pkgs.k8s.io/core:/stable:/v{minor}/deb/" in _text(
                    bed, vm_id, "/etc/apt/sources.list.d/kubernetes.list"
                )
                assert any(
                    c.startswith("apt-get install") and f"kubeadm={patch}" in c for c in flat
                )
            else:
                assert f"pkgs.k8s.io/core:/stable:/v{minor}/rpm/" in _text(
                    bed, vm_id, "/etc/yum.repos.d/kubernetes.repo"
                )
                assert any(
                    c.startswith(("dnf install", "dnf -y install")) and "kubeadm" in c for c in flat
                )
            # The runtime, configured for the systemd cgroup driver.
            if runtime == "containerd":
                assert "SystemdCgroup = true" in _text(bed, vm_id, "/etc/containerd/config.toml")
            elif runtime == "cri-o":
                assert any(c.split()[0] in ("apt-get", "dnf") and " cri-o" in c for c in flat)
                repo = (
                    "/etc/apt/sources.list.d/cri-o.list"
                    if _family(os_name) == "debian"
                    else "/etc/yum.repos.d/cri-o.repo"
                )
                assert f"isv:/cri-o:/stable:/v{minor}/" in _text(bed, vm_id, repo)
            else:
                assert "native.cgroupdriver=systemd" in _text(bed, vm_id, "/etc/docker/daemon.json")
                assert any("cri-dockerd" in c for c in flat)
            # kubeadm init on the control plane only, join on the worker only, with the runtime's socket.
            kubeadm = [a for a in calls if a[0] == "kubeadm" and a[1] in ("init", "join")]
            assert [a[1] for a in kubeadm] == (["init"] if vm_id == control else ["join"])
            state = yaml.safe_load(_text(bed, vm_id, "/var/lib/gimme-testbed/kubeadm.json"))
            assert state["cri_socket"] == CRI_SOCKETS[runtime]
            assert state["node_name"] == f"gimme-{cluster_id}-{1 if vm_id == control else 2}"
        # The join configuration holds the token and is deleted; the init configuration is kept.
        init = next(a for a in _calls(bed, control) if a[:2] == ["kubeadm", "init"])
        docs = list(yaml.safe_load_all(_text(bed, control, init[init.index("--config") + 1])))
        api = "v1beta3" if minor in ("1.23", "1.30") else "v1beta4"
        assert {d["apiVersion"] for d in docs if d["apiVersion"].startswith("kubeadm")} == {
            f"kubeadm.k8s.io/{api}"
        }
        registration = next(d["nodeRegistration"] for d in docs if d["kind"] == "InitConfiguration")
        assert registration["criSocket"] == CRI_SOCKETS[runtime]
        cluster = next(d for d in docs if d["kind"] == "ClusterConfiguration")
        assert cluster["kubernetesVersion"] == f"v{patch}"
        assert cluster["networking"]["podSubnet"] == matrix.pod_cidr(spec)
        control_calls = "\n".join(" ".join(a) for a in _calls(bed, control))
        assert CNI_SOURCES[cni] in control_calls
        if cni == "multus":
            assert CNI_SOURCES["flannel"] in control_calls  # the default primary CNI under multus
        assert "kubectl" in control_calls and "wait --for=condition=Ready nodes" in control_calls
    finally:
        deleted = subprocess.run(
            [sys.executable, "-m", "gimme", "delete", cluster_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert deleted.returncode == 0, deleted.stderr
