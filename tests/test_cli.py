"""The CLI without an engine: listing, ownership, config, output discipline, import cost."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gimme import kubeconfig
from gimme.cli import main
from gimme.store import READY, ClusterRecord, Store, VmRecord


def _record(cluster_id: str, owner: str, **extra: object) -> ClusterRecord:
    now = time.time()
    fields = dict(
        id=cluster_id,
        owner=owner,
        owner_uid=4242,
        state=READY,
        foundation="ovirt-rack-1-ubuntu-22.04",
        engine="rack-1",
        spec={"k8s": "1.30", "cri": "containerd", "cni": "calico", "nodes": 2, "comment": "x"},
        created_at=now - 60,
        expires_at=now + 3600,
        heartbeat_at=now,
        vms=[VmRecord(name=f"gimme-{cluster_id}-1", id="vm-1", address="192.0.2.10")],
    )
    fields.update(extra)
    return ClusterRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store(gimme_home: Path) -> Store:
    return Store(Path(os.environ["GIMME_STATE"]))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_json_and_table(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    store.insert(_record("aaaaaaaa", "mallory"))
    store.insert(_record("bbbbbbbb", "alice", state="deleted"))
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["id"], r["owner"], r["state"], r["k8s"], r["nodes"]) for r in rows] == [
        ("aaaaaaaa", "mallory", "ready", "1.30", 2)
    ]
    assert 3500 < rows[0]["expires_in_s"] <= 3600
    code, out, _ = run(capsys, "list", "--all", "--json")
    assert {r["id"] for r in json.loads(out)} == {"aaaaaaaa", "bbbbbbbb"}
    code, out, _ = run(capsys, "list")
    assert "aaaaaaaa" in out and "mallory" in out and "1.30/containerd/calico" in out


@pytest.mark.parametrize(
    "args",
    [
        ["delete", "aaaaaaaa"],
        ["prolong", "aaaaaaaa", "--ttl", "1h"],
        ["hold", "aaaaaaaa", "--for", "1h"],
    ],
)
def test_another_users_cluster_is_refused(
    store: Store, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    store.insert(_record("aaaaaaaa", "mallory"))
    code, out, err = run(capsys, *args)
    assert code == 2
    assert err.strip().splitlines() == [
        f"gimme: error: cluster aaaaaaaa belongs to mallory; use --force to {args[0]} it anyway"
    ]
    assert store.get("aaaaaaaa").state == READY
    assert store.get("aaaaaaaa").expires_at == pytest.approx(_record("a", "m").expires_at, abs=5)


def test_hold_is_capped(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    store.insert(_record("aaaaaaaa", me, expires_at=time.time() - 10))
    code, _, err = run(capsys, "hold", "aaaaaaaa", "--for", "30d")
    assert code == 2 and "exceeds the configured maximum" in err
    code, _, err = run(capsys, "hold", "aaaaaaaa", "--for", "2h")
    assert code == 0
    held = store.get("aaaaaaaa")
    assert held.hold_until and not held.expired(time.time())


def test_config_show_masks_the_password(
    gimme_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GIMME_ENGINE_RACK_1_URL", "https://engine.example/ovirt-engine/api")
    monkeypatch.setenv("GIMME_ENGINE_RACK_1_PASSWORD", "pw-that-must-not-show")
    code, out, err = run(capsys, "config", "show", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["engines"]["rack-1"]["password"] == "***"
    assert "pw-that-must-not-show" not in out + err


def test_reap_waits_for_nobody(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    store.insert(_record("aaaaaaaa", "alice"))
    lock_path = Path(os.environ["GIMME_STATE"] + ".reap.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        code, _, err = run(capsys, "reap")
        assert code == 0 and "another gimme reap is running" in err
        assert time.monotonic() - started < 2
    finally:
        os.close(fd)


def test_help_does_not_load_the_sdk_or_paramiko(gimme_home: Path) -> None:
    probe = (
        "import sys; from gimme.cli import main; code = main(['--help']);"
        "heavy = [m for m in ('ovirtsdk4', 'paramiko', 'fastapi') if m in sys.modules];"
        "print(code, heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "0 []"


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = [
        "create",
        "list",
        "show",
        "kubeconfig",
        "ssh",
        "prolong",
        "hold",
        "delete",
        "reap",
        "foundations",
        "runtimes",
        "render",
        "serve",
        "version",
        "config",
    ]
    for command in commands:
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "Usage:" in out, command
    code, out, _ = run(capsys, "config", "show", "--help")
    assert code == 0 and "secrets masked" in out


def test_kubeconfig_merge_and_unmerge(tmp_path: Path) -> None:
    admin = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kubernetes",
                    "cluster": {
                        "server": "https://10.0.0.1:6443",
                        "certificate-authority-data": "Q0E=",
                    },
                }
            ],
            "users": [
                {
                    "name": "kubernetes-admin",
                    "user": {"client-certificate-data": "Qw==", "client-key-data": "Sw=="},
                }
            ],
            "contexts": [
                {
                    "name": "kubernetes-admin@kubernetes",
                    "context": {"cluster": "kubernetes", "user": "kubernetes-admin"},
                }
            ],
            "current-context": "kubernetes-admin@kubernetes",
        }
    ).encode()
    text = kubeconfig.from_admin_conf(admin, "abcd1234", "2001:db8::5")
    doc = yaml.safe_load(text)
    assert doc["clusters"][0] == {
        "name": "gimme-abcd1234",
        "cluster": {"server": "https://[2001:db8::5]:6443", "certificate-authority-data": "Q0E="},
    }
    assert doc["current-context"] == "gimme-abcd1234"
    target = tmp_path / "config"
    target.write_text(
        yaml.safe_dump(
            {"clusters": [{"name": "other", "cluster": {}}], "users": [], "contexts": []}
        )
    )
    kubeconfig.merge(target, text)
    merged = yaml.safe_load(target.read_text())
    assert [c["name"] for c in merged["clusters"]] == ["other", "gimme-abcd1234"]
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert kubeconfig.unmerge(target, "abcd1234")
    assert [c["name"] for c in yaml.safe_load(target.read_text())["clusters"]] == ["other"]
    assert not kubeconfig.unmerge(target, "abcd1234")
