"""Emulated nodes: sandboxed stand-ins for freshly booted VMs, reached over real OpenSSH.

A node is a process tree in its own mount, PID, UTS and IPC namespaces. Its root is an
overlay of the host's root filesystem (the lower layer, never written) and a per-node
upper dir that collects everything the node changes. Its PID 1 is this file run as a
script: it mounts the node's root, chroots, prepares the node the way cloud-init would
and runs sshd on <subnet>.N:22. Killing that PID 1 makes the kernel kill everything else
in the node, and the node's mounts vanish with its mount namespace: they never appear in
the host's mount table.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import json
import os
import pwd
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
import weakref
from pathlib import Path

SHIMS = Path(__file__).resolve().parent / "shims"
NODE_SHIMS = "/opt/gimme-testbed/shims"
CALLS_LOG = "/var/log/gimme-testbed/calls.jsonl"
LATENCY_CONFIG = "/etc/gimme-testbed/latency.json"  # read by shims/emu/latency.py
CLOUD_DIR = "/var/lib/cloud/instance"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
SSHD_CONFIG = "/etc/ssh/sshd_config"
NODE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
# New mount, PID, UTS and IPC namespaces; the forked child is the node's PID 1 and gets
# SIGKILL if unshare itself dies. The network namespace is the host's (loopback addresses).
UNSHARE = [
    "unshare", "--mount", "--pid", "--uts", "--ipc", "--fork", "--kill-child",
    "--propagation", "private",
]  # fmt: skip
BOOT_TIMEOUT = 60.0
ROOT_DEV = os.lstat("/").st_dev
FAMILIES = {
    **dict.fromkeys(["debian", "ubuntu", "astra"], "debian"),
    **dict.fromkeys(["rhel", "centos", "rocky", "almalinux", "fedora", "redos"], "rhel"),
}

# An address belongs to whoever holds the flock on its file here: any pool of any process.
ADDRESS_LOCKS = Path("/run/lock/gimme-testbed")
_open_pools: weakref.WeakSet[NodePool] = weakref.WeakSet()


def os_family(os_release: dict[str, str]) -> str:
    """'debian' or 'rhel', from os-release ID, then ID_LIKE."""
    ids = [os_release.get("ID", ""), *os_release.get("ID_LIKE", "").split()]
    for os_id in ids:
        if os_id.lower() in FAMILIES:
            return FAMILIES[os_id.lower()]
    raise ValueError(f"unsupported OS family: ID={ids[0]!r} ID_LIKE={ids[1:]!r}")


class Node:
    """One emulated VM: identity, disk changes (``upper``) and process tree."""

    def __init__(self, vm_id: str, hostname: str, user: str, directory: Path, hidden: Path) -> None:
        self.vm_id = vm_id
        self.hostname = hostname
        self.user = user
        self.address = ""
        self.host_public_key = ""
        self.dir = directory
        self.upper = directory / "upper"
        self._own_mounts = ["/proc", "/dev", "/sys", str(hidden)]  # not its root filesystem's
        self.init_pid: int | None = None  # host PID of the node's PID 1 while it runs
        self._proc: subprocess.Popen[bytes] | None = None  # unshare(1), parent of the init
        self._pidfd: int | None = None
        self._ctl: socket.socket | None = None  # closing it (or our death) powers the node off
        self._address_lock: int | None = None  # fd holding the flock on the address

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"Node({self.vm_id!r}, {self.hostname!r}, {self.address!r}, {state})"

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def calls(self) -> list[dict]:
        """Command calls the shims recorded in the node, oldest first."""
        data = self.read_file(CALLS_LOG)
        if not data:
            return []
        complete = data.decode().split("\n")[:-1]  # a last line without "\n" is still being written
        return [json.loads(line) for line in complete if line.strip()]

    def read_file(self, path: str) -> bytes | None:
        """Content of ``path`` as the node sees it on its root filesystem, or None.

        Reads the upper dir first, then the host's file, honours whiteouts and opaque dirs
        and follows symlinks inside the node's view. The node's own mounts (/proc, /dev,
        /sys and the hidden pool workdir) are not part of its root filesystem: None.
        """
        real = self._resolve(path)
        try:
            return real.read_bytes() if real else None
        except (IsADirectoryError, FileNotFoundError, NotADirectoryError):
            return None

    def _resolve(self, path: str) -> Path | None:
        """Host path of the node's ``path``, following symlinks within the node's view."""
        todo = _parts(path)
        done: list[str] = []
        for _ in range(1000):  # enough for any real path; ends symlink loops
            if not todo:
                return self._entry(done)
            name = todo.pop(0)
            if name == "..":
                done = done[:-1]
                continue
            real = self._entry([*done, name])
            if real is None:
                return None
            if real.is_symlink():
                target = os.readlink(real)
                done = [] if target.startswith("/") else done
                todo[:0] = _parts(target)
            else:
                done.append(name)
        return None

    def _entry(self, parts: list[str]) -> Path | None:
        """Host path of the node's entry /<parts> (a symlink is not followed), or None."""
        node_path = "/" + "/".join(parts)
        if any(node_path == m or node_path.startswith(m + "/") for m in self._own_mounts):
            return None
        upper: Path | None = self.upper
        lower: Path | None = Path("/")
        for name in parts:
            up = upper / name if upper else None
            low = lower / name if lower else None
            up_st, low_st = _lstat(up), _lstat(low)
            if low_st and low_st.st_dev != ROOT_DEV:
                low_st = None  # a host mount point: the lower layer has no files below it
            if up_st and stat.S_ISCHR(up_st.st_mode) and up_st.st_rdev == 0:
                return None  # whiteout: the node deleted it
            if up_st:
                merged = (
                    stat.S_ISDIR(up_st.st_mode)
                    and low_st is not None
                    and stat.S_ISDIR(low_st.st_mode)
                    and not _opaque(up)
                )
                upper, lower = up, (low if merged else None)
            elif low_st:
                upper, lower = None, low
            else:
                return None
        return upper or lower


class NodePool:
    """Emulated nodes on <subnet>.1..254, each with its files under ``workdir/<vm_id>/``."""

    def __init__(
        self,
        workdir: Path,
        *,
        subnet: str = "127.0.10",
        sshd_delay: float = 0.0,
        python: str | None = None,
        command_latency: dict[str, float] | None = None,
    ) -> None:
        """``python`` runs the node's init and its shims, also as the cloud-init user, so it
        defaults to the system's /usr/bin/python3 (a venv under /root is unreadable to
        that user), else to this interpreter. ``command_latency`` (rule -> seconds, see
        shims/emu/latency.py) makes the shims of nodes booted from now on take that long."""
        octets = subnet.split(".")
        if len(octets) != 3 or octets[0] != "127" or not all(o.isdigit() for o in octets):
            raise ValueError(f"subnet must be 127.X.Y (loopback only), not {subnet!r}")
        self.workdir = Path(workdir).resolve()
        if any(char in str(self.workdir) for char in ",:\\"):
            raise ValueError(
                f"workdir must not contain ',', ':' or '\\' (overlay options): {workdir}"
            )
        self.subnet = subnet
        self.sshd_delay = sshd_delay
        self.command_latency = dict(command_latency or {})
        system_python = "/usr/bin/python3"
        self.python = python or (system_python if Path(system_python).exists() else sys.executable)
        self._created_workdir = not self.workdir.exists()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._nodes: dict[str, Node] = {}
        self._lock = threading.Lock()
        self._closed = False
        _open_pools.add(self)

    def __enter__(self) -> NodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def node(self, vm_id: str) -> Node:
        return self._nodes[vm_id]

    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    def start_node(
        self,
        vm_id: str,
        *,
        hostname: str,
        user: str,
        authorized_keys: str,
        os_release: dict[str, str],
        custom_script: str | None = None,
    ) -> str:
        """Boot a node (or power a stopped one on again, disk kept) and return its address.

        Blocks until its sshd accepts connections. On the first boot the node gets its
        identity (os-release, machine-id, user, host key, shims); every boot sets its
        hostname, /etc/hosts and sshd_config, since the address may change.
        """
        family = os_family(os_release)
        with self._lock:
            if self._closed:
                raise RuntimeError("node pool is closed")
            node = self._nodes.get(vm_id)
            if node is None:
                node = self._nodes[vm_id] = Node(
                    vm_id, hostname, user, self.workdir / vm_id, self.workdir
                )
            elif node._proc is not None:
                raise ValueError(f"node {vm_id} is already running")
            node.hostname, node.user = hostname, user
            node.address, node._address_lock = _claim_address(self.subnet, node.address)
            for sub in ("upper", "work", "merged"):
                (node.dir / sub).mkdir(parents=True, exist_ok=True)
            config = {
                "dir": str(node.dir),
                "hide": str(self.workdir),
                "shims": str(SHIMS),
                "address": node.address,
                "hostname": hostname,
                "user": user,
                "authorized_keys": authorized_keys,
                "os_release": os_release,
                "family": family,
                "custom_script": custom_script,
                "python": self.python,
                "sshd_delay": self.sshd_delay,
                "command_latency": self.command_latency,
            }
            (node.dir / "boot.json").write_text(json.dumps(config, indent=2))
            node._ctl, child = socket.socketpair()
            with child, open(node.dir / "init.log", "ab") as log:
                init = [self.python, "-I", str(Path(__file__).resolve())]
                node._proc = subprocess.Popen(
                    [*UNSHARE, *init, str(node.dir / "boot.json"), str(child.fileno())],
                    pass_fds=[child.fileno()],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=NODE_ENV,
                    cwd="/",
                    start_new_session=True,
                )
        if not self._await_boot(node):
            with self._lock:
                self._power_off(node)
            log_tail = (node.dir / "init.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"node {vm_id} did not boot; {node.dir}/init.log ends:\n{log_tail}")
        key = (node.upper / HOST_KEY.lstrip("/")).with_suffix(".pub")
        node.host_public_key = " ".join(key.read_text().split()[:2])
        return node.address

    def stop_node(self, vm_id: str) -> None:
        """Power the node off: kill all its processes, drop its mounts, free its address.

        Its upper dir stays for inspection until close(); does nothing if already stopped.
        """
        with self._lock:
            if vm_id in self._nodes:
                self._power_off(self._nodes[vm_id])

    def close(self) -> None:
        """Stop all nodes and remove their directories (and workdir, if this pool made it)."""
        with self._lock:
            self._closed = True
            nodes = list(self._nodes.values())
            for node in nodes:
                self._power_off(node)
            self._nodes.clear()
        _open_pools.discard(self)
        for node in nodes:
            shutil.rmtree(node.dir, ignore_errors=True)
        if self._created_workdir:
            with contextlib.suppress(OSError):
                self.workdir.rmdir()

    def _await_boot(self, node: Node) -> bool:
        """Wait for the init's "pid <host pid>" and "ready" lines; False if it died first."""
        assert node._ctl is not None
        node._ctl.settimeout(BOOT_TIMEOUT + self.sshd_delay)
        lines = node._ctl.makefile("r", encoding="ascii")
        try:
            first = lines.readline()
            if first.startswith("pid "):
                node.init_pid = int(first.split()[1])
                node._pidfd = os.pidfd_open(node.init_pid)
            return first.startswith("pid ") and lines.readline() == "ready\n"
        except (TimeoutError, ProcessLookupError):
            return False
        finally:
            lines.close()

    def _power_off(self, node: Node) -> None:
        """Kill the node's PID 1, wait until the whole node is gone, free its address."""
        if node._proc is None:
            return
        if node._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(node._pidfd, signal.SIGKILL)
            os.close(node._pidfd)
        else:
            node._proc.kill()  # --kill-child passes the SIGKILL on to the init
        # unshare reaps the init, which the kernel lets exit only after all other
        # processes of its PID namespace are gone.
        node._proc.wait()
        assert node._ctl is not None
        node._ctl.close()
        assert node._address_lock is not None
        os.close(node._address_lock)  # frees the address
        node._proc = node._pidfd = node._ctl = node.init_pid = node._address_lock = None


def _claim_address(subnet: str, preferred: str) -> tuple[str, int]:
    """Lock ``preferred`` if free, else the lowest free <subnet>.N: (address, lock fd).

    Free means no pool of any process holds it and nothing listens on its port 22.
    """
    ADDRESS_LOCKS.mkdir(parents=True, exist_ok=True)
    candidates = [preferred] if preferred.startswith(subnet + ".") else []
    for address in candidates + [f"{subnet}.{n}" for n in range(1, 255)]:
        fd = os.open(ADDRESS_LOCKS / address, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if not _accepts(address, 22):
            return address, fd
        os.close(fd)
    raise RuntimeError(
        f"no free address in {subnet}.1-254 (is a host sshd listening on 0.0.0.0:22?)"
    )


def _accepts(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
    except OSError:
        return False
    return True


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _lstat(path: Path | None) -> os.stat_result | None:
    if path is None:
        return None
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _opaque(path: Path | None) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


@atexit.register
def _close_open_pools() -> None:
    """Backstop for pools nobody closed; nodes also power off when this process dies."""
    for pool in list(_open_pools):
        pool.close()


# ---- inside the node: PID 1 -------------------------------------------------------------

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
# Kernel-wide knobs a node must not turn (the network namespace is the host's, too).
PROC_READ_ONLY = ["sys", "sysrq-trigger", "irq", "bus", "fs"]
# Capabilities that would let even root in a node change the host: its network (the
# namespace is shared), clock, kernel modules, raw I/O and device nodes.
HOST_CAPABILITIES = {
    "net_admin": 12,
    "sys_module": 16,
    "sys_rawio": 17,
    "sys_time": 25,
    "mknod": 27,
}
PR_CAPBSET_DROP = 24
DEVICES = {
    "null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9),
    "tty": (5, 0),
}  # fmt: skip
DEV_LINKS = {
    "ptmx": "pts/ptmx", "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
}  # fmt: skip


def _init(config_path: str, ctl_fd: int) -> None:
    """PID 1 of a node: mount its root, chroot, prepare it, run sshd, reap orphans."""
    ctl = socket.socket(fileno=ctl_fd)
    ctl.sendall(f"pid {os.readlink('/proc/self')}\n".encode())  # still the host's /proc
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # leaving kills the whole node
    os.umask(0o022)
    cfg = json.loads(Path(config_path).read_text())
    root = Path(cfg["dir"]) / "merged"
    for name, mode in [("run", 0o755), ("tmp", 0o1777)]:
        _fresh_opaque_dir(Path(cfg["dir"]) / "upper" / name, mode)
    _mount_root(root, Path(cfg["dir"]), Path(cfg["hide"]))
    _drop_host_capabilities()
    first_boot = not (root / CLOUD_DIR.lstrip("/") / "boot-finished").exists()
    if first_boot and Path(cfg["shims"]).is_dir():
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        target = root / NODE_SHIMS.lstrip("/")
        shutil.copytree(cfg["shims"], target, ignore=ignore, dirs_exist_ok=True)
    os.chroot(root)
    os.chdir("/")
    if first_boot:
        _first_boot(cfg)
    _every_boot(cfg)
    time.sleep(cfg["sshd_delay"])
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", SSHD_CONFIG])
    _await_listening(cfg["address"], sshd)
    Path(CLOUD_DIR, "boot-finished").write_text(f"{time.time():.2f} - gimme test bed\n")
    ctl.sendall(b"ready\n")
    while True:
        readable, _, _ = select.select([ctl], [], [], 1.0)
        if readable and not ctl.recv(1):
            os._exit(0)  # the pool's process is gone: power off
        _reap(sshd.pid)


def _mount_root(root: Path, node_dir: Path, hide: Path) -> None:
    """Overlay root, fresh proc (kernel knobs read-only), sysfs (ro), a minimal /dev, and
    the test bed's workdir hidden."""
    overlay = f"lowerdir=/,upperdir={node_dir}/upper,workdir={node_dir}/work"
    _mount("overlay", root, "overlay", 0, overlay)
    _mount("proc", root / "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in PROC_READ_ONLY:
        path = root / "proc" / name
        if path.exists():
            _mount(str(path), path, "none", MS_BIND)
            _mount("none", path, "none", MS_BIND | MS_REMOUNT | MS_RDONLY)
    _mount("sysfs", root / "sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    dev = root / "dev"
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=1m")
    for name, (major, minor) in DEVICES.items():
        os.mknod(dev / name, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(dev / name, 0o666)
    for name, target in DEV_LINKS.items():
        os.symlink(target, dev / name)
    (dev / "pts").mkdir()
    devpts = "newinstance,ptmxmode=0666,mode=0620,gid=5"  # gid 5: tty on Debian and RHEL
    _mount("devpts", dev / "pts", "devpts", MS_NOSUID | MS_NOEXEC, devpts)
    (dev / "shm").mkdir()
    _mount("tmpfs", dev / "shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    if (root / hide.relative_to("/")).is_dir():
        _mount("tmpfs", root / hide.relative_to("/"), "tmpfs", MS_RDONLY, "mode=0755,size=4k")


def _drop_host_capabilities() -> None:
    """Remove HOST_CAPABILITIES from the bounding set, for every process started from now."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in HOST_CAPABILITIES.values():
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0):
            raise OSError(ctypes.get_errno(), f"cannot drop capability {cap}")


def _fresh_opaque_dir(path: Path, mode: int) -> None:
    """Empty on every boot, like a tmpfs, and hiding the host's files (sockets!) below it."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    path.chmod(mode)
    os.setxattr(path, "trusted.overlay.opaque", b"y")


def _mount(source: str, target: Path, fstype: str, flags: int, data: str = "") -> None:
    libc = ctypes.CDLL(None, use_errno=True)  # Python 3.11 has no os.mount
    if libc.mount(source.encode(), str(target).encode(), fstype.encode(), flags, data.encode()):
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {fstype} on {target} ({data}): {os.strerror(errno)}")


def _first_boot(cfg: dict) -> None:
    """Per-instance setup, like cloud-init: os-release, machine-id, user, host key, shims."""
    release = "".join(f'{key}="{_quote(value)}"\n' for key, value in cfg["os_release"].items())
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        Path(path).unlink(missing_ok=True)  # Debian's /etc/os-release is a symlink
        Path(path).write_text(release)
    Path("/etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    user = cfg["user"]
    try:
        pwd.getpwnam(user)
    except KeyError:
        # "*": no password but not locked; sshd without PAM refuses locked ("!") accounts.
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", "-p", "*", user], check=True)
    account = pwd.getpwnam(user)
    ssh_dir = Path(account.pw_dir, ".ssh")
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(cfg["authorized_keys"].rstrip("\n") + "\n")
    keys.chmod(0o600)
    for path in (ssh_dir, keys):
        os.chown(path, account.pw_uid, account.pw_gid)
    sudoers = Path("/etc/sudoers.d/90-cloud-init-users")
    sudoers.write_text(
        f"# Created by cloud-init\n\n# User rules for {user}\n{user} ALL=(ALL) NOPASSWD:ALL\n"
    )
    sudoers.chmod(0o440)
    for old in Path("/etc/ssh").glob("ssh_host_*"):
        old.unlink()  # the host's keys must not be the node's
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{cfg['hostname']}"]
    subprocess.run([*keygen, "-f", HOST_KEY], check=True)
    log_dir = Path(CALLS_LOG).parent
    log_dir.mkdir(parents=True, exist_ok=True)
    log_dir.chmod(0o1777)
    Path(CLOUD_DIR).mkdir(parents=True, exist_ok=True)
    if cfg["custom_script"] is not None:
        user_data = Path(CLOUD_DIR, "user-data.txt")
        user_data.write_text(cfg["custom_script"])
        user_data.chmod(0o600)
    install = Path(NODE_SHIMS, "install.py")
    if install.exists():
        python = cfg["python"]
        command = [python, str(install), "--family", cfg["family"], "--python", python]
        command += ["--node-ip", cfg["address"], "--hostname", cfg["hostname"]]
        subprocess.run(command, check=True)


def _every_boot(cfg: dict) -> None:
    """Per-boot setup: hostname, /etc/hosts and sshd_config for this boot's address, and
    the pool's command latency."""
    hostname, address = cfg["hostname"], cfg["address"]
    socket.sethostname(hostname)
    Path("/etc/hostname").write_text(hostname + "\n")
    Path("/etc/hosts").write_text(
        f"127.0.0.1 localhost\n{address} {hostname}\n::1 localhost ip6-localhost ip6-loopback\n"
    )
    Path(SSHD_CONFIG).write_text(
        "# Written by the gimme test bed for this emulated node.\n"
        f"ListenAddress {address}:22\n"
        f"HostKey {HOST_KEY}\n"
        "PidFile /run/sshd.pid\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin no\n"
        "UsePAM no\n"
        "Subsystem sftp internal-sftp\n"
    )
    latency = Path(LATENCY_CONFIG)
    if cfg.get("command_latency"):
        latency.parent.mkdir(parents=True, exist_ok=True)
        latency.write_text(json.dumps(cfg["command_latency"]))
    else:
        latency.unlink(missing_ok=True)
    Path("/run/sshd").mkdir(mode=0o755)
    Path("/run/lock").mkdir()
    Path("/run/lock").chmod(0o1777)


def _quote(value: str) -> str:
    for char in '\\"$`':
        value = value.replace(char, "\\" + char)
    return value


def _await_listening(address: str, sshd: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not _accepts(address, 22):
        if sshd.poll() is not None:
            sys.exit(f"sshd exited with status {sshd.returncode}")
        if time.monotonic() > deadline:
            sys.exit("sshd did not start listening within 30 s")
        time.sleep(0.02)


def _reap(sshd_pid: int) -> None:
    """Collect exited children and orphans, as PID 1 must."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid == sshd_pid:
            print(f"sshd exited: wait status {status}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    _init(sys.argv[1], int(sys.argv[2]))
