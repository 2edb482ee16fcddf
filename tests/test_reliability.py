"""Reliability on the test bed: crashes, reap, engine faults, SSH, secrets.

Every test drives the real `gimme` CLI (a subprocess) or gimme's core against the fake
engine and emulated nodes. One test bed and one shared state file serve the module; a
reap sees every VM on the engine, so each test removes what it made.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.bed import GimmeEnv, TestBed

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="emulated nodes need root")

LIVE = ("creating", "ready", "failed", "deleting")
GRACE = 1  # GIMME_REAP_GRACE for tests that want abandoned creates found quickly
KEEP: set[str] = set()  # clusters that module fixtures share between tests


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestBed]:
    with TestBed(tmp_path_factory.mktemp("bed"), delay_scale=0.02) as bed:
        yield bed


@pytest.fixture(scope="module")
def env(bed: TestBed, tmp_path_factory: pytest.TempPathFactory) -> GimmeEnv:
    return bed.gimme_env(tmp_path_factory.mktemp("home"))


@pytest.fixture(autouse=True)
def _clean(bed: TestBed) -> Iterator[None]:
    """Each test starts with an empty request log and leaves no VM behind for the next."""
    bed.engine.clear_log()
    yield
    _purge(bed, keep=KEEP)


# -- helpers ---------------------------------------------------------------------------------


def gimme(
    env: GimmeEnv, *args: str, extra: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "gimme", *args],
        env=env.environ() | (extra or {}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"gimme {args} exited {result.returncode}:\n{result.stderr}")
    return result


def spawn(env: GimmeEnv, *args: str, extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gimme", *args],
        env=env.environ() | (extra or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def records(env: GimmeEnv) -> dict[str, dict[str, Any]]:
    """The state file's records by id, read the way any reader may (no lock: renames are atomic)."""
    try:
        data = json.loads(env.state.read_text())
    except FileNotFoundError:
        return {}
    return {doc["id"]: doc for doc in data.get("clusters", {}).values()}


def wait_for(
    what: str, predicate: Callable[[], Any], timeout: float = 60, poll: float = 0.01
) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll)
    return value


def new_record(env: GimmeEnv, before: set[str]) -> dict[str, Any] | None:
    fresh = [r for i, r in records(env).items() if i not in before]
    return fresh[0] if fresh else None


def cluster_vms(bed: TestBed, cluster_id: str) -> list[dict[str, Any]]:
    return [vm for vm in bed.engine.vms() if vm["name"].startswith(f"gimme-{cluster_id}-")]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("gimme: error:")]


def _purge(bed: TestBed, keep: set[str]) -> None:
    """Remove every VM but those of clusters in `keep` through the SDK (not through gimme),
    so one failure does not cascade."""
    connection = bed.engine.connection()
    kept = tuple(f"gimme-{cluster_id}-" for cluster_id in keep)
    try:
        service = connection.system_service().vms_service()
        deadline = time.monotonic() + 30
        while vms := [vm for vm in service.list() if not vm.name.startswith(kept)]:
            assert time.monotonic() < deadline, f"cannot purge {[v.name for v in vms]}"
            for vm in vms:
                one = service.vm_service(vm.id)
                try:
                    if vm.status.value == "down":
                        one.remove()
                    elif vm.status.value not in ("image_locked", "powering_down"):
                        one.stop()
                except Exception:  # noqa: BLE001 - busy or gone: the next round sees it
                    pass
            time.sleep(0.1)
    finally:
        connection.close()


# -- crash safety ------------------------------------------------------------------------------


def _started(bed: TestBed, kind: str) -> bool:
    return any(r["kind"] == kind for r in bed.engine.requests())


def _node_busy(bed: TestBed, record: dict[str, Any]) -> bool:
    """A node of the record runs its first step (its shims have recorded calls)."""
    for vm in record["vms"]:
        if vm["id"] and vm["address"]:
            try:
                if bed.pool.node(vm["id"]).calls():
                    return True
            except KeyError:
                pass
    return False


# phase -> (is the create in it now?, given the engine and the record)
KILL_POINTS: dict[str, Callable[[TestBed, dict[str, Any]], bool]] = {
    "cloning": lambda bed, r: _started(bed, "add_vm"),
    "booting": lambda bed, r: _started(bed, "start") and not any(v["address"] for v in r["vms"]),
    "prepare": lambda bed, r: _node_busy(bed, r) and "prepare" not in r["phases"],
    "init": lambda bed, r: "prepare" in r["phases"] and "init" not in r["phases"],
    "join+cni": lambda bed, r: "init" in r["phases"] and "join+cni" not in r["phases"],
    "ready": lambda bed, r: "join+cni" in r["phases"] and "ready" not in r["phases"],
}


@pytest.mark.parametrize("phase", list(KILL_POINTS))
def test_sigkill_at_each_phase_then_reap_leaves_nothing(
    bed: TestBed, env: GimmeEnv, phase: str
) -> None:
    """A create killed with SIGKILL in `phase` leaves a record that reap finds and cleans up."""
    grace = {"GIMME_REAP_GRACE": str(GRACE)}
    before = set(records(env))
    create = spawn(env, "create", "--k8s", "1.30", "--nodes", "2", extra=grace)
    try:
        record = wait_for("the creating record", lambda: new_record(env, before), timeout=30)
        cluster_id = record["id"]
        wait_for(
            f"phase {phase}",
            lambda: (
                create.poll() is None
                and (r := records(env).get(cluster_id))
                and KILL_POINTS[phase](bed, r)
            ),
            timeout=60,
        )
        os.kill(create.pid, signal.SIGKILL)
    finally:
        create.kill()
        create.communicate()
    killed = records(env)[cluster_id]
    assert killed["state"] == "creating", killed
    assert killed["worker"]
    with_vms = cluster_vms(bed, cluster_id)
    recorded = sum(1 for vm in killed["vms"] if vm["id"])
    assert with_vms, "the create was killed before any VM existed"
    node_ids = [vm["id"] for vm in killed["vms"] if vm["id"] and vm["address"]]

    # Heartbeats stopped with the process: after the grace period the record is abandoned.
    wait_for(
        "an abandoned record",
        lambda: time.time() - records(env)[cluster_id]["heartbeat_at"] > GRACE + 0.2,
        poll=0.1,
    )
    reap = gimme(env, "reap", extra=grace)
    left_vms = cluster_vms(bed, cluster_id)
    after = records(env)[cluster_id]
    print(
        f"\nSIGKILL in {phase}: {len(with_vms)} VM(s) at kill ({recorded} id(s) recorded), "
        f"{len(left_vms)} VM(s) and {int(after['state'] in LIVE)} live record(s) after reap"
    )
    assert left_vms == []
    assert after["state"] == "deleted"
    assert [i for i, r in records(env).items() if r["state"] in LIVE and i not in KEEP] == []
    assert f"deleted abandoned cluster {cluster_id}" in reap.stderr, reap.stderr
    assert after["error"] == f"creating abandoned by {killed['worker']}"
    for vm_id in node_ids:
        assert not bed.pool.node(vm_id).running()


# -- a create that survives transient faults while reap runs next to it --------------------------

SURVIVABLE = {  # fault kind -> the request kind it hits (none of them is one reap makes)
    "http_500": "add_vm",
    "http_503": "start",
    "drop": "assign_tag",
    "slow": "reported_devices",
}
CALL_TIMEOUT, SLOW = 2, 4  # engine call deadline; a `slow` reply takes longer than that
SSHD_DELAY = 1.5


@pytest.fixture(scope="module")
def survivor(bed: TestBed, env: GimmeEnv) -> Iterator[dict[str, Any]]:
    """One 2-node create under every survivable engine fault, an expired token, a late
    sshd, and `gimme reap` (grace 1 s) running in a loop until the create ends."""
    bed.engine.clear_log()
    for kind, request_kind in SURVIVABLE.items():
        params = {"seconds": SLOW} if kind == "slow" else {}
        bed.engine.inject(kind, match=request_kind, **params)
    extra = {"GIMME_REAP_GRACE": str(GRACE), "GIMME_TIMEOUT_ENGINE_CALL": str(CALL_TIMEOUT)}
    before = set(records(env))
    bed.pool.sshd_delay = SSHD_DELAY
    started = time.monotonic()
    try:
        create = spawn(env, "create", "--k8s", "1.30", "--nodes", "2", extra=extra)
        reaps: list[subprocess.CompletedProcess[str]] = []
        lock_waits: list[float] = []
        expired = False
        while create.poll() is None:
            record = new_record(env, before)
            if not expired and record and any(vm["id"] for vm in record["vms"]):
                bed.engine.expire_tokens()  # the create's token dies while its VMs boot
                expired = True
            reaps.append(gimme(env, "reap", extra=extra, check=False))
            asked = time.monotonic()
            with _store(env).transaction():  # the create never holds the lock for long
                lock_waits.append(time.monotonic() - asked)
        stdout, stderr = create.communicate()
    finally:
        bed.pool.sshd_delay = 0.0
    KEEP.add(stdout.strip())
    data = {
        "create": subprocess.CompletedProcess(create.args, create.returncode, stdout, stderr),
        "seconds": time.monotonic() - started,
        "id": stdout.strip(),
        "reaps": reaps,
        "lock_waits": lock_waits,
        "requests": bed.engine.requests(),
        "expired": expired,
    }
    yield data
    KEEP.discard(data["id"])
    if data["id"]:
        gimme(env, "delete", data["id"], check=False)


def test_create_survives_transient_engine_faults(survivor: dict[str, Any], env: GimmeEnv) -> None:
    """5xx, a dropped connection, a reply slower than the call deadline and an expired
    token are retried (or re-logged in) and the cluster still becomes ready."""
    create = survivor["create"]
    assert create.returncode == 0, create.stderr
    assert records(env)[survivor["id"]]["state"] == "ready"
    requests = survivor["requests"]
    by_kind = {kind: [r for r in requests if r["kind"] == kind] for kind in SURVIVABLE.values()}
    assert by_kind["add_vm"][0]["status"] == 500 and by_kind["add_vm"][1]["status"] == 202
    assert by_kind["start"][0]["status"] == 503
    assert any(r["status"] == 200 for r in by_kind["start"])
    dropped, *later = by_kind["assign_tag"]
    assert dropped["status"] is None  # dropped (libcurl's replay too), then sent again
    assert any(r["path"] == dropped["path"] and r["status"] in (200, 201) for r in later)
    slow, retry = by_kind["reported_devices"][:2]
    assert slow["path"] == retry["path"]
    assert CALL_TIMEOUT - 0.1 < retry["time"] - slow["time"] < SLOW, "no retry at the deadline"
    assert survivor["expired"]
    assert any(r["status"] == 401 for r in requests), "the expired token was never used"
    print(f"\nsurvived: {', '.join(SURVIVABLE)}, expired token; create {survivor['seconds']:.1f}s")


def test_reap_leaves_a_create_in_flight_alone(survivor: dict[str, Any], bed: TestBed) -> None:
    """Reaps with a 1 s grace, all through a create whose steps take longer, delete nothing:
    the create's heartbeat keeps its record alive; nor does the create keep the state file
    locked while it works."""
    assert survivor["create"].returncode == 0, survivor["create"].stderr
    reaps = survivor["reaps"]
    assert len(reaps) >= 3 and survivor["seconds"] > 5 * GRACE
    for reap in reaps:
        assert reap.returncode == 0, reap.stderr
        assert "0 cluster(s) deleted, 0 orphan VM(s)" in reap.stderr, reap.stderr
    assert max(survivor["lock_waits"]) < 0.5, survivor["lock_waits"]
    doomed = [r for r in survivor["requests"] if r["kind"] in ("stop", "remove")]
    assert doomed == []
    assert len(cluster_vms(bed, survivor["id"])) == 2


def test_late_sshd_is_waited_for(survivor: dict[str, Any], env: GimmeEnv) -> None:
    """Nodes whose sshd starts 1.5 s late still make a ready cluster (the fake engine reports
    a node's address only once its sshd listens, so this is a late address)."""
    assert survivor["create"].returncode == 0, survivor["create"].stderr
    assert records(env)[survivor["id"]]["phases"]["vms"] >= SSHD_DELAY


# -- engine faults that end a create ----------------------------------------------------------

REPORTED = {  # name -> (inject kind, inject params, extra environment, expected in the error)
    "capacity": ("capacity", {"match": "add_vm"}, {}, r"create VM gimme-{id}-1: .*no host"),
    "quota": (
        "capacity",
        {"match": "start", "quota": True},
        {},
        r"start VM gimme-{id}-\d: .*Quota",
    ),
    "start_fails": (
        "start_fails",
        {"vm_name": "gimme-*-2"},
        {},
        r"start VM gimme-{id}-2: .*no host",
    ),
    "start_fails_crash": (
        "start_fails",
        {"vm_name": "gimme-*-2", "crash": True},
        {"GIMME_TIMEOUT_VM_START": "20"},
        r"VM gimme-{id}-2 went down while booting",
    ),
    "no_ip": (
        "no_ip",
        {"vm_name": "gimme-*-2"},
        {"GIMME_TIMEOUT_VM_IP": "2"},
        r"VM gimme-{id}-2 did not report an IP before the deadline",
    ),
}


@pytest.mark.parametrize("name", list(REPORTED))
def test_engine_fault_is_reported_and_rolled_back(bed: TestBed, env: GimmeEnv, name: str) -> None:
    """A fault gimme cannot wait out ends the create with exit 4 and one error line naming
    the VM and what it was doing; the rollback leaves no VM and a deleted record that
    `gimme show` still explains."""

    kind, params, extra, expected = REPORTED[name]
    bed.engine.inject(kind, **params)
    before = set(records(env))
    started = time.monotonic()
    result = gimme(env, "create", "--k8s", "1.30", "--nodes", "2", extra=extra, check=False)
    seconds = time.monotonic() - started
    record = new_record(env, before)
    assert record is not None
    cluster_id = record["id"]
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and not re.search(r"^\s", result.stderr, re.M), result.stderr
    assert re.search(expected.format(id=cluster_id), errors[0]), errors[0]
    assert cluster_vms(bed, cluster_id) == []
    assert record["state"] == "deleted"
    shown = gimme(env, "show", cluster_id).stdout
    assert re.search(r"^error\s+.*" + expected.format(id=cluster_id), shown, re.M), shown
    print(f"\n{name}: reported (exit 4) and rolled back in {seconds:.1f}s: {errors[0]}")


def test_busy_engine_is_waited_out(bed: TestBed) -> None:
    """A start the engine refuses because the VM is still locked is 'not yet' (create polls
    and starts it later), not an error; once the lock is gone the same start succeeds."""
    from gimme.engine import CloudInit

    init = CloudInit(host_name="gimme-busy0001-1", user_name="ubuntu", authorized_key="k")
    bed.engine.set_delay_scale(0.5)  # the new image stays locked for a second
    try:
        with _engine(bed) as engine:
            vm_id = _tagged_vm(engine, "gimme-busy0001-1")
            bed.engine.set_delay_scale(0.02)
            assert engine.start_vm(vm_id, "gimme-busy0001-1", init) is False
            refused = [r for r in bed.engine.requests() if r["kind"] == "start"]
            assert [r["status"] for r in refused] == [409]
            wait_for("the lock to go", lambda: engine.vm_status(vm_id) == "down", poll=0.05)
            assert engine.start_vm(vm_id, "gimme-busy0001-1", init) is True
            assert (
                engine.delete_vms({vm_id: "gimme-busy0001-1"}, deadline=time.monotonic() + 30) == {}
            )
    finally:
        bed.engine.set_delay_scale(0.02)


def test_ctrl_c_rolls_back_and_says_how_to_clean_up(bed: TestBed, env: GimmeEnv) -> None:
    """SIGINT while the nodes run their prepare step: exit 130, a line saying how to clean
    up, and the rollback removed the VMs."""
    before = set(records(env))
    create = spawn(env, "create", "--k8s", "1.30", "--nodes", "2")
    try:
        record = wait_for("the creating record", lambda: new_record(env, before), timeout=30)
        cluster_id = record["id"]
        wait_for(
            "prepare running",
            lambda: (r := records(env)[cluster_id]) and KILL_POINTS["prepare"](bed, r),
        )
        interrupted = time.monotonic()
        create.send_signal(signal.SIGINT)
        _, stderr = create.communicate(timeout=60)
        seconds = time.monotonic() - interrupted
    finally:
        create.kill()
    print(f"\nSIGINT in prepare: exit {create.returncode} after {seconds:.1f}s")
    assert create.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr and "gimme reap" in stderr, stderr
    assert cluster_vms(bed, cluster_id) == []
    after = records(env)[cluster_id]
    assert (after["state"], after["error"]) == ("deleted", "interrupted")


def test_sigkill_during_rollback_then_reap_leaves_nothing(bed: TestBed, env: GimmeEnv) -> None:
    """A create killed while it rolls back a failure (its VMs powering down) leaves a record
    reap takes for abandoned once the grace period passes, keeping the failure's reason."""
    grace = {"GIMME_REAP_GRACE": str(GRACE), "GIMME_TIMEOUT_VM_IP": "2"}
    bed.engine.inject("no_ip", vm_name="gimme-*-2")
    before = set(records(env))
    create = spawn(env, "create", "--k8s", "1.30", "--nodes", "2", extra=grace)
    try:
        record = wait_for("the creating record", lambda: new_record(env, before), timeout=30)
        cluster_id = record["id"]
        wait_for(
            "both VMs up",
            lambda: [vm["status"] for vm in cluster_vms(bed, cluster_id)] == ["up", "up"],
        )
        bed.engine.set_delay_scale(1.0)  # powering down now takes a second
        try:
            wait_for("the rollback", lambda: _started(bed, "stop") or create.poll() is not None)
            os.kill(create.pid, signal.SIGKILL)
        finally:
            bed.engine.set_delay_scale(0.02)
    finally:
        create.kill()
        create.communicate()
    killed = records(env)[cluster_id]
    assert "did not report an IP" in (killed["error"] or ""), killed
    assert killed["state"] != "deleted" and len(cluster_vms(bed, cluster_id)) == 2
    wait_for(
        "an abandoned record",
        lambda: time.time() - records(env)[cluster_id]["heartbeat_at"] > GRACE + 0.2,
        poll=0.1,
    )
    reap = gimme(env, "reap", extra=grace)
    after = records(env)[cluster_id]
    print(
        f"\nSIGKILL in rollback ({killed['state']}): {len(cluster_vms(bed, cluster_id))} VM(s) "
        f"and {int(after['state'] in LIVE)} live record(s) after reap"
    )
    assert cluster_vms(bed, cluster_id) == [], reap.stderr
    assert after["state"] == "deleted" and "did not report an IP" in after["error"]


# -- reap ---------------------------------------------------------------------------------------


def _engine(bed: TestBed) -> Any:
    from gimme.config import EngineSettings, Secret
    from gimme.engine import Engine

    settings = EngineSettings(
        name="rack-1",
        url=bed.engine.url,
        username=bed.engine.username,
        password=Secret(bed.engine.password),
        ca_file=bed.engine.ca_file,
    )
    return Engine(settings, call_timeout=10)


def _tagged_vm(engine: Any, name: str) -> str:
    """A gimme-tagged VM that is never started (no node boots)."""
    from gimme.engine import CloudInit

    engine.ensure_tag("gimme")
    vm_id = engine.create_vm(
        name=name,
        cluster="rack-1",
        template=engine.find_template("ubuntu-22.04", "rack-1"),
        description="test",
        comment="",
        memory_mib=1024,
        cpus=1,
        cloud_init=CloudInit(host_name=name, user_name="ubuntu", authorized_key="ssh-ed25519 A"),
    )
    engine.tag_vm(vm_id, "gimme")
    return vm_id


def _record(cluster_id: str, **changes: Any) -> Any:
    import pwd
    from dataclasses import replace

    from gimme.store import ClusterRecord

    now = time.time()
    record = ClusterRecord(
        id=cluster_id,
        owner=pwd.getpwuid(os.getuid()).pw_name,
        owner_uid=os.getuid(),
        state="ready",
        foundation="ovirt-rack-1-ubuntu-22.04",
        engine="rack-1",
        spec={"k8s": "1.30", "cri": "containerd", "cni": "calico", "nodes": 2},
        created_at=now - 60,
        expires_at=now + 3600,
        heartbeat_at=now - 60,
    )
    return replace(record, **changes)


def _store(env: GimmeEnv) -> Any:
    from gimme.store import Store

    return Store(env.state)


def test_reap_plans_acts_once_per_item_and_is_idempotent(bed: TestBed, env: GimmeEnv) -> None:
    """--dry-run lists exactly what reap then does, changing nothing; reap deletes expired
    clusters and orphaned gimme VMs, marks records whose VMs vanished, logs one line for
    each; it spares live and held clusters, a create still running past its expiry, young
    and foreign VMs; a second run finds nothing to do."""
    from gimme.store import VmRecord

    store = _store(env)
    now = time.time()
    with _engine(bed) as engine:
        names = ("expired1", "held0001", "live0001", "inflight", "orphan01")
        vm = {name: _tagged_vm(engine, f"gimme-{name}-1") for name in names}
        vm["foreign"] = _tagged_vm(engine, "someone-elses-vm")
    for name, changes in {
        "expired1": {"expires_at": now - 5},
        "held0001": {"expires_at": now - 5, "hold_until": now + 3600},
        "live0001": {},
        # A create that outlived its TTL but still sends heartbeats: not reap's to touch.
        "inflight": {"state": "creating", "expires_at": now - 5, "heartbeat_at": now + 3600},
    }.items():
        store.insert(
            _record(name, vms=[VmRecord(f"gimme-{name}-1", vm[name], "127.0.10.250")], **changes)
        )
    store.insert(
        _record(
            "vanish01", vms=[VmRecord("gimme-vanish01-1", "0e4f0b1c-0000-4000-8000-000000000000")]
        )
    )
    bed.engine.clear_log()

    young = gimme(env, "reap", "--dry-run", extra={"GIMME_REAP_GRACE": "3600"}).stdout
    assert "orphan01" not in young  # younger than the grace period
    state_before = env.state.read_bytes()
    plan = gimme(env, "reap", "--dry-run", extra={"GIMME_REAP_GRACE": "0"}).stdout.splitlines()
    assert bed.engine.mutating_requests() == []
    assert env.state.read_bytes() == state_before
    print("\nreap --dry-run plan:\n  " + "\n  ".join(plan))
    assert sorted(plan) == sorted(
        [
            "delete cluster expired1 (root, ready)",
            "delete orphan VM gimme-orphan01-1",
            "mark cluster vanish01 deleted (its VMs vanished)",
        ]
    )

    reap = gimme(env, "reap", extra={"GIMME_REAP_GRACE": "0"})
    actions = [line.split(" ", 1)[1] for line in reap.stderr.splitlines()]
    assert actions == [
        "deleted expired cluster expired1",
        "deleting orphan VM gimme-orphan01-1",
        "cluster vanish01: its VMs vanished; record marked deleted",
        "reap: 1 cluster(s) deleted, 1 orphan VM(s), 1 vanished record(s), 0 failure(s)",
    ]
    shared = tuple(f"gimme-{cluster_id}-" for cluster_id in KEEP)  # spared too, not ours
    names = {v["name"] for v in bed.engine.vms() if not v["name"].startswith(shared)}
    spared = {"gimme-held0001-1", "gimme-live0001-1", "gimme-inflight-1", "someone-elses-vm"}
    assert names == spared
    states = {i: r["state"] for i, r in records(env).items()}
    assert [states[i] for i in ("expired1", "held0001", "live0001", "inflight", "vanish01")] == [
        "deleted", "ready", "ready", "creating", "deleted"
    ]  # fmt: skip

    bed.engine.clear_log()
    again = gimme(env, "reap", extra={"GIMME_REAP_GRACE": "0"})
    assert "0 cluster(s) deleted, 0 orphan VM(s), 0 vanished record(s)" in again.stderr
    assert bed.engine.mutating_requests() == []
    for name in ("held0001", "live0001", "inflight"):
        store.update(name, lambda r: dataclasses.replace(r, state="deleted"))


def test_second_reaper_exits_at_once(bed: TestBed, env: GimmeEnv) -> None:
    """While one reap holds the reap lock, another exits 0 at once, saying so, and asks the
    engine nothing."""
    import fcntl

    gimme(env, "list")  # the state directory exists
    fd = os.open(str(env.state) + ".reap.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        started = time.monotonic()
        result = gimme(env, "reap")
        assert time.monotonic() - started < 5
    finally:
        os.close(fd)
    assert "another gimme reap is running" in result.stderr
    assert bed.engine.requests() == []


# -- prolong and hold against reap --------------------------------------------------------------


def _context(env: GimmeEnv, **overrides: str) -> Any:
    from gimme.config import load_settings
    from gimme.core import Context

    environ = env.environ() | overrides
    return Context(settings=load_settings(env.config, environ))


def test_prolonged_or_held_cluster_is_not_reaped(bed: TestBed, env: GimmeEnv) -> None:
    """An expired cluster prolonged, or held (up to max_hold), before reap decides survives
    it; released from the hold it is reaped."""
    from gimme import core
    from gimme.errors import UsageError

    ctx = _context(env, GIMME_MAX_HOLD="1h")
    store = _store(env)
    store.insert(_record("prolong1", expires_at=time.time() - 1))
    store.insert(_record("hold0001", expires_at=time.time() - 1))
    core.prolong_cluster(ctx, "prolong1", "1h")
    with pytest.raises(UsageError, match="exceeds the configured maximum of 3600s"):
        core.hold_cluster(ctx, "hold0001", "2h")
    core.hold_cluster(ctx, "hold0001", "30m")
    report = core.reap(ctx)
    assert report.deleted == [] and not report.failed
    assert {records(env)[i]["state"] for i in ("prolong1", "hold0001")} == {"ready"}
    core.hold_cluster(ctx, "hold0001", "0")
    assert core.reap(ctx).deleted == ["hold0001"]
    core.delete_cluster(ctx, "prolong1")


def _race(ctx: Any, cluster_id: str) -> tuple[Any, Any]:
    """Start `prolong --ttl 1h` and `reap` together (each after 0-10 ms); their results."""
    import random

    from gimme import core
    from gimme.errors import UsageError

    start = threading.Barrier(2)
    result: dict[str, Any] = {}

    def prolong() -> None:
        start.wait()
        time.sleep(random.uniform(0, 0.01))
        try:
            result["prolong"] = core.prolong_cluster(ctx, cluster_id, "1h").state
        except UsageError as exc:
            result["prolong"] = exc

    def reap() -> None:
        start.wait()
        time.sleep(random.uniform(0, 0.01))
        result["reap"] = core.reap(ctx)

    threads = [threading.Thread(target=prolong), threading.Thread(target=reap)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result["prolong"], result["reap"]


def test_prolong_racing_reap_never_loses_a_prolonged_cluster(bed: TestBed, env: GimmeEnv) -> None:
    """Prolong and reap started together on an expired cluster: either the prolong wins and
    the cluster stays, or reap wins and the prolong is refused; never a successful prolong
    of a cluster reap then deletes."""
    from gimme import core

    ctx = _context(env)
    store = _store(env)
    outcomes = {"prolonged": 0, "reaped": 0}
    for n in range(25):
        cluster_id = f"race{n:04d}"
        store.insert(_record(cluster_id, expires_at=time.time() - 0.001))
        prolonged, reaped = _race(ctx, cluster_id)
        state = records(env)[cluster_id]["state"]
        if prolonged == "ready":
            assert state == "ready" and cluster_id not in reaped.deleted
            outcomes["prolonged"] += 1
            core.delete_cluster(ctx, cluster_id)
        else:
            assert "can no longer be prolonged" in str(prolonged)
            assert state == "deleted" and reaped.deleted == [cluster_id]
            outcomes["reaped"] += 1
    print(f"\nprolong vs reap, 25 races: {outcomes}")
    assert outcomes["prolonged"] and outcomes["reaped"], "the two never really raced"


# -- SSH ----------------------------------------------------------------------------------------


def _node(env: GimmeEnv, record: dict[str, Any], index: int, **kwargs: Any) -> Any:
    from gimme.remote import Node

    cdir = env.home / ".local/share/gimme/clusters" / record["id"]
    vm = record["vms"][index]
    return Node(
        vm["name"], vm["address"], "ubuntu", cdir / "id_ed25519", cdir / "known_hosts", **kwargs
    )


def test_changed_host_key_is_refused_without_retrying(
    survivor: dict[str, Any], env: GimmeEnv
) -> None:
    """With node 1's known_hosts entry replaced by another key, `gimme ssh` and Node.connect
    refuse at once with the host-key error; the same call works with the right key."""
    from gimme.errors import RemoteError
    from gimme.remote import generate_keypair

    cluster_id = survivor["id"]
    record = records(env)[cluster_id]
    assert gimme(env, "ssh", cluster_id, "2", "--", "hostname").stdout.strip() == (
        f"gimme-{cluster_id}-2"
    )
    known_hosts = env.home / ".local/share/gimme/clusters" / cluster_id / "known_hosts"
    original = known_hosts.read_text()
    address = record["vms"][0]["address"]
    other = generate_keypair(env.home / "other_host_key").split()
    lines = original.splitlines()
    assert sum(line.startswith(f"{address} ") for line in lines) == 1
    forged = [
        f"{address} {other[0]} {other[1]}" if line.startswith(f"{address} ") else line
        for line in lines
    ]
    known_hosts.write_text("\n".join(forged) + "\n")
    try:
        result = gimme(env, "ssh", cluster_id, "1", "--", "true", check=False)
        assert result.returncode == 255
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr
        node = _node(env, record, 0)
        started = time.monotonic()
        with pytest.raises(RemoteError, match="host key changed since first contact; refusing"):
            node.connect(deadline=time.monotonic() + 30)
        assert time.monotonic() - started < 3, "the changed key was retried"
    finally:
        known_hosts.write_text(original)
    node = _node(env, record, 0)
    node.connect(deadline=time.monotonic() + 10)
    node.close()


def test_ssh_connect_retries_until_the_node_boots(
    survivor: dict[str, Any], env: GimmeEnv, bed: TestBed
) -> None:
    """Node.connect to a node that is powered off keeps trying until the node is back (its
    host key still verified) instead of failing on the first refused connection."""
    record = records(env)[survivor["id"]]
    vm_id = record["vms"][1]["id"]
    connection = bed.engine.connection()
    service = connection.system_service().vms_service().vm_service(vm_id)
    try:
        service.stop()
        wait_for("the node to stop", lambda: service.get().status.value == "down", poll=0.05)
        assert not bed.pool.node(vm_id).running()
        node = _node(env, record, 1)
        outcome: dict[str, Any] = {}

        def connect() -> None:
            try:
                node.connect(deadline=time.monotonic() + 60)
                outcome["connected"] = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - reported below
                outcome["error"] = exc

        thread = threading.Thread(target=connect)
        thread.start()
        time.sleep(1.0)  # let it meet the powered-off node
        assert not outcome, outcome
        restarted = time.monotonic()
        service.start()
        thread.join(timeout=60)
    finally:
        connection.close()
    assert "connected" in outcome, outcome
    assert outcome["connected"] > restarted
    assert bed.pool.node(vm_id).address == record["vms"][1]["address"]
    assert node.run("hostname", step="check", timeout=10).output.strip() == record["vms"][1]["name"]
    node.close()


def test_reading_a_file_from_a_node_has_a_deadline(survivor: dict[str, Any], env: GimmeEnv) -> None:
    """Fetching a root-only file (how create gets admin.conf) from a node where the read
    never ends fails at its deadline with an error naming the node and the file."""
    from gimme.errors import RemoteError

    record = records(env)[survivor["id"]]
    node = _node(env, record, 0)
    node.connect(deadline=time.monotonic() + 10)
    fifo = "/tmp/gimme-test-fifo"  # no writer: `cat` on it blocks forever
    node.run(f"rm -f {fifo} && mkfifo {fifo}", step="fifo", timeout=10)
    outcome: dict[str, Any] = {}

    def read() -> None:
        try:
            outcome["data"] = node.read_root_file(fifo, timeout=2)
        except RemoteError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=read, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(timeout=20)
    seconds = time.monotonic() - started
    node.close()
    assert not thread.is_alive(), "the read never ended"
    assert "error" in outcome, outcome
    assert f"{record['vms'][0]['name']}: reading {fifo}" in str(outcome["error"])
    assert 2 <= seconds < 10


def test_uploading_to_a_node_has_a_deadline(survivor: dict[str, Any], env: GimmeEnv) -> None:
    """An upload (how every step's script reaches its node) that the node never completes
    fails at its deadline with an error naming the node and the path."""
    from gimme.errors import RemoteError

    record = records(env)[survivor["id"]]
    node = _node(env, record, 0)
    node.connect(deadline=time.monotonic() + 10)
    fifo = "/tmp/gimme-test-upload-fifo"  # no reader: the node's open for writing never returns
    node.run(f"rm -f {fifo} && mkfifo {fifo}", step="fifo", timeout=10)
    outcome: dict[str, Any] = {}

    def upload() -> None:
        try:
            node.put(b"data", fifo, 0o600, timeout=2)
            outcome["done"] = True
        except RemoteError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=upload, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(timeout=20)
    seconds = time.monotonic() - started
    assert not thread.is_alive(), "the upload never ended"
    node.close()
    assert "error" in outcome, outcome
    assert f"{record['vms'][0]['name']}: uploading {fifo}" in str(outcome["error"])
    assert 2 <= seconds < 10


def test_node_lost_during_a_step_is_reported_as_such(
    survivor: dict[str, Any], env: GimmeEnv, bed: TestBed
) -> None:
    """A node that powers off in the middle of a step ends the step at once with an error
    saying the connection was lost, not with a made-up exit code."""
    from gimme.errors import RemoteError

    record = records(env)[survivor["id"]]
    node = _node(env, record, 1)
    node.connect(deadline=time.monotonic() + 30)
    connection = bed.engine.connection()
    service = connection.system_service().vms_service().vm_service(record["vms"][1]["id"])
    try:
        running = threading.Thread(target=lambda: time.sleep(1.5) or service.stop())
        running.start()
        started = time.monotonic()
        with pytest.raises(RemoteError) as failure:
            node.run_script("sleeper", "sleep 60", {}, timeout=60)
        seconds = time.monotonic() - started
        running.join()
        wait_for("the node to stop", lambda: service.get().status.value == "down", poll=0.05)
        service.start()
        wait_for("the node to boot", lambda: bed.pool.node(service.get().id).running(), poll=0.05)
    finally:
        connection.close()
        node.close()
    message = str(failure.value)
    assert message.startswith(
        f"{record['vms'][1]['name']}: step 'sleeper' failed (SSH connection lost)"
    )
    assert seconds < 15


# -- remote steps: deadlines and failures ---------------------------------------------------------

STEP_TIMEOUT = 12  # longer than any healthy step of a 2-node create on the test bed


def _token_secrets(bed: TestBed, record: dict[str, Any]) -> list[str]:
    """The bootstrap token secrets the control plane's (emulated) API server issued."""
    data = bed.pool.node(record["vms"][0]["id"]).read_file("/var/lib/gimme-testbed/apiserver.json")
    assert data is not None
    tokens = json.loads(data)["tokens"]
    return [f"{token_id}.{token['secret']}" for token_id, token in tokens.items()]


@pytest.fixture(scope="module")
def hung(bed: TestBed, env: GimmeEnv) -> dict[str, Any]:
    """A create whose `kubeadm token create` (the end of the init step, after kubeadm init
    printed the join command) never returns, with GIMME_TIMEOUT_STEP=12."""
    before = set(records(env))
    bed.pool.command_latency = {"kubeadm token": 3600}
    started = time.monotonic()
    try:
        result = gimme(
            env,
            "create",
            "--k8s",
            "1.30",
            "--nodes",
            "2",
            extra={"GIMME_TIMEOUT_STEP": str(STEP_TIMEOUT)},
            check=False,
        )
    finally:
        bed.pool.command_latency = {}
    record = new_record(env, before)
    assert record is not None, result.stderr
    assert result.returncode == 5, result.stderr
    return {
        "result": result,
        "seconds": time.monotonic() - started,
        "record": record,
        "tokens": _token_secrets(bed, record),
        "vms": cluster_vms(bed, record["id"]),
    }


def test_hung_step_fails_at_its_deadline_naming_node_and_step(
    hung: dict[str, Any], env: GimmeEnv
) -> None:
    """A step that never ends is stopped at GIMME_TIMEOUT_STEP: exit 5, an error naming the
    node and the step with its last output lines, and the VMs rolled back."""
    result, record = hung["result"], hung["record"]
    cluster_id = record["id"]
    print(f"\nhung init step: exit {result.returncode} after {hung['seconds']:.1f}s")
    assert result.returncode == 5, result.stderr
    errors = error_lines(result.stderr)
    assert errors == [
        f"gimme: error: gimme-{cluster_id}-1: step 'init' failed (timed out); last output:"
    ]
    tail = result.stderr.split(errors[0] + "\n", 1)[1].splitlines()
    assert tail and all(line.startswith("  ") for line in tail)
    assert any("kubeadm join" in line for line in tail)
    phases = records(env)[cluster_id]["phases"]
    assert hung["seconds"] >= phases["vms"] + phases["prepare"] + STEP_TIMEOUT
    assert hung["seconds"] < phases["vms"] + phases["prepare"] + STEP_TIMEOUT + 15
    assert hung["vms"] == [] and records(env)[cluster_id]["state"] == "deleted"


def test_failed_step_reports_node_step_and_last_lines(bed: TestBed, env: GimmeEnv) -> None:
    """A prepare step that fails (the package mirror cannot be reached) ends the create with
    exit 5 and an error naming the node, the step, the exit code and the output's tail."""

    before = set(records(env))
    offline = {"GIMME_MIRROR_PACKAGES": "https://pkgs.mirror.invalid"}
    result = gimme(env, "create", "--k8s", "1.30", "--nodes", "2", extra=offline, check=False)
    record = new_record(env, before)
    assert record is not None
    assert result.returncode == 5, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    pattern = rf"gimme: error: gimme-{record['id']}-[12]: step 'prepare' failed \(exit code \d+\); last output:"
    assert re.fullmatch(pattern, errors[0]), errors[0]
    tail = result.stderr.split(errors[0], 1)[1]
    assert "pkgs.mirror.invalid" in tail and "Traceback" not in result.stderr
    assert cluster_vms(bed, record["id"]) == []
    print(f"\nfailed prepare: {errors[0]}\n{tail.rstrip()[-300:]}")


# -- security -----------------------------------------------------------------------------------


def _files(env: GimmeEnv) -> dict[Path, bytes]:
    """Every file under the gimme home (state, logs, keys, ...) but the password file."""
    return {
        path: path.read_bytes()
        for path in env.home.rglob("*")
        if path.is_file() and path.name != "engine.password"
    }


def test_secrets_never_appear_and_private_files_stay_private(
    survivor: dict[str, Any], hung: dict[str, Any], bed: TestBed, env: GimmeEnv
) -> None:
    """After a create, a failed create and a delete, neither the engine password nor any
    bootstrap token secret appears in anything gimme printed or wrote (the join command is
    logged with the secret masked); keys, known_hosts, kubeconfig and logs are 0600."""
    import stat

    cluster_id = survivor["id"]
    record = records(env)[cluster_id]
    secrets = [bed.engine.password, *_token_secrets(bed, record), *hung["tokens"]]
    assert len(secrets) >= 3 and all(len(s) >= 16 for s in secrets)

    cdir = env.home / ".local/share/gimme/clusters" / cluster_id
    assert stat.S_IMODE(cdir.stat().st_mode) == 0o700
    for name in ("id_ed25519", "known_hosts", "kubeconfig", "bootstrap.log"):
        assert stat.S_IMODE((cdir / name).stat().st_mode) == 0o600, name
    failed_log = env.home / ".local/share/gimme/clusters" / hung["record"]["id"] / "bootstrap.log"
    assert stat.S_IMODE(failed_log.stat().st_mode) == 0o600
    masked = re.compile(r"kubeadm join \S+ --token [a-z0-9]{6}\.\*{16}")
    for log in (cdir / "bootstrap.log", failed_log):
        assert masked.search(log.read_text()), f"no masked join command in {log}"
    assert masked.search(hung["result"].stderr), "the failed init's output tail lost the join line"

    results = [survivor["create"], *survivor["reaps"], hung["result"]]
    for args in (["show", cluster_id, "--json"], ["show", hung["record"]["id"]], ["list", "--all"]):
        results.append(gimme(env, *args))
    results.append(gimme(env, "config", "show"))
    files = _files(env)  # before the delete removes the cluster's key, kubeconfig, ...
    results.append(gimme(env, "delete", cluster_id))
    KEEP.discard(cluster_id)
    printed = "".join(r.stdout + r.stderr for r in results)
    files |= _files(env)
    assert {env.state, failed_log, cdir / "kubeconfig", cdir / "id_ed25519"} <= set(files)
    for secret in secrets:
        assert secret not in printed
        for path, data in files.items():
            assert secret.encode() not in data, f"a secret in {path}"
    print(f"\nsecrets: {len(secrets)} checked in {len(printed)} chars printed, {len(files)} files")


@pytest.mark.parametrize(
    "args",
    [
        ["delete", "mallory1"],
        ["prolong", "mallory1", "--ttl", "2h"],
        ["hold", "mallory1", "--for", "1h"],
    ],
)
def test_another_users_cluster_is_refused_before_the_engine(
    bed: TestBed, env: GimmeEnv, args: list[str]
) -> None:
    """delete, prolong and hold of another user's cluster exit 2 with one line and ask the
    engine nothing; the record is unchanged."""
    from gimme.store import NotFoundError, VmRecord

    store = _store(env)
    try:
        store.get("mallory1")
    except NotFoundError:
        vm = VmRecord("gimme-mallory1-1", "5f0c3d7e-0000-4000-8000-000000000001", "127.0.10.251")
        store.insert(_record("mallory1", owner="mallory", owner_uid=4242, vms=[vm]))
    before = records(env)["mallory1"]
    result = gimme(env, *args, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"gimme: error: cluster mallory1 belongs to mallory; use --force to {args[0]} it anyway"
    ]
    assert bed.engine.mutating_requests() == []
    assert records(env)["mallory1"] == before


def test_tls_is_verified_by_default(bed: TestBed, env: GimmeEnv, tmp_path: Path) -> None:
    """Without the engine's CA a create fails at once with a TLS error (exit 4, not retried);
    with an explicit `insecure: true` the same engine is usable."""
    import yaml

    config = yaml.safe_load(env.config.read_text())
    del config["engines"]["rack-1"]["ca_file"]
    no_ca = tmp_path / "no-ca.yaml"
    no_ca.write_text(yaml.safe_dump(config))
    started = time.monotonic()
    before = set(records(env))
    result = gimme(env, "create", "--nodes", "2", extra={"GIMME_CONFIG": str(no_ca)}, check=False)
    seconds = time.monotonic() - started
    print(f"\nno CA: exit {result.returncode} after {seconds:.1f}s: {error_lines(result.stderr)}")
    assert result.returncode == 4, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "certificate" in errors[0].lower(), result.stderr
    assert seconds < 6, "the TLS failure was retried"  # 5 retries take 7.75 s or more
    assert bed.engine.requests() == []  # no request got past the handshake
    record = new_record(env, before)
    if record is not None:  # the record the create inserted before its first engine call
        gimme(env, "delete", record["id"])

    config["engines"]["rack-1"]["insecure"] = True
    insecure = tmp_path / "insecure.yaml"
    insecure.write_text(yaml.safe_dump(config))
    shown = gimme(env, "foundations", "--json", extra={"GIMME_CONFIG": str(insecure)}).stdout
    rows = {row["name"]: row for row in json.loads(shown)}
    assert rows["ovirt-rack-1-ubuntu-22.04"]["available"] == "yes"
    assert bed.engine.requests() != []


@pytest.mark.parametrize("where", ["config", "password_file"])
def test_open_password_files_are_refused(env: GimmeEnv, tmp_path: Path, where: str) -> None:
    """A config file holding the password, or a password file, readable by others is refused
    (exit 2, naming the file) before anything else happens."""
    import yaml

    config = yaml.safe_load(env.config.read_text())
    path = tmp_path / "config.yaml"
    if where == "config":
        config["engines"]["rack-1"]["password"] = "not-shown-anywhere"
        del config["engines"]["rack-1"]["password_file"]
        exposed = path
    else:
        exposed = tmp_path / "password"
        exposed.write_text("not-shown-anywhere")
        config["engines"]["rack-1"]["password_file"] = str(exposed)
    path.write_text(yaml.safe_dump(config))
    os.chmod(exposed, 0o644)
    result = gimme(env, "list", extra={"GIMME_CONFIG": str(path)}, check=False)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        f"gimme: error: {exposed} holds an engine password but is readable by others "
        f"(mode 644); run: chmod 600 {exposed}"
    ]
    assert "not-shown-anywhere" not in result.stdout + result.stderr


HOSTILE = "x'$(touch /tmp/gimme-pwned)`touch /tmp/gimme-pwned`;touch /tmp/gimme-pwned \"\\"


def test_user_values_reach_the_remote_shell_quoted(env: GimmeEnv, tmp_path: Path) -> None:
    """Mirror settings full of shell syntax are set verbatim by every rendered step's
    header and run nothing (the header is executed here, in bash)."""
    from gimme import core
    from gimme.spec import build_spec

    ctx = _context(
        env,
        GIMME_MIRROR_PACKAGES="https://p.example/" + HOSTILE,
        GIMME_MIRROR_MANIFESTS="https://m.example/" + HOSTILE,
        GIMME_MIRROR_IMAGES="r.example:5000/" + HOSTILE,
        GIMME_MIRROR_HTTP_PROXY="http://proxy.example:3128/" + HOSTILE,
        GIMME_MIRROR_NO_PROXY=HOSTILE,
    )
    marker = Path("/tmp/gimme-pwned")
    marker.unlink(missing_ok=True)
    spec = build_spec(foundation="ovirt-rack-1-ubuntu-22.04", k8s="1.30", cni="calico", nodes=2)
    plan = core.make_plan(ctx, spec)
    checked = 0
    for steps in plan.steps.values():
        for step in steps:
            header = step.script.split("\n# --- ", 1)[0]
            names = re.findall(r"^readonly ([A-Z_0-9]+)=", header, re.M)
            show = "".join(f'printf "%s\\0" "${name}"\n' for name in names)
            run = subprocess.run(
                ["bash", "-c", header.replace("set -euo pipefail", "set -eu") + show],
                capture_output=True,
                cwd=tmp_path,
                check=True,
            )
            values = run.stdout.decode().split("\0")[:-1]
            assert len(values) == len(names)
            checked += sum(HOSTILE in value for value in values)
            assert not marker.exists(), f"{step.phase}: a mirror value ran as a command"
    assert checked >= 5


def test_search_values_are_never_spliced_into_engine_queries(
    bed: TestBed, env: GimmeEnv, tmp_path: Path
) -> None:
    """A foundation whose template name carries search syntax is refused before the engine
    is searched for it (exit 4, one line); no engine query contains it."""
    import yaml

    config = yaml.safe_load(env.config.read_text())
    config["foundations"] = {
        "evil": {
            "engine": "rack-1",
            "cluster": "rack-1",
            "template": "x or name=*",
            "os": "ubuntu-22.04",
        }
    }
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump(config))
    os.chmod(path, 0o600)
    before = set(records(env))
    result = gimme(
        env, "create", "--foundation", "evil", extra={"GIMME_CONFIG": str(path)}, check=False
    )
    assert result.returncode == 4, result.stderr
    assert error_lines(result.stderr) == [
        "gimme: error: refusing to search the engine for 'x or name=*': unexpected characters"
    ]
    queries = [q for r in bed.engine.requests() for q in r["query"].get("search", [])]
    assert not any("x or" in q for q in queries), queries
    record = new_record(env, before)
    assert record is not None and record["state"] == "deleted"
