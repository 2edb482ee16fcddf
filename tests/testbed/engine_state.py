"""State of the fake engine: VMs and their time-driven life cycle, tags, tokens, faults.

Life cycle (every delay is `Delays.x * delay_scale` seconds)::

    add ──image_locked──> down ──start──> wait_for_launch ──> powering_up ──> up
    up/powering_up/wait_for_launch ──stop|shutdown──> powering_down ──> down
    down ──remove──> image_locked (being removed) ──> gone (404)

A VM from the Blank template has no disks, so it is created `down`, and no OS, so no
node boots and no guest agent reports.
Transitions are timers kept in a heap. A ticker thread fires them when due, and every
API call fires the due ones first (`locked()`), so what a client sees depends only on
the time it asks, never on how often it polled. When a VM reaches `up` its node is
started by the node pool in a worker thread; the guest agent reports the node's IP
once `ip_report` has passed and the node is up.
"""

from __future__ import annotations

import collections
import copy
import datetime
import fnmatch
import heapq
import itertools
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ovirtsdk4 import types

from .engine_inventory import BLANK_TEMPLATE_ID, ClusterDef, TemplateDef

if TYPE_CHECKING:
    from .engine import NodePool

log = logging.getLogger(__name__)

ROOT_TAG_ID = "00000000-0000-0000-0000-000000000000"
MAX_VM_NAME_LENGTH = 64  # engine config MaxVmNameLength
RUNNING = frozenset({"wait_for_launch", "powering_up", "up", "powering_down"})


@dataclass
class Delays:
    """Seconds each transition takes, before `delay_scale` is applied."""

    image_locked: float = 2.0
    powering_up: float = 3.0
    ip_report: float = 2.0
    powering_down: float = 1.0
    remove: float = 0.5


# ---------------------------------------------------------------------------- faults


class EngineFault(Exception):
    """A refusal the engine reports as `<fault>` with this HTTP status."""

    def __init__(self, status: int, detail: str, reason: str = "Operation Failed") -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status, self.detail, self.reason = status, detail, reason


def refuse(message: str, status: int = 409, **values: object) -> EngineFault:
    """A validation failure: the engine brackets its list of messages."""
    return EngineFault(status, "[" + message.format(**values) + "]")


# Texts of the engine's AppErrors.properties, with ${action}/${type} substituted.
VM_LOCKED = "Cannot {action} VM: VM is locked. Please try again in a few minutes."
VM_RUNNING = "Cannot {action} VM. VM is running."
VM_NOT_RUNNING = "Cannot {action} VM. VM is not running."
OBJECT_LOCKED = (
    "Cannot {action} VM. Related operation is currently in progress. Please try again later."
)
NAME_IN_USE = (
    "Cannot {action} VM. The VM name is already in use, please choose a unique name and try again."
)
NAME_TOO_LONG = "Cannot {action} VM. The given name is too long."
NAME_EMPTY = "Can not {action} VM. The given name is empty."
NAME_SPECIAL_CHARS = (
    "Can not {action} VM. The given name contains special characters. "
    "Only lower-case and upper-case letters, numbers, '_', '-', '.' are allowed."
)
DETACH_FROM_TEMPLATE = "Cannot remove VM with detaching disks, VM is based from template."
NO_HOST = (
    "Cannot {action} VM. There is no host that satisfies current scheduling constraints. "
    "See below for details:, The host {host} did not satisfy internal filter Memory because "
    "its available memory is too low ({available_mb} MB) to run the VM."
)
QUOTA = "Cannot {action} VM. Quota has insufficient cluster resources."
TAG_IN_USE = "The specified Tag name already exists."
TAG_NOT_FOUND = "Cannot remove tag. Tag does not exist."
INTERNAL_ERROR = "[Internal Engine Error]"


# ------------------------------------------------------------------ fault injection

INJECTION_PARAMS: dict[str, frozenset[str]] = {
    "http_500": frozenset(),
    "http_503": frozenset(),
    "drop": frozenset(),
    "slow": frozenset({"seconds"}),
    "capacity": frozenset({"quota", "host", "available_mb"}),
    "no_ip": frozenset({"vm_name"}),
    "start_fails": frozenset({"vm_name", "crash", "after"}),
}


@dataclass
class Injection:
    """A fault armed for the next `remaining` matching occasions."""

    kind: str
    remaining: int
    match: str = "any"
    params: dict[str, Any] = field(default_factory=dict)

    def applies(self, kind: str, request_kind: str | None, vm_name: str | None) -> bool:
        if self.kind != kind or self.remaining <= 0:
            return False
        if request_kind is not None and self.match not in ("any", request_kind):
            return False
        pattern = self.params.get("vm_name")
        return pattern is None or (vm_name is not None and fnmatch.fnmatchcase(vm_name, pattern))


class Injections:
    """Armed faults, consumed in the order they were armed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Injection] = []

    def arm(self, kind: str, count: int = 1, match: str = "any", **params: Any) -> Injection:
        allowed = INJECTION_PARAMS.get(kind)
        if allowed is None:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(INJECTION_PARAMS)}")
        if set(params) - allowed:
            raise ValueError(f"{kind} takes {sorted(allowed) or 'no'} params, got {sorted(params)}")
        if count < 1:
            raise ValueError("count must be >= 1")
        if kind == "slow" and "seconds" not in params:
            raise ValueError("slow needs seconds=")
        injection = Injection(kind, count, match, params)
        with self._lock:
            self._armed.append(injection)
        return injection

    def take(
        self, kind: str, request_kind: str | None = None, vm_name: str | None = None
    ) -> Injection | None:
        """Consume one occasion of the first armed fault that applies, if any."""
        with self._lock:
            for injection in self._armed:
                if injection.applies(kind, request_kind, vm_name):
                    injection.remaining -= 1
                    if injection.remaining == 0:
                        self._armed.remove(injection)
                    return injection
        return None


def _no_host_fault(action: str, injection: Injection) -> EngineFault:
    params = injection.params
    if params.get("quota"):
        return refuse(QUOTA, action=action)
    return refuse(
        NO_HOST,
        action=action,
        host=params.get("host", "h1"),
        available_mb=params.get("available_mb", 1024),
    )


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True)
class NodeBoot:
    """The cloud-init data a VM boots with, as handed to the node pool."""

    hostname: str
    user: str
    authorized_keys: str
    os_release: dict[str, str]
    custom_script: str | None


@dataclass(eq=False)
class VmRecord:
    id: str
    name: str
    cluster: ClusterDef
    template: TemplateDef
    description: str | None
    comment: str | None
    memory: int
    cpu: types.Cpu
    initialization: types.Initialization | None
    clone: bool
    mac: str
    address: str | None  # 127.0.10.N handed out by the engine when there is no node pool
    creation_time: datetime.datetime
    status: str = "image_locked"
    removing: bool = False
    gen: int = 0  # bumped whenever the VM changes course; stale timers check it
    tags: set[str] = field(default_factory=set)
    start_time: datetime.datetime | None = None
    stop_time: datetime.datetime | None = None
    boot: NodeBoot | None = None
    guest_ip: str | None = None  # the node's address once it is up
    ips_at: float | None = None  # monotonic time from which the agent reports
    no_agent: bool = False  # no guest agent: never reports devices
    node_error: str | None = None


@dataclass
class TagRecord:
    id: str
    name: str
    description: str | None = None
    parent: str | None = ROOT_TAG_ID


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _mac_for(vm_id: str) -> str:
    return "56:6f:" + ":".join(f"{b:02x}" for b in uuid.UUID(vm_id).bytes[:4])


def link_local_for(mac: str) -> str:
    """The IPv6 link-local address a guest derives from its MAC (EUI-64)."""
    b = [int(x, 16) for x in mac.split(":")]
    eui = [b[0] ^ 0x02, b[1], b[2], 0xFF, 0xFE, b[3], b[4], b[5]]
    groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return "fe80::" + ":".join(groups)


def merge_initialization(
    stored: types.Initialization | None, override: types.Initialization | None
) -> types.Initialization | None:
    """Run-once initialization: fields set in `override` replace the stored ones."""
    if override is None:
        return stored
    merged = copy.copy(stored) if stored is not None else types.Initialization()
    for name, value in vars(override).items():
        if value is not None:
            setattr(merged, name, value)
    return merged


# ----------------------------------------------------------------------------- state


class EngineState:
    """Everything the engine knows; callers mutate it inside `with state.locked():`."""

    def __init__(
        self,
        *,
        node_pool: NodePool | None,
        delays: Delays,
        delay_scale: float,
        token_ttl: float | None,
    ) -> None:
        self.delays, self.delay_scale, self.token_ttl = delays, delay_scale, token_ttl
        self.injections = Injections()
        self.vms: dict[str, VmRecord] = {}
        self.tags: dict[str, TagRecord] = {
            ROOT_TAG_ID: TagRecord(ROOT_TAG_ID, "root", "root", None)
        }
        self._tokens: dict[str, float | None] = {}  # token -> monotonic expiry
        self._pool = node_pool
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._timers: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = itertools.count()
        self._closing = False
        self._workers: set[threading.Thread] = set()
        self._node_ops: dict[str, collections.deque[Callable[[], None]]] = {}
        self._nodes: set[str] = set()  # VMs whose node may be running
        self._ticker = threading.Thread(target=self._tick, name="fake-engine-ticker", daemon=True)

    # -- threads and time

    def start(self) -> None:
        self._ticker.start()

    def close(self) -> None:
        """Stop the ticker, wait for node workers, then stop every node still running."""
        with self._lock:
            self._closing = True
            self._timers.clear()
            self._wake.notify_all()
        if self._ticker.is_alive():
            self._ticker.join()
        while True:
            with self._lock:
                workers = [w for w in self._workers if w.is_alive()]
            if not workers:
                break
            for worker in workers:
                worker.join()
        if self._pool is not None:
            for vm_id in sorted(self._nodes):
                self._stop_node(vm_id)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state lock, after applying every transition that is due."""
        with self._lock:
            self._fire_due()
            yield

    def _fire_due(self) -> None:
        while self._timers and self._timers[0][0] <= time.monotonic():
            due, _, fire = heapq.heappop(self._timers)
            fire(due)

    def _tick(self) -> None:
        with self._wake:
            while not self._closing:
                self._fire_due()
                timeout = self._timers[0][0] - time.monotonic() if self._timers else None
                self._wake.wait(timeout)

    def _at(self, vm: VmRecord, when: float, step: Callable[[VmRecord, float], None]) -> None:
        """Run step(vm, when) at monotonic time `when`, unless the VM changed course."""
        gen = vm.gen

        def fire(due: float) -> None:
            if self.vms.get(vm.id) is vm and vm.gen == gen:
                step(vm, due)

        heapq.heappush(self._timers, (when, next(self._seq), fire))
        self._wake.notify()

    def scaled(self, seconds: float) -> float:
        return seconds * self.delay_scale

    # -- tokens

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        ttl = self.token_ttl
        with self._lock:
            self._tokens[token] = None if ttl is None else time.monotonic() + ttl
        return token

    def token_valid(self, token: str) -> bool:
        with self._lock:
            if token not in self._tokens:
                return False
            expiry = self._tokens[token]
            if expiry is not None and expiry <= time.monotonic():
                del self._tokens[token]
                return False
            return True

    def revoke_token(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def token_count(self) -> int:
        with self._lock:
            return len(self._tokens)

    # -- VMs

    def add_vm(
        self,
        *,
        name: str,
        cluster: ClusterDef,
        template: TemplateDef,
        clone: bool,
        description: str | None,
        comment: str | None,
        memory: int | None,
        cpu: types.Cpu | None,
        initialization: types.Initialization | None,
    ) -> VmRecord:
        self._check_name(name, "add", cluster, None)
        capacity = self.injections.take("capacity", "add_vm")
        if capacity is not None:
            raise _no_host_fault("add", capacity)
        vm_id = str(uuid.uuid4())
        vm = VmRecord(
            id=vm_id,
            name=name,
            cluster=cluster,
            template=template,
            description=description,
            comment=comment,
            memory=memory or template.memory,
            cpu=cpu
            or types.Cpu(
                topology=types.CpuTopology(sockets=1, cores=template.cpu_cores, threads=1)
            ),
            initialization=initialization,
            clone=clone,
            mac=_mac_for(vm_id),
            address=self._free_address() if self._pool is None else None,
            creation_time=_now(),
            no_agent=not template.os_release,
        )
        self.vms[vm.id] = vm
        if template.id == BLANK_TEMPLATE_ID:
            vm.status = "down"  # no disks to create
        else:
            self._at(vm, time.monotonic() + self.scaled(self.delays.image_locked), _become_down)
        return vm

    def update_vm(
        self, vm: VmRecord, *, name: str | None, description: str | None, comment: str | None
    ) -> None:
        if vm.status == "image_locked":
            raise refuse(VM_LOCKED, action="edit")
        if name is not None and name != vm.name:
            self._check_name(name, "edit", vm.cluster, vm)
            vm.name = name
        if description is not None:
            vm.description = description
        if comment is not None:
            vm.comment = comment

    def start_vm(self, vm: VmRecord, initialization: types.Initialization | None) -> None:
        """Start `vm`; `initialization` is the run-once cloud-init data (None: none at all)."""
        if vm.status == "image_locked":
            raise refuse(VM_LOCKED, action="run")
        if vm.status in RUNNING:
            raise refuse(VM_RUNNING, action="run")
        capacity = self.injections.take("capacity", "start")
        if capacity is not None:
            raise _no_host_fault("run", capacity)
        failure = self.injections.take("start_fails", "start", vm.name)
        if failure is not None and not failure.params.get("crash"):
            raise _no_host_fault("run", failure)

        vm.gen += 1
        vm.status, vm.start_time, vm.stop_time = "wait_for_launch", _now(), None
        vm.boot = self._boot_for(vm, initialization)
        now = time.monotonic()
        launch = self.scaled(self.delays.powering_up)
        self._at(vm, now + launch / 4, _become_powering_up)
        crash_after = None
        if failure is not None:
            crash_after = float(failure.params.get("after", self.scaled(self.delays.ip_report) / 2))
        self._at(vm, now + launch, lambda vm, due: self._become_up(vm, due, crash_after))

    def stop_vm(self, vm: VmRecord, action: str) -> None:
        """Power off (`stop`) or shut down (`shutdown`) a running VM."""
        if vm.status not in RUNNING:
            raise refuse(VM_NOT_RUNNING, action=action)
        if vm.status == "powering_down":
            return
        self._power_off(vm, time.monotonic() + self.scaled(self.delays.powering_down))

    def remove_vm(self, vm: VmRecord, *, force: bool, detach_only: bool) -> None:
        if vm.removing or (vm.status == "image_locked" and not force):
            raise refuse(OBJECT_LOCKED, action="remove")
        if vm.status in RUNNING:
            raise refuse(VM_RUNNING, action="remove")
        if detach_only and not vm.clone and vm.template.id != BLANK_TEMPLATE_ID:
            raise refuse(DETACH_FROM_TEMPLATE)
        vm.gen += 1
        vm.status, vm.removing = "image_locked", True
        self._at(vm, time.monotonic() + self.scaled(self.delays.remove), self._forget)

    def reported_ipv4(self, vm: VmRecord) -> str | None:
        """The address the guest agent reports now, if it reports one."""
        if vm.status != "up" or vm.no_agent or vm.guest_ip is None or vm.ips_at is None:
            return None
        return vm.guest_ip if time.monotonic() >= vm.ips_at else None

    def _check_name(self, name: str, action: str, cluster: ClusterDef, vm: VmRecord | None) -> None:
        if not all(c.isalpha() or c in "0123456789._-" for c in name):
            raise refuse(NAME_SPECIAL_CHARS, status=400, action=action)
        if any(
            other.name == name
            and other.cluster.data_center == cluster.data_center
            and other is not vm
            for other in self.vms.values()
        ):
            raise refuse(NAME_IN_USE, action=action)
        if not name:
            raise refuse(NAME_EMPTY, status=400, action=action)
        if len(name) > MAX_VM_NAME_LENGTH:
            raise refuse(NAME_TOO_LONG, status=400, action=action)

    def _free_address(self) -> str:
        used = {vm.address for vm in self.vms.values()}
        for n in range(2, 255):
            if f"127.0.10.{n}" not in used:
                return f"127.0.10.{n}"
        raise refuse(QUOTA, action="add")

    def _boot_for(self, vm: VmRecord, initialization: types.Initialization | None) -> NodeBoot:
        init = initialization or types.Initialization()
        return NodeBoot(
            hostname=init.host_name or vm.name,
            user=init.user_name or vm.template.default_user,
            authorized_keys=init.authorized_ssh_keys or "",
            os_release=dict(vm.template.os_release),
            custom_script=init.custom_script,
        )

    def _become_up(self, vm: VmRecord, due: float, crash_after: float | None) -> None:
        vm.status = "up"
        vm.ips_at = due + self.scaled(self.delays.ip_report)
        if not vm.no_agent and self.injections.take("no_ip", vm_name=vm.name) is not None:
            vm.no_agent = True  # a guest without an agent stays without one
        if crash_after is not None:
            self._at(vm, due + crash_after, lambda vm, at: self._power_off(vm, at))
        if self._pool is None:
            vm.guest_ip = vm.address
        elif vm.template.os_release:
            assert vm.boot is not None
            boot, gen = vm.boot, vm.gen
            self._node_op(vm.id, lambda: self._start_node(vm.id, gen, boot))

    def _power_off(self, vm: VmRecord, down_at: float) -> None:
        vm.gen += 1
        vm.status, vm.guest_ip, vm.ips_at = "powering_down", None, None
        if self._pool is not None:
            self._node_op(vm.id, lambda: self._stop_node(vm.id))
        self._at(vm, down_at, _become_down_stopped)

    def _forget(self, vm: VmRecord, _: float) -> None:
        del self.vms[vm.id]

    # -- node operations: one worker per VM runs them in order, outside the state lock

    def _node_op(self, vm_id: str, op: Callable[[], None]) -> None:
        """Queue `op` for the VM's node; start/stop of one node never overlap or reorder."""
        queue = self._node_ops.setdefault(vm_id, collections.deque())
        queue.append(op)
        if len(queue) == 1:
            worker = threading.Thread(
                target=self._run_node_ops, args=(vm_id,), name="fake-engine-node", daemon=True
            )
            self._workers.add(worker)
            worker.start()

    def _run_node_ops(self, vm_id: str) -> None:
        while True:
            with self._lock:
                op = self._node_ops[vm_id][0]
            op()
            with self._lock:
                queue = self._node_ops[vm_id]
                queue.popleft()
                if not queue:
                    del self._node_ops[vm_id]
                    self._workers.discard(threading.current_thread())
                    return

    def _start_node(self, vm_id: str, gen: int, boot: NodeBoot) -> None:
        assert self._pool is not None
        with self._lock:
            self._nodes.add(vm_id)
        try:
            ip = self._pool.start_node(
                vm_id,
                hostname=boot.hostname,
                user=boot.user,
                authorized_keys=boot.authorized_keys,
                os_release=boot.os_release,
                custom_script=boot.custom_script,
            )
        except Exception as exc:  # a node that cannot boot looks like a silent guest
            log.exception("start_node(%s) failed", vm_id)
            ip, error = None, f"{type(exc).__name__}: {exc}"
        else:
            error = None
        with self._lock:
            vm = self.vms.get(vm_id)
            if vm is not None and vm.gen == gen:  # else a stop is queued behind this
                vm.guest_ip, vm.node_error = ip, error

    def _stop_node(self, vm_id: str) -> None:
        assert self._pool is not None
        try:
            self._pool.stop_node(vm_id)
        except Exception:
            log.exception("stop_node(%s) failed", vm_id)
        with self._lock:
            self._nodes.discard(vm_id)

    # -- tags

    def add_tag(self, name: str, description: str | None, parent: str | None) -> TagRecord:
        if any(tag.name == name for tag in self.tags.values()):
            raise refuse(TAG_IN_USE)
        tag = TagRecord(str(uuid.uuid4()), name, description, parent or ROOT_TAG_ID)
        self.tags[tag.id] = tag
        return tag

    def remove_tag(self, tag_id: str) -> None:
        if tag_id == ROOT_TAG_ID:
            raise refuse(TAG_NOT_FOUND, status=400)
        doomed = {tag_id}
        while True:  # children go with their parent
            children = {t.id for t in self.tags.values() if t.parent in doomed} - doomed
            if not children:
                break
            doomed |= children
        for doomed_id in doomed:
            del self.tags[doomed_id]
        for vm in self.vms.values():
            vm.tags -= doomed

    def tag_by_name(self, name: str) -> TagRecord | None:
        return next((t for t in self.tags.values() if t.name == name), None)

    # -- snapshot for tests

    def snapshot(self) -> list[dict[str, Any]]:
        """One plain dict per VM, sorted by name (see FakeEngine.vms)."""
        return [self._describe(vm) for vm in sorted(self.vms.values(), key=lambda v: v.name)]

    def _describe(self, vm: VmRecord) -> dict[str, Any]:
        init = vm.initialization
        return {
            "id": vm.id,
            "name": vm.name,
            "status": vm.status,
            "tags": sorted(self.tags[t].name for t in vm.tags),
            "description": vm.description,
            "comment": vm.comment,
            "ip": self.reported_ipv4(vm),
            "cluster": vm.cluster.name,
            "template": vm.template.name,
            "template_version": vm.template.version,
            "initialization": None
            if init is None
            else {
                "user_name": init.user_name,
                "host_name": init.host_name,
                "authorized_ssh_keys": init.authorized_ssh_keys,
                "custom_script": init.custom_script,
            },
            "boot": None if vm.boot is None else vars(vm.boot).copy(),
            "node_error": vm.node_error,
        }


def _become_down(vm: VmRecord, _: float) -> None:
    vm.status = "down"


def _become_powering_up(vm: VmRecord, _: float) -> None:
    vm.status = "powering_up"


def _become_down_stopped(vm: VmRecord, _: float) -> None:
    vm.status, vm.stop_time = "down", _now()
