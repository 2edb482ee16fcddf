"""The fake oVirt engine, driven by the real ovirtsdk4 client over HTTPS (and HTTP)."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import ovirtsdk4 as sdk
import pytest
from ovirtsdk4 import types

from tests.testbed.engine import (
    BLANK_TEMPLATE_ID,
    ClusterDef,
    DataCenterDef,
    Delays,
    FakeEngine,
    Inventory,
    TemplateDef,
)
from tests.testbed.engine_inventory import OS_RELEASES

pytest_plugins = ["tests.testbed.fixtures"]  # make_engine, fake_engine, ovirt

T = TypeVar("T")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPv2 alice@laptop"


# ----------------------------------------------------------------------------- helpers


def wait_for(probe: Callable[[], T], timeout: float = 10.0, interval: float = 0.01) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s; last value {value!r}")
        time.sleep(interval)


def vms_service(conn: sdk.Connection) -> Any:
    return conn.system_service().vms_service()


def add_vm(
    conn: sdk.Connection, name: str, template: str = "ubuntu-22.04", **attrs: Any
) -> types.Vm:
    attrs.setdefault("cluster", types.Cluster(name="rack-1"))
    return vms_service(conn).add(
        types.Vm(name=name, template=types.Template(name=template), **attrs)
    )


def wait_status(conn: sdk.Connection, vm_id: str, status: types.VmStatus) -> types.Vm:
    service = vms_service(conn).vm_service(vm_id)
    return wait_for(lambda: (vm := service.get()).status == status and vm)


def reported_ips(conn: sdk.Connection, vm_id: str) -> dict[str, list[str]]:
    devices = vms_service(conn).vm_service(vm_id).reported_devices_service().list()
    return {d.name: [ip.address for ip in d.ips] for d in devices}


def running_vm(conn: sdk.Connection, name: str, **attrs: Any) -> types.Vm:
    vm = add_vm(conn, name, **attrs)
    wait_status(conn, vm.id, types.VmStatus.DOWN)
    vms_service(conn).vm_service(vm.id).start(use_cloud_init=True)
    return wait_status(conn, vm.id, types.VmStatus.UP)


def sdk_error(call: Callable[[], object]) -> sdk.Error:
    with pytest.raises(sdk.Error) as info:
        call()
    return info.value


def raw(
    engine: FakeEngine, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, bytes, str]:
    """One plain HTTP request to the engine (no SDK): (status, body, content type)."""
    port = int(engine.url.split(":")[2].split("/")[0])
    context = ssl.create_default_context(cafile=str(engine.ca_file))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("Content-Type") or ""
    finally:
        conn.close()


class RecordingPool:
    """A NodePool test double: records calls, hands out 127.0.10.100+, and refuses to
    start a node that runs already (as the real pool does)."""

    def __init__(self, fail: bool = False, boot_seconds: float = 0.0) -> None:
        self.fail, self.boot_seconds = fail, boot_seconds
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.stopped: list[str] = []
        self.events: list[tuple[str, str]] = []
        self.running: set[str] = set()
        self._lock = threading.Lock()

    def start_node(self, vm_id: str, **boot: Any) -> str:
        with self._lock:
            assert vm_id not in self.running, "start_node on a running node"
            self.started.append((vm_id, boot))
            self.events.append(("start", vm_id))
            address = f"127.0.10.{99 + len(self.started)}"
        time.sleep(self.boot_seconds)
        if self.fail:
            raise RuntimeError("sshd did not come up")
        with self._lock:
            self.running.add(vm_id)
        return address

    def stop_node(self, vm_id: str) -> None:
        with self._lock:
            self.stopped.append(vm_id)
            self.events.append(("stop", vm_id))
            self.running.discard(vm_id)


# ------------------------------------------------------------------ login and inventory


def test_login_and_api_root(fake_engine: FakeEngine, ovirt: sdk.Connection) -> None:
    api = ovirt.system_service().get()
    assert ovirt.test(raise_exception=True)
    assert (api.product_info.version.major, api.product_info.version.minor) == (4, 5)
    assert api.special_objects.blank_template.id == BLANK_TEMPLATE_ID
    log = fake_engine.requests()
    assert [(e["method"], e["path"], e["status"]) for e in log[:2]] == [
        ("POST", "/ovirt-engine/sso/oauth/token", 200),
        ("GET", "/ovirt-engine/api", 200),
    ]
    assert fake_engine.url.startswith("https://127.0.0.1:")


def test_inventory_listing(ovirt: sdk.Connection) -> None:
    system = ovirt.system_service()
    templates = system.templates_service().list()
    assert {t.name for t in templates} == {"Blank", *OS_RELEASES}
    assert all(
        t.status == types.TemplateStatus.OK and t.version.version_number == 1 for t in templates
    )
    ubuntus = system.templates_service().list(search="name=ubuntu-* and datacenter=dc1")
    assert sorted(t.name for t in ubuntus) == ["ubuntu-20.04", "ubuntu-22.04", "ubuntu-24.04"]
    assert len(system.templates_service().list(search="cluster=rack-2")) == len(OS_RELEASES)
    made_in = ovirt.follow_link(ubuntus[0].cluster)  # the cluster the template was made in
    assert made_in.name == "rack-1" and ovirt.follow_link(made_in.data_center).name == "dc1"

    clusters = system.clusters_service().list()
    assert [c.name for c in clusters] == ["rack-1", "rack-2"]
    assert ovirt.follow_link(clusters[1].data_center).name == "dc1"
    assert [c.name for c in system.clusters_service().list(search="name=rack-2")] == ["rack-2"]
    assert [d.name for d in system.data_centers_service().list()] == ["dc1"]
    hosts = system.hosts_service().list()
    assert [(h.name, h.status) for h in hosts] == [("h1", types.HostStatus.UP)]
    domains = system.storage_domains_service().list()
    assert [(d.name, d.type) for d in domains] == [("data1", types.StorageDomainType.DATA)]
    profile = system.vnic_profiles_service().list()[0]
    assert profile.name == "ovirtmgmt" and ovirt.follow_link(profile.network).name == "ovirtmgmt"


def test_template_versions_by_name_pick_the_highest(make_engine: Callable[..., FakeEngine]) -> None:
    release = dict(OS_RELEASES["debian-12"])
    inventory = Inventory(
        data_centers=[DataCenterDef("dc1"), DataCenterDef("dc2")],
        clusters=[ClusterDef("c1"), ClusterDef("c2", data_center="dc2")],
        templates=[
            TemplateDef("debian-12", release),
            TemplateDef("debian-12", release, version=2),
            TemplateDef("debian-12", release, version=3, data_center="dc2"),
        ],
    )
    engine = make_engine(inventory=inventory)
    conn = engine.connection()
    found = (
        conn.system_service().templates_service().list(search="name=debian-12 and datacenter=dc1")
    )
    assert sorted(t.version.version_number for t in found) == [1, 2]
    base = next(t for t in found if t.version.version_number == 1)
    v2 = next(t for t in found if t.version.version_number == 2)
    assert v2.version.base_template.id == base.id
    by_name = add_vm(conn, "a", template="debian-12", cluster=types.Cluster(name="c1"))
    assert by_name.template.id == v2.id
    by_id = vms_service(conn).add(
        types.Vm(name="b", cluster=types.Cluster(name="c1"), template=types.Template(id=base.id))
    )
    assert by_id.template.id == base.id
    elsewhere = next(t for t in inventory.templates if t.data_center == "dc2")
    wrong_dc = sdk_error(
        lambda: vms_service(conn).add(
            types.Vm(
                name="c", cluster=types.Cluster(name="c1"), template=types.Template(id=elsewhere.id)
            )
        )
    )
    assert wrong_dc.code == 400
    assert wrong_dc.fault.detail == "[Cannot add VM. The relevant Template doesn't exist.]"
    conn.close()


# ------------------------------------------------------------------------ VM life cycle


def test_three_vms_with_cloud_init_persisted_and_run_once(
    fake_engine: FakeEngine, ovirt: sdk.Connection
) -> None:
    persisted = types.Initialization(
        user_name="core", authorized_ssh_keys=KEY, host_name="cp-0", custom_script="#cloud-config\n"
    )
    vms = [
        add_vm(ovirt, "gimme-abc-cp-0", initialization=persisted, description="gimme:cluster=abc"),
        add_vm(ovirt, "gimme-abc-worker-0", template="rocky-9", comment="owner=alice"),
        add_vm(ovirt, "gimme-abc-worker-1", template="debian-12", memory=4 * 1024**3),
    ]
    assert [vm.status for vm in vms] == [types.VmStatus.IMAGE_LOCKED] * 3
    assert fake_engine.requests()[-1]["status"] == 202
    assert vms[0].initialization.authorized_ssh_keys == KEY
    fetched = vms_service(ovirt).vm_service(vms[0].id).get()
    assert (fetched.initialization.user_name, fetched.description) == ("core", "gimme:cluster=abc")
    assert vms_service(ovirt).vm_service(vms[2].id).get().memory == 4 * 1024**3

    for vm in vms:
        wait_status(ovirt, vm.id, types.VmStatus.DOWN)
    run_once = types.Initialization(
        user_name="rocky", authorized_ssh_keys=KEY, host_name="worker-0"
    )
    service = vms_service(ovirt)
    service.vm_service(vms[0].id).start(use_cloud_init=True)
    service.vm_service(vms[1].id).start(use_cloud_init=True, vm=types.Vm(initialization=run_once))
    service.vm_service(vms[2].id).start(
        use_cloud_init=True,
        vm=types.Vm(initialization=types.Initialization(authorized_ssh_keys=KEY)),
    )
    for vm in vms:
        wait_status(ovirt, vm.id, types.VmStatus.UP)
        ips = wait_for(lambda vm=vm: reported_ips(ovirt, vm.id))
        v4 = [a for a in ips["eth0"] if "." in a]
        assert len(v4) == 1 and v4[0].startswith("127.0.10.")
        assert any(a.startswith("fe80::") for a in ips["eth0"])
        assert ips["lo"] == ["127.0.0.1", "::1"]

    state = {vm["name"]: vm for vm in fake_engine.vms()}
    assert len({vm["ip"] for vm in state.values()}) == 3
    assert state["gimme-abc-cp-0"]["boot"]["user"] == "core"
    assert state["gimme-abc-cp-0"]["boot"]["hostname"] == "cp-0"
    assert state["gimme-abc-worker-0"]["boot"]["hostname"] == "worker-0"
    assert state["gimme-abc-worker-0"]["initialization"] is None  # run-once is not persisted
    assert state["gimme-abc-worker-1"]["boot"]["user"] == "debian"  # the image's default user
    assert state["gimme-abc-worker-1"]["boot"]["hostname"] == "gimme-abc-worker-1"
    assert state["gimme-abc-worker-1"]["boot"]["authorized_keys"] == KEY


def test_states_follow_time_not_polls(make_engine: Callable[..., FakeEngine]) -> None:
    delays = Delays(image_locked=0.3, powering_up=0.8, ip_report=0.5, powering_down=0.2, remove=0.2)
    engine = make_engine(delays=delays, delay_scale=1.0)
    conn = engine.connection()
    vm = add_vm(conn, "slow-poller")
    service = vms_service(conn).vm_service(vm.id)
    time.sleep(0.45)  # nobody polls while the image is created
    assert service.get().status == types.VmStatus.DOWN
    started = time.monotonic()
    service.start()
    seen = [service.get().status]
    while seen[-1] != types.VmStatus.UP:
        time.sleep(0.02)
        seen.append(service.get().status)
    assert time.monotonic() - started >= 0.8
    assert [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s] == [
        types.VmStatus.WAIT_FOR_LAUNCH,
        types.VmStatus.POWERING_UP,
        types.VmStatus.UP,
    ]
    assert reported_ips(conn, vm.id) == {}  # the agent needs ip_report after up
    time.sleep(0.55)
    assert "eth0" in reported_ips(conn, vm.id)
    engine.set_delay_scale(5)  # powering down now takes a second
    service.stop()
    time.sleep(0.3)
    assert service.get().status == types.VmStatus.POWERING_DOWN
    wait_status(conn, vm.id, types.VmStatus.DOWN)
    conn.close()


def test_blank_vm_is_created_down_and_boots_without_agent(
    fake_engine: FakeEngine, ovirt: sdk.Connection
) -> None:
    vm = add_vm(ovirt, "empty", template="Blank")
    assert vm.status == types.VmStatus.DOWN and vm.template.id == BLANK_TEMPLATE_ID
    assert fake_engine.requests()[-1]["status"] == 201
    vms_service(ovirt).vm_service(vm.id).start(use_cloud_init=False)
    wait_status(ovirt, vm.id, types.VmStatus.UP)
    time.sleep(0.3)  # three times the scaled ip_report delay
    assert reported_ips(ovirt, vm.id) == {}
    boot = fake_engine.vms()[0]["boot"]
    assert (boot["hostname"], boot["user"], boot["authorized_keys"]) == ("empty", "cloud-user", "")


def test_stop_remove_then_404(fake_engine: FakeEngine, ovirt: sdk.Connection) -> None:
    vm = running_vm(ovirt, "gimme-x-0")
    first_ip = wait_for(lambda: reported_ips(ovirt, vm.id))["eth0"][0]
    service = vms_service(ovirt).vm_service(vm.id)
    service.stop()
    assert reported_ips(ovirt, vm.id) == {}
    wait_status(ovirt, vm.id, types.VmStatus.DOWN)
    fast = fake_engine.delay_scale
    fake_engine.set_delay_scale(2)  # removal takes a second
    service.remove()
    assert fake_engine.requests()[-1]["status"] == 200
    locked = sdk_error(service.remove)  # removal still running
    assert (
        locked.code == 409 and "Related operation is currently in progress" in locked.fault.detail
    )
    missing = wait_for(
        lambda: isinstance(e := _error_or_none(service.get), sdk.NotFoundError) and e
    )
    assert missing.code == 404 and missing.fault is None
    assert fake_engine.vms() == []
    fake_engine.set_delay_scale(fast)
    successor = running_vm(ovirt, "gimme-x-1")  # the engine reuses the freed address
    assert wait_for(lambda: reported_ips(ovirt, successor.id))["eth0"][0] == first_ip


def _error_or_none(call: Callable[[], object]) -> sdk.Error | None:
    try:
        call()
    except sdk.Error as exc:
        return exc
    return None


def test_shutdown_and_async_remove(ovirt: sdk.Connection) -> None:
    vm = running_vm(ovirt, "gimme-y-0")
    service = vms_service(ovirt).vm_service(vm.id)
    service.shutdown()
    wait_status(ovirt, vm.id, types.VmStatus.DOWN)
    accepted = sdk_error(lambda: service.remove(async_=True))  # the SDK only accepts 200
    assert accepted.code == 202
    wait_for(lambda: isinstance(_error_or_none(service.get), sdk.NotFoundError))


def test_update_vm(fake_engine: FakeEngine, ovirt: sdk.Connection) -> None:
    fast = fake_engine.delay_scale
    fake_engine.set_delay_scale(10)  # the next image stays locked for 20 s
    locked_vm = add_vm(ovirt, "one")
    locked = sdk_error(
        lambda: vms_service(ovirt).vm_service(locked_vm.id).update(types.Vm(comment="x"))
    )
    assert locked.code == 409 and locked.fault.detail == (
        "[Cannot edit VM: VM is locked. Please try again in a few minutes.]"
    )
    fake_engine.set_delay_scale(fast)
    vm = add_vm(ovirt, "two")
    wait_status(ovirt, vm.id, types.VmStatus.DOWN)
    service = vms_service(ovirt).vm_service(vm.id)
    updated = service.update(types.Vm(description="d2", comment="c2", name="uno"))
    assert (updated.name, updated.description, updated.comment) == ("uno", "d2", "c2")
    clash = sdk_error(lambda: service.update(types.Vm(name="one")))
    assert clash.code == 409 and clash.fault.detail.startswith(
        "[Cannot edit VM. The VM name is already in use"
    )


def test_links_nics_and_per_nic_reported_devices(ovirt: sdk.Connection) -> None:
    vm = running_vm(ovirt, "linked")
    assert ovirt.follow_link(vm.cluster).name == "rack-1"
    assert ovirt.follow_link(vm.template).name == "ubuntu-22.04"
    assert ovirt.follow_link(vm.host).name == "h1"
    nics = ovirt.follow_link(vm.nics)
    assert [n.name for n in nics] == ["nic1"]
    nic_service = vms_service(ovirt).vm_service(vm.id).nics_service().nic_service(nics[0].id)
    devices = wait_for(lambda: nic_service.reported_devices_service().list())
    assert [d.name for d in devices] == ["eth0"]  # only the device behind this NIC, no lo
    assert devices[0].mac.address == nics[0].mac.address
    assert ovirt.follow_link(devices[0]).ips[0].address.startswith("127.0.10.")
    assert ovirt.follow_link(devices[0].vm).name == "linked"


# -------------------------------------------------------------------------------- faults


def test_duplicate_name_remove_while_up_start_while_locked(
    fake_engine: FakeEngine, ovirt: sdk.Connection
) -> None:
    fast = fake_engine.delay_scale
    fake_engine.set_delay_scale(10)  # the next image stays locked for 20 s
    locked_vm = add_vm(ovirt, "gimme-dup")
    service = vms_service(ovirt).vm_service(locked_vm.id)
    locked = sdk_error(lambda: service.start(use_cloud_init=True))
    assert locked.code == 409
    assert locked.fault.reason == "Operation Failed"
    assert (
        locked.fault.detail == "[Cannot run VM: VM is locked. Please try again in a few minutes.]"
    )
    locked_remove = sdk_error(service.remove)
    assert (
        locked_remove.code == 409
        and "Related operation is currently in progress" in locked_remove.fault.detail
    )
    duplicate = sdk_error(lambda: add_vm(ovirt, "gimme-dup", cluster=types.Cluster(name="rack-2")))
    assert duplicate.code == 409
    assert duplicate.fault.detail == (
        "[Cannot add VM. The VM name is already in use, please choose a unique name and try again.]"
    )

    fake_engine.set_delay_scale(fast)
    vm = add_vm(ovirt, "gimme-run")
    wait_status(ovirt, vm.id, types.VmStatus.DOWN)
    service = vms_service(ovirt).vm_service(vm.id)
    service.start()
    running = sdk_error(service.start)  # launching or up: both count as running
    assert running.code == 409 and running.fault.detail == "[Cannot run VM. VM is running.]"
    wait_status(ovirt, vm.id, types.VmStatus.UP)
    up = sdk_error(service.remove)
    assert up.code == 409 and up.fault.detail == "[Cannot remove VM. VM is running.]"
    assert isinstance(up, sdk.Error) and not isinstance(up, sdk.NotFoundError)


def test_concurrent_adds_of_one_name_let_exactly_one_win(fake_engine: FakeEngine) -> None:
    connections = [fake_engine.connection() for _ in range(6)]
    outcomes: list[object] = []

    def add(conn: sdk.Connection) -> None:
        try:
            outcomes.append(add_vm(conn, "gimme-race-0").id)
        except sdk.Error as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=add, args=(conn,)) for conn in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o for o in outcomes if o == 409) == [409] * 5
    assert [vm["id"] for vm in fake_engine.vms()] == [o for o in outcomes if o != 409]
    for conn in connections:
        conn.close()


def test_validation_faults(ovirt: sdk.Connection) -> None:
    vms = vms_service(ovirt)
    no_cluster = sdk_error(
        lambda: vms.add(types.Vm(name="x", template=types.Template(name="rocky-9")))
    )
    assert (no_cluster.code, no_cluster.fault.reason) == (400, "Incomplete parameters")
    assert no_cluster.fault.detail == "Vm [cluster.id|name] required for add"
    no_such_cluster = sdk_error(lambda: add_vm(ovirt, "x", cluster=types.Cluster(name="rack-9")))
    assert isinstance(no_such_cluster, sdk.NotFoundError)
    assert no_such_cluster.fault.detail == "Entity not found: Cluster: name=rack-9"
    no_such_template = sdk_error(lambda: add_vm(ovirt, "x", template="windows-11"))
    assert (
        no_such_template.code == 404
        and no_such_template.fault.detail == "Entity not found: GetVmTemplate"
    )
    too_long = sdk_error(lambda: add_vm(ovirt, "x" * 65))
    assert (
        too_long.code == 400
        and too_long.fault.detail == "[Cannot add VM. The given name is too long.]"
    )
    add_vm(ovirt, "x" * 64)
    special = sdk_error(lambda: add_vm(ovirt, "bad name!"))
    assert special.code == 400 and "contains special characters" in special.fault.detail

    vm = add_vm(ovirt, "gimme-v-0")
    wait_status(ovirt, vm.id, types.VmStatus.DOWN)
    service = vms.vm_service(vm.id)
    stop = sdk_error(service.stop)
    assert stop.code == 409 and stop.fault.detail == "[Cannot stop VM. VM is not running.]"
    shutdown = sdk_error(service.shutdown)
    assert shutdown.fault.detail == "[Cannot shutdown VM. VM is not running.]"
    detach = sdk_error(lambda: service.remove(detach_only=True))
    assert detach.code == 409 and "based from template" in detach.fault.detail
    unknown = sdk_error(lambda: vms.vm_service("00000000-1111-2222-3333-444444444444").get())
    assert isinstance(unknown, sdk.NotFoundError) and unknown.fault is None


def test_injected_http_500(fake_engine: FakeEngine, ovirt: sdk.Connection) -> None:
    fake_engine.inject("http_500", count=2, match="list_vms")
    ovirt.system_service().get()  # other kinds are not affected
    for _ in range(2):
        error = sdk_error(lambda: vms_service(ovirt).list())
        assert error.code == 500 and error.fault.detail == "[Internal Engine Error]"
    assert vms_service(ovirt).list() == []


def test_injected_http_503_is_an_html_proxy_page(
    fake_engine: FakeEngine, ovirt: sdk.Connection
) -> None:
    fake_engine.inject("http_503", match="list_vms")
    error = sdk_error(lambda: vms_service(ovirt).list())
    assert "text/html" in str(error) and "isn't the expected XML" in str(error)
    assert fake_engine.requests()[-1]["status"] == 503
    assert vms_service(ovirt).list() == []


def test_injected_drop_on_a_kept_alive_connection(
    fake_engine: FakeEngine, ovirt: sdk.Connection
) -> None:
    ovirt.system_service().get()  # the next request reuses this connection
    fake_engine.inject("drop", match="list_vms")
    error = sdk_error(lambda: vms_service(ovirt).list())
    assert error.code is None and "Failed to read response" in str(error)  # no HTTP reply
    dropped = [e for e in fake_engine.requests() if e["kind"] == "list_vms"]
    assert dropped and all(e["status"] is None for e in dropped)
    assert vms_service(ovirt).list() == []


def test_injected_slow(fake_engine: FakeEngine, ovirt: sdk.Connection) -> None:
    ovirt.system_service().get()
    fake_engine.inject("slow", seconds=0.3, match="get_vm", count=1)
    started = time.monotonic()
    vms_service(ovirt).list()
    assert time.monotonic() - started < 0.25
    vm = add_vm(ovirt, "slowpoke")
    started = time.monotonic()
    vms_service(ovirt).vm_service(vm.id).get()
    assert time.monotonic() - started >= 0.3


def test_injected_capacity_and_quota(fake_engine: FakeEngine, ovirt: sdk.Connection) -> None:
    fake_engine.inject("capacity", match="add_vm", quota=True)
    quota = sdk_error(lambda: add_vm(ovirt, "q"))
    assert (
        quota.code == 409
        and quota.fault.detail == "[Cannot add VM. Quota has insufficient cluster resources.]"
    )
    vm = add_vm(ovirt, "q")
    wait_status(ovirt, vm.id, types.VmStatus.DOWN)
    fake_engine.inject("capacity", match="start", host="h1", available_mb=512)
    no_host = sdk_error(lambda: vms_service(ovirt).vm_service(vm.id).start())
    assert no_host.code == 409
    assert no_host.fault.detail.startswith(
        "[Cannot run VM. There is no host that satisfies current scheduling constraints."
    )
    assert "(512 MB)" in no_host.fault.detail
    assert fake_engine.vms()[0]["status"] == "down"


def test_injected_no_ip(fake_engine: FakeEngine, ovirt: sdk.Connection) -> None:
    fake_engine.inject("no_ip", vm_name="gimme-*-silent")
    silent = running_vm(ovirt, "gimme-a-silent")
    chatty = running_vm(ovirt, "gimme-a-chatty")
    wait_for(lambda: reported_ips(ovirt, chatty.id))
    time.sleep(0.3)  # three times the scaled ip_report delay
    assert reported_ips(ovirt, silent.id) == {}
    assert vms_service(ovirt).vm_service(silent.id).get().status == types.VmStatus.UP
    service = vms_service(ovirt).vm_service(silent.id)
    service.stop()
    wait_status(ovirt, silent.id, types.VmStatus.DOWN)
    service.start()  # the agent stays missing after a reboot
    wait_status(ovirt, silent.id, types.VmStatus.UP)
    time.sleep(0.3)
    assert reported_ips(ovirt, silent.id) == {}
    assert fake_engine.vms()[1]["ip"] is None and fake_engine.vms()[0]["ip"] is not None


def test_injected_start_fails_and_crash(fake_engine: FakeEngine, ovirt: sdk.Connection) -> None:
    fake_engine.inject("start_fails", vm_name="victim")
    fake_engine.inject("start_fails", vm_name="crasher", crash=True, after=0.6)
    victim, crasher = add_vm(ovirt, "victim"), add_vm(ovirt, "crasher")
    for vm in (victim, crasher):
        wait_status(ovirt, vm.id, types.VmStatus.DOWN)
    refused = sdk_error(lambda: vms_service(ovirt).vm_service(victim.id).start())
    assert refused.code == 409 and "There is no host" in refused.fault.detail
    vms_service(ovirt).vm_service(victim.id).start()  # count was 1
    vms_service(ovirt).vm_service(crasher.id).start()
    wait_status(ovirt, crasher.id, types.VmStatus.UP)
    down = wait_status(ovirt, crasher.id, types.VmStatus.DOWN)
    assert down.stop_time is not None
    assert wait_status(ovirt, victim.id, types.VmStatus.UP).name == "victim"


def test_injected_sso_failure_and_bad_kind(fake_engine: FakeEngine) -> None:
    fake_engine.inject("http_500", match="sso")
    conn = fake_engine.connection()
    error = sdk_error(lambda: conn.system_service().get())
    assert isinstance(error, sdk.AuthError) and "server_error" in str(error)
    assert conn.system_service().get().product_info.name == "oVirt Engine"
    conn.close()
    with pytest.raises(ValueError):
        fake_engine.inject("meteor")
    with pytest.raises(ValueError):
        fake_engine.inject("http_500", match="no_such_kind")
    with pytest.raises(ValueError):
        fake_engine.inject("capacity", vm_name="x")


# ------------------------------------------------------------------------ tags and search


def test_tags(fake_engine: FakeEngine, ovirt: sdk.Connection) -> None:
    tags = ovirt.system_service().tags_service()
    gimme = tags.add(types.Tag(name="gimme", description="made by gimme"))
    assert gimme.parent.id == "00000000-0000-0000-0000-000000000000"
    duplicate = sdk_error(lambda: tags.add(types.Tag(name="gimme")))
    assert (
        duplicate.code == 409
        and duplicate.fault.detail == "[The specified Tag name already exists.]"
    )
    owner = tags.add(types.Tag(name="owner-alice"))
    assert {t.name for t in tags.list()} == {"root", "gimme", "owner-alice"}

    tagged, other = add_vm(ovirt, "gimme-t-0"), add_vm(ovirt, "gimme-t-1")
    vm_tags = vms_service(ovirt).vm_service(tagged.id).tags_service()
    vm_tags.add(types.Tag(name="gimme"))
    vm_tags.add(types.Tag(id=owner.id))
    vm_tags.add(types.Tag(name="gimme"))  # assigning twice is fine, as in the engine
    assert sorted(t.name for t in vm_tags.list()) == ["gimme", "owner-alice"]
    found = vms_service(ovirt).list(search="tag=gimme")
    assert [vm.name for vm in found] == ["gimme-t-0"]
    missing = sdk_error(
        lambda: vms_service(ovirt).vm_service(other.id).tags_service().add(types.Tag(name="nope"))
    )
    assert (
        isinstance(missing, sdk.NotFoundError) and missing.fault.detail == "Entity not found: nope"
    )

    vm_tags.tag_service(owner.id).remove()
    assert [t.name for t in vm_tags.list()] == ["gimme"]
    tags.tag_service(gimme.id).remove()
    assert vm_tags.list() == []
    assert fake_engine.vms()[0]["tags"] == []


def test_search(fake_engine: FakeEngine, ovirt: sdk.Connection) -> None:
    for name, cluster in (
        ("gimme-abc-cp-0", "abc"),
        ("gimme-abc-worker-0", "abc"),
        ("gimme-xyz-cp-0", "xyz"),
        ("other", ""),
    ):
        vm = add_vm(ovirt, name, description=f"gimme:cluster={cluster}", comment="Owner=Alice")
    wait_status(ovirt, vm.id, types.VmStatus.DOWN)  # the last one: all four are down
    fake_engine.set_delay_scale(10)
    add_vm(ovirt, "gimme-abc-worker-1")  # image_locked for 20 s

    def names(query: str, **kwargs: Any) -> list[str]:
        return [vm.name for vm in vms_service(ovirt).list(search=query, **kwargs)]

    assert names("name=gimme-abc-*") == [
        "gimme-abc-cp-0",
        "gimme-abc-worker-0",
        "gimme-abc-worker-1",
    ]
    assert names("name=gimme-abc-* and status=down") == ["gimme-abc-cp-0", "gimme-abc-worker-0"]
    assert names("NAME=gimme-abc-* AND Status=ImageLocked") == ["gimme-abc-worker-1"]
    assert names("name=gimme-abc-* status=imagelocked") == ["gimme-abc-worker-1"]  # implicit and
    assert names("name=other or name=gimme-xyz-*") == ["gimme-xyz-cp-0", "other"]
    assert names('description="gimme:cluster=abc"') == ["gimme-abc-cp-0", "gimme-abc-worker-0"]
    assert names("comment=owner=alice") == []  # case-sensitive by default
    assert len(names("comment=owner=alice", case_sensitive=False)) == 4
    assert names("name!=gimme-* and cluster=rack-1") == ["other"]
    assert names("name=gimme-* sortby name desc", max=2) == ["gimme-xyz-cp-0", "gimme-abc-worker-1"]
    assert names("name=gimme-*", max=1) == ["gimme-abc-cp-0"]
    vm = vms_service(ovirt).list(search="name=other")[0]
    assert names(f"id={vm.id.upper()}") == ["other"]
    for bad in (
        "name=",
        "name=x and",
        "flavour=large",
        "name>x",
        "status=image_locked",
        "(name=x)",
    ):
        error = sdk_error(lambda bad=bad: vms_service(ovirt).list(search=bad))
        assert error.code == 400 and error.fault.reason == "Operation Failed", bad


# -------------------------------------------------------------------------- authentication


def test_token_expiry_reauthenticates_once(fake_engine: FakeEngine, ovirt: sdk.Connection) -> None:
    vms_service(ovirt).list()
    fake_engine.clear_log()
    fake_engine.expire_tokens()
    assert vms_service(ovirt).list() == []
    log = [(e["method"], e["path"], e["status"]) for e in fake_engine.requests()]
    assert log == [
        ("GET", "/ovirt-engine/api/vms", 401),
        ("POST", "/ovirt-engine/sso/oauth/token", 200),
        ("GET", "/ovirt-engine/api/vms", 200),
    ]


def test_token_ttl(make_engine: Callable[..., FakeEngine]) -> None:
    engine = make_engine(token_ttl=0.5)
    conn = engine.connection()
    conn.system_service().get()
    time.sleep(0.6)
    conn.system_service().get()
    sso = [e for e in engine.requests() if e["kind"] == "sso"]
    assert len(sso) == 2
    assert [e["status"] for e in engine.requests() if e["kind"] == "api_root"] == [
        200,
        401,
        200,
    ]
    conn.close()


def test_wrong_password_is_an_auth_error(fake_engine: FakeEngine) -> None:
    conn = fake_engine.connection(password="wrong")
    with pytest.raises(sdk.AuthError) as info:
        conn.system_service().get()
    assert str(info.value) == (
        "Error during SSO authentication access_denied : "
        "Cannot authenticate user 'admin@internal': The username or password is incorrect.."
    )
    assert fake_engine.requests()[-1]["status"] == 400
    assert not any(e["path"].startswith("/ovirt-engine/api") for e in fake_engine.requests())


def test_close_logs_out_and_revokes_the_token(fake_engine: FakeEngine) -> None:
    conn = fake_engine.connection()
    conn.system_service().get()
    token = conn.authenticate()
    conn.close()
    assert fake_engine.requests()[-1]["path"] == "/ovirt-engine/services/sso-logout"
    status, _, _ = raw(fake_engine, "GET", "/ovirt-engine/api", Authorization=f"Bearer {token}")
    assert status == 401


def test_raw_http_statuses(fake_engine: FakeEngine) -> None:
    status, body, content_type = raw(fake_engine, "GET", "/ovirt-engine/api")
    assert status == 401 and body == b""
    form = f"grant_type=password&scope=ovirt-app-api&username=admin%40internal&password={fake_engine.password}"
    status, body, content_type = raw(
        fake_engine,
        "POST",
        "/ovirt-engine/sso/oauth/token",
        form.encode(),
        **{"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    )
    reply = json.loads(body)
    assert status == 200 and content_type == "application/json"
    assert reply["token_type"] == "bearer" and reply["scope"] == "ovirt-app-api"
    auth = {"Authorization": f"Bearer {reply['access_token']}"}
    status, body, content_type = raw(fake_engine, "GET", "/ovirt-engine/api/vms", **auth)
    assert (status, content_type) == (200, "application/xml;charset=UTF-8")
    assert body.startswith(b'<?xml version="1.0"')
    status, body, _ = raw(fake_engine, "POST", "/ovirt-engine/api/vms", b"<vm", **auth)
    assert status == 400 and b"Request syntactically incorrect." in body
    status, body, _ = raw(fake_engine, "POST", "/ovirt-engine/api/tags", b"<vm/>", **auth)
    assert status == 400
    basic = base64.b64encode(f"{fake_engine.username}:{fake_engine.password}".encode()).decode()
    assert raw(fake_engine, "GET", "/ovirt-engine/api", Authorization=f"Basic {basic}")[0] == 200
    assert raw(fake_engine, "GET", "/ovirt-engine/api/nothing", **auth)[0] == 404
    assert raw(fake_engine, "DELETE", "/ovirt-engine/api/vms", **auth)[0] == 405
    assert raw(fake_engine, "GET", "/elsewhere")[0] == 404


# ------------------------------------------------------------------ node pool, log, control


def test_node_pool_receives_cloud_init_and_stops(make_engine: Callable[..., FakeEngine]) -> None:
    pool = RecordingPool()
    engine = make_engine(node_pool=pool)
    conn = engine.connection()
    vm = running_vm(
        conn,
        "gimme-n-0",
        template="alma-9",
        initialization=types.Initialization(
            authorized_ssh_keys=KEY, custom_script="#cloud-config\n"
        ),
    )
    ips = wait_for(lambda: reported_ips(conn, vm.id))
    assert "127.0.10.100" in ips["eth0"]
    assert pool.started == [
        (
            vm.id,
            {
                "hostname": "gimme-n-0",
                "user": "almalinux",
                "authorized_keys": KEY,
                "os_release": dict(OS_RELEASES["alma-9"]),
                "custom_script": "#cloud-config\n",
            },
        )
    ]
    vms_service(conn).vm_service(vm.id).stop()
    wait_for(lambda: pool.stopped == [vm.id])
    still_running = running_vm(conn, "gimme-n-1", template="fedora-41")
    wait_for(lambda: len(pool.started) == 2)
    conn.close()
    engine.stop()
    assert pool.stopped == [vm.id, still_running.id]  # stop() stops nodes still running


def test_node_operations_stay_in_order_on_a_quick_restart(
    make_engine: Callable[..., FakeEngine],
) -> None:
    pool = RecordingPool(boot_seconds=0.4)  # slower than powering down and up again
    engine = make_engine(node_pool=pool)
    conn = engine.connection()
    vm = running_vm(conn, "gimme-r-0")
    service = vms_service(conn).vm_service(vm.id)
    service.stop()  # while start_node still boots the node
    wait_status(conn, vm.id, types.VmStatus.DOWN)
    service.start()
    wait_status(conn, vm.id, types.VmStatus.UP)
    ips = wait_for(lambda: reported_ips(conn, vm.id))
    assert pool.events == [("start", vm.id), ("stop", vm.id), ("start", vm.id)]
    assert "127.0.10.101" in ips["eth0"] and engine.vms()[0]["node_error"] is None
    conn.close()


def test_node_that_fails_to_boot_reports_no_ip(make_engine: Callable[..., FakeEngine]) -> None:
    engine = make_engine(node_pool=RecordingPool(fail=True))
    conn = engine.connection()
    vm = running_vm(conn, "gimme-f-0")
    wait_for(lambda: engine.vms()[0]["node_error"])
    assert "sshd did not come up" in engine.vms()[0]["node_error"]
    assert reported_ips(conn, vm.id) == {}
    conn.close()


def test_request_log_and_mutating_requests(fake_engine: FakeEngine, ovirt: sdk.Connection) -> None:
    vms_service(ovirt).list(search="name=gimme-*", max=5)
    vm = add_vm(ovirt, "logged", comment="c")
    vms_service(ovirt).vm_service(vm.id).remove(force=True)
    listing = [e for e in fake_engine.requests() if e["kind"] == "list_vms"][0]
    assert listing["query"] == {"max": ["5"], "search": ["name=gimme-*"]}
    assert listing["method"] == "GET" and listing["status"] == 200 and listing["time"] > 0
    assert [
        (e["method"], e["path"], e["query"], e["status"]) for e in fake_engine.mutating_requests()
    ] == [
        ("POST", "/ovirt-engine/api/vms", {}, 202),
        ("DELETE", f"/ovirt-engine/api/vms/{vm.id}", {"force": ["true"]}, 200),
    ]
    fake_engine.clear_log()
    assert fake_engine.requests() == []


def test_control_api_over_http(fake_engine: FakeEngine, ovirt: sdk.Connection) -> None:
    add_vm(ovirt, "controlled")
    status, body, _ = raw(fake_engine, "GET", "/__testbed__/state")
    state = json.loads(body)
    assert status == 200 and [vm["name"] for vm in state["vms"]] == ["controlled"]
    assert state["tokens"] == 1 and state["tags"][0]["name"] == "root"
    inject = json.dumps({"kind": "http_500", "count": 1, "match": "list_vms"}).encode()
    assert raw(fake_engine, "POST", "/__testbed__/inject", inject)[0] == 200
    assert sdk_error(lambda: vms_service(ovirt).list()).code == 500
    assert raw(fake_engine, "POST", "/__testbed__/inject", b'{"kind": "nope"}')[0] == 400
    assert raw(fake_engine, "POST", "/__testbed__/delay_scale", b'{"scale": 0.5}')[0] == 200
    assert raw(fake_engine, "POST", "/__testbed__/expire_tokens")[0] == 200
    assert json.loads(raw(fake_engine, "GET", "/__testbed__/state")[1])["tokens"] == 0
    logged = json.loads(raw(fake_engine, "GET", "/__testbed__/requests")[1])
    assert logged[-1]["status"] == 500 and not any("__testbed__" in e["path"] for e in logged)
    assert raw(fake_engine, "POST", "/__testbed__/clear")[0] == 200
    assert fake_engine.requests() == []


def test_plain_http(make_engine: Callable[..., FakeEngine]) -> None:
    engine = make_engine(tls=False)
    assert engine.url.startswith("http://127.0.0.1:")
    conn = sdk.Connection(url=engine.url, username=engine.username, password=engine.password)
    vm = running_vm(conn, "plain")
    assert wait_for(lambda: reported_ips(conn, vm.id))["eth0"][0].startswith("127.0.10.")
    conn.close()


def test_stop_leaves_no_threads_or_sockets(make_engine: Callable[..., FakeEngine]) -> None:
    before = set(threading.enumerate())
    engine = make_engine(node_pool=RecordingPool())
    port = int(engine.url.split(":")[2].split("/")[0])
    conn = engine.connection()
    running_vm(conn, "left-running")  # and an idle keep-alive connection stays open
    started = time.monotonic()
    engine.stop()
    assert time.monotonic() - started < 2
    assert set(threading.enumerate()) - before == set()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    engine.stop()  # idempotent
    conn.close(logout=False)
