"""A small kube-apiserver over real HTTPS: nodes, submitted objects, tokens, discovery, readiness.

Run inside the control-plane node by `kubeadm init` (and by kubelet restarts there):
    python -m emu.apiserver --state /var/lib/gimme-testbed/apiserver.json --bind IP --port 6443
It serves the Kubernetes paths kubeadm and kubectl need plus private /gimme-testbed/ paths
for the kubectl/kubeadm/helm stand-ins, and persists everything to the state file.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import re
import socket
import ssl
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from .core import Fail

CNI_DAEMONSETS = {"calico-node": "calico", "kube-flannel-ds": "flannel", "weave-net": "weave", "cilium": "cilium",
                  "kube-router": "kube-router", "antrea-agent": "antrea"}  # fmt: skip
NEEDS_POD_CIDR = {"flannel", "kube-router", "antrea"}
CNI_DELAY = 1.0  # seconds from a working pod network to Ready nodes
BUILTIN = {
    "v1": {"Namespace", "ServiceAccount", "ConfigMap", "Secret", "Service", "Pod", "PersistentVolume",
           "PersistentVolumeClaim", "Endpoints", "LimitRange", "ResourceQuota", "Node"},
    "apps/v1": {"DaemonSet", "Deployment", "StatefulSet", "ReplicaSet", "ControllerRevision"},
    "rbac.authorization.k8s.io/v1": {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"},
    "policy/v1": {"PodDisruptionBudget"},
    "apiextensions.k8s.io/v1": {"CustomResourceDefinition"},
    "admissionregistration.k8s.io/v1": {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
                                        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
    "apiregistration.k8s.io/v1": {"APIService"},
    "scheduling.k8s.io/v1": {"PriorityClass"},
    "storage.k8s.io/v1": {"StorageClass", "CSIDriver", "CSINode", "VolumeAttachment"},
    "networking.k8s.io/v1": {"NetworkPolicy", "Ingress", "IngressClass"},
    "batch/v1": {"Job", "CronJob"},
    "coordination.k8s.io/v1": {"Lease"},
    "discovery.k8s.io/v1": {"EndpointSlice"},
    "node.k8s.io/v1": {"RuntimeClass"},
    "autoscaling/v1": {"HorizontalPodAutoscaler"}, "autoscaling/v2": {"HorizontalPodAutoscaler"},
    "certificates.k8s.io/v1": {"CertificateSigningRequest"},
    "flowcontrol.apiserver.k8s.io/v1": {"FlowSchema", "PriorityLevelConfiguration"},
}  # fmt: skip
# apiVersion -> (kinds, first minor where it is gone)
REMOVED = {
    "policy/v1beta1": ({"PodDisruptionBudget", "PodSecurityPolicy"}, 25),
    "batch/v1beta1": ({"CronJob"}, 25),
    "rbac.authorization.k8s.io/v1beta1": ({"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}, 22),
    "apiextensions.k8s.io/v1beta1": ({"CustomResourceDefinition"}, 22),
    "admissionregistration.k8s.io/v1beta1": ({"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}, 22),
    "networking.k8s.io/v1beta1": ({"Ingress", "IngressClass"}, 22),
    "scheduling.k8s.io/v1beta1": ({"PriorityClass"}, 22),
    "discovery.k8s.io/v1beta1": ({"EndpointSlice"}, 25),
    "autoscaling/v2beta2": ({"HorizontalPodAutoscaler"}, 26),
    "flowcontrol.apiserver.k8s.io/v1beta2": ({"FlowSchema", "PriorityLevelConfiguration"}, 29),
    "flowcontrol.apiserver.k8s.io/v1beta3": ({"FlowSchema", "PriorityLevelConfiguration"}, 32),
}  # fmt: skip
CLUSTER_SCOPED = {"Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "StorageClass", "PersistentVolume", "PriorityClass", "APIService", "MutatingWebhookConfiguration",
                  "ValidatingWebhookConfiguration", "IngressClass", "RuntimeClass", "CSIDriver", "CSINode",
                  "PodSecurityPolicy", "FlowSchema", "PriorityLevelConfiguration", "ValidatingAdmissionPolicy",
                  "ValidatingAdmissionPolicyBinding", "CertificateSigningRequest", "VolumeAttachment"}  # fmt: skip
# client-side apply stores the whole object in an annotation; these real objects are too big for it
TOO_BIG_FOR_APPLY = {"installations.operator.tigera.io"}


def group_of(api: str) -> str:
    return api.rpartition("/")[0] if "/" in api else ""


def plural(kind: str) -> str:
    k = kind.lower()
    return k[:-1] + "ies" if k.endswith("y") else k + "es" if k.endswith("s") else k + "s"


def resource_name(obj: dict) -> str:
    group = group_of(obj["apiVersion"])
    return f"{obj['kind'].lower()}{'.' + group if group else ''}/{obj['metadata']['name']}"


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws(kubeconfig: str, token_id: str, secret: str) -> str:
    """Detached JWS (HS256) over the cluster-info kubeconfig, as bootstrap signers write it."""
    header = b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    payload = b64url(kubeconfig.encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}..{b64url(sig)}"


class Cluster:
    """The apiserver's state, persisted as JSON after every change."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.lock = threading.RLock()
        self.data = json.loads(self.path.read_text())

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)

    @property
    def minor(self) -> int:
        return int(self.data["cluster"]["version"].split(".")[1])

    # --- objects -------------------------------------------------------------

    def key(self, obj: dict) -> str:
        ns = "" if self.cluster_scoped(obj) else obj["metadata"].get("namespace", "default")
        return f"{group_of(obj['apiVersion'])}|{obj['kind']}|{ns}|{obj['metadata']['name']}"

    def cluster_scoped(self, obj: dict) -> bool:
        if obj["kind"] in CLUSTER_SCOPED:
            return True
        crd = self.crd_for(obj["apiVersion"], obj["kind"])
        return bool(crd and crd["spec"].get("scope") == "Cluster")

    def crd_for(self, api: str, kind: str) -> dict | None:
        group, _, version = api.rpartition("/")
        for o in self.data["objects"].values():
            if o["kind"] == "CustomResourceDefinition" and o["spec"].get("group") == group and \
                    o["spec"].get("names", {}).get("kind") == kind and \
                    any(v.get("name") == version for v in o["spec"].get("versions", [])):  # fmt: skip
                return o
        return None

    def objects(self, kind: str | None = None, namespace: str | None = None) -> list[dict]:
        return [o for o in self.data["objects"].values()
                if (kind is None or o["kind"] == kind)
                and (namespace is None or o["metadata"].get("namespace", "") == namespace)]  # fmt: skip

    def find(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        for o in self.objects(kind, namespace):
            if o["metadata"]["name"] == name:
                return o
        return None

    def submit(self, obj: dict, mode: str, source: str, server_side: bool) -> tuple[bool, str]:
        """Create/apply/delete one object; (ok, kubectl's line for it)."""
        api, kind = obj.get("apiVersion", ""), obj.get("kind", "")
        name = obj.get("metadata", {}).get("name")
        verb = {
            "apply": "creating",
            "create": "creating",
            "delete": "deleting",
            "replace": "replacing",
        }[mode]
        if not api or not kind:
            return (
                False,
                f'error: error validating "{source}": error validating data: [apiVersion not set, kind not set]',
            )
        if api in REMOVED and kind in REMOVED[api][0] and self.minor >= REMOVED[api][1] or (
            api not in BUILTIN and api not in REMOVED and group_of(api) in {group_of(a) for a in BUILTIN}
        ) or (api in BUILTIN and kind not in BUILTIN[api]) or (
            api not in BUILTIN and api not in REMOVED and not self.crd_for(api, kind)
        ):  # fmt: skip
            ns = obj.get("metadata", {}).get("namespace", "")
            return False, (f'error: resource mapping not found for name: "{name}" namespace: "{ns}" from "{source}": '
                           f'no matches for kind "{kind}" in version "{api}"\nensure CRDs are installed first')  # fmt: skip
        if not name:
            return False, f'error: error when {verb} "{source}": resource name may not be empty'
        if not self.cluster_scoped(obj):
            obj["metadata"].setdefault("namespace", "default")
            ns = obj["metadata"]["namespace"]
            if mode != "delete" and not self.find("Namespace", ns):
                return False, (f'Error from server (NotFound): error when {verb} "{source}": namespaces "{ns}" '
                               "not found")  # fmt: skip
        key = self.key(obj)
        existing = self.data["objects"].get(key)
        group = group_of(api)
        ref = f'{plural(kind)}{"." + group if group else ""} "{name}"'
        if mode == "delete":
            if not existing:
                return (
                    False,
                    f'Error from server (NotFound): error when deleting "{source}": {ref} not found',
                )
            del self.data["objects"][key]
            return True, f'{resource_name(obj).split("/")[0]} "{name}" deleted'
        if mode == "create" and existing:
            return (
                False,
                f'Error from server (AlreadyExists): error when creating "{source}": {ref} already exists',
            )
        if (
            mode == "apply"
            and not server_side
            and kind == "CustomResourceDefinition"
            and name in TOO_BIG_FOR_APPLY
        ):
            return False, (f'The CustomResourceDefinition "{name}" is invalid: metadata.annotations: Too long: '
                           "must have at most 262144 bytes")  # fmt: skip
        now = time.time()
        stored = json.loads(json.dumps(obj))
        meta = stored["metadata"]
        meta["creationTimestamp"] = (
            existing["metadata"]["creationTimestamp"] if existing else rfc3339(now)
        )
        meta["uid"] = (
            existing["metadata"]["uid"] if existing else hashlib.md5(key.encode()).hexdigest()
        )  # noqa: S324
        stored["_created"] = existing["_created"] if existing else now
        same = existing and {k: v for k, v in existing.items() if k != "_created"} == \
            {k: v for k, v in stored.items() if k != "_created"}  # fmt: skip
        self.data["objects"][key] = stored
        self.operator()
        if existing:
            return True, f"{resource_name(obj)} {'unchanged' if same else 'configured'}"
        return True, f"{resource_name(obj)} created"

    def operator(self) -> None:
        """The tigera operator: an Installation plus the operator make calico-system's calico-node."""
        inst = self.find("Installation", "default")
        if not inst or not self.find("Deployment", "tigera-operator", "tigera-operator"):
            return
        if self.find("DaemonSet", "calico-node", "calico-system"):
            return
        now = time.time()
        for kind, api, name in (("Namespace", "v1", "calico-system"), ("DaemonSet", "apps/v1", "calico-node"),
                                ("Deployment", "apps/v1", "calico-kube-controllers"),
                                ("Deployment", "apps/v1", "calico-typha")):  # fmt: skip
            obj = {"apiVersion": api, "kind": kind, "metadata": {"name": name, "creationTimestamp": rfc3339(now)},
                   "spec": {"template": {"spec": {"hostNetwork": kind == "DaemonSet" or name == "calico-typha",
                                                  "tolerations": [{"operator": "Exists"}]}}},
                   "_created": now, "_operator": True}  # fmt: skip
            if kind != "Namespace":
                obj["metadata"]["namespace"] = "calico-system"
            self.data["objects"][self.key(obj)] = obj

    # --- readiness -------------------------------------------------------------

    def pod_subnet(self) -> str:
        return self.data["cluster"].get("pod_subnet") or ""

    def cni_problem(self, provider: str) -> str | None:
        """Why this CNI's agents cannot work in this cluster (None when they can)."""
        subnet = self.pod_subnet()
        cilium_cfg = self.find("ConfigMap", "cilium-config") or {}
        kubernetes_ipam = (
            provider == "cilium" and cilium_cfg.get("data", {}).get("ipam") == "kubernetes"
        )
        if (provider in NEEDS_POD_CIDR or kubernetes_ipam) and not subnet:
            return "node has no pod CIDR assigned (kubeadm init was run without a pod subnet)"
        if provider == "flannel":
            cfg = self.find("ConfigMap", "kube-flannel-cfg")
            try:
                network = (
                    json.loads(cfg["data"]["net-conf.json"])["Network"] if cfg else "10.244.0.0/16"
                )
            except (KeyError, ValueError, TypeError):
                return "failed to parse net-conf.json"
            if not _within(subnet, network):
                return f"pod CIDR {subnet} is not within the flannel network {network}"
        if provider == "calico" and self.find("DaemonSet", "calico-node", "calico-system"):
            inst = self.find("Installation", "default") or {}
            for pool in inst.get("spec", {}).get("calicoNetwork", {}).get("ipPools", []):
                if subnet and pool.get("cidr") and not _within(pool["cidr"], subnet):
                    return (f"IPPool {pool['cidr']} is not within the platform's configured pod network "
                            f"CIDR(s) [{subnet}]")  # fmt: skip
        return None

    def network(self) -> tuple[float | None, str | None]:
        """(time the pod network works, problem) — a known CNI DaemonSet without a problem."""
        best, problem = None, None
        for ds in self.objects("DaemonSet"):
            provider = CNI_DAEMONSETS.get(ds["metadata"]["name"])
            if not provider:
                continue
            p = self.cni_problem(provider)
            if p:
                problem = p
                continue
            at = ds["_created"] + CNI_DELAY
            best = at if best is None else min(best, at)
        return best, problem

    def node_view(self, name: str, now: float) -> dict:
        node = self.data["nodes"][name]
        ready_at, _ = self.network()
        ready = ready_at is not None and now >= max(ready_at, node["registered"])
        labels = dict(node["labels"])
        taints = list(node["taints"])
        if not ready:
            taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
        cond = {"type": "Ready", "status": "True" if ready else "False",
                "reason": "KubeletReady" if ready else "KubeletNotReady",
                "message": "kubelet is posting ready status" if ready else
                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                "message:Network plugin returns error: cni plugin not initialized",
                "lastHeartbeatTime": rfc3339(now), "lastTransitionTime": rfc3339(max(node["registered"], ready_at or 0))}  # fmt: skip
        spec: dict = {"taints": taints} if taints else {}
        if node.get("pod_cidr"):
            spec |= {"podCIDR": node["pod_cidr"], "podCIDRs": [node["pod_cidr"]]}
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels, "creationTimestamp": rfc3339(node["registered"]),
                         "annotations": {"kubeadm.alpha.kubernetes.io/cri-socket": node.get("cri_socket", "")}},
            "spec": spec,
            "status": {
                "addresses": [{"type": "InternalIP", "address": node["ip"]}, {"type": "Hostname", "address": name}],
                "conditions": [cond],
                "nodeInfo": {"kubeletVersion": node["kubelet_version"], "kubeProxyVersion": node["kubelet_version"],
                             "containerRuntimeVersion": node.get("runtime", ""), "osImage": node.get("os", "Linux"),
                             "kernelVersion": os.uname().release, "operatingSystem": "linux", "architecture": "amd64"},
            },
        }  # fmt: skip

    def register(self, info: dict) -> dict:
        name = info["name"]
        nodes = self.data["nodes"]
        cp = info.get("control_plane", False)
        labels = {"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                  "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux"}  # fmt: skip
        taints = []
        if cp:
            labels |= {"node-role.kubernetes.io/control-plane": "",
                       "node.kubernetes.io/exclude-from-external-load-balancers": ""}  # fmt: skip
            taints.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
            if self.minor < 25:
                taints.append({"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"})
            if self.minor < 24:
                labels["node-role.kubernetes.io/master"] = ""
        old = nodes.get(name, {})
        pod_cidr = old.get("pod_cidr") or self._next_pod_cidr()
        nodes[name] = {"ip": info["ip"], "kubelet_version": info["kubelet_version"], "runtime": info.get("runtime", ""),
                       "os": info.get("os", ""), "cri_socket": info.get("cri_socket", ""), "labels": labels,
                       "taints": taints, "registered": time.time(), "control_plane": cp, "pod_cidr": pod_cidr}  # fmt: skip
        return nodes[name]

    def _next_pod_cidr(self) -> str | None:
        subnet = self.pod_subnet().split(",")[0]
        if not subnet:
            return None
        net = ipaddress.ip_network(subnet)
        used = {n.get("pod_cidr") for n in self.data["nodes"].values()}
        for sub in net.subnets(new_prefix=max(24, net.prefixlen)):
            if str(sub) not in used:
                return str(sub)
        return None

    # --- pods ----------------------------------------------------------------

    def pods(self, now: float) -> list[dict]:
        """Pods the controllers would have made, with phases that follow the network's state."""
        ready_at, _ = self.network()
        net_ok = ready_at is not None and now >= ready_at
        pods = []
        nodes = sorted(self.data["nodes"])

        def pod(name, ns, node, status, host_net, owner):
            pods.append({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": name, "namespace": ns, "labels": {"owner": owner}},
                         "spec": {"nodeName": node, "hostNetwork": host_net},
                         "status": {"phase": "Running" if status == "Running" else "Pending", "_status": status,
                                    "podIP": self.data["nodes"][node]["ip"] if node and host_net else ""}})  # fmt: skip

        for n in nodes:
            if self.data["nodes"][n]["control_plane"]:
                for comp in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
                    pod(f"{comp}-{n}", "kube-system", n, "Running", True, comp)
        for ds in self.objects("DaemonSet"):
            dname, ns = ds["metadata"]["name"], ds["metadata"]["namespace"]
            provider = CNI_DAEMONSETS.get(dname)
            tmpl = ds.get("spec", {}).get("template", {}).get("spec", {})
            for n in self._eligible(tmpl):
                sfx = hashlib.md5(f"{dname}{n}".encode()).hexdigest()[:5]  # noqa: S324
                if provider:
                    problem = self.cni_problem(provider)
                    status = "CrashLoopBackOff" if problem else (
                        "Running" if now >= ds["_created"] + CNI_DELAY else "Init:0/2")  # fmt: skip
                else:
                    status = "Running" if tmpl.get("hostNetwork") or net_ok else "ContainerCreating"
                pod(f"{dname}-{sfx}", ns, n, status, bool(tmpl.get("hostNetwork")), dname)
        for dep in self.objects("Deployment"):
            dname, ns = dep["metadata"]["name"], dep["metadata"]["namespace"]
            tmpl = dep.get("spec", {}).get("template", {}).get("spec", {})
            eligible = self._eligible(tmpl)
            for r in range(int(dep.get("spec", {}).get("replicas", 1))):
                sfx = hashlib.md5(f"{dname}{r}".encode()).hexdigest()  # noqa: S324
                node = (
                    eligible[r % len(eligible)]
                    if eligible and (net_ok or tmpl.get("hostNetwork"))
                    else ""
                )
                status = "Running" if node else "Pending"
                pod(
                    f"{dname}-{sfx[:10]}-{sfx[10:15]}",
                    ns,
                    node,
                    status,
                    bool(tmpl.get("hostNetwork")),
                    dname,
                )
        return pods

    def _eligible(self, tmpl: dict) -> list[str]:
        tolerations = tmpl.get("tolerations", [])
        result = []
        for n, node in sorted(self.data["nodes"].items()):
            blocked = [t for t in node["taints"] if t.get("effect") in ("NoSchedule", "NoExecute")]
            if all(any(tol.get("operator") == "Exists" and not tol.get("key") or tol.get("key") == t["key"]
                       for tol in tolerations) for t in blocked):  # fmt: skip
                result.append(n)
        return result

    def rollout(self, kind: str, name: str, ns: str, now: float) -> dict | None:
        obj = self.find(kind, name, ns)
        if not obj:
            return None
        owned = [p for p in self.pods(now) if p["metadata"]["labels"]["owner"] == name
                 and p["metadata"]["namespace"] == ns]  # fmt: skip
        ready = sum(1 for p in owned if p["status"]["_status"] == "Running")
        return {"desired": len(owned), "ready": ready}


def _within(inner: str, outer: str) -> bool:
    try:
        return ipaddress.ip_network(inner.split(",")[0], strict=False).subnet_of(
            ipaddress.ip_network(outer.split(",")[0], strict=False)
        )
    except (ValueError, TypeError):
        return False


class Handler(BaseHTTPRequestHandler):
    """One HTTPS request: anonymous health/discovery, bearer-token join, client-cert API."""

    server_version = "kube-apiserver"
    protocol_version = "HTTP/1.1"
    cluster: Cluster

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write(f"{time.strftime('%H:%M:%S')} {self.client_address[0]} {fmt % args}\n")

    def send(self, code: int, body, ctype: str = "application/json") -> None:
        data = (
            body
            if isinstance(body, bytes)
            else (body if isinstance(body, str) else json.dumps(body)).encode()
        )
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def status(self, code: int, reason: str, message: str) -> None:
        self.send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                         "reason": reason, "code": code})  # fmt: skip

    def body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def has_cert(self) -> bool:
        try:
            return bool(self.connection.getpeercert())
        except (AttributeError, ValueError):
            return False

    def token(self) -> dict | None:
        auth = self.headers.get("Authorization", "")
        m = re.fullmatch(r"Bearer ([a-z0-9]{6})\.([a-z0-9]{16})", auth)
        if not m:
            return None
        tok = self.cluster.data["tokens"].get(m.group(1))
        if (
            not tok
            or tok["secret"] != m.group(2)
            or (tok.get("expires") and tok["expires"] < time.time())
        ):
            return None
        return tok

    def do_GET(self) -> None:  # noqa: N802
        self.route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self.route("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self.route("PATCH")

    def route(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = url.path, {k: v[0] for k, v in parse_qs(url.query).items()}
        c = self.cluster
        with c.lock:
            if path in ("/readyz", "/livez", "/healthz"):
                return self.send(200, "ok", "text/plain")
            if path == "/version":
                v = c.data["cluster"]["version"]
                return self.send(200, {"major": "1", "minor": v.split(".")[1], "gitVersion": v,
                                       "platform": "linux/amd64"})  # fmt: skip
            if path == "/api/v1/namespaces/kube-public/configmaps/cluster-info":
                return self.send(200, self.cluster_info())
            if path in ("/gimme-testbed/join", "/gimme-testbed/cluster"):
                if not self.token() and not self.has_cert():
                    return self.status(401, "Unauthorized", "Unauthorized")
                if path == "/gimme-testbed/cluster":
                    return self.send(200, c.data["cluster"])
                return self.join(self.body())
            if not self.has_cert():
                return self.status(401, "Unauthorized", "Unauthorized")
            now = time.time()
            if path == "/api/v1/nodes":
                return self.send(200, {"apiVersion": "v1", "kind": "NodeList",
                                       "items": [c.node_view(n, now) for n in sorted(c.data["nodes"])]})  # fmt: skip
            if m := re.fullmatch(r"/api/v1/nodes/([^/]+)", path):
                if m.group(1) not in c.data["nodes"]:
                    return self.status(404, "NotFound", f'nodes "{m.group(1)}" not found')
                return self.send(200, c.node_view(m.group(1), now))
            if path == "/gimme-testbed/objects":
                kind = query.get("kind")
                items = c.pods(now) if kind == "Pod" else c.objects(kind, query.get("namespace"))
                if kind == "Pod" and query.get("namespace"):
                    items = [p for p in items if p["metadata"]["namespace"] == query["namespace"]]
                return self.send(
                    200,
                    {
                        "items": [
                            {k: v for k, v in o.items() if not k.startswith("_")} for o in items
                        ]
                    },
                )
            if path == "/gimme-testbed/apply" and method == "POST":
                req = self.body()
                results = [c.submit(o, req["mode"], req.get("source", "STDIN"), req.get("server_side", False))
                           for o in req["objects"]]  # fmt: skip
                c.save()
                return self.send(200, {"results": results})
            if path == "/gimme-testbed/rollout":
                return self.send(
                    200,
                    c.rollout(query["kind"], query["name"], query.get("namespace", "default"), now)
                    or {},
                )
            if path == "/gimme-testbed/tokens":
                if method == "POST":
                    req = self.body()
                    c.data["tokens"][req["id"]] = req["token"]
                    c.save()
                    return self.send(200, {})
                return self.send(200, c.data["tokens"])
            if path == "/gimme-testbed/upload-certs" and method == "POST":
                c.data["cluster"]["certificate_key"] = self.body()["key"]
                c.data["cluster"]["certs_uploaded"] = now
                c.save()
                return self.send(200, {})
            if (m := re.fullmatch(r"/gimme-testbed/nodes/([^/]+)", path)) and method == "PATCH":
                return self.patch_node(m.group(1), self.body())
            return self.status(404, "NotFound", "the server could not find the requested resource")

    def cluster_info(self) -> dict:
        c = self.cluster.data
        data = {"kubeconfig": c["cluster"]["info_kubeconfig"]}
        for tid, tok in c["tokens"].items():
            if "signing" in tok.get("usages", ["signing"]) and not (
                tok.get("expires") and tok["expires"] < time.time()
            ):
                data[f"jws-kubeconfig-{tid}"] = jws(data["kubeconfig"], tid, tok["secret"])
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cluster-info", "namespace": "kube-public"}, "data": data}  # fmt: skip

    def join(self, info: dict) -> None:
        c = self.cluster
        if info.get("control_plane") and not info.get("first"):
            cl = c.data["cluster"]
            if not cl.get("control_plane_endpoint"):
                return self.status(400, "BadRequest", "unable to add a new control plane instance to a cluster that "
                                   "doesn't have a stable controlPlaneEndpoint address")  # fmt: skip
            if not cl.get("certificate_key") or time.time() - cl.get("certs_uploaded", 0) > 7200:
                return self.status(404, "NotFound", 'Secret "kubeadm-certs" was not found in the "kube-system" Namespace. '
                                   "This Secret might have expired. Please, run `kubeadm init phase upload-certs "
                                   "--upload-certs` on a control plane to generate a new one")  # fmt: skip
            if info.get("certificate_key") != cl["certificate_key"]:
                return self.status(400, "BadRequest", "error decoding secret data with provided key: cipher: "
                                   "message authentication failed")  # fmt: skip
        from .pki import issue

        pki = Path(c.data["cluster"]["pki_dir"])
        cert, key = issue((pki / "ca.crt").read_bytes(), (pki / "ca.key").read_bytes(),
                          f"system:node:{info['name']}", "system:nodes")  # fmt: skip
        c.register(info)
        c.save()
        self.send(200, {"cert": cert.decode(), "key": key.decode(), "cluster": c.data["cluster"]})

    def patch_node(self, name: str, req: dict) -> None:
        c = self.cluster
        node = c.data["nodes"].get(name)
        if not node:
            return self.status(404, "NotFound", f'nodes "{name}" not found')
        for k in req.get("remove_labels", []):
            node["labels"].pop(k, None)
        for k, v in req.get("labels", {}).items():
            if k in node["labels"] and node["labels"][k] != v and not req.get("overwrite"):
                return self.status(409, "Conflict", f"'{k}' already has a value ({node['labels'][k]}), and "
                                   "--overwrite is false")  # fmt: skip
            node["labels"][k] = v
        for t in req.get("taints_remove", []):
            match = [
                x
                for x in node["taints"]
                if x["key"] == t["key"] and (not t.get("effect") or x["effect"] == t["effect"])
            ]
            if not match:
                return self.status(
                    404,
                    "NotFound",
                    f'taint "{t["key"]}{":" + t["effect"] if t.get("effect") else ""}" not found',
                )
            node["taints"] = [x for x in node["taints"] if x not in match]
        for t in req.get("taints_add", []):
            node["taints"] = [x for x in node["taints"] if x["key"] != t["key"]] + [t]
        c.save()
        self.send(200, {})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, ctx: ssl.SSLContext, firewall_check):
        super().__init__(addr, Handler)
        self.ctx = ctx
        self.firewall_check = firewall_check

    def finish_request(self, request, client_address) -> None:
        if self.firewall_check(client_address[0]):
            request.close()
            return
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(tls, client_address)


def _firewall_blocks(bind_ip: str, state_dir: Path):
    def check(client_ip: str) -> bool:
        if client_ip == bind_ip:
            return False
        try:
            fw = json.loads((state_dir / "kernel.json").read_text()).get("firewall")
        except (OSError, ValueError):
            return False
        return bool(fw and fw.get("running") and "6443/tcp" not in fw.get("ports", []))

    return check


def serve(state: str, bind: str, port: int) -> None:
    cluster = Cluster(state)
    pki = Path(cluster.data["cluster"]["pki_dir"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
    ctx.load_verify_locations(pki / "ca.crt")
    ctx.verify_mode = ssl.CERT_OPTIONAL
    Handler.cluster = cluster
    server = Server((bind, port), ctx, _firewall_blocks(bind, Path(state).parent))
    Path(state).with_name("apiserver.pid").write_text(str(os.getpid()))
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} serving on https://{bind}:{port}\n")
    server.serve_forever()


# --- client ------------------------------------------------------------------


class ApiError(Fail):
    """A request failed; `message` is what kubectl would print, `status` the HTTP status if any."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message, 1)
        self.status = status


class Client:
    """HTTPS client for the stand-ins: client cert from a kubeconfig, or a bootstrap token."""

    def __init__(self, server: str, ca_pem: bytes | None = None, cert_pem: bytes | None = None,
                 key_pem: bytes | None = None, token: str | None = None):  # fmt: skip
        self.server = server.rstrip("/")
        self.token = token
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca_pem:
            self.ctx.load_verify_locations(cadata=ca_pem.decode())
        else:
            self.ctx.check_hostname = False
            self.ctx.verify_mode = ssl.CERT_NONE
        if cert_pem and key_pem:
            with tempfile.NamedTemporaryFile("wb", delete=True) as f:
                f.write(cert_pem + b"\n" + key_pem)
                f.flush()
                self.ctx.load_cert_chain(f.name)

    @classmethod
    def from_kubeconfig(cls, path: str) -> Client:
        cfg = yaml.safe_load(Path(path).read_text()) or {}
        ctx_name = cfg.get("current-context")
        ctx = next((c["context"] for c in cfg.get("contexts", []) if c["name"] == ctx_name), None)
        if not ctx:
            raise ApiError("error: current-context is not set" if not ctx_name
                           else f'error: context "{ctx_name}" does not exist')  # fmt: skip
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next((u["user"] for u in cfg.get("users", []) if u["name"] == ctx.get("user")), {})

        def data(obj: dict, key: str) -> bytes | None:
            if obj.get(f"{key}-data"):
                return base64.b64decode(obj[f"{key}-data"])
            if obj.get(key):
                return Path(obj[key]).read_bytes()
            return None

        return cls(cluster["server"], data(cluster, "certificate-authority"), data(user, "client-certificate"),
                   data(user, "client-key"), user.get("token"))  # fmt: skip

    def request(
        self, method: str, path: str, body: dict | None = None, timeout: float = 10
    ) -> dict:
        url = urlsplit(self.server)
        host, port = url.hostname or "", url.port or 443
        conn = http.client.HTTPSConnection(host, port, context=self.ctx, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(
                method, path, body=json.dumps(body) if body is not None else None, headers=headers
            )
            resp = conn.getresponse()
            raw = resp.read()
        except ssl.SSLCertVerificationError as e:
            msg = e.verify_message or str(e)
            if "Hostname mismatch" in msg or "IP address mismatch" in msg:
                msg = f"x509: certificate is valid for other names, not {host}"
            elif (
                "unable to get local issuer" in msg or "self-signed" in msg or "self signed" in msg
            ):
                msg = "x509: certificate signed by unknown authority"
            raise ApiError(
                f"Unable to connect to the server: tls: failed to verify certificate: {msg}"
            ) from None
        except ConnectionRefusedError:
            raise ApiError(f"The connection to the server {host}:{port} was refused - did you specify the right "
                           "host or port?") from None  # fmt: skip
        except socket.gaierror:
            raise ApiError(f"Unable to connect to the server: dial tcp: lookup {host} on 127.0.0.53:53: no such "
                           "host") from None  # fmt: skip
        except OSError as e:
            raise ApiError(
                f"Unable to connect to the server: dial tcp {host}:{port}: {e.strerror or e}"
            ) from None
        finally:
            conn.close()
        data = (
            json.loads(raw or b"{}")
            if resp.getheader("Content-Type", "").startswith("application/json")
            else {"text": raw.decode()}
        )
        if resp.status == 401:
            raise ApiError("error: You must be logged in to the server (Unauthorized)", 401)
        if resp.status >= 400:
            raise ApiError(data.get("message", raw.decode()), resp.status)
        return data


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True)
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, default=6443)
    a = ap.parse_args()
    serve(a.state, a.bind, a.port)
