"""Files only their owner may read: keys, kubeconfigs, per-cluster logs."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

_TOKEN = re.compile(r"\b([a-z0-9]{6})\.[a-z0-9]{16}\b")


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) with the leaf at mode 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, data: bytes | str) -> None:
    """Create or replace a file at mode 0600 from its first byte (no chmod race)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def generate_keypair(private_path: Path) -> str:
    """A fresh ed25519 key pair for one cluster; returns the public key line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    write_private(private_path, pem)
    private_path.with_name(private_path.name + ".pub").write_text(public + " gimme\n")
    return public


def redact(text: str) -> str:
    """Mask bootstrap token secrets (abcdef.0123456789abcdef -> abcdef.****************)."""
    return _TOKEN.sub(lambda m: m.group(1) + ".****************", text)


class ClusterLog:
    """The per-cluster log file (0600): every remote line, tagged with node and step."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._fh = os.fdopen(fd, "a", buffering=1)
        self._lock = threading.Lock()
        self.path = path

    def write(self, node: str, step: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        lines = redact(text).splitlines()
        with self._lock:
            for line in lines:
                self._fh.write(f"{stamp} {node} {step}: {line}\n")

    def close(self) -> None:
        self._fh.close()
