"""oVirt engine adapter: everything gimme asks of the engine, through ovirtsdk4.

Import this module lazily: it pulls in the SDK, which `gimme --help` must not pay for.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from ipaddress import ip_address
from typing import Any, TypeVar

import ovirtsdk4 as sdk
import ovirtsdk4.types as types

from gimme.config import EngineSettings
from gimme.errors import EngineError

log = logging.getLogger(__name__)
T = TypeVar("T")

GIMME_TAG = "gimme"
_BUSY = re.compile(r"locked|in progress|being updated|try again", re.IGNORECASE)
_SEARCH_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
# Interfaces whose addresses never reach the node from outside.
_IGNORED_IFACES = re.compile(
    r"^(lo|docker\d*|cni\d*|flannel.*|cali.*|tunl.*|vxlan.*|cilium.*|weave.*|kube-.*|antrea.*|veth.*|virbr.*)$"
)


@dataclass(frozen=True)
class Template:
    id: str
    name: str
    version: int


@dataclass(frozen=True)
class VmInfo:
    id: str
    name: str
    status: str
    description: str
    created: datetime | None


@dataclass(frozen=True)
class CloudInit:
    """What the VM boots with: its hostname, login user and the cluster's public key."""

    host_name: str
    user_name: str
    authorized_key: str

    def to_sdk(self) -> types.Initialization:
        return types.Initialization(
            host_name=self.host_name,
            user_name=self.user_name,
            authorized_ssh_keys=self.authorized_key,
            regenerate_ssh_keys=True,
            nic_configurations=[
                types.NicConfiguration(
                    name="eth0", on_boot=True, boot_protocol=types.BootProtocol.DHCP
                )
            ],
        )


def search_value(value: str) -> str:
    """A value safe to put into an engine search query; anything else is refused."""
    if not _SEARCH_SAFE.match(value):
        raise EngineError(f"refusing to search the engine for {value!r}: unexpected characters")
    return value


def pick_address(devices: Iterable[Any]) -> str | None:
    """The address gimme reaches a VM on: IPv4 first, then global IPv6, skipping lo/CNI/bridges."""
    v4: list[str] = []
    v6: list[str] = []
    for device in devices:
        if _IGNORED_IFACES.match(device.name or ""):
            continue
        for ip in device.ips or []:
            try:
                addr = ip_address(ip.address)
            except ValueError:
                continue
            if addr.is_link_local or addr.is_multicast or addr.is_unspecified:
                continue
            if str(addr) in ("127.0.0.1", "::1"):
                continue
            (v4 if addr.version == 4 else v6).append(str(addr))
    candidates = v4 or v6
    return candidates[0] if candidates else None


class Engine:
    """One connection to one engine, reused for every call of a gimme command."""

    def __init__(self, settings: EngineSettings, *, call_timeout: float = 120) -> None:
        self.settings = settings
        self.name = settings.name
        self._call_timeout = call_timeout
        self._connection: sdk.Connection | None = None

    # -- plumbing -------------------------------------------------------------

    @property
    def connection(self) -> sdk.Connection:
        if self._connection is None:
            s = self.settings
            if s.ca_file is not None and not s.ca_file.exists():
                raise EngineError(f"engine {s.name!r}: CA file {s.ca_file} does not exist")
            try:
                self._connection = sdk.Connection(
                    url=s.url,
                    username=s.username,
                    password=s.require_password().reveal(),
                    ca_file=str(s.ca_file) if s.ca_file else None,
                    insecure=s.insecure,
                    timeout=int(self._call_timeout),
                    log=None,
                    debug=False,
                )
            except sdk.Error as exc:
                raise EngineError(f"engine {s.name!r}: {exc}") from None
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except sdk.Error as exc:
                log.debug("engine %s: logout failed: %s", self.name, exc)
            self._connection = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], T], *, attempts: int = 6) -> T:
        """Run one SDK call; retry transient failures with capped backoff and jitter."""
        delay = 0.5
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except sdk.AuthError as exc:
                raise EngineError(
                    f"engine {self.name!r}: {what}: authentication failed: {_fault(exc)}"
                ) from None
            except sdk.NotFoundError:
                raise
            except sdk.Error as exc:
                if not _transient(exc) or attempt == attempts:
                    raise EngineError(f"engine {self.name!r}: {what}: {_fault(exc)}") from None
                log.info(
                    "engine %s: %s: %s; retrying (%d/%d)",
                    self.name,
                    what,
                    _fault(exc),
                    attempt,
                    attempts,
                )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 8.0)
        raise AssertionError("unreachable")

    # -- inventory --------------------------------------------------------------

    def version(self) -> str:
        api = self._call("read the API root", lambda: self.connection.system_service().get())
        v = api.product_info.version if api.product_info else None
        return v.full_version or f"{v.major}.{v.minor}" if v else "unknown"

    def template_names(self) -> set[str]:
        templates = self._call(
            "list templates", lambda: self.connection.system_service().templates_service().list()
        )
        return {t.name for t in templates if t.id != "00000000-0000-0000-0000-000000000000"}

    def find_template(self, name: str, cluster: str) -> Template:
        """The newest version of template `name` in the data center of oVirt cluster `cluster`."""
        system = self.connection.system_service()
        clusters = self._call(
            "look up the cluster",
            lambda: system.clusters_service().list(search=f"name={search_value(cluster)}"),
        )
        found = next((c for c in clusters if c.name == cluster), None)
        if found is None:
            raise EngineError(f"engine {self.name!r} has no cluster named {cluster!r}")
        query = f"name={search_value(name)}"
        if found.data_center is not None:
            dc_service = system.data_centers_service().data_center_service(found.data_center.id)
            dc = self._call("look up the data center", lambda: dc_service.get())
            query += f" and datacenter={search_value(dc.name)}"
        templates = self._call(
            "look up the template", lambda: system.templates_service().list(search=query)
        )
        usable = [t for t in templates if t.name == name]
        if not usable:
            raise EngineError(
                f"engine {self.name!r} has no template {name!r} for cluster {cluster!r}"
            )
        best = max(usable, key=lambda t: (t.version.version_number or 0) if t.version else 0)
        number = best.version.version_number if best.version else 1
        return Template(id=best.id, name=best.name, version=number or 1)

    # -- VMs --------------------------------------------------------------------

    def ensure_tag(self, name: str) -> None:
        tags = self.connection.system_service().tags_service()
        existing = self._call("list tags", lambda: tags.list())
        if any(t.name == name for t in existing):
            return
        try:
            self._call(
                "create tag", lambda: tags.add(types.Tag(name=name, description="managed by gimme"))
            )
        except EngineError as exc:
            if "already" not in str(exc).lower():
                raise

    def create_vm(
        self,
        *,
        name: str,
        cluster: str,
        template: Template,
        description: str,
        comment: str,
        memory_mib: int,
        cpus: int,
        cloud_init: CloudInit,
    ) -> str:
        """Add a thin VM from the template and return its id (status: image_locked)."""
        vm = _new_vm(
            name=name,
            cluster=cluster,
            template=template,
            description=description,
            comment=comment,
            memory_mib=memory_mib,
            cpus=cpus,
            cloud_init=cloud_init,
        )
        vms = self.connection.system_service().vms_service()
        delay = 0.5
        for attempt in range(1, 7):
            try:
                return vms.add(vm).id
            except sdk.AuthError as exc:
                raise EngineError(
                    f"engine {self.name!r}: create VM {name}: {_fault(exc)}"
                ) from None
            except sdk.Error as exc:
                if not _transient(exc) or attempt == 6:
                    raise EngineError(
                        f"engine {self.name!r}: create VM {name}: {_fault(exc)}"
                    ) from None
                # The add may have reached the engine before the reply was lost.
                found = self.find_vm(name)
                if found is not None:
                    return found.id
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 8.0)
        raise AssertionError("unreachable")

    def create_vms(self, vms: list[dict[str, Any]]) -> list[str]:
        """create_vm for each keyword set in `vms`, all adds sent before any reply is awaited
        (the SDK runs wait=False requests in parallel on this connection). An add that fails
        transiently is looked up by name, then retried by create_vm."""
        service = self.connection.system_service().vms_service()
        sent = [service.add(_new_vm(**vm), wait=False) for vm in vms]
        ids = []
        for vm, reply in zip(vms, sent, strict=True):
            try:
                ids.append(reply.wait().id)
            except sdk.Error as exc:
                if isinstance(exc, sdk.AuthError) or not _transient(exc):
                    raise EngineError(
                        f"engine {self.name!r}: create VM {vm['name']}: {_fault(exc)}"
                    ) from None
                found = self.find_vm(vm["name"])  # the add may have got through
                ids.append(found.id if found else self.create_vm(**vm))
        return ids

    def find_vm(self, name: str) -> VmInfo | None:
        vms = self.list_vms(f"name={search_value(name)}")
        return next((v for v in vms if v.name == name), None)

    def list_vms(self, search: str) -> list[VmInfo]:
        vms_service = self.connection.system_service().vms_service()
        vms = self._call(
            "list VMs", lambda: vms_service.list(search=search, case_sensitive=True, max=10000)
        )
        return [_vm_info(v) for v in vms]

    def vm_status(self, vm_id: str) -> str | None:
        """The VM's status, or None once the engine no longer knows it."""
        service = self.connection.system_service().vms_service().vm_service(vm_id)
        try:
            vm = self._call("read VM", lambda: service.get())
        except sdk.NotFoundError:
            return None
        return vm.status.value if vm.status else "unknown"

    def tag_vm(self, vm_id: str, tag: str) -> None:
        service = self.connection.system_service().vms_service().vm_service(vm_id).tags_service()
        try:
            self._call(f"tag VM with {tag}", lambda: service.add(types.Tag(name=tag)))
        except EngineError as exc:
            if "already" not in str(exc).lower():
                raise

    def start_vm(self, vm_id: str, name: str, cloud_init: CloudInit) -> bool:
        """Start with cloud-init. False while the engine is still busy with the VM."""
        service = self.connection.system_service().vms_service().vm_service(vm_id)
        run_once = types.Vm(initialization=cloud_init.to_sdk())
        try:
            self._call(f"start VM {name}", lambda: service.start(use_cloud_init=True, vm=run_once))
        except EngineError as exc:
            if "VM is running" in str(exc):
                return True  # an earlier attempt got through before its reply was lost
            if _BUSY.search(str(exc)):
                return False
            raise
        return True

    def vm_address(self, vm_id: str) -> str | None:
        """The address the guest agent reports, or None while it reports none."""
        service = self.connection.system_service().vms_service().vm_service(vm_id)
        devices = self._call(
            "read reported devices", lambda: service.reported_devices_service().list()
        )
        return pick_address(devices)

    def delete_vms(self, vms: dict[str, str], *, deadline: float) -> dict[str, str]:
        """Stop and remove VMs (id -> name) with their disks, all at once.

        A VM already gone counts as deleted. Returns the VMs that could not be deleted,
        id -> reason; a failure of one VM does not stop the others.
        """
        pending = dict(vms)
        failed: dict[str, str] = {}
        while pending:
            for vm_id, name in list(pending.items()):
                try:
                    if self._delete_step(vm_id, name):
                        del pending[vm_id]
                except EngineError as exc:
                    failed[vm_id] = str(exc)
                    del pending[vm_id]
            if pending and time.monotonic() >= deadline:
                for vm_id, name in pending.items():
                    failed[vm_id] = f"delete: VM {name} still there at the deadline"
                break
            if pending:
                time.sleep(0.3)
        return failed

    def _delete_step(self, vm_id: str, name: str) -> bool:
        """One move towards deletion; True once the engine no longer knows the VM."""
        service = self.connection.system_service().vms_service().vm_service(vm_id)
        status = self.vm_status(vm_id)
        if status is None:
            return True
        try:
            if status == "down":
                self._call(f"remove VM {name}", lambda: service.remove())
            elif status not in ("image_locked", "powering_down"):
                self._call(f"stop VM {name}", lambda: service.stop())
        except sdk.NotFoundError:
            return True
        except EngineError as exc:
            if not (
                _BUSY.search(str(exc)) or "not running" in str(exc) or "is running" in str(exc)
            ):
                raise
        return False


def _new_vm(
    *,
    name: str,
    cluster: str,
    template: Template,
    description: str,
    comment: str,
    memory_mib: int,
    cpus: int,
    cloud_init: CloudInit,
) -> types.Vm:
    return types.Vm(
        name=name,
        cluster=types.Cluster(name=cluster),
        template=types.Template(id=template.id),
        description=description,
        comment=comment,
        memory=memory_mib * 1024 * 1024,
        cpu=types.Cpu(topology=types.CpuTopology(cores=cpus, sockets=1, threads=1)),
        initialization=cloud_init.to_sdk(),
    )


def _vm_info(vm: types.Vm) -> VmInfo:
    return VmInfo(
        id=vm.id,
        name=vm.name,
        status=vm.status.value if vm.status else "unknown",
        description=vm.description or "",
        created=vm.creation_time,
    )


def _fault(exc: sdk.Error) -> str:
    fault = getattr(exc, "fault", None)
    if fault is not None and (fault.detail or fault.reason):
        detail = (fault.detail or fault.reason or "").strip("[] ")
        return f"{detail} (HTTP {exc.code})" if exc.code else detail
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _transient(exc: sdk.Error) -> bool:
    """Connection drops, timeouts, 5xx and non-XML error pages (a proxy in front) are retried;
    a certificate the engine's CA does not vouch for is not."""
    if isinstance(exc, (sdk.ConnectionError, sdk.TimeoutError)):
        return True
    code = getattr(exc, "code", None)
    if code is not None:
        return code >= 500
    text = str(exc)
    if "certificate" in text.lower():
        return False
    transport = ("Error while sending HTTP request", "Failed to read response")
    return text.startswith(transport) or "isn't the expected" in text
