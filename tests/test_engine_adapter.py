"""gimme's engine adapter against the fake engine, through the real ovirtsdk4."""

from __future__ import annotations

import time
from collections.abc import Callable

import ovirtsdk4.types as types
import pytest

from gimme.config import EngineSettings, Secret
from gimme.engine import CloudInit, Engine, pick_address, search_value
from gimme.errors import EngineError
from tests.testbed.engine import FakeEngine

pytest_plugins = ["tests.testbed.fixtures"]

INIT = CloudInit(
    host_name="gimme-abcd1234-1", user_name="ubuntu", authorized_key="ssh-ed25519 AAAA gimme"
)


def _engine(fake: FakeEngine, password: str | None = None) -> Engine:
    settings = EngineSettings(
        name="rack-1",
        url=fake.url,
        username=fake.username,
        password=Secret(password or fake.password),
        ca_file=fake.ca_file,
    )
    return Engine(settings, call_timeout=10)


def _boot(engine: Engine, name: str = "gimme-abcd1234-1") -> str:
    template = engine.find_template("ubuntu-22.04", "rack-1")
    vm_id = engine.create_vm(
        name=name,
        cluster="rack-1",
        template=template,
        description="d",
        comment="c",
        memory_mib=2048,
        cpus=2,
        cloud_init=INIT,
    )
    deadline = time.monotonic() + 10
    while not (engine.vm_status(vm_id) == "down" and engine.start_vm(vm_id, name, INIT)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return vm_id


def _wait(predicate: Callable[[], object], seconds: float = 10) -> object:
    deadline = time.monotonic() + seconds
    while not (value := predicate()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return value


def test_boot_address_and_delete(fake_engine: FakeEngine) -> None:
    with _engine(fake_engine) as engine:
        vm_id = _boot(engine)
        _wait(lambda: engine.vm_status(vm_id) == "up")
        address = _wait(lambda: engine.vm_address(vm_id))
        assert str(address).startswith("127.0.10.")  # eth0's IPv4, not lo's or fe80::
        assert engine.delete_vms({vm_id: "gimme-abcd1234-1"}, deadline=time.monotonic() + 10) == {}
        assert engine.vm_status(vm_id) is None
    stops = [r for r in fake_engine.requests() if r["path"].endswith("/stop")]
    removes = [r for r in fake_engine.requests() if r["method"] == "DELETE"]
    assert len(stops) == 1 and removes and removes[-1]["status"] == 200


def test_template_lookup_is_exact(fake_engine: FakeEngine) -> None:
    with _engine(fake_engine) as engine:
        template = engine.find_template("rocky-9", "rack-2")
        assert template.name == "rocky-9"
        with pytest.raises(EngineError, match="no template 'rocky'"):
            engine.find_template("rocky", "rack-1")  # no prefix match
        with pytest.raises(EngineError, match="no cluster named 'rack-9'"):
            engine.find_template("rocky-9", "rack-9")
        assert {"ubuntu-22.04", "rocky-9"} <= engine.template_names()


def test_transient_faults_are_retried(fake_engine: FakeEngine) -> None:
    with _engine(fake_engine) as engine:
        engine.version()
        fake_engine.inject("http_500", count=2, match="list_vms")
        assert engine.list_vms("name=gimme-*") == []
        fake_engine.inject("http_503", count=1, match="list_vms")
        assert engine.list_vms("name=gimme-*") == []
        fake_engine.inject("drop", count=1, match="add_vm")
        vm_id = _boot(engine)
    adds = [r for r in fake_engine.mutating_requests() if r["path"].endswith("/api/vms")]
    assert len([vm for vm in fake_engine.vms() if vm["name"] == "gimme-abcd1234-1"]) == 1
    assert any(vm["id"] == vm_id for vm in fake_engine.vms())
    assert len(adds) >= 1


def test_capacity_fault_is_reported_not_retried(fake_engine: FakeEngine) -> None:
    with _engine(fake_engine) as engine:
        fake_engine.inject("capacity", count=1, match="add_vm")
        with pytest.raises(EngineError, match="scheduling constraints") as info:
            _boot(engine)
        assert "HTTP 409" in str(info.value)
    assert len([r for r in fake_engine.mutating_requests() if r["path"].endswith("/api/vms")]) == 1


def test_expired_token_relogs_in(fake_engine: FakeEngine) -> None:
    with _engine(fake_engine) as engine:
        engine.version()
        fake_engine.expire_tokens()
        assert engine.template_names()
    sso = [r for r in fake_engine.requests() if r["path"].endswith("/sso/oauth/token")]
    assert len(sso) == 2


def test_wrong_password_is_clear_and_secret_free(fake_engine: FakeEngine) -> None:
    with _engine(fake_engine, password="not-the-password-xyz") as engine:
        with pytest.raises(EngineError, match="authentication failed") as info:
            engine.version()
    assert "not-the-password-xyz" not in str(info.value)
    assert fake_engine.password not in str(info.value)


def test_search_values_are_refused_not_escaped() -> None:
    assert search_value("gimme-abc_1.2") == "gimme-abc_1.2"
    for bad in ("x or name=*", "a*", 'a"b', "a b", "name=x"):
        with pytest.raises(EngineError):
            search_value(bad)


def _device(name: str, *ips: tuple[str, str]) -> types.ReportedDevice:
    return types.ReportedDevice(
        name=name,
        ips=[types.Ip(address=a, version=types.IpVersion(v)) for a, v in ips],
    )


def test_pick_address_prefers_ipv4_and_skips_lo_links_and_bridges() -> None:
    devices = [
        _device("lo", ("127.0.0.1", "v4"), ("::1", "v6")),
        _device("docker0", ("172.17.0.1", "v4")),
        _device(
            "eth0", ("fe80::5054:ff:fe12:3456", "v6"), ("2001:db8::10", "v6"), ("192.0.2.10", "v4")
        ),
    ]
    assert pick_address(devices) == "192.0.2.10"
    assert (
        pick_address([_device("eth0", ("fe80::1", "v6"), ("2001:db8::10", "v6"))]) == "2001:db8::10"
    )
    assert pick_address([_device("lo", ("127.0.0.1", "v4"))]) is None
    assert pick_address([]) is None
