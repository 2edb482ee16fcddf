"""The README's first command: create -> kubeconfig -> delete on the embedded test bed.

Runs the real `gimme` CLI as a newcomer would, against the fake oVirt engine whose VMs
boot as emulated nodes (real sshd, real bootstrap scripts, shimmed system commands).
"""

from __future__ import annotations

import argparse
import os
import shlex
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.testbed.bed import TestBed


def _gimme(env: dict[str, str], *args: str, capture: bool = False) -> str:
    print(f"\n$ gimme {shlex.join(args)}", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "gimme", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"demo: `gimme {shlex.join(args)}` exited {result.returncode}")
    if capture:
        print(result.stdout, end="", flush=True)
    return result.stdout or ""


def _get_nodes(kubeconfig: Path) -> list[str]:
    """What `kubectl get nodes` asks: GET /api/v1/nodes with the kubeconfig's client cert."""
    import base64
    import http.client
    import json

    doc = yaml.safe_load(kubeconfig.read_text())
    cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for key in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
            paths[key] = Path(tmp) / key
            fd = os.open(paths[key], os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(base64.b64decode(cluster.get(key) or user[key]))
        context = ssl.create_default_context(cafile=str(paths["certificate-authority-data"]))
        context.load_cert_chain(paths["client-certificate-data"], paths["client-key-data"])
        host = cluster["server"].removeprefix("https://")
        conn = http.client.HTTPSConnection(
            host.rsplit(":", 1)[0], int(host.rsplit(":", 1)[1]), context=context
        )
        conn.request("GET", "/api/v1/nodes")
        body = json.loads(conn.getresponse().read())
    rows = []
    for item in body["items"]:
        ready = next(c["status"] for c in item["status"]["conditions"] if c["type"] == "Ready")
        rows.append(f"{item['metadata']['name']}  Ready={ready}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", default="3")
    parser.add_argument("--k8s", default="1.30")
    parser.add_argument("--cri", default="containerd")
    parser.add_argument("--cni", default="calico")
    parser.add_argument("--foundation", default="ovirt-rack-1-ubuntu-22.04")
    parser.add_argument(
        "--delay-scale", type=float, default=0.2, help="scale of the engine's VM delays"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("demo: the emulated nodes need root (namespaces, overlayfs, sshd)")
    with (
        tempfile.TemporaryDirectory(prefix="gimme-demo-") as tmp,
        TestBed(Path(tmp) / "bed", delay_scale=args.delay_scale) as bed,
    ):
        env = bed.gimme_env(Path(tmp) / "home").environ()
        print(f"fake oVirt engine: {bed.engine.url} (CA {bed.engine.ca_file})")
        started = time.monotonic()
        cluster_id = _gimme(
            env,
            "create",
            "--foundation",
            args.foundation,
            "--k8s",
            args.k8s,
            "--cri",
            args.cri,
            "--cni",
            args.cni,
            "--nodes",
            args.nodes,
            "--ttl",
            "2h",
            "--comment",
            "demo",
            capture=True,
        ).strip()
        print(f"(created in {time.monotonic() - started:.1f}s)")
        _gimme(env, "list", capture=True)
        kc = Path(tmp) / "kc"
        _gimme(env, "kubeconfig", cluster_id, "-o", str(kc))
        print(
            f"\n$ kubectl --kubeconfig kc get nodes   # answered by the control plane at {yaml.safe_load(kc.read_text())['clusters'][0]['cluster']['server']}"
        )
        for row in _get_nodes(kc):
            print(f"  {row}")
        _gimme(env, "prolong", cluster_id, "--ttl", "3h")
        _gimme(env, "delete", cluster_id)
        _gimme(env, "list", "--all", capture=True)
        left = [vm["name"] for vm in bed.engine.vms()]
        print(f"\nVMs left on the engine: {left or 'none'}")
        if left:
            raise SystemExit("demo: VMs were left behind")


if __name__ == "__main__":
    main()
