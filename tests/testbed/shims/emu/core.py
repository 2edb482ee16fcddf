"""Call recording, JSON state under /var/lib/gimme-testbed, node identity, shared helpers."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import sys
import time
from pathlib import Path

SHIM_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path("/var/lib/gimme-testbed")
LOG_DIR = Path("/var/log/gimme-testbed")
CALLS = LOG_DIR / "calls.jsonl"


class Fail(Exception):
    """Ends a tool with `message` on stderr and exit `code`."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.message = message
        self.code = code


class Call:
    """One invocation of a shim: its name, arguments and what gets recorded."""

    def __init__(self, tool: str, args: list[str], version: str | None):
        self.tool = tool
        self.args = args
        self.version = version
        self.stdin_text: str | None = None

    def read_stdin(self) -> str:
        """Read all of stdin as text and keep it for the call record."""
        if self.stdin_text is None:
            data = sys.stdin.buffer.read() if sys.stdin else b""
            self.stdin_text = data.decode("utf-8", "replace")
        return self.stdin_text

    def record(self, code: int) -> None:
        entry = {
            "tool": self.tool,
            "argv": self.args,
            "uid": os.getuid(),
            "cwd": os.getcwd() if os.path.exists(".") else "",
            "time": round(time.time(), 3),
            "exit": code,
        }
        if self.version:
            entry["version"] = self.version
        if self.stdin_text is not None:
            entry["stdin"] = self.stdin_text
        line = json.dumps(entry) + "\n"
        with contextlib.suppress(OSError), open(CALLS, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(line)


def out(text: str = "") -> None:
    """Print to stdout."""
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")


def err(text: str) -> None:
    """Print to stderr."""
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


def is_root() -> bool:
    return os.geteuid() == 0


# --- state -----------------------------------------------------------------


def load(name: str, default: dict | None = None) -> dict:
    """Read state file <name>.json (a fresh copy of `default` when absent)."""
    try:
        return json.loads((STATE_DIR / f"{name}.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return json.loads(json.dumps(default or {}))


def save(name: str, data: dict) -> None:
    """Atomically replace state file <name>.json."""
    path = STATE_DIR / f"{name}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@contextlib.contextmanager
def edit(name: str, default: dict | None = None):
    """Read-modify-write state file <name>.json under the state lock."""
    with open(STATE_DIR / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = load(name, default)
        yield data
        save(name, data)


# --- node identity ---------------------------------------------------------


def node_info() -> dict:
    return load("node")


def family() -> str:
    return node_info().get("family", "debian")


def os_release() -> dict[str, str]:
    """Key/values of /etc/os-release."""
    result = {}
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                result[k.strip()] = v.strip().strip('"')
    return result


def os_id() -> tuple[str, str]:
    """(ID, VERSION_ID) of the node's OS, e.g. ("ubuntu", "22.04")."""
    rel = os_release()
    return rel.get("ID", "debian"), rel.get("VERSION_ID", "12")


def cgroup_v1() -> bool:
    """Whether the node's OS boots with cgroup v1 (older releases) rather than the unified v2."""
    os_id_, version_id = os_id()
    major = version_id.split(".")[0]
    return (
        (os_id_, version_id) in {("ubuntu", "20.04"), ("ubuntu", "18.04")}
        or (os_id_ in ("rocky", "almalinux", "rhel", "centos") and major in ("7", "8"))
        or (os_id_ == "redos" and major == "7")
        or (os_id_ == "debian" and major == "10")
    )


def hostname() -> str:
    with contextlib.suppress(OSError):
        name = Path("/etc/hostname").read_text().strip()
        if name:
            return name
    return socket.gethostname()


def node_ip() -> str:
    """The node's address: install-time value, SSH_CONNECTION, its own listening sshd, /etc/hosts."""
    info = node_info()
    if info.get("ip"):
        return info["ip"]
    ip = _ip_from_ssh_env() or _ip_from_listeners()
    if ip and is_root():
        with edit("node") as node:
            node["ip"] = ip
    return ip or _ip_from_hosts() or "127.0.0.1"


def _ip_from_ssh_env() -> str | None:
    parts = os.environ.get("SSH_CONNECTION", "").split()
    if len(parts) == 4 and parts[2].startswith("127.") and parts[2] != "127.0.0.1":
        return parts[2]
    return None


def _ip_from_listeners() -> str | None:
    """Listening TCP address (127.x, not .1) owned by a process of this PID namespace."""
    inodes = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:
                continue
            hexip, hexport = cols[1].split(":")
            ip = socket.inet_ntoa(bytes.fromhex(hexip)[::-1])
            if ip.startswith("127.") and ip != "127.0.0.1" and int(hexport, 16) != 6443:
                return ip
    return None


def _ip_from_hosts() -> str | None:
    name = hostname()
    with contextlib.suppress(OSError):
        for line in Path("/etc/hosts").read_text().splitlines():
            cols = line.split("#")[0].split()
            if len(cols) > 1 and name in cols[1:] and not cols[0].startswith("127.0.0.1"):
                return cols[0]
    return None


# --- stand-in executables --------------------------------------------------


def python() -> str:
    return node_info().get("python", sys.executable)


def wrapper_text(tool: str, version: str | None = None) -> str:
    """Source of an executable that runs the emulated `tool` (optionally at `version`)."""
    return (
        f"#!{python()} -I\n"
        f"# gimme-testbed stand-in for {tool}{' ' + version if version else ''}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(SHIM_DIR)!r})\n"
        "from emu.main import run\n"
        f"run({tool!r}, {version!r})\n"
    )


def write_executable(path: str | Path, text: str | bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    path.chmod(0o755)


def install_tool(path: str | Path, tool: str, version: str | None = None) -> None:
    write_executable(path, wrapper_text(tool, version))


def standin_of(path: str | Path) -> tuple[str, str | None] | None:
    """(tool, version) when `path` is one of our stand-in executables."""
    try:
        with open(path, "rb") as f:
            head = f.read(300).decode("utf-8", "replace")
    except OSError:
        return None
    m = re.search(r"# gimme-testbed stand-in for (\S+)(?: (\S+))?", head)
    return (m.group(1), m.group(2)) if m else None


def which(name: str) -> str | None:
    for d in os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin").split(":"):
        p = os.path.join(d or ".", name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def tool_version(tool: str) -> str | None:
    """Version of the installed stand-in of `tool` found on PATH or at its usual places."""
    for p in [which(tool), f"/usr/bin/{tool}", f"/usr/local/bin/{tool}", f"/usr/sbin/{tool}"]:
        if p and (found := standin_of(p)) and found[0] == tool:
            return found[1]
    return None


def minor(version: str) -> int:
    """Kubernetes-style minor of '1.30.4' / 'v1.30.4' / '1.30' -> 30."""
    m = re.match(r"v?\d+\.(\d+)", version)
    if not m:
        raise ValueError(version)
    return int(m.group(1))


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version.split("-")[0])[:3])
