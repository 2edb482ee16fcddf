"""End to end on the test bed: the real gimme CLI, the real ovirtsdk4, real SSH, real scripts."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.testbed.bed import GimmeEnv, TestBed

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="emulated nodes need root")


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory):
    with TestBed(tmp_path_factory.mktemp("bed"), delay_scale=0.02) as bed:
        yield bed


@pytest.fixture
def env(bed: TestBed, tmp_path: Path) -> GimmeEnv:
    bed.engine.clear_log()
    return bed.gimme_env(tmp_path / "home")


def gimme(env: GimmeEnv, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "gimme", *args],
        env=env.environ(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"gimme {args} exited {result.returncode}:\n{result.stderr}")
    return result


def _calls(bed: TestBed, vm_id: str) -> list[list[str]]:
    return [[c["tool"], *c["argv"]] for c in bed.pool.node(vm_id).calls()]


def _index(calls: list[list[str]], predicate) -> int:
    for i, argv in enumerate(calls):
        if predicate(argv):
            return i
    raise AssertionError(f"no such call in {[' '.join(a) for a in calls]}")


def test_create_use_prolong_delete(bed: TestBed, env: GimmeEnv) -> None:
    result = gimme(
        env,
        "create",
        "--k8s",
        "1.30",
        "--cri",
        "containerd",
        "--cni",
        "calico",
        "--nodes",
        "3",
        "--ttl",
        "1h",
        "--comment",
        "e2e",
    )
    cluster_id = result.stdout.strip()
    assert len(cluster_id) == 8 and cluster_id.isalnum()
    names = [f"gimme-{cluster_id}-{n}" for n in (1, 2, 3)]

    # The engine saw three clones from the template, tagged, started with cloud-init.
    requests = bed.engine.requests()
    adds = [r for r in requests if r["method"] == "POST" and r["path"].endswith("/api/vms")]
    assert len(adds) == 3
    starts = [r for r in requests if r["method"] == "POST" and r["path"].endswith("/start")]
    assert len(starts) == 3
    vms = {vm["name"]: vm for vm in bed.engine.vms()}
    assert set(names) <= set(vms)
    public_key = (
        (env.home / ".local/share/gimme/clusters" / cluster_id / "id_ed25519.pub")
        .read_text()
        .split()[1]
    )
    for name in names:
        vm = vms[name]
        assert {"gimme", f"gimme-{cluster_id}"} <= set(vm["tags"])
        assert vm["status"] == "up"
        init = vm["initialization"]
        assert init["host_name"] == name and init["user_name"] == "ubuntu"
        assert public_key in init["authorized_ssh_keys"]
        assert f"cluster={cluster_id}" in vm["description"]

    # Each node was told to do the bootstrap, in order.
    cp, w1, w2 = (vms[n]["id"] for n in names)
    for vm_id in (cp, w1, w2):
        calls = _calls(bed, vm_id)
        swapoff = _index(calls, lambda a: a[0] == "swapoff")
        modprobe = _index(calls, lambda a: a[0] == "modprobe" and "br_netfilter" in a)
        sysctl = _index(calls, lambda a: a[0] == "sysctl" and "--system" in a)
        install = _index(
            calls,
            lambda a: (
                a[0] == "apt-get" and "install" in a and any(p.startswith("kubeadm") for p in a)
            ),
        )
        containerd_cfg = _index(calls, lambda a: a[:3] == ["containerd", "config", "default"])
        kubeadm = _index(calls, lambda a: a[0] == "kubeadm" and a[1] in ("init", "join"))
        assert swapoff < kubeadm and modprobe < sysctl < kubeadm and containerd_cfg < kubeadm
        assert install < kubeadm
        sources = bed.pool.node(vm_id).read_file("/etc/apt/sources.list.d/kubernetes.list")
        assert sources is not None and b"pkgs.k8s.io/core:/stable:/v1.30/deb/" in sources
        containerd_toml = bed.pool.node(vm_id).read_file("/etc/containerd/config.toml")
        assert containerd_toml is not None and b"SystemdCgroup = true" in containerd_toml
    cp_calls = _calls(bed, cp)
    init = cp_calls[_index(cp_calls, lambda a: a[:2] == ["kubeadm", "init"])]
    config_path = init[init.index("--config") + 1]
    docs = list(yaml.safe_load_all(bed.pool.node(cp).read_file(config_path)))
    cluster_cfg = next(d for d in docs if d["kind"] == "ClusterConfiguration")
    assert cluster_cfg["apiVersion"] == "kubeadm.k8s.io/v1beta3"
    assert cluster_cfg["kubernetesVersion"].startswith("v1.30.")
    assert cluster_cfg["networking"]["podSubnet"]
    for vm_id in (w1, w2):
        assert any(a[:2] == ["kubeadm", "join"] for a in _calls(bed, vm_id))
        assert not any(a[:2] == ["kubeadm", "init"] for a in _calls(bed, vm_id))
    assert any(a[0] == "kubectl" and ("apply" in a or "create" in a) for a in cp_calls)

    # The kubeconfig: valid YAML, 0600, named gimme-<id>, pointing at node 1.
    kc = env.home / "kc"
    gimme(env, "kubeconfig", cluster_id, "-o", str(kc))
    assert stat.S_IMODE(kc.stat().st_mode) == 0o600
    doc = yaml.safe_load(kc.read_text())
    assert doc["current-context"] == f"gimme-{cluster_id}"
    assert doc["clusters"][0]["name"] == f"gimme-{cluster_id}"
    address = bed.pool.node(cp).address
    assert doc["clusters"][0]["cluster"]["server"] == f"https://{address}:6443"
    assert gimme(env, "kubeconfig", cluster_id).stdout == kc.read_text()

    listed = json.loads(gimme(env, "list", "--json").stdout)
    assert [(c["id"], c["state"], c["nodes"], c["comment"]) for c in listed] == [
        (cluster_id, "ready", 3, "e2e")
    ]
    shown = json.loads(gimme(env, "show", cluster_id, "--json").stdout)
    assert [vm["name"] for vm in shown["vms"]] == names
    assert {"vms", "prepare", "init", "ready", "total"} <= set(shown["phases"])

    assert gimme(env, "ssh", cluster_id, "--", "hostname").stdout.strip() == names[0]
    assert gimme(env, "ssh", cluster_id, names[2], "--", "hostname").stdout.strip() == names[2]

    gimme(env, "prolong", cluster_id, "--ttl", "2h")
    expires_in = json.loads(gimme(env, "list", "--json").stdout)[0]["expires_in_s"]
    assert 7100 < expires_in <= 7200

    bed.engine.clear_log()
    gimme(env, "delete", cluster_id)
    assert not [vm for vm in bed.engine.vms() if vm["name"] in names]
    assert json.loads(gimme(env, "list", "--json").stdout) == []
    assert json.loads(gimme(env, "list", "--all", "--json").stdout)[0]["state"] == "deleted"
    assert not (env.home / ".local/share/gimme/clusters" / cluster_id / "kubeconfig").exists()
    gimme(env, "delete", cluster_id)  # idempotent


def test_reap_removes_only_expired(bed: TestBed, env: GimmeEnv) -> None:
    keep = gimme(env, "create", "--k8s", "1.31", "--nodes", "2", "--ttl", "1h").stdout.strip()
    expire = gimme(env, "create", "--k8s", "1.31", "--nodes", "2", "--ttl", "1h").stdout.strip()
    gimme(env, "prolong", expire, "--ttl", "1")
    time.sleep(1.2)
    plan = gimme(env, "reap", "--dry-run").stdout
    assert expire in plan and keep not in plan
    result = gimme(env, "reap")
    assert f"deleted expired cluster {expire}" in result.stderr
    states = {c["id"]: c["state"] for c in json.loads(gimme(env, "list", "--all", "--json").stdout)}
    assert states == {keep: "ready", expire: "deleted"}
    names = {vm["name"] for vm in bed.engine.vms()}
    assert not any(n.startswith(f"gimme-{expire}-") for n in names)
    assert {f"gimme-{keep}-1", f"gimme-{keep}-2"} <= names
    gimme(env, "delete", keep)


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--nodes", "1"],
        ["create", "--nodes", "7"],
        ["create", "--ttl", "-1"],
        ["create", "--ttl", "86401"],
        ["create", "--ttl", "0"],
        ["create", "--k8s", "1.x"],
        ["create", "--cri", "rkt"],
        ["create", "--cni", "canal"],
        ["create", "--foundation", "no-such-foundation"],
        ["create", "--foundation", "x' or name=*"],
        ["create", "--comment", "a\nb"],
        ["show", "zzzzzzzz"],
        ["delete", "zzzzzzzz"],
        ["delete", "$(reboot)"],
        ["prolong", "zzzzzzzz", "--ttl", "1h"],
        ["kubeconfig", "name=*"],
        ["ssh", "; rm -rf /"],
    ],
)
def test_bad_input_exits_2_with_one_line_and_touches_nothing(
    bed: TestBed, env: GimmeEnv, args: list[str]
) -> None:
    result = gimme(env, *args, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gimme: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert bed.engine.mutating_requests() == []
