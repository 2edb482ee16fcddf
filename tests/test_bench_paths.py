"""What the benchmark (tests/bench.py) relies on, checked fast: no timings asserted.

The command latency hook of the test bed's shims, and the light CLI paths the bench times
(`--help`, `list`, `kubeconfig`: no ovirtsdk4 or paramiko, one read of the state file).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gimme.store import READY, ClusterRecord, Store, VmRecord
from tests.testbed.nodes import NODE_ENV, NodePool
from tests.testbed.shims.emu.latency import seconds_for

UBUNTU = {"NAME": "Ubuntu", "ID": "ubuntu", "ID_LIKE": "debian", "VERSION_ID": "22.04"}


def test_latency_rules_pick_the_most_specific_match() -> None:
    rules = {"apt-get": 1.0, "apt-get install": 4.0, "kubectl rollout status": 2.0, "*": 0.25}
    assert seconds_for(rules, "apt-get", ["install", "-y", "-q", "curl"]) == 4.0
    assert seconds_for(rules, "apt-get", ["update", "-q"]) == 1.0
    assert seconds_for(rules, "kubectl", ["-n", "kube-system", "rollout", "status", "x"]) == 2.0
    assert seconds_for(rules, "kubectl", ["status", "rollout"]) == 0.25  # words keep their order
    assert seconds_for(rules, "modprobe", ["overlay"]) == 0.25
    assert seconds_for({"curl": 1.0}, "modprobe", ["overlay"]) == 0.0


@pytest.mark.nodes
@pytest.mark.skipif(os.geteuid() != 0, reason="emulated nodes need root")
def test_a_shimmed_command_takes_at_least_its_configured_latency(tmp_path: Path) -> None:
    latency = {"swapoff": 1.5, "*": 0.6}
    with NodePool(tmp_path / "nodes", subnet="127.0.19", command_latency=latency) as pool:
        pool.start_node("lat", hostname="lat", user="ubuntu", authorized_keys="", os_release=UBUNTU)
        pid = str(pool.node("lat").init_pid)

        def took(*argv: str) -> float:
            started = time.monotonic()
            enter = ["nsenter", "--target", pid, "--mount", "--pid", "--root", "--wd"]
            subprocess.run([*enter, *argv], env=NODE_ENV, check=True, capture_output=True)
            return time.monotonic() - started

        assert took("/usr/sbin/swapoff", "-a") >= 1.5
        assert took("/usr/bin/hostname") >= 0.6
        calls = pool.node("lat").calls()
    assert [c["tool"] for c in calls] == ["swapoff", "hostname"]  # still recorded, once each


PROBE = """
import sys
state = sys.argv[1]
opens = []
sys.addaudithook(lambda event, args: event == "open" and str(args[0]) == state and opens.append(1))
from gimme.cli import main
code = main(sys.argv[2:])
heavy = [m for m in ("ovirtsdk4", "paramiko", "pycurl") if m in sys.modules]
print("probe", code, heavy, len(opens), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["list", "--json"], ["kubeconfig"]])
def test_light_commands_skip_the_sdk_and_read_the_state_once(
    gimme_home: Path, argv: list[str]
) -> None:
    state = Path(os.environ["GIMME_STATE"])
    now = time.time()
    record = ClusterRecord(
        id="abcd1234",
        owner="alice",
        owner_uid=os.getuid(),
        state=READY,
        foundation="ovirt-rack-1-ubuntu-22.04",
        engine="rack-1",
        spec={"k8s": "1.30", "cri": "containerd", "cni": "calico", "nodes": 2},
        created_at=now,
        expires_at=now + 3600,
        heartbeat_at=now,
        vms=[VmRecord(name="gimme-abcd1234-1", id="vm-1", address="192.0.2.10")],
    )
    Store(state).insert(record)
    cdir = gimme_home / ".local/share/gimme/clusters/abcd1234"
    cdir.mkdir(parents=True)
    (cdir / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    if argv == ["kubeconfig"]:
        argv = ["kubeconfig", "abcd1234"]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(state), *argv], capture_output=True, text=True
    )
    probe = result.stderr.strip().splitlines()[-1]
    reads = 0 if argv == ["--help"] else 1
    assert probe == f"probe 0 [] {reads}", result.stderr


def test_list_prints_plain_aligned_columns(gimme_home: Path, capsys: pytest.CaptureFixture) -> None:
    """The linear-time table: aligned columns, cells verbatim (no rich markup), JSON as before."""
    import json

    from gimme.cli import main

    now = time.time()
    store = Store(Path(os.environ["GIMME_STATE"]))
    for n, comment in enumerate(["[bold]not markup[/]", "ünïcode"]):
        store.insert(
            ClusterRecord(
                id=f"abcd123{n}",
                owner="alice" if n else "bob-the-builder",
                owner_uid=1,
                state=READY,
                foundation="f",
                engine="rack-1",
                spec={
                    "k8s": "1.30",
                    "cri": "containerd",
                    "cni": "calico",
                    "nodes": 2 + n,
                    "comment": comment,
                },
                created_at=now + n,
                expires_at=now + 3600,
                heartbeat_at=now,
            )
        )
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "ID", "OWNER", "FOUNDATION", "K8S/CRI/CNI", "NODES", "STATE", "AGE", "EXPIRES", "IN",
        "COMMENT",
    ]  # fmt: skip
    assert lines[1].endswith("[bold]not markup[/]") and lines[2].endswith("ünïcode")
    assert {line.index("FOUNDATION") for line in lines[:1]} == {
        line.index(" f ") + 1 for line in lines[1:]
    }
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["comment"] for r in rows] == ["[bold]not markup[/]", "ünïcode"]


def test_reap_deletes_every_expired_cluster_at_once(tmp_path: Path) -> None:
    """All stops go out before any VM is removed, over at most REAP_CONNECTIONS logins."""
    from gimme.core import REAP_CONNECTIONS
    from tests.bench import engine_env, seed_expired
    from tests.testbed.engine import Delays, FakeEngine

    clusters = REAP_CONNECTIONS + 2
    delays = Delays(image_locked=0.05, powering_up=0.05, powering_down=0.4, remove=0.2)
    with FakeEngine(tmp_path / "engine", delays=delays) as engine:
        env = engine_env(engine, tmp_path / "home")
        seed_expired(env, clusters)
        engine.clear_log()
        result = subprocess.run(
            [sys.executable, "-m", "gimme", "reap"],
            env=env.environ(),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        assert engine.vms() == []
        kinds = [r["kind"] for r in engine.requests()]
    assert result.stderr.count("deleted expired cluster") == clusters
    assert kinds.count("stop") == 2 * clusters
    last_stop = max(i for i, kind in enumerate(kinds) if kind == "stop")
    assert last_stop < kinds.index("remove")
    assert kinds.count("sso") <= REAP_CONNECTIONS + 1  # + the orphan sweep's


@pytest.mark.nodes
@pytest.mark.skipif(os.geteuid() != 0, reason="emulated nodes need root")
def test_scripts_go_to_a_node_once_and_steps_send_only_their_env(tmp_path: Path) -> None:
    from gimme.remote import REMOTE_DIR, Node, generate_keypair

    key = tmp_path / "id_ed25519"
    with NodePool(tmp_path / "nodes", subnet="127.0.19") as pool:
        address = pool.start_node(
            "push", hostname="push", user="ubuntu", authorized_keys=generate_keypair(key),
            os_release=UBUNTU,
        )  # fmt: skip
        node = Node(
            "push", address, "ubuntu", key, tmp_path / "known_hosts", trust_new_host_key=True
        )
        node.connect(deadline=time.monotonic() + 30)
        uploads: list[str] = []
        put = node.put
        node.put = lambda data, path, mode, **kw: (
            uploads.append(path),
            put(data, path, mode, **kw),
        )
        try:
            node.push_scripts({"one": 'echo "one $X"', "two": 'echo "two $X"'})
            assert uploads == [f"{REMOTE_DIR}/one.sh", f"{REMOTE_DIR}/two.sh"]
            uploads.clear()
            assert node.run_script("one", 'echo "one $X"', {"X": "1"}, timeout=30).output == "one 1"
            assert node.run_script("two", 'echo "two $X"', {"X": "2"}, timeout=30).output == "two 2"
            assert uploads == [f"{REMOTE_DIR}/one.env", f"{REMOTE_DIR}/two.env"]
            uploads.clear()
            assert node.run_script("two", 'echo "new $X"', {"X": "3"}, timeout=30).output == "new 3"
            assert uploads == [f"{REMOTE_DIR}/two.sh", f"{REMOTE_DIR}/two.env"]
        finally:
            node.close()


def test_clone_requests_are_all_in_flight_at_once(tmp_path: Path) -> None:
    """Engine.create_vms sends every add before awaiting a reply: with each reply held back
    1 s, all adds still arrive within that second (one after another would take 4 s)."""
    from gimme.config import load_settings
    from gimme.engine import CloudInit, Engine
    from tests.bench import engine_env
    from tests.testbed.engine import FakeEngine

    with FakeEngine(tmp_path / "engine") as fake:
        env = engine_env(fake, tmp_path / "home")
        with Engine(load_settings(env.config, env.environ()).engine("rack-1")) as engine:
            template = engine.find_template("ubuntu-22.04", "rack-1")
            fake.inject("slow", count=4, match="add_vm", seconds=1.0)
            names = [f"gimme-abcd1234-{n}" for n in range(1, 5)]
            ids = engine.create_vms(
                [
                    dict(
                        name=name,
                        cluster="rack-1",
                        template=template,
                        description="",
                        comment="",
                        memory_mib=1024,
                        cpus=1,
                        cloud_init=CloudInit(name, "ubuntu", ""),
                    )  # fmt: skip
                    for name in names
                ]
            )
        arrivals = [r["time"] for r in fake.requests() if r["kind"] == "add_vm"]
        by_name = {vm["name"]: vm["id"] for vm in fake.vms()}
    assert ids == [by_name[name] for name in names]
    assert len(arrivals) == 4 and max(arrivals) - min(arrivals) < 1.0
