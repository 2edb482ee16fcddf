"""Emulated nodes: real OpenSSH logins, isolation from the host, teardown, boot speed."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import io
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.testbed.nodes import ADDRESS_LOCKS, HOST_CAPABILITIES, SHIMS, Node, NodePool, os_family

pytestmark = [
    pytest.mark.nodes,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="emulated nodes need root (namespaces, overlayfs)"
    ),
    pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="needs openssh-server"),
]

UBUNTU = {
    "NAME": "Ubuntu",
    "ID": "ubuntu",
    "ID_LIKE": "debian",
    "VERSION_ID": "22.04",
    "PRETTY_NAME": "Ubuntu 22.04.4 LTS",
}
ROCKY = {
    "NAME": "Rocky Linux",
    "ID": "rocky",
    "ID_LIKE": "rhel centos fedora",
    "VERSION_ID": "9.3",
    "PRETTY_NAME": "Rocky Linux 9.3 (Blue Onyx)",
}
DEBIAN = {
    "NAME": "Debian GNU/Linux",
    "ID": "debian",
    "VERSION_ID": "12",
    "PRETTY_NAME": "Debian 12",
}


def new_key() -> tuple[paramiko.PKey, str]:
    """A fresh ed25519 key pair: (paramiko private key, "ssh-ed25519 AAAA..." line)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return paramiko.Ed25519Key.from_private_key(io.StringIO(private)), public.decode()


@pytest.fixture(scope="module")
def user_key() -> tuple[paramiko.PKey, str]:
    return new_key()


def start(pool: NodePool, vm_id: str, public_key: str, os_release=UBUNTU, **kw) -> Node:
    user = {"ubuntu": "ubuntu", "rocky": "rocky"}.get(os_release["ID"], "cloud-user")
    pool.start_node(
        vm_id,
        hostname=f"host-{vm_id}",
        user=user,
        authorized_keys=public_key,
        os_release=os_release,
        **kw,
    )
    return pool.node(vm_id)


def connect(node: Node, **auth) -> paramiko.SSHClient:
    """Log in with real host key verification against node.host_public_key (or host_key=)."""
    key_type, key_b64 = auth.pop("host_key", node.host_public_key).split()[:2]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    host_key = paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64))
    client.get_host_keys().add(node.address, key_type, host_key)
    try:
        client.connect(
            node.address,
            username=node.user,
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
            **auth,
        )
    except Exception:
        client.close()
        raise
    return client


def run(client: paramiko.SSHClient, command: str) -> str:
    _, stdout, stderr = client.exec_command(command, timeout=30)
    out, err = stdout.read().decode(), stderr.read().decode()
    assert stdout.channel.recv_exit_status() == 0, f"{command!r} failed: {err}"
    return out


def refuses(address: str) -> bool:
    try:
        socket.create_connection((address, 22), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def node_processes(workdir: Path) -> list[str]:
    """Host processes whose root or cwd lies in workdir (chrooted node processes)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            links = [os.readlink(proc / "root"), os.readlink(proc / "cwd")]
            comm = (proc / "comm").read_text().strip()
        except OSError:
            continue  # not a process, or gone meanwhile
        if any(link.startswith(str(workdir)) for link in links):
            found.append(f"{proc.name} {comm}")
    return found


def mounts_under(workdir: Path) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line for line in lines if str(workdir) in line]


def assert_gone(workdir: Path, init_pids: list[int], addresses: list[str]) -> None:
    assert mounts_under(workdir) == []
    assert node_processes(workdir) == []
    assert [pid for pid in init_pids if Path(f"/proc/{pid}").exists()] == []
    assert all(refuses(address) for address in addresses)


@pytest.fixture(scope="module")
def three(tmp_path_factory, user_key) -> NodePool:
    """One pool with an Ubuntu 22.04, a Rocky 9 and a Debian 12 node."""
    with NodePool(tmp_path_factory.mktemp("three")) as pool:
        for vm_id, release in [("u1", UBUNTU), ("r1", ROCKY), ("d1", DEBIAN)]:
            start(pool, vm_id, user_key[1], release, custom_script="#!/bin/sh\necho hi\n")
        yield pool


def test_argument_checks(tmp_path) -> None:
    assert os_family(UBUNTU) == "debian"
    assert os_family(ROCKY) == "rhel"
    assert os_family({"ID": "redos"}) == "rhel"
    with pytest.raises(ValueError, match="unsupported OS family"):
        os_family({"ID": "arch"})
    with pytest.raises(ValueError, match="loopback only"):
        NodePool(tmp_path, subnet="10.0.0")
    with pytest.raises(ValueError, match="overlay options"):
        NodePool(tmp_path / "a,b")


def test_login_identity_and_sudo(three: NodePool, user_key) -> None:
    for node, release in zip(three.nodes(), [UBUNTU, ROCKY, DEBIAN], strict=True):
        with connect(node, pkey=user_key[0]) as client:
            assert run(client, "hostname").strip() == node.hostname
            assert run(client, "cat /proc/sys/kernel/hostname").strip() == node.hostname  # UTS
            assert run(client, "id -un").strip() == node.user
            os_release = run(client, "cat /etc/os-release")
            assert f'PRETTY_NAME="{release["PRETTY_NAME"]}"' in os_release
            assert run(client, "sudo -n id -u").strip() == "0"
            assert run(client, "cat /etc/machine-id") != Path("/etc/machine-id").read_text()
            assert run(client, "test -e /var/lib/cloud/instance/boot-finished && echo ok") == "ok\n"
        assert node.read_file("/var/lib/cloud/instance/user-data.txt") == b"#!/bin/sh\necho hi\n"
    assert len({node.address for node in three.nodes()}) == 3


def test_auth_is_real(three: NodePool, user_key) -> None:
    node, other = three.node("u1"), three.node("r1")
    with pytest.raises(paramiko.AuthenticationException):
        connect(node, password="anything")
    with pytest.raises(paramiko.AuthenticationException):
        connect(node, pkey=new_key()[0])
    with pytest.raises(paramiko.BadHostKeyException):
        connect(node, pkey=user_key[0], host_key=other.host_public_key)


def host_fingerprint(victim: Path) -> dict[str, str]:
    """Checksums of host files a misbehaving node could change."""
    usr_bin = sorted(Path("/usr/bin").iterdir())
    listing = "\n".join(f"{p.name} {p.lstat().st_size} {p.lstat().st_mtime_ns}" for p in usr_bin)
    files = [Path("/etc/passwd"), Path("/etc/hostname"), victim, *usr_bin[:: len(usr_bin) // 20]]
    sums = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}
    return {**sums, "/usr/bin listing": hashlib.sha256(listing.encode()).hexdigest()}


@pytest.fixture
def victim():
    """A host file outside /tmp (the node's /tmp is fresh) for a node to delete."""
    path = Path(f"/var/tmp/gimme-testbed-victim-{os.getpid()}.txt")
    path.write_text("host file\n")
    yield path
    path.unlink()


def test_node_changes_stay_in_node(three: NodePool, user_key, victim) -> None:
    before = host_fingerprint(victim)
    node = three.node("d1")
    script = (
        "echo probe > /etc/gimme-probe"
        " && cp /usr/bin/true /usr/bin/gimme-probe-copy && rm -f /usr/bin/gimme-probe-copy"
        f" && rm {victim}"
        " && useradd gimme-probe-user"
        " && echo changed-name > /etc/hostname"
        " && mkdir -p /usr/lib/gimme-probe && echo via-usr > /usr/lib/gimme-probe/f"
    )
    with connect(node, pkey=user_key[0]) as client:
        run(client, f"sudo -n sh -c '{script}'")
        assert run(client, f"test -e {victim} || echo gone") == "gone\n"
    assert host_fingerprint(victim) == before
    assert victim.read_text() == "host file\n"
    assert not Path("/etc/gimme-probe").exists()
    assert b"gimme-probe-user" not in Path("/etc/passwd").read_bytes()
    # The upper dir holds the changes, whiteouts included.
    assert (node.upper / "etc/gimme-probe").read_text() == "probe\n"
    whiteout = (node.upper / str(victim).lstrip("/")).lstat()
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    # read_file shows the node's view.
    assert node.read_file("/etc/gimme-probe") == b"probe\n"
    assert node.read_file("/etc/hostname") == b"changed-name\n"
    assert b"gimme-probe-user" in node.read_file("/etc/passwd")
    assert node.read_file(str(victim)) is None
    assert node.read_file("/usr/bin/gimme-probe-copy") is None
    assert node.read_file("/lib/gimme-probe/f") == b"via-usr\n"  # /lib -> usr/lib
    assert node.read_file("/etc/debian_version") == Path("/etc/debian_version").read_bytes()
    assert node.read_file("/etc/../etc/os-release") == node.read_file("/usr/lib/os-release")
    assert node.read_file("/proc/self/status") is None
    assert node.read_file("/nonexistent/file") is None


def test_node_cannot_reach_host_state(three: NodePool, user_key, tmp_path) -> None:
    """Fresh /run and /tmp (no host sockets), kernel knobs read-only, no capabilities that
    reach the host, own PIDs and hostname."""
    (tmp_path / "host-only").touch()
    node = three.node("u1")
    with connect(node, pkey=user_key[0]) as client:
        assert run(client, f"ls -A /tmp; test -e {tmp_path} || echo hidden") == "hidden\n"
        assert set(run(client, "ls -A /run").split()) <= {"lock", "sshd", "sshd.pid", "sudo"}
        knob = "/proc/sys/net/ipv4/ip_forward"  # writing its own value back changes nothing
        out = run(client, f"sudo -n sh -c 'cat {knob} > {knob}' 2>&1 || echo refused")
        assert "Read-only file system" in out and "refused" in out
        assert run(client, "ls /dev").split() == sorted(
            ["fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin"]
            + ["stdout", "tty", "urandom", "zero"]
        )
        bounding = int(run(client, "sudo -n grep CapBnd /proc/self/status").split()[1], 16)
        assert [cap for cap, bit in HOST_CAPABILITIES.items() if bounding & 1 << bit] == []
        assert bounding & 1 << 21  # CAP_SYS_ADMIN stays: mounts in the node's own namespace
        processes = [line.split() for line in run(client, "ps -e -o pid=,comm=").splitlines()]
        assert processes[0][0] == "1" and processes[0][1].startswith("python")
        assert {comm for _, comm in processes[1:]} <= {"sshd", "bash", "ps"}
    assert socket.gethostname() != node.hostname


def test_workdir_outside_tmp_is_hidden(user_key) -> None:
    workdir = Path(f"/var/tmp/gimme-testbed-nodes-{os.getpid()}")
    with NodePool(workdir) as pool:
        node = start(pool, "w", user_key[1])
        with connect(node, pkey=user_key[0]) as client:
            assert run(client, f"ls -A {workdir}") == ""
    assert not workdir.exists()


def test_stop_and_close_leave_nothing(tmp_path, user_key) -> None:
    pool = NodePool(tmp_path / "pool")
    nodes = [start(pool, vm_id, user_key[1]) for vm_id in ("a", "b")]
    pids = [node.init_pid for node in nodes]
    addresses = [node.address for node in nodes]
    assert node_processes(tmp_path) != []
    pool.stop_node("a")
    pool.stop_node("a")  # idempotent
    assert not nodes[0].running() and nodes[1].running()
    assert refuses(addresses[0]) and not refuses(addresses[1])
    assert (nodes[0].upper / "etc/hostname").exists()  # kept for inspection
    pool.close()
    assert_gone(tmp_path, pids, addresses)
    assert not (tmp_path / "pool").exists()


def test_teardown_when_test_body_raises(tmp_path, user_key) -> None:
    seen: list[Node] = []

    def body() -> None:
        with NodePool(tmp_path) as pool:
            seen.extend(start(pool, vm_id, user_key[1]) for vm_id in ("x", "y"))
            raise RuntimeError("test failed mid-way")

    with pytest.raises(RuntimeError, match="mid-way"):
        body()
    assert_gone(tmp_path, [n.init_pid for n in seen if n.init_pid], [n.address for n in seen])
    assert list(tmp_path.iterdir()) == []


POOL_OWNER = """
import json, os, sys
from pathlib import Path
from tests.testbed.nodes import NodePool
pool = NodePool(Path(sys.argv[1]), subnet="127.0.12")
address = pool.start_node("v", hostname="h", user="ubuntu", authorized_keys="",
                          os_release={"ID": "ubuntu"})
print(json.dumps([address, pool.node("v").init_pid]), flush=True)
os.kill(os.getpid(), 9)
"""


def test_nodes_die_with_the_pool_process(tmp_path) -> None:
    """Even if the process owning the pool is SIGKILLed (no atexit), its nodes power off."""
    owner = subprocess.run(
        [sys.executable, "-c", POOL_OWNER, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        timeout=60,
    )
    address, pid = json.loads(owner.stdout)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_gone(tmp_path, [pid], [address])


def test_six_nodes_start_concurrently(tmp_path, user_key) -> None:
    with NodePool(tmp_path) as pool:
        began = time.monotonic()
        with ThreadPoolExecutor(6) as executor:
            list(executor.map(lambda i: start(pool, f"n{i}", user_key[1]), range(6)))
        elapsed = time.monotonic() - began
        print(f"\n6 nodes started in {elapsed:.2f} s")
        assert elapsed < 30
        nodes = pool.nodes()
        assert len({n.address for n in nodes}) == 6
        assert len({n.host_public_key for n in nodes}) == 6
        with connect(nodes[5], pkey=user_key[0]) as client:
            assert run(client, "hostname").strip() == nodes[5].hostname


def test_taken_addresses_are_skipped(tmp_path, user_key) -> None:
    """Skipped: an address another pool holds (its own flock, as from another process)
    and one where something already listens on port 22."""
    ADDRESS_LOCKS.mkdir(parents=True, exist_ok=True)
    held = os.open(ADDRESS_LOCKS / "127.0.14.1", os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        with (
            socket.create_server(("127.0.14.2", 22)),
            NodePool(tmp_path, subnet="127.0.14") as pool,
        ):
            assert start(pool, "s", user_key[1]).address == "127.0.14.3"
    finally:
        os.close(held)


def test_sshd_delay(tmp_path, user_key) -> None:
    delay = 1.5
    with NodePool(tmp_path, subnet="127.0.13", sshd_delay=delay) as pool:
        began = time.monotonic()
        starter = threading.Thread(target=start, args=(pool, "slow", user_key[1]))
        starter.start()
        refused_at = []
        while refuses("127.0.13.1"):
            refused_at.append(time.monotonic() - began)
            assert refused_at[-1] < 30, "node never came up"
            time.sleep(0.05)
        up_at = time.monotonic() - began
        starter.join()
        assert pool.node("slow").address == "127.0.13.1"
        assert up_at >= delay and max(refused_at) >= delay - 0.2
        print(f"\nsshd up after {up_at:.2f} s (delay {delay} s)")


def test_power_cycle_keeps_disk_and_host_key(tmp_path, user_key) -> None:
    with NodePool(tmp_path) as pool:
        node = start(pool, "p", user_key[1])
        host_key, address = node.host_public_key, node.address
        with connect(node, pkey=user_key[0]) as client:
            run(client, "echo kept > ~/file")
        pool.stop_node("p")
        assert not node.running()
        start(pool, "p", user_key[1])
        assert node.running() and node.host_public_key == host_key and node.address == address
        with connect(node, pkey=user_key[0]) as client:
            assert run(client, "cat ~/file") == "kept\n"
        with pytest.raises(ValueError, match="already running"):
            start(pool, "p", user_key[1])


def test_failed_boot_is_reported(tmp_path, user_key) -> None:
    with NodePool(tmp_path, python="/nonexistent/python") as pool:
        with pytest.raises(RuntimeError, match="did not boot"):
            start(pool, "bad", user_key[1])
        assert not pool.node("bad").running()


@pytest.mark.skipif(
    not (SHIMS / "install.py").exists(), reason="tests/testbed/shims/install.py not there yet"
)
def test_shimmed_commands_are_recorded(three: NodePool, user_key) -> None:
    node = three.node("u1")
    with connect(node, pkey=user_key[0]) as client:
        run(client, "sudo -n modprobe br_netfilter")
    calls = node.calls()
    assert any(
        call["tool"] == "modprobe" and call["argv"] == ["br_netfilter"] and call["uid"] == 0
        for call in calls
    ), calls
