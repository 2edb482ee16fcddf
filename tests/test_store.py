from __future__ import annotations

import json
import multiprocessing
import os
import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest

from gimme.errors import NotFoundError, StateError
from gimme.store import CREATING, READY, SCHEMA_VERSION, ClusterRecord, Store, VmRecord

PROCESSES, OPERATIONS = 8, 100


def _record(cluster_id: str, **changes: object) -> ClusterRecord:
    now = time.time()
    record = ClusterRecord(
        id=cluster_id,
        owner="alice",
        owner_uid=1000,
        state=CREATING,
        foundation="ovirt-rack-1-ubuntu-22.04",
        engine="rack-1",
        spec={"k8s": "1.30"},
        created_at=now,
        expires_at=now + 3600,
        heartbeat_at=now,
        vms=[VmRecord(name=f"gimme-{cluster_id}-1")],
    )
    return replace(record, **changes)


def test_round_trip_and_update(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.json")
    store.insert(_record("aaaaaaaa"))
    updated = store.update("aaaaaaaa", lambda r: replace(r, state=READY))
    assert updated.state == READY
    assert store.get("aaaaaaaa").state == READY
    assert store.get("aaaaaaaa").vms[0].name == "gimme-aaaaaaaa-1"
    with pytest.raises(NotFoundError):
        store.get("bbbbbbbb")
    data = json.loads((tmp_path / "state.json").read_text())
    assert data["meta"]["1"]["schema"] == SCHEMA_VERSION
    assert stat.S_IMODE(os.stat(tmp_path / "state.json").st_mode) == 0o660


def _hammer(path: str, worker: int) -> None:
    store = Store(Path(path), lock_timeout=60)
    for op in range(OPERATIONS):
        if op % 2 == 0:
            store.insert(_record(f"{worker}{op:07d}"))
        else:
            store.update(f"{worker}{op - 1:07d}", lambda r: replace(r, state=READY))
        json.loads(Path(path).read_text())  # readers never see a partial file


def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(str(path), w)) for w in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    records = Store(path).records()
    assert len(records) == PROCESSES * OPERATIONS // 2
    assert all(r.state == READY for r in records)
    print(f"{PROCESSES} processes x {OPERATIONS} operations: {len(records)} records, 0 lost")


def test_corrupt_file_is_kept_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"clusters": {"1": {"id": "a"')
    store = Store(path)
    with pytest.raises(StateError, match="is corrupt") as info:
        store.records()
    assert str(path) in str(info.value)
    copies = list(tmp_path.glob("state.json.corrupt-*"))
    assert copies and copies[0].read_text() == path.read_text()
    with pytest.raises(StateError):
        store.insert(_record("aaaaaaaa"))
    assert path.read_text() == '{"clusters": {"1": {"id": "a"'  # never silently reset


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"meta": {"1": {"schema": SCHEMA_VERSION + 1}}, "clusters": {}}))
    with pytest.raises(StateError, match="newer gimme"):
        Store(path).records()
    with pytest.raises(StateError, match="upgrade gimme"):
        Store(path).insert(_record("aaaaaaaa"))


def test_lock_wait_is_bounded(tmp_path: Path) -> None:
    import fcntl

    store = Store(tmp_path / "state.json", lock_timeout=0.3)
    store.insert(_record("aaaaaaaa"))
    fd = os.open(store.lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        with pytest.raises(StateError, match="stayed locked"):
            store.update("aaaaaaaa", lambda r: r)
        assert time.monotonic() - started < 2
    finally:
        os.close(fd)


def test_claim_is_atomic_selection(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.json")
    store.insert(_record("aaaaaaaa", state=READY, expires_at=time.time() - 1))
    store.insert(_record("bbbbbbbb", state=READY))
    claimed = store.claim(lambda r: r.expired(time.time()), lambda r: replace(r, state="deleting"))
    assert [r.id for r in claimed] == ["aaaaaaaa"]
    assert store.get("aaaaaaaa").state == "deleting"
    assert store.get("bbbbbbbb").state == READY
