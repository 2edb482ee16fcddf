"""The shared state file: TinyDB made safe for many processes.

Every read-modify-write runs under an exclusive flock on a sidecar lock file, with a
fresh TinyDB object, and the file is replaced atomically (temp file + fsync + rename).
TinyDB alone is not multi-process safe; its own docs say so.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from gimme.errors import NotFoundError, StateError

SCHEMA_VERSION = 1
FILE_MODE = 0o660
_META, _CLUSTERS = "meta", "clusters"

CREATING, READY, FAILED, DELETING, DELETED = "creating", "ready", "failed", "deleting", "deleted"
LIVE_STATES = (CREATING, READY, FAILED, DELETING)


@dataclass
class VmRecord:
    name: str
    id: str | None = None
    address: str | None = None


@dataclass
class ClusterRecord:
    """One cluster as the state file knows it. No secrets live here."""

    id: str
    owner: str
    owner_uid: int
    state: str
    foundation: str
    engine: str
    spec: dict[str, Any]
    created_at: float
    expires_at: float
    heartbeat_at: float
    vms: list[VmRecord] = field(default_factory=list)
    hold_until: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    worker: str | None = None
    deleted_at: float | None = None

    @property
    def control_plane(self) -> str | None:
        return self.vms[0].address if self.vms else None

    def expired(self, now: float) -> bool:
        if self.hold_until and self.hold_until > now:
            return False
        return self.expires_at <= now

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ClusterRecord:
        data = dict(doc)
        data["vms"] = [VmRecord(**vm) for vm in data.get("vms", [])]
        return cls(**data)


class _AtomicJSONStorage(Storage):
    """JSON storage that never leaves a half-written file behind."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc.strerror}") from None
        if not text.strip():
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            copy = _keep_copy(self.path)
            raise StateError(
                f"state file {self.path} is corrupt ({exc.msg} at line {exc.lineno}); "
                f"a copy was kept at {copy}; repair or move it away"
            ) from None
        if not isinstance(data, dict):
            copy = _keep_copy(self.path)
            raise StateError(f"state file {self.path} is not a gimme state file (copy at {copy})")
        return data

    def write(self, data: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, separators=(",", ":"))
                fh.flush()
                os.fchmod(fh.fileno(), FILE_MODE)
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with _suppress_missing():
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        pass


@contextmanager
def _suppress_missing() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        pass


def _keep_copy(path: Path) -> Path:
    copy = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
    shutil.copy2(path, copy)
    return copy


class Store:
    """Transactions on the shared state file; hold them only for quick state changes."""

    def __init__(self, path: Path, *, lock_timeout: float = 30.0) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.lock_timeout = lock_timeout

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        self._ensure_dir()
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise StateError(f"cannot open lock file {self.lock_path}: {exc.strerror}") from None
        try:
            deadline = time.monotonic() + self.lock_timeout
            delay = 0.005
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                if time.monotonic() >= deadline:
                    raise StateError(
                        f"state file {self.path} stayed locked for {self.lock_timeout:.0f}s; "
                        "another gimme may be stuck"
                    )
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
            yield
        finally:
            os.close(fd)

    def _ensure_dir(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"cannot create state directory {self.path.parent}: {exc.strerror}; "
                "set GIMME_STATE or 'state' in the config"
            ) from None

    def _open(self) -> TinyDB:
        db = TinyDB(self.path, storage=_AtomicJSONStorage)
        meta = db.table(_META)
        stamp = meta.get(doc_id=1)
        version = stamp["schema"] if stamp else None
        if version is None:
            meta.insert({"schema": SCHEMA_VERSION})
        elif version > SCHEMA_VERSION:
            raise StateError(
                f"state file {self.path} has schema {version}; this gimme reads up to "
                f"{SCHEMA_VERSION}: upgrade gimme"
            )
        return db

    @contextmanager
    def transaction(self) -> Iterator[Table]:
        """Exclusive read-modify-write of the clusters table."""
        with self._locked(fcntl.LOCK_EX):
            db = self._open()
            try:
                yield db.table(_CLUSTERS)
            finally:
                db.close()

    def records(self) -> list[ClusterRecord]:
        """All records, read once under a shared lock."""
        with self._locked(fcntl.LOCK_SH):
            data = _AtomicJSONStorage(self.path).read() or {}
        meta = data.get(_META, {}).get("1", {})
        if meta.get("schema", SCHEMA_VERSION) > SCHEMA_VERSION:
            raise StateError(f"state file {self.path} was written by a newer gimme: upgrade gimme")
        return [ClusterRecord.from_doc(d) for d in data.get(_CLUSTERS, {}).values()]

    def get(self, cluster_id: str) -> ClusterRecord:
        for record in self.records():
            if record.id == cluster_id:
                return record
        raise NotFoundError(f"no cluster with id {cluster_id!r} (see `gimme list`)")

    def insert(self, record: ClusterRecord) -> None:
        with self.transaction() as table:
            table.insert(record.to_doc())

    def update(
        self, cluster_id: str, change: Callable[[ClusterRecord], ClusterRecord | None]
    ) -> ClusterRecord:
        """Apply `change` to the current record under the lock; returning None skips the write."""
        with self.transaction() as table:
            docs = table.search(Query().id == cluster_id)
            if not docs:
                raise NotFoundError(f"no cluster with id {cluster_id!r} (see `gimme list`)")
            current = ClusterRecord.from_doc(docs[0])
            changed = change(current)
            if changed is not None:
                table.update(changed.to_doc(), doc_ids=[docs[0].doc_id])
                return changed
            return current

    def claim(
        self,
        select: Callable[[ClusterRecord], bool],
        change: Callable[[ClusterRecord], ClusterRecord],
    ) -> list[ClusterRecord]:
        """Atomically change every record `select` picks; returns the changed records."""
        claimed = []
        with self.transaction() as table:
            for doc in table.all():
                record = ClusterRecord.from_doc(doc)
                if select(record):
                    record = change(record)
                    table.update(record.to_doc(), doc_ids=[doc.doc_id])
                    claimed.append(record)
        return claimed
