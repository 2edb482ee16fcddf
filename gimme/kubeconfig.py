"""Kubeconfigs handed to the user: named gimme-<id>, pointing at the control plane, 0600."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from gimme.errors import RemoteError
from gimme.files import write_private


def server_url(address: str, port: int = 6443) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


def from_admin_conf(admin_conf: bytes, cluster_id: str, control_plane: str) -> str:
    """Rename kubeadm's admin.conf entries to gimme-<id> and point it at the control plane."""
    try:
        doc = yaml.safe_load(admin_conf)
        cluster = doc["clusters"][0]["cluster"]
        user = doc["users"][0]["user"]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        raise RemoteError("the control plane's admin.conf is not a kubeconfig") from None
    name = f"gimme-{cluster_id}"
    cluster["server"] = server_url(control_plane)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": f"{name}-admin", "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
        "current-context": name,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def default_kubeconfig() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = env.split(os.pathsep)[0] if env else ""
    return Path(first) if first else Path.home() / ".kube" / "config"


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    data = yaml.safe_load(path.read_text()) or {}
    for key in ("clusters", "users", "contexts"):
        data[key] = data.get(key) or []
    return data


def merge(target: Path, text: str) -> None:
    """Add (or replace) the cluster's entries in an existing kubeconfig and switch to it."""
    new = yaml.safe_load(text)
    data = _load(target)
    for key in ("clusters", "users", "contexts"):
        names = {e["name"] for e in new[key]}
        data[key] = [e for e in data[key] if e.get("name") not in names] + new[key]
    data["current-context"] = new["current-context"]
    write_private(target, yaml.safe_dump(data, sort_keys=False))


def unmerge(target: Path, cluster_id: str) -> bool:
    """Remove the cluster's entries from a kubeconfig; True if anything was removed."""
    if not target.exists():
        return False
    name = f"gimme-{cluster_id}"
    names = {name, f"{name}-admin"}
    data = _load(target)
    before = sum(len(data[k]) for k in ("clusters", "users", "contexts"))
    for key in ("clusters", "users", "contexts"):
        data[key] = [e for e in data[key] if e.get("name") not in names]
    if sum(len(data[k]) for k in ("clusters", "users", "contexts")) == before:
        return False
    if data.get("current-context") == name:
        data["current-context"] = ""
    write_private(target, yaml.safe_dump(data, sort_keys=False))
    return True
