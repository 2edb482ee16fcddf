"""SSH runner: one paramiko connection per node, scripts with deadlines, output kept in the cluster log.

Import lazily: paramiko is heavy and `gimme --help` must not load it.
"""

from __future__ import annotations

import io
import logging
import os
import shlex
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import paramiko

from gimme.errors import RemoteError
from gimme.files import ClusterLog, generate_keypair, redact  # noqa: F401 (callers import them here)

logging.getLogger("paramiko").setLevel(logging.CRITICAL)
log = logging.getLogger(__name__)

REMOTE_DIR = "/tmp/gimme"
_RETRYABLE = (
    paramiko.ssh_exception.NoValidConnectionsError,
    paramiko.AuthenticationException,
    paramiko.SSHException,
    socket.timeout,
    ConnectionError,
    OSError,
    EOFError,
)


class _FirstContactPolicy(paramiko.MissingHostKeyPolicy):
    """Trust-on-first-use for a VM gimme has just created; records the key for later checks."""

    def __init__(self, known_hosts: Path, lock: threading.Lock) -> None:
        self.known_hosts = known_hosts
        self.lock = lock

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        with self.lock:
            line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
            fd = os.open(self.known_hosts, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as fh:
                fh.write(line)


@dataclass(frozen=True)
class Result:
    code: int
    output: str  # the bounded tail of combined stdout/stderr


class Node:
    """An SSH session to one node, kept open for all its steps."""

    _known_hosts_lock = threading.Lock()

    def __init__(
        self,
        name: str,
        address: str,
        user: str,
        key_path: Path,
        known_hosts: Path,
        *,
        cluster_log: ClusterLog | None = None,
        trust_new_host_key: bool = False,
    ) -> None:
        self.name = name
        self.address = address
        self.user = user
        self.key_path = key_path
        self.known_hosts = known_hosts
        self.cluster_log = cluster_log
        self.trust_new_host_key = trust_new_host_key
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None  # one SFTP session for all uploads
        self._scripts: dict[str, str] = {}  # step -> script already on the node

    def connect(self, *, deadline: float) -> None:
        """Connect, retrying while the VM boots; a changed host key is never retried."""
        pkey = paramiko.Ed25519Key.from_private_key_file(str(self.key_path))
        delay, last = 0.2, "no attempt"
        while True:
            client = paramiko.SSHClient()
            if self.known_hosts.exists():
                client.load_host_keys(str(self.known_hosts))
            if self.trust_new_host_key:
                client.set_missing_host_key_policy(
                    _FirstContactPolicy(self.known_hosts, self._known_hosts_lock)
                )
            else:
                client.set_missing_host_key_policy(paramiko.RejectPolicy())
            left = max(1.0, deadline - time.monotonic())
            try:
                client.connect(
                    self.address,
                    username=self.user,
                    pkey=pkey,
                    allow_agent=False,
                    look_for_keys=False,
                    timeout=min(10.0, left),
                    banner_timeout=min(30.0, left),
                    auth_timeout=min(30.0, left),
                    channel_timeout=min(30.0, left),
                )
                transport = client.get_transport()
                assert transport is not None
                transport.set_keepalive(30)
                self._client = client
                self.trust_new_host_key = False
                return
            except paramiko.BadHostKeyException:
                client.close()
                raise RemoteError(
                    f"{self.name} ({self.address}): host key changed since first contact; "
                    "refusing to connect"
                ) from None
            except _RETRYABLE as exc:
                client.close()
                last = f"{type(exc).__name__}: {exc}".strip()
            if time.monotonic() + delay >= deadline:
                raise RemoteError(
                    f"{self.name} ({self.address}): SSH not ready before the deadline ({last})"
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)  # a refused connect costs nothing: keep trying often

    @property
    def client(self) -> paramiko.SSHClient:
        if self._client is None:
            raise RemoteError(f"{self.name}: not connected")
        return self._client

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        self._scripts.clear()
        if self._client is not None:
            self._client.close()
            self._client = None

    def run(self, command: str, *, step: str, timeout: float, stdin: bytes | None = None) -> Result:
        """Run one command; output is drained continuously (no deadlock) and logged."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise RemoteError(f"{self.name}: {step}: SSH connection lost")
        channel = transport.open_session(timeout=30)
        tail: deque[str] = deque(maxlen=40)
        pending = b""
        try:
            channel.set_combine_stderr(True)
            channel.settimeout(0.5)
            channel.exec_command(command)
            if stdin is not None:
                channel.sendall(stdin)
                channel.shutdown_write()
            deadline = time.monotonic() + timeout
            while True:
                try:
                    chunk = channel.recv(65536)
                except TimeoutError:
                    chunk = None
                if chunk:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    self._keep(step, lines, tail)
                elif chunk == b"":  # EOF: wait for the exit status (or a close), not a fixed sleep
                    if channel.status_event.wait(0.5) or channel.exit_status_ready():
                        break
                if time.monotonic() > deadline:
                    raise RemoteError(
                        f"{self.name}: {step}: no result after {timeout:.0f}s; last output:\n"
                        + redact("\n".join(tail))
                    )
            self._keep(step, [pending] if pending else [], tail)
            return Result(channel.recv_exit_status(), "\n".join(tail))
        finally:
            channel.close()

    def _keep(self, step: str, lines: list[bytes], tail: deque[str]) -> None:
        texts = [line.decode(errors="replace").rstrip("\r") for line in lines]
        tail.extend(texts)
        if self.cluster_log and texts:
            self.cluster_log.write(self.name, step, "\n".join(texts))

    def put(self, data: bytes, path: str, mode: int, *, timeout: float = 60) -> None:
        """Upload `data` to `path`; fails when the node answers nothing for `timeout` seconds."""
        if self._sftp is None:
            self._sftp = self.client.open_sftp()
        sftp = self._sftp
        sftp.get_channel().settimeout(timeout)  # type: ignore[union-attr]
        try:
            sftp.putfo(io.BytesIO(data), path)
            sftp.chmod(path, mode)
        except TimeoutError:
            self._sftp = None
            sftp.close()
            raise RemoteError(
                f"{self.name}: uploading {path}: nothing received for {timeout:.0f}s"
            ) from None

    def push_scripts(self, scripts: dict[str, str]) -> None:
        """Upload the scripts of all steps (step -> script) at once; run_script then sends
        only its env file."""
        for step, script in scripts.items():
            if self._scripts.get(step) == script:
                continue
            if not self._scripts:
                self.run(f"mkdir -p -m 700 {REMOTE_DIR}", step=step, timeout=30)
            self.put(script.encode(), f"{REMOTE_DIR}/{step}.sh", 0o700)
            self._scripts[step] = script

    def run_script(self, step: str, script: str, env: dict[str, str], *, timeout: float) -> Result:
        """Upload `script` (unless pushed already) and a 0600 env file, run them as root,
        raise on failure."""
        self.push_scripts({step: script})
        script_path, env_path = f"{REMOTE_DIR}/{step}.sh", f"{REMOTE_DIR}/{step}.env"
        env_text = "".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
        self.put(env_text.encode(), env_path, 0o600)
        inner = f"set -a; . {shlex.quote(env_path)}; set +a; exec bash {shlex.quote(script_path)}"
        command = shlex.join(
            ["sudo", "-n", "timeout", "--kill-after=10", str(int(timeout)), "bash", "-c", inner]
        )
        result = self.run(command, step=step, timeout=timeout + 15)
        if result.code != 0:
            reason = {124: "timed out", -1: "SSH connection lost"}.get(
                result.code, f"exit code {result.code}"
            )  # -1: the channel closed without an exit status
            raise RemoteError(
                f"{self.name}: step {step!r} failed ({reason}); last output:\n"
                + redact(result.output)
            )
        return result

    def read_root_file(self, path: str, *, timeout: float = 60) -> bytes:
        """Read a root-only file on the node (e.g. admin.conf) without putting it in any log.

        Fails when the node sends nothing for `timeout` seconds.
        """
        channel = self.client.get_transport().open_session(timeout=30)  # type: ignore[union-attr]
        try:
            channel.settimeout(timeout)
            channel.exec_command(shlex.join(["sudo", "-n", "cat", "--", path]))
            data = channel.makefile("rb").read()
            code = channel.recv_exit_status()
        except TimeoutError:
            raise RemoteError(
                f"{self.name}: reading {path}: nothing received for {timeout:.0f}s"
            ) from None
        finally:
            channel.close()
        if code != 0:
            raise RemoteError(f"{self.name}: cannot read {path} (exit code {code})")
        return data
