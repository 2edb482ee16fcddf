"""Cluster lifecycles: create, delete, prolong, hold, reap. No CLI or terminal code here.

The engine adapter and the SSH runner are imported inside the functions that need them,
so listing clusters never loads ovirtsdk4 or paramiko.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import pwd
import re
import secrets
import socket
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gimme import kubeconfig
from gimme.config import Settings
from gimme.errors import (
    EngineError,
    GimmeError,
    NotOwnerError,
    RemoteError,
    SpecError,
    UsageError,
)
from gimme.files import ClusterLog, generate_keypair, private_dir, write_private
from gimme.spec import ClusterSpec, parse_ttl
from gimme.store import (
    CREATING,
    DELETED,
    DELETING,
    FAILED,
    LIVE_STATES,
    READY,
    ClusterRecord,
    Store,
    VmRecord,
)

if TYPE_CHECKING:
    from gimme.engine import CloudInit, Engine, VmInfo
    from gimme.profiles import Foundation, OsProfile
    from gimme.remote import Node
    from gimme.render import Step

ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 8
ID_RE = re.compile(rf"^[a-z0-9]{{{ID_LENGTH}}}$")
VM_NAME_RE = re.compile(rf"^gimme-([a-z0-9]{{{ID_LENGTH}}})-(\d+)$")
GIMME_TAG = "gimme"
REAP_CONNECTIONS = 8  # engine connections (and threads) one reap deletes through


class Reporter(Protocol):
    """Where lifecycle progress goes; the CLI draws it, tests record it."""

    def phase(self, name: str) -> None: ...

    def node(self, node: str, message: str) -> None: ...

    def info(self, message: str) -> None: ...


class SilentReporter:
    def phase(self, name: str) -> None:
        pass

    def node(self, node: str, message: str) -> None:
        pass

    def info(self, message: str) -> None:
        pass


@dataclass
class Context:
    """What every lifecycle needs: settings, the shared store, who is asking."""

    settings: Settings
    reporter: Reporter = field(default_factory=SilentReporter)
    user: str = field(default_factory=lambda: pwd.getpwuid(os.getuid()).pw_name)
    uid: int = field(default_factory=os.getuid)

    @property
    def store(self) -> Store:
        return Store(self.settings.state, lock_timeout=self.settings.timeouts.lock)

    def cluster_dir(self, cluster_id: str) -> Path:
        from platformdirs import user_data_path

        return user_data_path("gimme") / "clusters" / cluster_id


@dataclass(frozen=True)
class Plan:
    """Everything `create` will do, decided before the first engine call."""

    spec: ClusterSpec
    foundation: Foundation
    os: OsProfile
    steps: dict[str, list[Step]]  # role -> steps

    def step(self, role: str, phase: str) -> Step:
        return next(s for s in self.steps[role] if s.phase == phase)


def make_plan(ctx: Context, spec: ClusterSpec) -> Plan:
    """Resolve the foundation and OS profile, check the matrix, render every step."""
    from gimme.profiles import load_foundations, load_os_profiles
    from gimme.render import Mirrors, render

    foundations = load_foundations(ctx.settings.foundations)
    if spec.foundation not in foundations:
        raise SpecError(
            f"unknown foundation {spec.foundation!r} (see `gimme foundations`; "
            f"known: {', '.join(sorted(foundations))})"
        )
    foundation = foundations[spec.foundation]
    os_profile = load_os_profiles()[foundation.os]
    mirrors = Mirrors(**ctx.settings.mirrors)
    steps = {role: render(spec, os_profile, role, mirrors) for role in ("control", "worker")}
    return Plan(spec=spec, foundation=foundation, os=os_profile, steps=steps)


def check_id(cluster_id: str) -> str:
    if not ID_RE.match(cluster_id):
        raise UsageError(f"invalid cluster id {cluster_id!r}: ids are {ID_LENGTH} letters/digits")
    return cluster_id


def _new_id(existing: set[str]) -> str:
    while True:
        cluster_id = "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))
        if cluster_id not in existing:
            return cluster_id


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def _heartbeat(ctx: Context, cluster_id: str) -> Iterator[None]:
    """Refresh the record's heartbeat while this process creates or deletes it.

    reap takes a creating or deleting record whose heartbeat is older than reap_grace for
    abandoned; a long step or a slow VM removal must not look like a dead process.
    """
    worker = _worker()
    interval = min(30.0, max(0.1, ctx.settings.reap_grace / 4))
    stop = threading.Event()

    def beat(r: ClusterRecord) -> ClusterRecord | None:
        if r.worker != worker or r.state not in (CREATING, DELETING):
            return None  # no longer ours (reaped, finished or failed)
        return replace(r, heartbeat_at=time.time())

    def run() -> None:
        while not stop.wait(interval):
            try:
                ctx.store.update(cluster_id, beat)
            except GimmeError:
                pass  # a busy state file: the next beat tries again

    thread = threading.Thread(target=run, name=f"heartbeat-{cluster_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _description(record: ClusterRecord) -> str:
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.expires_at))
    return f"gimme cluster={record.id} owner={record.owner} expires={expires}"


def foundations_report(ctx: Context) -> list[dict[str, str]]:
    """Every foundation, and whether its engine has its template (an unreachable engine is reported)."""
    from gimme.engine import Engine
    from gimme.profiles import load_foundations

    foundations = load_foundations(ctx.settings.foundations)
    templates: dict[str, set[str] | str] = {}
    for engine_name in sorted({f.engine for f in foundations.values()}):
        if engine_name not in ctx.settings.engines:
            templates[engine_name] = "engine not configured"
            continue
        try:
            with Engine(ctx.settings.engine(engine_name), call_timeout=30) as engine:
                templates[engine_name] = engine.template_names()
        except GimmeError as exc:
            templates[engine_name] = f"engine unreachable: {exc}"
    rows = []
    for f in sorted(foundations.values(), key=lambda f: f.name):
        known = templates[f.engine]
        available = (
            known if isinstance(known, str) else ("yes" if f.template in known else "no template")
        )
        rows.append(
            {
                "name": f.name,
                "engine": f.engine,
                "cluster": f.cluster,
                "template": f.template,
                "os": f.os,
                "available": available,
            }
        )
    return rows


# -- create -------------------------------------------------------------------------------


def create_cluster(
    ctx: Context, spec: ClusterSpec, *, keep_on_failure: bool = False
) -> ClusterRecord:
    """Create a cluster; on any failure (Ctrl-C included) roll back or keep it for reap."""
    return build_cluster(ctx, start_cluster(ctx, spec), keep_on_failure=keep_on_failure)


def start_cluster(ctx: Context, spec: ClusterSpec) -> ClusterRecord:
    """Check the spec, make the cluster's SSH key and insert its `creating` record.

    Nothing is asked of the engine yet; `build_cluster` does the rest.
    """
    if spec.ttl == 0:
        raise SpecError("TTL 0 means delete now: there is nothing to create")
    plan = make_plan(ctx, spec)
    ctx.settings.engine(plan.foundation.engine).require_password()
    store = ctx.store
    existing = {r.id for r in store.records()}
    cluster_id = _new_id(existing)
    cdir = private_dir(ctx.cluster_dir(cluster_id))
    generate_keypair(cdir / "id_ed25519")
    now = time.time()
    record = ClusterRecord(
        id=cluster_id,
        owner=ctx.user,
        owner_uid=ctx.uid,
        state=CREATING,
        foundation=spec.foundation,
        engine=plan.foundation.engine,
        spec=vars(spec).copy(),
        created_at=now,
        expires_at=now + spec.ttl,
        heartbeat_at=now,
        vms=[VmRecord(name=f"gimme-{cluster_id}-{n}") for n in range(1, spec.nodes + 1)],
        worker=_worker(),
    )
    store.insert(record)
    ctx.reporter.info(f"cluster {cluster_id}: {spec.nodes} nodes from {spec.foundation}")
    return record


def build_cluster(
    ctx: Context, record: ClusterRecord, *, keep_on_failure: bool = False
) -> ClusterRecord:
    """Make and bootstrap the VMs `start_cluster` recorded.

    On any failure (Ctrl-C included) roll back, or keep the VMs for reap.
    """
    cdir = ctx.cluster_dir(record.id)
    log = ClusterLog(cdir / "bootstrap.log")
    try:
        plan = make_plan(ctx, ClusterSpec(**record.spec))
        public_key = " ".join((cdir / "id_ed25519.pub").read_text().split()[:2])
        with _heartbeat(ctx, record.id):
            return _Creation(ctx, plan, record, public_key, log).run()
    except BaseException as exc:
        _fail(ctx, record.id, exc, keep=keep_on_failure)
        raise
    finally:
        log.close()


def _fail(ctx: Context, cluster_id: str, exc: BaseException, *, keep: bool) -> None:
    reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc) or type(exc).__name__
    # A rollback is a delete: should this process die during it, reap takes the record for
    # abandoned once its heartbeat is older than reap_grace (not only when the TTL ends).
    state, worker = (FAILED, None) if keep else (DELETING, _worker())
    record = ctx.store.update(
        cluster_id,
        lambda r: replace(r, state=state, error=reason, worker=worker, heartbeat_at=time.time()),
    )
    if keep:
        ctx.reporter.info(f"cluster {cluster_id} kept after failure; it expires with its TTL")
        return
    ctx.reporter.phase("rollback")
    try:
        _destroy(ctx, record)
    except (GimmeError, OSError) as cleanup:
        ctx.store.update(cluster_id, lambda r: replace(r, state=FAILED, worker=None))
        ctx.reporter.info(
            f"rollback of {cluster_id} incomplete ({cleanup}); `gimme reap` will finish it"
        )


class _Creation:
    """One `create` run: engine work on this thread, SSH work on a pool, one node per thread."""

    def __init__(
        self, ctx: Context, plan: Plan, record: ClusterRecord, public_key: str, log: ClusterLog
    ):
        self.ctx = ctx
        self.plan = plan
        self.record = record
        self.public_key = public_key
        self.log = log
        self.timeouts = ctx.settings.timeouts
        self.cdir = ctx.cluster_dir(record.id)
        self.user = ctx.settings.ssh_user or plan.os.default_user
        self.nodes: dict[str, Node] = {}
        self.phases: dict[str, float] = {}
        self._nodes_lock = threading.Lock()
        self._closing = False  # set once the nodes are being closed: late connects close too

    def run(self) -> ClusterRecord:
        from gimme.engine import Engine

        started = time.monotonic()
        with (
            Engine(
                self.ctx.settings.engine(self.plan.foundation.engine),
                call_timeout=self.timeouts.engine_call,
            ) as engine,
            ThreadPoolExecutor(max_workers=2 * self.plan.spec.nodes) as pool,
        ):
            pool.submit(importlib.import_module, "gimme.remote")  # paramiko loads while VMs boot
            try:
                prepared = self._boot_and_prepare(engine, pool)
                # init needs only the control plane; the workers go on preparing meanwhile.
                self._timed("prepare", prepared[self.record.vms[0].name].result)
                join = self._timed("init", self._init)
                self._timed("join+cni", lambda: self._join_and_cni(pool, join, prepared))
                self._timed("ready", self._ready)
                text = kubeconfig.from_admin_conf(
                    self.nodes[self.record.vms[0].name].read_root_file(
                        "/etc/kubernetes/admin.conf"
                    ),
                    self.record.id,
                    self.record.control_plane or "",
                )
            finally:
                with self._nodes_lock:
                    self._closing = True
                for node in list(self.nodes.values()):
                    node.close()
        write_private(self.cdir / "kubeconfig", text)
        self.phases["total"] = round(time.monotonic() - started, 2)
        return self.ctx.store.update(
            self.record.id,
            lambda r: replace(
                r, state=READY, phases=self.phases, worker=None, heartbeat_at=time.time()
            ),
        )

    def _timed(self, name: str, fn: Callable[[], object]):  # type: ignore[no-untyped-def]
        self.ctx.reporter.phase(name)
        started = time.monotonic()
        result = fn()
        self.phases[name] = round(time.monotonic() - started, 2)
        self._save(lambda r: replace(r, phases=dict(self.phases)))
        return result

    def _save(self, change: Callable[[ClusterRecord], ClusterRecord]) -> None:
        self.record = self.ctx.store.update(
            self.record.id, lambda r: replace(change(r), heartbeat_at=time.time())
        )

    def _cloud_init(self, name: str) -> CloudInit:
        from gimme.engine import CloudInit

        return CloudInit(host_name=name, user_name=self.user, authorized_key=self.public_key)

    def _boot_and_prepare(
        self, engine: Engine, pool: ThreadPoolExecutor
    ) -> dict[str, Future[None]]:
        """Clone, start and address every VM; each node's SSH prepare starts as soon as it has an IP."""
        self.ctx.reporter.phase("vms")
        started = time.monotonic()
        foundation = self.plan.foundation
        cluster_tag = f"gimme-{self.record.id}"
        engine.ensure_tag(GIMME_TAG)
        engine.ensure_tag(cluster_tag)
        template = engine.find_template(foundation.template, foundation.cluster)
        description = _description(self.record)
        clones = [
            dict(
                name=vm.name,
                cluster=foundation.cluster,
                template=template,
                description=description,
                comment=self.record.spec.get("comment") or "",
                memory_mib=foundation.memory_mib,
                cpus=foundation.cpus,
                cloud_init=self._cloud_init(vm.name),
            )
            for vm in self.record.vms
        ]
        for vm in self.record.vms:
            self.ctx.reporter.node(vm.name, "cloning")
        ids = engine.create_vms(clones)  # every clone request in flight at once
        vm_ids = {vm.name: vm_id for vm, vm_id in zip(self.record.vms, ids, strict=True)}
        for name, vm_id in vm_ids.items():
            self._save(_vm_update(name, id=vm_id))
            engine.tag_vm(vm_id, GIMME_TAG)
            engine.tag_vm(vm_id, cluster_tag)
        futures = self._wait_boot(engine, vm_ids, pool)
        self.phases["vms"] = round(time.monotonic() - started, 2)
        return futures

    def _wait_boot(
        self, engine: Engine, vm_ids: dict[str, str], pool: ThreadPoolExecutor
    ) -> dict[str, Future[None]]:
        now = time.monotonic()
        t = self.timeouts
        deadline = {name: now + t.vm_create for name in vm_ids}
        stage = dict.fromkeys(vm_ids, "cloning")
        futures: dict[str, Future[None]] = {}
        waiting: dict[str, str] = {}  # addressed nodes whose prepare waits for the control plane
        interval = 0.2
        while any(s != "addressed" for s in stage.values()):
            # One request for every VM's status (a VM not listed is gone), then per VM only
            # what moves it on: its start, its reported address.
            listed = engine.list_vms(f"name=gimme-{self.record.id}-*")
            statuses = {vm.id: vm.status for vm in listed}
            for name, vm_id in vm_ids.items():
                if stage[name] == "addressed":
                    continue
                status = statuses.get(vm_id)
                if status is None:
                    raise EngineError(f"VM {name} disappeared from the engine while booting")
                if status in ("unknown", "not_responding", "unassigned"):
                    raise EngineError(f"VM {name} went {status} while booting")
                if stage[name] == "cloning" and status == "down":
                    if engine.start_vm(vm_id, name, self._cloud_init(name)):
                        stage[name] = "starting"
                        deadline[name] = time.monotonic() + t.vm_start
                        self.ctx.reporter.node(name, "starting")
                elif stage[name] == "starting" and status == "up":
                    stage[name] = "up"
                    deadline[name] = time.monotonic() + t.vm_ip
                    self.ctx.reporter.node(name, "waiting for IP")
                elif status == "down" and stage[name] in ("starting", "up"):
                    # The engine took the start, so the VM left `down`: it crashed or stopped,
                    # however briefly it was up between two polls.
                    raise EngineError(f"VM {name} went down while booting (crashed or stopped)")
                if stage[name] == "up" and status == "up":
                    address = engine.vm_address(vm_id)
                    if address:
                        stage[name] = "addressed"
                        self._save(_vm_update(name, address=address))
                        waiting[name] = address
                        continue
                if time.monotonic() > deadline[name]:
                    what = {"cloning": "clone", "starting": "start", "up": "report an IP"}[
                        stage[name]
                    ]
                    hint = " (is qemu-guest-agent in the template?)" if stage[name] == "up" else ""
                    raise EngineError(
                        f"VM {name} did not {what} before the deadline ({status}){hint}"
                    )
            # Every node's steps need the control plane's address (advertise address, no_proxy).
            if stage[self.record.vms[0].name] == "addressed":
                futures |= {n: pool.submit(self._prepare, n, a) for n, a in waiting.items()}
                waiting.clear()
            if any(s != "addressed" for s in stage.values()):
                time.sleep(interval)
                interval = min(interval * 1.5, 1.0)
        return futures

    def _prepare(self, name: str, address: str) -> None:
        from gimme.remote import Node

        role = "control" if name == self.record.vms[0].name else "worker"
        node = Node(
            name,
            address,
            self.user,
            self.cdir / "id_ed25519",
            self.cdir / "known_hosts",
            cluster_log=self.log,
            trust_new_host_key=True,
        )
        self.ctx.reporter.node(name, "waiting for SSH")
        node.connect(deadline=time.monotonic() + self.timeouts.ssh_ready)
        with self._nodes_lock:
            if self._closing:  # the create ended while this node was connecting
                node.close()
                raise RemoteError(f"{name}: create ended before its prepare")
            self.nodes[name] = node
        node.push_scripts({step.phase: step.script for step in self.plan.steps[role]})
        self._run(node, role, "prepare")

    def _env(self, node: Node) -> dict[str, str]:
        return {
            "GIMME_NODE_NAME": node.name,
            "GIMME_NODE_ADDRESS": node.address,
            "GIMME_CONTROL_PLANE_ADDRESS": self.record.control_plane or "",
        }

    def _run(self, node: Node, role: str, phase: str, extra: dict[str, str] | None = None) -> str:
        self.ctx.reporter.node(node.name, phase)
        step = self.plan.step(role, phase)
        env = self._env(node) | (extra or {})
        result = node.run_script(phase, step.script, env, timeout=self.timeouts.step)
        self.ctx.reporter.node(node.name, f"{phase} done")
        return result.output

    def _control(self) -> Node:
        return self.nodes[self.record.vms[0].name]

    def _init(self) -> dict[str, str]:
        output = self._run(self._control(), "control", "init")
        joins = [
            line.strip() for line in output.splitlines() if line.strip().startswith("kubeadm join ")
        ]
        if not joins:
            raise RemoteError(f"{self._control().name}: init printed no join command")
        match = re.search(
            r"kubeadm join (\S+) --token (\S+) --discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})",
            joins[-1],
        )
        if not match:
            raise RemoteError(f"{self._control().name}: cannot parse the join command init printed")
        endpoint, token, ca_hash = match.groups()
        return {
            "GIMME_JOIN_ENDPOINT": endpoint,
            "GIMME_JOIN_TOKEN": token,
            "GIMME_JOIN_CA_HASH": ca_hash,
        }

    def _join_and_cni(
        self, pool: ThreadPoolExecutor, join: dict[str, str], prepared: dict[str, Future[None]]
    ) -> None:
        """The CNI starts at once; each worker joins as soon as it is prepared."""

        def join_worker(name: str) -> str:
            prepared[name].result()
            return self._run(self.nodes[name], "worker", "join", join)

        futures = [pool.submit(self._run, self._control(), "control", "cni")]
        futures += [pool.submit(join_worker, vm.name) for vm in self.record.vms[1:]]
        for future in futures:
            future.result()

    def _ready(self) -> None:
        self._run(self._control(), "control", "ready")


def _vm_update(name: str, **values: str) -> Callable[[ClusterRecord], ClusterRecord]:
    """A record change that sets fields of VM `name`."""

    def change(record: ClusterRecord) -> ClusterRecord:
        vms = [replace(vm, **values) if vm.name == name else vm for vm in record.vms]
        return replace(record, vms=vms)

    return change


# -- delete / prolong / hold ------------------------------------------------------------------


def _owned(ctx: Context, record: ClusterRecord, force: bool, verb: str) -> None:
    if record.owner != ctx.user and not force:
        raise NotOwnerError(
            f"cluster {record.id} belongs to {record.owner}; use --force to {verb} it anyway"
        )


def delete_cluster(ctx: Context, cluster_id: str, *, force: bool = False) -> ClusterRecord:
    """Stop and remove the cluster's VMs and mark it deleted; deleting twice is fine."""
    record = ctx.store.get(check_id(cluster_id))
    _owned(ctx, record, force, "delete")
    if record.state == DELETED:
        return record
    record = ctx.store.update(
        record.id, lambda r: replace(r, state=DELETING, worker=_worker(), heartbeat_at=time.time())
    )
    return _destroy(ctx, record)


def _destroy(ctx: Context, record: ClusterRecord) -> ClusterRecord:
    """Remove the VMs (by id, or by exact name for ids never recorded), then the record's files."""
    result = _destroy_all(ctx, [record])[record.id]
    if isinstance(result, GimmeError):
        raise result
    return result


def _destroy_all(
    ctx: Context, records: list[ClusterRecord]
) -> dict[str, ClusterRecord | GimmeError]:
    """`_destroy` for clusters of one engine: one connection, one delete_vms over all their VMs.

    Returns each cluster's deleted record, or the error that kept it from being deleted.
    """
    from gimme.engine import Engine

    ctx.reporter.phase("delete")
    owner: dict[str, str] = {}  # VM id -> cluster id
    with ExitStack() as stack:
        for record in records:
            stack.enter_context(_heartbeat(ctx, record.id))
        try:
            engine = stack.enter_context(
                Engine(
                    ctx.settings.engine(records[0].engine),
                    call_timeout=ctx.settings.timeouts.engine_call,
                )
            )
            targets: dict[str, str] = {}
            for record in records:
                for vm in record.vms:
                    found = None if vm.id else engine.find_vm(vm.name)
                    vm_id = vm.id or (found.id if found else None)
                    if vm_id:
                        targets[vm_id], owner[vm_id] = vm.name, record.id
                        ctx.reporter.node(vm.name, "deleting")
            failed = engine.delete_vms(
                targets, deadline=time.monotonic() + ctx.settings.timeouts.vm_delete
            )
        except GimmeError as exc:
            return dict.fromkeys([r.id for r in records], exc)
    results: dict[str, ClusterRecord | GimmeError] = {}
    for record in records:
        mine = [why for vm_id, why in failed.items() if owner[vm_id] == record.id]
        if mine:
            reasons = "; ".join(sorted(set(mine)))
            ctx.store.update(record.id, partial(replace, error=reasons, worker=None))
            results[record.id] = EngineError(
                f"cluster {record.id}: {len(mine)} VM(s) not deleted: {reasons}"
            )
            continue
        _forget_local(ctx, record.id)
        results[record.id] = ctx.store.update(
            record.id, lambda r: replace(r, state=DELETED, deleted_at=time.time(), worker=None)
        )
    return results


def _forget_local(ctx: Context, cluster_id: str) -> None:
    """Remove the cluster's key, kubeconfig and known_hosts, and its entries in ~/.kube/config."""
    cdir = ctx.cluster_dir(cluster_id)
    if cdir.is_dir():
        merged = (cdir / "merged").read_text().strip() if (cdir / "merged").exists() else None
        if merged:
            kubeconfig.unmerge(Path(merged), cluster_id)
        for name in ("id_ed25519", "id_ed25519.pub", "known_hosts", "kubeconfig", "merged"):
            (cdir / name).unlink(missing_ok=True)


def prolong_cluster(
    ctx: Context, cluster_id: str, ttl: str | int, *, force: bool = False
) -> ClusterRecord:
    """Expire `ttl` from now; TTL 0 deletes now. Cannot race reap: both decide under the lock."""
    seconds = parse_ttl(ttl)
    record = ctx.store.get(check_id(cluster_id))
    _owned(ctx, record, force, "prolong")
    if seconds == 0:
        return delete_cluster(ctx, cluster_id, force=force)

    def change(r: ClusterRecord) -> ClusterRecord:
        if r.state not in (READY, CREATING, FAILED):
            raise UsageError(f"cluster {r.id} is {r.state}; it can no longer be prolonged")
        return replace(r, expires_at=time.time() + seconds)

    return ctx.store.update(record.id, change)


def hold_cluster(
    ctx: Context, cluster_id: str, duration: str, *, force: bool = False
) -> ClusterRecord:
    """Keep the cluster past its TTL for debugging, at most `max_hold` from now."""
    seconds = _duration(duration)
    if seconds > ctx.settings.max_hold:
        raise UsageError(
            f"hold of {seconds}s exceeds the configured maximum of {ctx.settings.max_hold}s"
        )
    record = ctx.store.get(check_id(cluster_id))
    _owned(ctx, record, force, "hold")

    def change(r: ClusterRecord) -> ClusterRecord:
        if r.state not in (READY, FAILED):
            raise UsageError(
                f"cluster {r.id} is {r.state}; only ready or failed clusters can be held"
            )
        return replace(r, hold_until=time.time() + seconds if seconds else None)

    return ctx.store.update(record.id, change)


def _duration(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text.lower())
    if not match:
        raise UsageError(f"invalid duration {text!r}: use seconds or a number with s, m, h or d")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


# -- reap ---------------------------------------------------------------------------------------


@dataclass
class ReapReport:
    deleted: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    planned: list[str] = field(default_factory=list)
    busy: bool = False


def _abandoned(record: ClusterRecord, now: float, grace: int) -> bool:
    """A create or delete whose process stopped sending heartbeats."""
    return record.state in (CREATING, DELETING) and record.heartbeat_at < now - grace


def reap(ctx: Context, *, dry_run: bool = False) -> ReapReport:
    """Delete expired and abandoned clusters, orphaned gimme VMs and records whose VMs vanished.

    Only one reaper runs at a time; a second one returns at once with `busy` set.
    """
    state = ctx.settings.state
    ctx.store.records()  # fail early on an unreadable state file
    lock = os.open(state.with_name(state.name + ".reap.lock"), os.O_RDWR | os.O_CREAT, 0o660)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return ReapReport(busy=True)
        return _reap(ctx, dry_run=dry_run)
    finally:
        os.close(lock)


def _reap(ctx: Context, *, dry_run: bool) -> ReapReport:
    report = ReapReport()
    now = time.time()
    grace = ctx.settings.reap_grace

    def due(r: ClusterRecord) -> bool:
        if r.state not in LIVE_STATES:
            return False
        if r.state in (CREATING, DELETING):
            return _abandoned(r, now, grace)
        return r.expired(now)

    if dry_run:
        doomed = [r for r in ctx.store.records() if due(r)]
        report.planned = [f"delete cluster {r.id} ({r.owner}, {r.state})" for r in doomed]
        _orphans(ctx, now, grace, dry_run=True, report=report, skip={r.id for r in doomed})
        return report
    why: dict[str, str] = {}

    def take(r: ClusterRecord) -> ClusterRecord:
        expired = r.state in (READY, FAILED)
        why[r.id] = "expired" if expired else "abandoned"
        error = r.error if expired else r.error or f"{r.state} abandoned by {r.worker}"
        return replace(r, state=DELETING, worker=_worker(), heartbeat_at=time.time(), error=error)

    claimed = ctx.store.claim(due, take)
    # Every claimed cluster is deleted at once, over at most REAP_CONNECTIONS connections:
    # each engine's clusters are dealt out to that many batches of one delete_vms each.
    per_engine: dict[str, list[ClusterRecord]] = {}
    for record in claimed:
        per_engine.setdefault(record.engine, []).append(record)
    batches = [
        records[i::REAP_CONNECTIONS]
        for records in per_engine.values()
        for i in range(min(REAP_CONNECTIONS, len(records)))
    ]
    results: dict[str, ClusterRecord | GimmeError] = {}
    with ThreadPoolExecutor(max_workers=REAP_CONNECTIONS) as pool:
        for outcome in pool.map(lambda batch: _destroy_all(ctx, batch), batches):
            results.update(outcome)
    for cluster_id in (r.id for r in claimed):
        result = results[cluster_id]
        if isinstance(result, GimmeError):
            report.failed[cluster_id] = str(result)
            ctx.reporter.info(f"failed to delete cluster {cluster_id}: {result}")
        else:
            report.deleted.append(cluster_id)
            ctx.reporter.info(f"deleted {why[cluster_id]} cluster {cluster_id}")
    report.orphans = _orphans(ctx, now, grace, dry_run=False, report=report)
    return report


def _orphans(
    ctx: Context,
    now: float,
    grace: int,
    *,
    dry_run: bool,
    report: ReapReport,
    skip: Iterable[str] = (),
) -> list[str]:
    """Delete tagged gimme VMs with no live record (past the grace period); mark records whose VMs are gone.

    A dry run adds what it would do to `report.planned`, leaving out the VMs of the clusters
    in `skip` (their deletion is planned already).
    """
    from gimme.engine import Engine

    records = {r.id: r for r in ctx.store.records()}
    found: list[str] = []
    for engine_name in sorted(ctx.settings.engines):
        settings = ctx.settings.engine(engine_name)
        try:
            with Engine(settings, call_timeout=ctx.settings.timeouts.engine_call) as engine:
                vms = engine.list_vms(f"tag={GIMME_TAG}")
                planned = tuple(f"gimme-{cluster_id}-" for cluster_id in skip)
                orphans = {
                    vm.id: vm.name
                    for vm in vms
                    if _orphaned(vm, records, now, grace) and not vm.name.startswith(planned)
                }
                found += sorted(orphans.values())
                present = {vm.id for vm in vms}
                if dry_run:
                    report.planned += [f"delete orphan VM {n}" for n in sorted(orphans.values())]
                    report.planned += [
                        f"mark cluster {r.id} deleted (its VMs vanished)"
                        for r in _vanished_records(engine_name, present, records)
                    ]
                    continue
                for name in orphans.values():
                    ctx.reporter.info(f"deleting orphan VM {name}")
                deadline = time.monotonic() + ctx.settings.timeouts.vm_delete
                failed = engine.delete_vms(orphans, deadline=deadline) if orphans else {}
                report.failed.update({orphans[i]: why for i, why in failed.items()})
                _vanished(ctx, engine_name, present, records, report)
        except GimmeError as exc:
            ctx.reporter.info(f"engine {engine_name}: orphan sweep skipped: {exc}")
            report.failed[f"engine {engine_name}"] = str(exc)
    return found


def _orphaned(vm: VmInfo, records: dict[str, ClusterRecord], now: float, grace: int) -> bool:
    match = VM_NAME_RE.match(vm.name)
    if not match:
        return False
    record = records.get(match.group(1))
    if record is not None and record.state in LIVE_STATES and not record.expired(now):
        return False
    if record is not None and record.state in (CREATING, DELETING):
        if not _abandoned(record, now, grace):
            return False  # its create or delete still runs, even past the expiry
    return vm.created is None or vm.created.timestamp() <= now - grace


def _vanished_records(
    engine_name: str, present: set[str], records: dict[str, ClusterRecord]
) -> list[ClusterRecord]:
    """Ready/failed records of this engine none of whose VMs exists on it any more."""
    vanished = []
    for record in records.values():
        ids = {vm.id for vm in record.vms if vm.id}
        mine = record.engine == engine_name and record.state in (READY, FAILED)
        if mine and ids and not ids & present:
            vanished.append(record)
    return vanished


def _vanished(
    ctx: Context,
    engine_name: str,
    present: set[str],
    records: dict[str, ClusterRecord],
    report: ReapReport,
) -> None:
    """Mark ready/failed records deleted when none of their VMs exists on their engine any more."""
    for record in _vanished_records(engine_name, present, records):

        def gone(r: ClusterRecord) -> ClusterRecord | None:
            if r.state not in (READY, FAILED):
                return None
            return replace(
                r, state=DELETED, deleted_at=time.time(), error="VMs vanished from the engine"
            )

        ctx.store.update(record.id, gone)
        _forget_local(ctx, record.id)
        report.vanished.append(record.id)
        ctx.reporter.info(f"cluster {record.id}: its VMs vanished; record marked deleted")
