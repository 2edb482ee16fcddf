"""helm (repos, install/upgrade of the CNI charts) and the cilium CLI, submitting to the fake apiserver."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import yaml

from . import fetch, manifests
from .apiserver import ApiError, Client
from .core import Call, Fail, out

CHARTS = {"cilium": "cilium", "tigera-operator": "tigera-operator", "flannel": "flannel"}
CILIUM_FOR_CLI = {"0.16": "1.16.12", "0.17": "1.17.7", "0.18": "1.18.6", "0.19": "1.19.6"}


def main(call: Call) -> int:
    return cilium(call) if call.tool == "cilium" else helm(call)


def _kube(kubeconfig: str | None, prefix: str) -> Client:
    path = (
        kubeconfig
        or os.environ.get("KUBECONFIG", "").split(":")[0]
        or os.path.expanduser("~/.kube/config")
    )
    if not path or not os.path.exists(path):
        raise Fail(f'Error: {prefix}Kubernetes cluster unreachable: Get "http://localhost:8080/version": dial tcp '
                   "[::1]:8080: connect: connection refused")  # fmt: skip
    try:
        return Client.from_kubeconfig(path)
    except (OSError, ApiError) as e:
        raise Fail(
            f"Error: {prefix}Kubernetes cluster unreachable: {getattr(e, 'message', e)}"
        ) from None


def _submit(client: Client, objects: list[dict], prefix: str) -> None:
    try:
        resp = client.request("POST", "/gimme-testbed/apply", {"mode": "apply", "objects": objects, "source": "helm",
                                                               "server_side": True})  # fmt: skip
    except ApiError as e:
        raise Fail(f"Error: {prefix}Kubernetes cluster unreachable: {e.message}") from None
    bad = [line for ok, line in resp["results"] if not ok]
    if bad:
        raise Fail(f"Error: {prefix}{bad[0]}")


def _wait_ready(client: Client, kind: str, name: str, ns: str, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = client.request("GET", f"/gimme-testbed/rollout?kind={kind}&name={name}&namespace={ns}")
        if st and st["desired"] and st["ready"] >= st["desired"]:
            return True
        time.sleep(0.25)
    return False


def _duration(text: str) -> float:
    total = sum(
        float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in re.findall(r"(\d+)(h|m|s)", text)
    )
    return total or 300.0


# --- helm --------------------------------------------------------------------------


def _repo_file() -> Path:
    return Path(
        os.environ.get("HELM_REPOSITORY_CONFIG")
        or os.path.expanduser("~/.config/helm/repositories.yaml")
    )


def _repos() -> dict[str, str]:
    try:
        data = yaml.safe_load(_repo_file().read_text()) or {}
    except OSError:
        return {}
    return {r["name"]: r["url"] for r in data.get("repositories") or []}


def _index(url: str) -> dict:
    index_url = url.rstrip("/") + "/index.yaml"
    try:
        resp = fetch.get(index_url)
    except fetch.UnknownHost as e:
        raise Fail(f'Error: looks like "{url}" is not a valid chart repository or cannot be reached: Get '
                   f'"{index_url}": dial tcp: lookup {e} on 127.0.0.53:53: server misbehaving') from None  # fmt: skip
    if resp.status != 200:
        raise Fail(f'Error: looks like "{url}" is not a valid chart repository or cannot be reached: failed to fetch '
                   f"{index_url} : {resp.status} Not Found")  # fmt: skip
    return yaml.safe_load(resp.body) or {}


def _parse(args: list[str]) -> tuple[dict, list[str]]:
    opts: dict = {"set": [], "values": []}
    pos: list[str] = []
    value_flags = {"--version", "-n", "--namespace", "--set", "--set-string", "-f", "--values", "--timeout",
                   "--kubeconfig", "--kube-context", "--repo", "--template", "-o", "--output"}  # fmt: skip
    bool_flags = {"--create-namespace", "--wait", "--install", "--force-update", "--short", "--atomic",
                  "--reuse-values", "--reset-values", "--debug", "--dry-run", "--wait-for-jobs", "-A",
                  "--all-namespaces", "--devel", "--skip-crds"}  # fmt: skip
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, value = a.partition("=")
        if name in value_flags:
            if not eq:
                if i + 1 >= len(args):
                    raise Fail(f"Error: flag needs an argument: {a}")
                i += 1
                value = args[i]
            key = {
                "-n": "--namespace",
                "-f": "--values",
                "--set-string": "--set",
                "-o": "--output",
            }.get(name, name)
            if key == "--set":
                opts["set"] += value.split(",")
            elif key == "--values":
                opts["values"].append(value)
            else:
                opts[key] = value
        elif a in bool_flags:
            opts[a] = True
        elif a.startswith("-"):
            raise Fail(f"Error: unknown flag: {name}")
        else:
            pos.append(a)
        i += 1
    return opts, pos


def helm(call: Call) -> int:
    opts, pos = _parse(call.args)
    v = call.version or "3.16.4"
    if not pos:
        out("The Kubernetes package manager")
        return 0
    cmd = pos[0]
    if cmd == "version":
        out(f"v{v}+g7877b45" if opts.get("--short") else
            f'version.BuildInfo{{Version:"v{v}", GitCommit:"7877b45b63f95635153b29a42c0c2f4273ec45ca", '
            'GitTreeState:"clean", GoVersion:"go1.22.7"}')  # fmt: skip
        return 0
    if cmd == "repo":
        return _helm_repo(pos[1:], opts)
    if cmd in ("install", "upgrade"):
        return _helm_install(cmd, pos[1:], opts)
    if cmd in ("list", "ls"):
        client = _kube(opts.get("--kubeconfig"), "")
        items = client.request("GET", "/gimme-testbed/objects?kind=Secret")["items"]
        out("NAME\tNAMESPACE\tREVISION\tUPDATED\tSTATUS\tCHART\tAPP VERSION")
        for s in items:
            if s["metadata"]["name"].startswith("sh.helm.release.v1."):
                lab = s["metadata"].get("labels", {})
                out(
                    f"{lab.get('name')}\t{s['metadata']['namespace']}\t1\t-\tdeployed\t{lab.get('chart')}\t{lab.get('version')}"
                )
        return 0
    raise Fail(f'Error: unknown command "{cmd}" for "helm"\nRun \'helm --help\' for usage.')


def _helm_repo(args: list[str], opts: dict) -> int:
    sub = args[0] if args else ""
    repos = _repos()
    if sub == "add":
        if len(args) != 3:
            raise Fail('Error: "helm repo add" requires 2 arguments')
        name, url = args[1], args[2]
        if repos.get(name) == url:
            out(f'"{name}" already exists with the same configuration, skipping')
            return 0
        _index(url)
        repos[name] = url
        path = _repo_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"apiVersion": "", "generated": "0001-01-01T00:00:00Z", "repositories": [
            {"name": n, "url": u, "caFile": "", "certFile": "", "keyFile": "", "insecure_skip_tls_verify": False,
             "pass_credentials_all": False, "password": "", "username": ""} for n, u in repos.items()]}))  # fmt: skip
        out(f'"{name}" has been added to your repositories')
        return 0
    if sub == "update":
        if not repos:
            raise Fail("Error: no repositories found. You must add one before updating")
        out("Hang tight while we grab the latest from your chart repositories...")
        for n, u in repos.items():
            _index(u)
            out(f'...Successfully got an update from the "{n}" chart repository')
        out("Update Complete. \u2388Happy Helming!\u2388")
        return 0
    if sub in ("list", "ls"):
        if not repos:
            raise Fail("Error: no repositories to show")
        out("NAME\tURL")
        for n, u in repos.items():
            out(f"{n}\t{u}")
        return 0
    raise Fail(f'Error: unknown command "{sub}" for "helm repo"')


def _values(opts: dict) -> dict[str, str]:
    values: dict[str, str] = {}
    for path in opts["values"]:
        try:
            doc = yaml.safe_load(Path(path).read_text()) or {}
        except OSError:
            raise Fail(f"Error: open {path}: no such file or directory") from None

        def flatten(prefix: str, node) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    flatten(f"{prefix}.{k}" if prefix else str(k), v)
            else:
                values[prefix] = str(node).lower() if isinstance(node, bool) else str(node)

        flatten("", doc)
    for item in opts["set"]:
        if "=" not in item:
            raise Fail(f'Error: failed parsing --set data: key "{item}" has no value')
        k, v = item.split("=", 1)
        values[k] = v
    return values


def _helm_install(cmd: str, args: list[str], opts: dict) -> int:
    prefix = "INSTALLATION FAILED: " if cmd == "install" else "UPGRADE FAILED: "
    if len(args) != 2:
        raise Fail(f'Error: "helm {cmd}" requires 2 arguments')
    release, chart_ref = args
    ns = opts.get("--namespace", "default")
    repo_name, _, chart = chart_ref.rpartition("/")
    repos = _repos()
    if opts.get("--repo"):
        url = opts["--repo"]
    elif repo_name not in repos:
        raise Fail(f"Error: {prefix}repo {repo_name} not found" if repo_name else
                   f"Error: {prefix}non-absolute URLs should be in form of repo_name/path_to_chart, got: {chart_ref}")  # fmt: skip
    else:
        url = repos[repo_name]
    entries = _index(url).get("entries", {}).get(chart, [])
    want = opts.get("--version")
    entry = next((e for e in entries if not want or e["version"] == want.lstrip("v")), None)
    if not entry or chart not in CHARTS:
        raise Fail(f'Error: {prefix}chart "{chart}" matching {want or ""} not found in {repo_name} index. '
                   "(try 'helm repo update')")  # fmt: skip
    client = _kube(opts.get("--kubeconfig"), prefix)
    secret = f"sh.helm.release.v1.{release}.v1"
    existing = client.request("GET", f"/gimme-testbed/objects?kind=Secret&namespace={ns}")["items"]
    if any(s["metadata"]["name"] == secret for s in existing) and cmd == "install":
        raise Fail(f"Error: {prefix}cannot re-use a name that is still in use")
    namespaces = {
        o["metadata"]["name"]
        for o in client.request("GET", "/gimme-testbed/objects?kind=Namespace")["items"]
    }
    objects: list[dict] = []
    if ns not in namespaces:
        if not opts.get("--create-namespace"):
            raise Fail(f'Error: {prefix}create: failed to create: namespaces "{ns}" not found')
        objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    values = _values(opts)
    version = entry["version"]
    if chart == "cilium":
        text = manifests.cilium(version, values).replace(
            "namespace: kube-system", f"namespace: {ns}"
        )
    elif chart == "tigera-operator":
        text = (
            manifests.tigera_operator(f"v{version}")
            + "---\n"
            + manifests.calico_custom_resources(version).split("---")[0]
        )
    else:
        text = manifests.flannel(f"v{version}").replace(
            "10.244.0.0/16", values.get("podCidr", "10.244.0.0/16")
        )
    objects += [o for o in yaml.safe_load_all(text) if o]
    objects.append({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                    "metadata": {"name": secret, "namespace": ns,
                                 "labels": {"name": release, "owner": "helm", "chart": f"{chart}-{version}",
                                            "version": version, "status": "deployed"}}})  # fmt: skip
    _submit(client, objects, prefix)
    if opts.get("--wait"):
        ds = {"cilium": ("DaemonSet", "cilium", ns), "flannel": ("DaemonSet", "kube-flannel-ds", "kube-flannel"),
              "tigera-operator": ("Deployment", "tigera-operator", "tigera-operator")}[chart]  # fmt: skip
        if not _wait_ready(client, *ds, _duration(opts.get("--timeout", "5m"))):
            raise Fail(f"Error: {prefix}context deadline exceeded")
    out(f"NAME: {release}\nLAST DEPLOYED: {time.strftime('%a %b %d %H:%M:%S %Y')}\nNAMESPACE: {ns}\nSTATUS: deployed\n"
        f"REVISION: 1\nTEST SUITE: None")  # fmt: skip
    return 0


# --- cilium CLI --------------------------------------------------------------------


def cilium(call: Call) -> int:
    v = call.version or "0.16.24"
    opts, pos = _parse(
        [a.replace("--helm-set", "--set") for a in call.args if a not in ("--wait-duration",)]
    )
    default = CILIUM_FOR_CLI.get(".".join(v.split(".")[:2]), "1.16.5")
    cmd = pos[0] if pos else ""
    if cmd == "version":
        out(f"cilium-cli: v{v} compiled with go1.23.4 on linux/amd64\ncilium image (default): v{default}\n"
            f"cilium image (stable): v{default}")  # fmt: skip
        return 0
    client = _kube(
        opts.get("--kubeconfig"), "Unable to install Cilium: " if cmd == "install" else ""
    )
    if cmd == "install":
        version = (opts.get("--version") or default).lstrip("v")
        existing = client.request(
            "GET", "/gimme-testbed/objects?kind=DaemonSet&namespace=kube-system"
        )["items"]
        if any(d["metadata"]["name"] == "cilium" for d in existing):
            raise Fail("Error: Unable to install Cilium: cannot re-use a name that is still in use")
        out(f"\U0001f52e Auto-detected Kubernetes kind: kubeadm\n\u2139\ufe0f  Using Cilium version {version}\n"
            "\U0001f52e Auto-detected cluster name: kubernetes\n\U0001f52e Auto-detected kube-proxy has been installed")  # fmt: skip
        objs = [o for o in yaml.safe_load_all(manifests.cilium(version, _values(opts))) if o]
        _submit(client, objs, "Unable to install Cilium: ")
        return 0
    if cmd == "status":
        wait = "--wait" in call.args
        ok = _wait_ready(client, "DaemonSet", "cilium", "kube-system", 300 if wait else 0.01) if wait else bool(
            (st := client.request("GET", "/gimme-testbed/rollout?kind=DaemonSet&name=cilium&namespace=kube-system"))
            and st["desired"] and st["ready"] >= st["desired"])  # fmt: skip
        if not ok and wait:
            raise Fail("Error: Unable to determine status:  timeout while waiting for status to become successful: "
                       "context deadline exceeded")  # fmt: skip
        out(f"    /\u00af\u00af\\\n    Cilium:             {'OK' if ok else '1 errors'}\n    Operator:           OK\n"
            "    Envoy DaemonSet:    disabled\n    Hubble Relay:       disabled\n    ClusterMesh:        disabled")  # fmt: skip
        return 0 if ok or not wait else 1
    raise Fail(f'Error: unknown command "{cmd}" for "cilium"')
