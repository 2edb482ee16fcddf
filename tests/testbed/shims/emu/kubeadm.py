"""kubeadm: version, config, init, join, token, reset — with preflight checks like the real one."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from . import catalog, core, fetch, kubeadm_config, pki, runtimes, system
from .apiserver import ApiError, Client, jws, rfc3339
from .core import Call, Fail, out

PKI = Path("/etc/kubernetes/pki")
KNOWN_REGISTRIES = {
    "registry.k8s.io",
    "k8s.gcr.io",
    "docker.io",
    "quay.io",
    "ghcr.io",
    "registry-1.docker.io",
}
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
CRI_CANDIDATES = [("unix:///var/run/containerd/containerd.sock", "/run/containerd/containerd.sock"),
                  ("unix:///var/run/crio/crio.sock", "/run/crio/crio.sock"),
                  ("unix:///var/run/cri-dockerd.sock", "/run/cri-dockerd.sock")]  # fmt: skip
INIT_FLAGS = {"config", "pod-network-cidr", "service-cidr", "service-dns-domain", "kubernetes-version",
              "apiserver-advertise-address", "apiserver-bind-port", "apiserver-cert-extra-sans",
              "control-plane-endpoint", "cri-socket", "skip-phases", "ignore-preflight-errors", "node-name",
              "image-repository", "token", "token-ttl", "certificate-key", "feature-gates", "patches", "v",
              "upload-certs", "dry-run", "skip-token-print", "skip-certificate-key-print", "rootfs"}  # fmt: skip
JOIN_FLAGS = {"config", "token", "discovery-token", "tls-bootstrap-token", "discovery-token-ca-cert-hash",
              "discovery-token-unsafe-skip-ca-verification", "discovery-file", "cri-socket", "node-name",
              "control-plane", "certificate-key", "apiserver-advertise-address", "apiserver-bind-port",
              "ignore-preflight-errors", "skip-phases", "dry-run", "patches", "v"}  # fmt: skip
BOOL_FLAGS = {"upload-certs", "dry-run", "skip-token-print", "skip-certificate-key-print", "control-plane",
              "discovery-token-unsafe-skip-ca-verification", "force", "f", "print-join-command", "cleanup-tmp-dir"}  # fmt: skip
MIX_WITH_CONFIG = {"config", "ignore-preflight-errors", "dry-run", "node-name", "upload-certs", "skip-phases",
                   "v", "skip-token-print", "skip-certificate-key-print", "certificate-key", "patches", "rootfs",
                   "kubeconfig"}  # fmt: skip


def main(call: Call) -> int:
    kv = call.version
    if not kv:
        raise Fail("kubeadm: unknown version", 1)
    args = list(call.args)
    if not args or args[0] in ("-h", "--help", "help"):
        out(
            "Usage:\n  kubeadm [command]\n\nAvailable Commands:\n  certs\n  config\n  init\n  join\n  reset\n  token\n  version"
        )
        return 0
    cmd, rest = args[0], args[1:]
    handlers = {"version": cmd_version, "config": cmd_config, "init": cmd_init, "join": cmd_join,
                "reset": cmd_reset, "token": cmd_token, "certs": cmd_certs}  # fmt: skip
    if cmd not in handlers:
        raise Fail(
            f'unknown command "{cmd}" for "kubeadm"\nTo see the stack trace of this error execute with --v=5 or higher'
        )
    return handlers[cmd](kv, rest, call)


# --- helpers -----------------------------------------------------------------


def parse_flags(args: list[str], allowed: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    flags: dict[str, list[str]] = {}
    positional = []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and a != "-":
            name, eq, value = a.lstrip("-").partition("=")
            if name not in allowed:
                raise Fail(
                    f"unknown flag: {a.split('=')[0]}\nTo see the stack trace of this error execute with --v=5 or higher"
                )
            if name in BOOL_FLAGS:
                flags.setdefault(name, []).append(value if eq else "true")
            else:
                if not eq:
                    if i + 1 >= len(args):
                        raise Fail(f"flag needs an argument: {a}")
                    i += 1
                    value = args[i]
                flags.setdefault(name, []).append(value)
        else:
            positional.append(a)
        i += 1
    return flags, positional


def flag(flags: dict, name: str, default: str | None = None) -> str | None:
    return flags[name][-1] if name in flags else default


def is_true(flags: dict, name: str) -> bool:
    return flag(flags, name, "false") not in ("false", "0")


def kminor(version: str) -> int:
    return core.minor(version)


def state() -> dict:
    return core.load("kubeadm")


def _phase_error(phase: str, message: str) -> Fail:
    return Fail(
        f"error execution phase {phase}: {message}\nTo see the stack trace of this error execute with --v=5 or higher"
    )


def resolve_version(kv: str, wanted: str | None) -> str:
    """The control-plane version: --kubernetes-version / kubernetesVersion, else stable-1.<minor> online."""
    m = kminor(kv)
    if wanted in (None, "", "stable", f"stable-1.{m}", "latest", f"latest-1.{m}"):
        label = wanted or f"stable-1.{m}"
        try:
            resp = fetch.get(f"https://dl.k8s.io/release/{label}.txt")
            version = resp.body.decode().strip() if resp.status == 200 else ""
        except fetch.UnknownHost:
            version = ""
        if not version:
            core.err(f"W0000 version.go:104] could not fetch a Kubernetes version from the internet: unable to get URL "
                     f'"https://dl.k8s.io/release/{label}.txt"\nW0000 version.go:105] falling back to the local client version: v{kv}')  # fmt: skip
            version = f"v{kv}"
    else:
        version = wanted if wanted.startswith("v") else f"v{wanted}"
    if not re.fullmatch(r"v1\.\d+\.\d+", version):
        raise Fail(
            f'kubernetesVersion: Invalid value: "{version}": must be a valid semantic version'
        )
    vm = kminor(version)
    if vm > m:
        raise Fail(
            f'the specified Kubernetes version "{version}" is newer than the kubeadm version "v{kv}"; '
            "please upgrade kubeadm"
        )
    if vm < m - 1:
        raise Fail(f"this version of kubeadm only supports deploying clusters with the control plane version >= "
                   f"1.{m - 1}.0. Current version: {version}")  # fmt: skip
    return version


def detect_cri(kube_minor: int) -> str:
    """kubeadm's CRI socket auto-detection."""
    found = [ep for ep, path in CRI_CANDIDATES if os.path.exists(path)]
    if (
        kube_minor < 24
        and os.path.exists("/run/docker.sock")
        and not os.path.exists("/run/cri-dockerd.sock")
    ):
        found = [e for e in found if "containerd" not in e] + ["unix:///var/run/dockershim.sock"]
    if len(found) > 1:
        raise Fail("found multiple CRI endpoints on the host. Please define which one do you wish to use by setting "
                   f"the 'criSocket' field in the kubeadm configuration file: {', '.join(found)}\n"
                   "To see the stack trace of this error execute with --v=5 or higher")  # fmt: skip
    if not found:
        return "unix:///var/run/containerd/containerd.sock"
    return found[0]


def kubelet_health() -> str:
    """'active' when the kubelet can run: configured by kubeadm, swap allowed, runtime reachable."""
    cfg_path = Path("/var/lib/kubelet/config.yaml")
    if not cfg_path.exists() or not system.unit_file("kubelet.service"):
        return "activating"
    try:
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
    except yaml.YAMLError:
        return "activating"
    extra = ""
    for p in (
        "/etc/default/kubelet",
        "/etc/sysconfig/kubelet",
        "/var/lib/kubelet/kubeadm-flags.env",
    ):
        with contextlib.suppress(OSError):
            extra += Path(p).read_text()
    fail_swap = cfg.get("failSwapOn", True) and "--fail-swap-on=false" not in extra
    if system.swap_active() and fail_swap:
        return "activating"
    kubelet_v = core.tool_version("kubelet") or "1.30.0"
    if core.cgroup_v1() and kminor(kubelet_v) >= 35 and cfg.get("failCgroupV1", True):
        return "activating"
    m = re.search(r"--container-runtime-endpoint=(\S+?)\"?(\s|$)", extra)
    endpoint = cfg.get("containerRuntimeEndpoint") or (
        m.group(1) if m else "unix:///var/run/containerd/containerd.sock"
    )
    if runtimes.cri_error(endpoint):
        return "activating"
    st = state()
    if st.get("role") == "control-plane":
        ensure_apiserver(st)
    return "active"


def ensure_apiserver(st: dict) -> None:
    """Start the apiserver daemon (a static pod on a real node) unless it already runs."""
    pid_file = core.STATE_DIR / "apiserver.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text())
        if (
            Path(f"/proc/{pid}").exists()
            and "apiserver" in Path(f"/proc/{pid}/cmdline").read_text()
        ):
            return
    log = open(core.LOG_DIR / "apiserver.log", "ab")  # noqa: SIM115
    code = (f"import sys; sys.path.insert(0, {str(core.SHIM_DIR)!r}); sys.argv[0] = 'kube-apiserver'; "
            f"from emu.apiserver import serve; serve({str(core.STATE_DIR / 'apiserver.json')!r}, "
            f"{st['advertise']!r}, {int(st['port'])})")  # fmt: skip
    subprocess.Popen([core.python(), "-I", "-c", code, "kube-apiserver"], stdin=subprocess.DEVNULL, stdout=log,
                     stderr=log, close_fds=True, start_new_session=True, cwd="/")  # fmt: skip
    log.close()
    client = Client(f"https://{st['advertise']}:{st['port']}")
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            client.request("GET", "/readyz", timeout=2)
            return
        except ApiError:
            time.sleep(0.05)
    raise Fail("[control-plane-check] kube-apiserver did not become ready in time")


def stop_apiserver() -> None:
    with contextlib.suppress(OSError, ValueError):
        pid = int((core.STATE_DIR / "apiserver.pid").read_text())
        if "apiserver" in Path(f"/proc/{pid}/cmdline").read_text():
            os.kill(pid, signal.SIGTERM)
    (core.STATE_DIR / "apiserver.pid").unlink(missing_ok=True)


# --- preflight -------------------------------------------------------------


def preflight(
    kv: str,
    version: str,
    cri_socket: str,
    ignore: set[str],
    mode: str,
    extra: list[tuple[str, str]],
) -> None:
    """Run kubeadm's checks; errors abort like `error execution phase preflight`."""
    m = kminor(version)
    errors: list[tuple[str, str]] = list(extra)
    warnings: list[tuple[str, str]] = []
    if not core.is_root():
        errors.append(("IsPrivilegedUser", "user is not running as root"))
    k = system.kernel()
    if system.swap_active():
        if kminor(kv) >= 28:
            warnings.append(("Swap", "swap is supported for cgroup v2 only. The kubelet must be properly configured "
                             "to use swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, "
                             "or disable swap on the node"))  # fmt: skip
        else:
            errors.append(("Swap", "running with swap on is not supported. Please disable swap"))
    if system.sysctl_value("net.ipv4.ip_forward", k) != "1":
        errors.append(
            (
                "FileContent--proc-sys-net-ipv4-ip_forward",
                "/proc/sys/net/ipv4/ip_forward contents are not set to 1",
            )
        )
    if kminor(kv) < 30:
        v = system.sysctl_value("net.bridge.bridge-nf-call-iptables", k)
        if v is None:
            errors.append(("FileContent--proc-sys-net-bridge-bridge-nf-call-iptables",
                           "/proc/sys/net/bridge/bridge-nf-call-iptables does not exist"))  # fmt: skip
        elif v != "1":
            errors.append(("FileContent--proc-sys-net-bridge-bridge-nf-call-iptables",
                           "/proc/sys/net/bridge/bridge-nf-call-iptables contents are not set to 1"))  # fmt: skip
    pkgs = core.load("packages", {"installed": {}})["installed"]
    if m < 32 and not (
        pkgs.get("conntrack") or pkgs.get("conntrack-tools") or core.which("conntrack")
    ):
        errors.append(("FileExisting-conntrack", "conntrack not found in system path"))
    if kminor(kv) < 31 and not core.which("crictl"):
        errors.append(("FileExisting-crictl", "crictl not found in system path"))
    kubelet_v = core.tool_version("kubelet")
    if not kubelet_v:
        errors.append(("KubeletVersion", "couldn't get kubelet version: cannot execute 'kubelet --version': "
                       'exec: "kubelet": executable file not found in $PATH'))  # fmt: skip
    elif kminor(kubelet_v) > m:
        errors.append(("KubeletVersion", f'the kubelet version is higher than the control plane version. This is not a '
                       f'supported version skew and may lead to a malfunctional cluster. Kubelet version: "{kubelet_v}" '
                       f'Control plane version: "{version.lstrip("v")}"'))  # fmt: skip
    elif kminor(kubelet_v) < m - (3 if m >= 28 else 1):
        errors.append(
            (
                "KubeletVersion",
                f'Kubelet version "{kubelet_v}" is lower than kubeadm can support. Please upgrade kubelet',
            )
        )
    if system.unit_file("kubelet.service") and not system.unit_state("kubelet.service")["enabled"]:
        warnings.append(
            (
                "Service-Kubelet",
                "kubelet service is not enabled, please run 'systemctl enable kubelet.service'",
            )
        )
    if core.cgroup_v1() and kminor(kv) >= 31:
        warnings.append(
            (
                "SystemVerification",
                "cgroups v1 support is in maintenance mode, please migrate to cgroups v2",
            )
        )
    if k.get("firewall", {}).get("running"):
        ports = "[6443 10250]" if mode == "init" else "[10250]"
        warnings.append(
            (
                "Firewalld",
                f"firewalld is active, please ensure ports {ports} are open or your cluster may not function correctly",
            )
        )
    problem = runtimes.cri_error(cri_socket, m)
    if problem:
        if kminor(kv) >= 31:
            errors.append(("CRI", f"could not connect to the container runtime: {problem}"))
        else:
            errors.append(("CRI", f'container runtime is not running: output: time="{time.strftime("%Y-%m-%dT%H:%M:%SZ")}" '
                           f'level=fatal msg="{problem}"\n, error: exit status 1'))  # fmt: skip
    st = state()
    if mode == "init" and st.get("role"):
        errors.append(("Port-6443", "Port 6443 is in use"))
        errors.append(("FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
                       "/etc/kubernetes/manifests/kube-apiserver.yaml already exists"))  # fmt: skip
    if mode == "join" and Path("/etc/kubernetes/kubelet.conf").exists():
        errors.append(
            (
                "FileAvailable--etc-kubernetes-kubelet.conf",
                "/etc/kubernetes/kubelet.conf already exists",
            )
        )
    ignore_all = "all" in ignore
    fatal = []
    for name, msg in errors:
        if ignore_all or name.lower() in ignore:
            warnings.append((name, msg))
        else:
            fatal.append((name, msg))
    out("[preflight] Running pre-flight checks")
    for name, msg in warnings:
        core.err(f"\t[WARNING {name}]: {msg}")
    if fatal:
        lines = "\n".join(f"\t[ERROR {n}]: {msg}" for n, msg in fatal)
        raise Fail(f"error execution phase preflight: [preflight] Some fatal errors occurred:\n{lines}\n"
                   "[preflight] If you know what you are doing, you can make a check non-fatal with "
                   "`--ignore-preflight-errors=...`\nTo see the stack trace of this error execute with --v=5 or higher")  # fmt: skip


def pull_images(version: str, repo: str, ignore: set[str]) -> list[str]:
    imgs = catalog.k8s_images(version, repo)
    host = repo.split("/")[0]
    if host not in KNOWN_REGISTRIES or (host == "k8s.gcr.io" and kminor(version) >= 27):
        errs = "\n".join(f"\t[ERROR ImagePull]: failed to pull image {i}: rpc error: code = Unknown desc = failed to "
                         f'pull and unpack image "{i}": failed to resolve reference "{i}": '
                         + (f"{i}: not found" if host == "k8s.gcr.io" else
                            f"dial tcp: lookup {host} on 127.0.0.53:53: no such host")
                         for i in imgs)  # fmt: skip
        if not ({"all", "imagepull"} & ignore):
            raise Fail(f"error execution phase preflight: [preflight] Some fatal errors occurred:\n{errs}\n"
                       "To see the stack trace of this error execute with --v=5 or higher")  # fmt: skip
        return imgs
    runtimes.add_images(imgs)
    return imgs


# --- version / config / certs ------------------------------------------------


def cmd_version(kv: str, args: list[str], call: Call) -> int:
    fl, _ = parse_flags(args, {"output", "o"})
    fmt = flag(fl, "output") or flag(fl, "o")
    info = {"major": "1", "minor": str(kminor(kv)), "gitVersion": f"v{kv}", "gitTreeState": "clean",
            "goVersion": "go1.22.12", "compiler": "gc", "platform": "linux/amd64"}  # fmt: skip
    if fmt == "short":
        out(f"v{kv}")
    elif fmt == "json":
        out(json.dumps({"clientVersion": info}, indent=2))
    elif fmt == "yaml":
        out(yaml.safe_dump({"clientVersion": info}).rstrip())
    elif fmt:
        raise Fail(f"invalid output format: {fmt}")
    else:
        out(
            "kubeadm version: &version.Info{"
            + ", ".join(f'{k[0].upper() + k[1:]}:"{v}"' for k, v in info.items())
            + "}"
        )
    return 0


def default_api(kv: str) -> str:
    return "kubeadm.k8s.io/v1beta4" if kminor(kv) >= 31 else "kubeadm.k8s.io/v1beta3"


def cmd_config(kv: str, args: list[str], call: Call) -> int:
    fl, pos = parse_flags(args, {"kubernetes-version", "config", "cri-socket", "image-repository", "output", "o",
                                 "component-configs", "v", "kubeconfig", "old-config", "new-config",
                                 "allow-experimental-api", "feature-gates"})  # fmt: skip
    if pos[:2] == ["images", "list"] or pos[:2] == ["images", "pull"]:
        cfg = kubeadm_config.load(flag(fl, "config"), kminor(kv)) if flag(fl, "config") else {}
        cluster = cfg.get("ClusterConfiguration", {})
        version = resolve_version(
            kv, flag(fl, "kubernetes-version") or cluster.get("kubernetesVersion")
        )
        repo = flag(fl, "image-repository") or cluster.get("imageRepository") or "registry.k8s.io"
        if pos[1] == "list":
            for img in catalog.k8s_images(version, repo):
                out(img)
            return 0
        sock = flag(fl, "cri-socket") or cfg.get("InitConfiguration", {}).get("nodeRegistration", {}).get("criSocket") \
            or detect_cri(kminor(version))  # fmt: skip
        problem = runtimes.cri_error(sock, kminor(version))
        if problem:
            raise Fail(f"failed to create new CRI runtime service: {problem}\nTo see the stack trace of this error "
                       "execute with --v=5 or higher")  # fmt: skip
        for img in pull_images(version, repo, set()):
            out(f"[config/images] Pulled {img}")
        return 0
    if pos[:2] in (["print", "init-defaults"], ["print", "join-defaults"]):
        api = default_api(kv)
        v4 = api.endswith("v1beta4")
        if pos[1] == "init-defaults":
            docs = [
                {"apiVersion": api, "kind": "InitConfiguration",
                 "bootstrapTokens": [{"groups": ["system:bootstrappers:kubeadm:default-node-token"],
                                      "token": "abcdef.0123456789abcdef", "ttl": "24h0m0s",
                                      "usages": ["signing", "authentication"]}],
                 "localAPIEndpoint": {"advertiseAddress": "1.2.3.4", "bindPort": 6443},
                 "nodeRegistration": {"criSocket": "unix:///var/run/containerd/containerd.sock",
                                      "imagePullPolicy": "IfNotPresent", **({"imagePullSerial": True} if v4 else {}),
                                      "name": "node", "taints": None},
                 **({"timeouts": {"controlPlaneComponentHealthCheck": "4m0s", "discovery": "5m0s",
                                  "etcdAPICall": "2m0s", "kubeletHealthCheck": "4m0s",
                                  "kubernetesAPICall": "1m0s", "tlsBootstrap": "5m0s",
                                  "upgradeManifests": "5m0s"}} if v4 else {})},
                {"apiVersion": api, "kind": "ClusterConfiguration", "apiServer": {} if v4 else {"timeoutForControlPlane": "4m0s"},
                 "caCertificateValidityPeriod": "87600h0m0s" if v4 else None,
                 "certificateValidityPeriod": "8760h0m0s" if v4 else None,
                 "certificatesDir": "/etc/kubernetes/pki", "clusterName": "kubernetes",
                 "controllerManager": {}, "dns": {}, "encryptionAlgorithm": "RSA-2048" if v4 else None,
                 "etcd": {"local": {"dataDir": "/var/lib/etcd"}}, "imageRepository": "registry.k8s.io",
                 "kubernetesVersion": f"{kminor(kv) and '1.' + str(kminor(kv)) + '.0'}",
                 "networking": {"dnsDomain": "cluster.local", "serviceSubnet": "10.96.0.0/12"},
                 "proxy": {} if v4 else None, "scheduler": {}},
            ]  # fmt: skip
        else:
            docs = [{"apiVersion": api, "kind": "JoinConfiguration", "caCertPath": "/etc/kubernetes/pki/ca.crt",
                     "discovery": {"bootstrapToken": {"apiServerEndpoint": "kube-apiserver:6443",
                                                      "token": "abcdef.0123456789abcdef",
                                                      "unsafeSkipCAVerification": True},
                                   "tlsBootstrapToken": "abcdef.0123456789abcdef",
                                   **({} if v4 else {"timeout": "5m0s"})},
                     "nodeRegistration": {"criSocket": "unix:///var/run/containerd/containerd.sock",
                                          "imagePullPolicy": "IfNotPresent", "name": "node", "taints": None}}]  # fmt: skip
        for n, d in enumerate(docs):
            d = {k: v for k, v in d.items() if v is not None or k == "taints"}
            out(("---\n" if n else "") + yaml.safe_dump(d, sort_keys=False).rstrip())
        comps = (flag(fl, "component-configs") or "").split(",")
        if "KubeletConfiguration" in comps:
            out("---\n" + yaml.safe_dump({"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                                          "cgroupDriver": "systemd", "clusterDNS": ["10.96.0.10"],
                                          "clusterDomain": "cluster.local"}, sort_keys=False).rstrip())  # fmt: skip
        if "KubeProxyConfiguration" in comps:
            out("---\n" + yaml.safe_dump({"apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                                          "kind": "KubeProxyConfiguration", "mode": ""}, sort_keys=False).rstrip())  # fmt: skip
        return 0
    if pos[:1] == ["validate"]:
        if not flag(fl, "config"):
            raise Fail("the --config flag is mandatory")
        kubeadm_config.load(flag(fl, "config"), kminor(kv))
        out("ok")
        return 0
    raise Fail(f'unknown command "{" ".join(pos)}" for "kubeadm config"\nTo see the stack trace of this error '
               "execute with --v=5 or higher")  # fmt: skip


def cmd_certs(kv: str, args: list[str], call: Call) -> int:
    if args[:1] == ["certificate-key"]:
        out(secrets.token_hex(32))
        return 0
    raise Fail(f'unknown command "{" ".join(args)}" for "kubeadm certs"')


# --- init --------------------------------------------------------------------


def cmd_init(kv: str, args: list[str], call: Call) -> int:
    fl, pos = parse_flags(args, INIT_FLAGS)
    if pos:
        raise Fail(f'unknown command "{pos[0]}" for "kubeadm init"')
    cfg: dict = {}
    if flag(fl, "config"):
        mixed = sorted(k for k in fl if k not in MIX_WITH_CONFIG)
        if mixed:
            raise Fail(f"can not mix '--config' with arguments [{' '.join(mixed)}]")
        cfg = kubeadm_config.load(flag(fl, "config"), kminor(kv))
    initc, clusterc = cfg.get("InitConfiguration", {}), cfg.get("ClusterConfiguration", {})
    kubeletc = cfg.get("KubeletConfiguration", {})
    proxyc = cfg.get("KubeProxyConfiguration", {})
    nodereg = initc.get("nodeRegistration", {})
    networking = clusterc.get("networking", {})
    pod_subnet = flag(fl, "pod-network-cidr") or networking.get("podSubnet") or ""
    service_subnet = flag(fl, "service-cidr") or networking.get("serviceSubnet") or "10.96.0.0/12"
    kubeadm_config.validate_cidrs("networking.podSubnet", pod_subnet)
    kubeadm_config.validate_cidrs("networking.serviceSubnet", service_subnet)
    cri = flag(fl, "cri-socket") or nodereg.get("criSocket")
    kubeadm_config.validate_cri_socket(cri)
    if cri and not cri.startswith("unix://"):
        cri = "unix://" + cri
    version = resolve_version(
        kv, flag(fl, "kubernetes-version") or clusterc.get("kubernetesVersion")
    )
    m = kminor(version)
    cri = cri or detect_cri(m)
    ip = (
        flag(fl, "apiserver-advertise-address")
        or initc.get("localAPIEndpoint", {}).get("advertiseAddress")
        or core.node_ip()
    )
    port = int(
        flag(fl, "apiserver-bind-port") or initc.get("localAPIEndpoint", {}).get("bindPort") or 6443
    )
    cpe = flag(fl, "control-plane-endpoint") or clusterc.get("controlPlaneEndpoint") or ""
    name = (flag(fl, "node-name") or nodereg.get("name") or core.hostname()).lower()
    skip = set((flag(fl, "skip-phases") or "").split(",")) | set(initc.get("skipPhases") or [])
    skip.discard("")
    ignore = {x.lower() for x in (flag(fl, "ignore-preflight-errors") or "").split(",") if x} | \
        {x.lower() for x in nodereg.get("ignorePreflightErrors") or []}  # fmt: skip
    repo = flag(fl, "image-repository") or clusterc.get("imageRepository") or "registry.k8s.io"
    cluster_name = clusterc.get("clusterName") or "kubernetes"
    out(f"[init] Using Kubernetes version: {version}")
    if "preflight" not in skip:
        preflight(kv, version, cri, ignore, "init", [])
        out("[preflight] Pulling images required for setting up a Kubernetes cluster\n"
            "[preflight] This might take a minute or two, depending on the speed of your internet connection\n"
            "[preflight] You can also perform this action beforehand using 'kubeadm config images pull'")  # fmt: skip
        pull_images(version, repo, ignore)
    if is_true(fl, "dry-run"):
        out(
            "[dryrun] Finished dry-running successfully. Above are the resources that would be created"
        )
        return 0

    # certs
    endpoint_host, _, endpoint_port = cpe.partition(":") if cpe else (ip, "", str(port))
    endpoint = f"{endpoint_host}:{endpoint_port or port}"
    first_svc = str(next(ipaddress.ip_network(service_subnet.split(",")[0]).hosts()))
    sans = [name, "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
            first_svc, ip, endpoint_host, *(clusterc.get("apiServer", {}).get("certSANs") or []),
            *[s for s in (flag(fl, "apiserver-cert-extra-sans") or "").split(",") if s]]  # fmt: skip
    out(
        '[certs] Using certificateDir folder "/etc/kubernetes/pki"\n[certs] Generating "ca" certificate and key'
    )
    ca_crt, ca_key = pki.make_ca()
    pki.write_private(PKI / "ca.crt", ca_crt, 0o644)
    pki.write_private(PKI / "ca.key", ca_key)
    out(f'[certs] apiserver serving cert is signed for DNS names [{" ".join(s for s in sans if not s[0].isdigit())}] '
        f'and IPs [{" ".join(s for s in dict.fromkeys(sans) if s[0].isdigit())}]')  # fmt: skip
    crt, key = pki.issue(ca_crt, ca_key, "kube-apiserver", sans=sans, server=True)
    pki.write_private(PKI / "apiserver.crt", crt, 0o644)
    pki.write_private(PKI / "apiserver.key", key)
    server = f"https://{endpoint}"
    out('[kubeconfig] Using kubeconfig folder "/etc/kubernetes"')
    admin_org = "kubeadm:cluster-admins" if m >= 29 else "system:masters"
    crt, key = pki.issue(ca_crt, ca_key, "kubernetes-admin", admin_org)
    pki.write_private(
        "/etc/kubernetes/admin.conf",
        pki.kubeconfig(server, ca_crt, "kubernetes-admin", crt, key, cluster_name),
    )
    out('[kubeconfig] Writing "admin.conf" kubeconfig file')
    if m >= 29:
        crt, key = pki.issue(ca_crt, ca_key, "kubernetes-super-admin", "system:masters")
        pki.write_private("/etc/kubernetes/super-admin.conf",
                          pki.kubeconfig(server, ca_crt, "kubernetes-super-admin", crt, key, cluster_name))  # fmt: skip
        out('[kubeconfig] Writing "super-admin.conf" kubeconfig file')
    crt, key = pki.issue(ca_crt, ca_key, f"system:node:{name}", "system:nodes")
    pki.write_private("/etc/kubernetes/kubelet.conf",
                      pki.kubeconfig(f"https://{ip}:{port}", ca_crt, f"system:node:{name}", crt, key, cluster_name))  # fmt: skip
    for comp in ("controller-manager", "scheduler"):
        pki.write_private(f"/etc/kubernetes/{comp}.conf",
                          pki.kubeconfig(f"https://{ip}:{port}", ca_crt, f"system:kube-{comp}", crt, key, cluster_name))  # fmt: skip
    manifests = Path("/etc/kubernetes/manifests")
    manifests.mkdir(parents=True, exist_ok=True)
    pause = catalog.IMAGES[m][0]
    for comp in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        image = (
            f"{repo}/{comp}:{version}" if comp != "etcd" else f"{repo}/etcd:{catalog.IMAGES[m][2]}"
        )
        (manifests / f"{comp}.yaml").write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": comp, "namespace": "kube-system"},
            "spec": {"hostNetwork": True, "containers": [{"name": comp, "image": image}]}}))  # fmt: skip
    token = flag(fl, "token") or next((t["token"] for t in initc.get("bootstrapTokens") or [] if t.get("token")), None) \
        or f"{secrets.token_hex(3)}.{secrets.token_hex(8)}"  # fmt: skip
    if not TOKEN_RE.match(token):
        raise Fail(
            f'bootstrapTokens[0].token: Invalid value: "{token}": the bootstrap token is invalid'
        )
    info_kubeconfig = yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [
        {"cluster": {"certificate-authority-data": pki.b64(ca_crt), "server": server}, "name": ""}],
        "contexts": [], "current-context": "", "preferences": {}, "users": []})  # fmt: skip
    cluster = {"version": version, "pod_subnet": pod_subnet, "service_subnet": service_subnet,
               "cluster_name": cluster_name, "control_plane_endpoint": cpe, "image_repository": repo,
               "pki_dir": str(PKI), "info_kubeconfig": info_kubeconfig, "endpoint": endpoint}  # fmt: skip
    tok_id, tok_secret = token.split(".")
    now = time.time()
    objects = {}
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        objects[f"|Namespace||{ns}"] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns},
            "_created": now,
        }
    objects["|ConfigMap|kube-system|kubeadm-config"] = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {"ClusterConfiguration": yaml.safe_dump({"kubernetesVersion": version, "networking": {
            "podSubnet": pod_subnet, "serviceSubnet": service_subnet}, "controlPlaneEndpoint": cpe})}, "_created": now}  # fmt: skip
    if (
        "addon/coredns" not in skip
        and "addon" not in skip
        and not clusterc.get("dns", {}).get("disabled")
    ):
        objects["apps|Deployment|kube-system|coredns"] = {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "coredns", "namespace": "kube-system"},
            "spec": {"replicas": 2, "template": {"spec": {"tolerations": [
                {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                {"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}]}}}, "_created": now}  # fmt: skip
    if (
        "addon/kube-proxy" not in skip
        and "addon" not in skip
        and not clusterc.get("proxy", {}).get("disabled")
    ):
        objects["apps|DaemonSet|kube-system|kube-proxy"] = {
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "spec": {"template": {"spec": {"hostNetwork": True, "tolerations": [{"operator": "Exists"}]}}},
            "_created": now, "_proxy_mode": proxyc.get("mode", "")}  # fmt: skip
    for obj in objects.values():
        obj["metadata"]["creationTimestamp"] = rfc3339(now)
    api_state = {"cluster": cluster, "nodes": {}, "objects": objects,
                 "tokens": {tok_id: {"secret": tok_secret, "expires": now + 86400, "usages": ["signing", "authentication"],
                                     "groups": ["system:bootstrappers:kubeadm:default-node-token"]}}}  # fmt: skip
    core.save("apiserver", api_state)
    _write_kubelet_files(kubeletc, cri, pause, nodereg)
    out("[kubelet-start] Writing kubelet environment file with flags to file \"/var/lib/kubelet/kubeadm-flags.env\"\n"
        "[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"\n"
        "[kubelet-start] Starting the kubelet")  # fmt: skip
    st = {"role": "control-plane", "advertise": ip, "port": port, "endpoint": endpoint, "node_name": name,
          "cri_socket": cri, "kubernetes_version": version, "cluster_name": cluster_name}  # fmt: skip
    core.save("kubeadm", st)
    health = _restart_kubelet()
    out("[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory "
        '"/etc/kubernetes/manifests"\n[kubelet-check] Waiting for a healthy kubelet at http://127.0.0.1:10248/healthz. '
        "This can take up to 4m0s")  # fmt: skip
    if health != "active":
        _kubelet_unhealthy(kv)
    ensure_apiserver(st)
    out(
        "[kubelet-check] The kubelet is healthy after 501.2ms\n[api-check] The API server is healthy after 1.5s"
    )
    client = Client.from_kubeconfig("/etc/kubernetes/admin.conf")
    registration = {"name": name, "ip": ip, "kubelet_version": "v" + (core.tool_version("kubelet") or kv),
                    "control_plane": True, "first": True, "cri_socket": cri, "runtime": runtimes.node_runtime(cri),
                    "os": core.os_release().get("PRETTY_NAME", "")}  # fmt: skip
    try:
        client.request("POST", "/gimme-testbed/join", registration)
    except ApiError as e:
        reason = e.message.replace("Unable to connect to the server: ", "")
        raise _phase_error("upload-config/kubeadm", "error uploading the kubeadm ClusterConfiguration: "
                           f"unable to create ConfigMap: {reason}") from None  # fmt: skip
    cert_key = ""
    if is_true(fl, "upload-certs"):
        cert_key = (
            flag(fl, "certificate-key") or initc.get("certificateKey") or secrets.token_hex(32)
        )
        client.request("POST", "/gimme-testbed/upload-certs", {"key": cert_key})
        out(
            '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace'
        )
        if not is_true(fl, "skip-certificate-key-print"):
            out(f"[upload-certs] Using certificate key:\n{cert_key}")
    out(f"[mark-control-plane] Marking the node {name} as control-plane by adding the labels: "
        "[node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]\n"
        f"[mark-control-plane] Marking the node {name} as control-plane by adding the taints "
        "[node-role.kubernetes.io/control-plane:NoSchedule]\n"
        f"[bootstrap-token] Using token: {token}\n"
        "[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles\n"
        "[addons] Applied essential addon: CoreDNS\n[addons] Applied essential addon: kube-proxy\n")  # fmt: skip
    shown = "<value withheld>" if is_true(fl, "skip-token-print") else token
    join = f"kubeadm join {endpoint} --token {shown} \\\n\t--discovery-token-ca-cert-hash {pki.ca_hash(ca_crt)}"
    out("Your Kubernetes control-plane has initialized successfully!\n\n"
        "To start using your cluster, you need to run the following as a regular user:\n\n"
        "  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n"
        "  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n\n"
        "Alternatively, if you are the root user, you can run:\n\n  export KUBECONFIG=/etc/kubernetes/admin.conf\n\n"
        "You should now deploy a pod network to the cluster.\n"
        'Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:\n'
        "  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n")  # fmt: skip
    if cpe:
        cp_join = (
            join + " \\\n\t--control-plane" + (f" --certificate-key {cert_key}" if cert_key else "")
        )
        out(
            f"You can now join any number of control-plane nodes running the following command on each as root:\n\n  {cp_join}\n"
        )
    out(
        f"Then you can join any number of worker nodes by running the following on each as root:\n\n{join} "
    )
    return 0


def _write_kubelet_files(kubeletc: dict, cri: str, pause: str, nodereg: dict) -> None:
    cfg = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", "cgroupDriver": "systemd",
           "clusterDNS": ["10.96.0.10"], "clusterDomain": "cluster.local", "staticPodPath": "/etc/kubernetes/manifests",
           "rotateCertificates": True, "authentication": {"x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"}}}  # fmt: skip
    cfg.update({k: v for k, v in kubeletc.items() if k != "apiVersion"})
    Path("/var/lib/kubelet").mkdir(parents=True, exist_ok=True)
    Path("/var/lib/kubelet/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    extra = kubeadm_config.args_dict(nodereg.get("kubeletExtraArgs"))
    flags = [
        f"--container-runtime-endpoint={cri}",
        f"--pod-infra-container-image=registry.k8s.io/pause:{pause}",
    ]
    flags += [f"--{k}={v}" for k, v in extra.items()]
    Path("/var/lib/kubelet/kubeadm-flags.env").write_text(
        f'KUBELET_KUBEADM_ARGS="{" ".join(flags)}"\n'
    )


def _restart_kubelet() -> str:
    if not system.unit_file("kubelet.service"):
        return "inactive"
    system.stop_unit("kubelet.service")
    with contextlib.suppress(system.UnitFailed):
        system.start_unit("kubelet.service")
    return system.unit_state("kubelet.service")["active"]


def _kubelet_unhealthy(kv: str) -> None:
    call = ("The HTTP call equal to 'curl -sSL http://127.0.0.1:10248/healthz' failed with error: Get "
            '"http://127.0.0.1:10248/healthz": dial tcp 127.0.0.1:10248: connect: connection refused.')  # fmt: skip
    if kminor(kv) >= 31:
        raise _phase_error(
            "wait-control-plane", f"failed while waiting for the kubelet to start: {call}"
        )
    raise Fail(f"[kubelet-check] The kubelet is not healthy after 4m0s\n\nUnfortunately, an error has occurred:\n\t{call}\n\n"
               "This error is likely caused by:\n\t- The kubelet is not running\n\t- The kubelet is unhealthy due to a "
               "misconfiguration of the node in some way (required cgroups disabled)\n\n"
               "If you are on a systemd-powered system, you can try to troubleshoot the error with the following commands:\n"
               "\t- 'systemctl status kubelet'\n\t- 'journalctl -xeu kubelet'\n\n"
               "error execution phase wait-control-plane: couldn't initialize a Kubernetes cluster\n"
               "To see the stack trace of this error execute with --v=5 or higher")  # fmt: skip


# --- join ----------------------------------------------------------------------


def cmd_join(kv: str, args: list[str], call: Call) -> int:
    fl, pos = parse_flags(args, JOIN_FLAGS)
    cfg: dict = {}
    if flag(fl, "config"):
        mixed = sorted(k for k in fl if k not in MIX_WITH_CONFIG)
        if mixed or pos:
            raise Fail(f"can not mix '--config' with arguments [{' '.join(mixed + pos)}]")
        cfg = kubeadm_config.load(flag(fl, "config"), kminor(kv))
        if "JoinConfiguration" not in cfg:
            raise Fail("no JoinConfiguration kind was found in the YAML file")
    joinc = cfg.get("JoinConfiguration", {})
    nodereg = joinc.get("nodeRegistration", {})
    bt = joinc.get("discovery", {}).get("bootstrapToken", {})
    endpoint = pos[0] if pos else bt.get("apiServerEndpoint")
    token = flag(fl, "discovery-token") or flag(fl, "token") or bt.get("token")
    tls_token = (
        flag(fl, "tls-bootstrap-token")
        or flag(fl, "token")
        or joinc.get("discovery", {}).get("tlsBootstrapToken")
        or token
    )
    hashes = fl.get("discovery-token-ca-cert-hash", []) or bt.get("caCertHashes") or []
    unsafe = is_true(fl, "discovery-token-unsafe-skip-ca-verification") or bt.get(
        "unsafeSkipCAVerification", False
    )
    if not endpoint:
        raise Fail("discovery.bootstrapToken.apiServerEndpoint: Invalid value: \"\": the apiServerEndpoint must be set"
                   if cfg else "[discovery.bootstrapToken.apiServerEndpoint: Invalid value: \"\": the apiServerEndpoint must be set]")  # fmt: skip
    if not token:
        raise Fail('[discovery.bootstrapToken.token: Invalid value: "": using token-based discovery without '
                   "caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or "
                   "pass --discovery-token-unsafe-skip-ca-verification flag to continue, discovery: Invalid value: \"\": "
                   "bootstrapToken or file must be set]")  # fmt: skip
    if not TOKEN_RE.match(token):
        raise Fail(
            f'[discovery.bootstrapToken.token: Invalid value: "{token}": the bootstrap token is invalid]'
        )
    if not hashes and not unsafe:
        raise Fail('[discovery.bootstrapToken.caCertHashes: Invalid value: "": using token-based discovery without '
                   "caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or "
                   "pass --discovery-token-unsafe-skip-ca-verification flag to continue]")  # fmt: skip
    for h in hashes:
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", h):
            body = h.split(":", 1)[-1]
            raise Fail(f'invalid hash "{h}", expected a 32 byte SHA-256 hash, found {len(body) // 2} bytes'
                       if h.startswith("sha256:") else f'unknown hash format "{h}" (expected "sha256:<hex>")')  # fmt: skip
    cri = flag(fl, "cri-socket") or nodereg.get("criSocket")
    kubeadm_config.validate_cri_socket(cri)
    if cri and not cri.startswith("unix://"):
        cri = "unix://" + cri
    name = (flag(fl, "node-name") or nodereg.get("name") or core.hostname()).lower()
    ignore = {x.lower() for x in (flag(fl, "ignore-preflight-errors") or "").split(",") if x} | \
        {x.lower() for x in nodereg.get("ignorePreflightErrors") or []}  # fmt: skip
    control_plane = is_true(fl, "control-plane") or "controlPlane" in joinc
    cert_key = flag(fl, "certificate-key") or joinc.get("controlPlane", {}).get("certificateKey")
    cri = cri or detect_cri(kminor(kv))
    preflight(kv, f"v{kv}", cri, ignore, "join", [])
    out("[preflight] Reading configuration from the cluster...")
    ca_pem = _discover(endpoint, token, hashes, unsafe)
    client = Client(f"https://{endpoint}", ca_pem, token=tls_token)
    try:
        cluster = client.request("GET", "/gimme-testbed/cluster")
    except ApiError as e:
        raise _phase_error(
            "preflight", f"unable to fetch the kubeadm-config ConfigMap: {e.message}"
        ) from None
    cluster_minor = kminor(cluster["version"])
    if kminor(kv) > cluster_minor + 1:
        raise _phase_error("preflight", f"this version of kubeadm only supports deploying clusters with the control "
                           f"plane version >= 1.{kminor(kv) - 1}.0. Current version: {cluster['version']}")  # fmt: skip
    kubelet_v = core.tool_version("kubelet") or kv
    if kminor(kubelet_v) > cluster_minor and "kubeletversion" not in ignore and "all" not in ignore:
        raise Fail("error execution phase preflight: [preflight] Some fatal errors occurred:\n\t[ERROR KubeletVersion]: "
                   f'the kubelet version is higher than the control plane version. This is not a supported version skew '
                   f'and may lead to a malfunctional cluster. Kubelet version: "{kubelet_v}" Control plane version: '
                   f'"{cluster["version"].lstrip("v")}"')  # fmt: skip
    pause = catalog.IMAGES[cluster_minor][0]
    pki.write_private(PKI / "ca.crt", ca_pem, 0o644)
    _write_kubelet_files(cfg.get("KubeletConfiguration", {}), cri, pause, nodereg)
    out("[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"\n"
        "[kubelet-start] Writing kubelet environment file with flags to file \"/var/lib/kubelet/kubeadm-flags.env\"\n"
        "[kubelet-start] Starting the kubelet")  # fmt: skip
    if not system.unit_file("kubelet.service"):
        _kubelet_unhealthy(kv)
    core.save("kubeadm", {"role": "worker" if not control_plane else "control-plane-member", "endpoint": endpoint,
                          "node_name": name, "cri_socket": cri, "kubernetes_version": cluster["version"]})  # fmt: skip
    health = _restart_kubelet()
    if health != "active":
        core.save("kubeadm", {})
        _kubelet_unhealthy(kv)
    ip = flag(fl, "apiserver-advertise-address") or core.node_ip()
    try:
        resp = client.request("POST", "/gimme-testbed/join", {
            "name": name, "ip": ip, "kubelet_version": f"v{kubelet_v}", "control_plane": control_plane,
            "certificate_key": cert_key, "cri_socket": cri, "runtime": runtimes.node_runtime(cri),
            "os": core.os_release().get("PRETTY_NAME", "")})  # fmt: skip
    except ApiError as e:
        core.save("kubeadm", {})
        phase = "control-plane-prepare/download-certs" if control_plane else "kubelet-start"
        raise _phase_error(
            phase, f"error downloading certs: {e.message}" if control_plane else e.message
        ) from None
    pki.write_private("/etc/kubernetes/kubelet.conf",
                      pki.kubeconfig(f"https://{endpoint}", ca_pem, f"system:node:{name}", resp["cert"].encode(),
                                     resp["key"].encode(), cluster.get("cluster_name", "kubernetes")))  # fmt: skip
    out("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap\n\n"
        "This node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was received.\n"
        "* The Kubelet was informed of the new secure connection details.\n\n"
        "Run 'kubectl get nodes' on the control-plane to see this node join the cluster.\n")  # fmt: skip
    return 0


def _discover(endpoint: str, token: str, hashes: list[str], unsafe: bool) -> bytes:
    """Token discovery: fetch cluster-info insecurely, check the JWS and the CA pin."""
    tid, secret = token.split(".")
    insecure = Client(f"https://{endpoint}")
    deadline = time.time() + 30  # real kubeadm keeps trying for its 5 min discovery timeout
    while True:
        try:
            cm = insecure.request(
                "GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info", timeout=5
            )
            break
        except ApiError as e:
            if time.time() > deadline:
                msg = e.message.replace("The connection to the server ", "dial tcp ").split(
                    " was refused"
                )[0]
                raise _phase_error("preflight", f"couldn't validate the identity of the API Server: Get "
                                   f'"https://{endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s": '
                                   f"{msg}{': connect: connection refused' if 'refused' in e.message else ''}") from None  # fmt: skip
            time.sleep(0.2)
    data = cm.get("data", {})
    kubeconfig = data.get("kubeconfig", "")
    sig = data.get(f"jws-kubeconfig-{tid}")
    if not sig:
        raise _phase_error("preflight", f"couldn't validate the identity of the API Server: could not find a JWS "
                           f'signature in the cluster-info ConfigMap for token ID "{tid}"')  # fmt: skip
    if jws(kubeconfig, tid, secret) != sig:
        raise _phase_error("preflight", "couldn't validate the identity of the API Server: failed to verify JWS "
                           "signature of received cluster info object, can't trust this API Server")  # fmt: skip
    cfg = yaml.safe_load(kubeconfig)
    ca_pem = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"])
    actual = pki.ca_hash(ca_pem)
    if not unsafe and actual not in hashes:
        raise _phase_error("preflight", "couldn't validate the identity of the API Server: cluster CA found in "
                           f'cluster-info ConfigMap is invalid: none of the public keys "{actual}" are pinned')  # fmt: skip
    return ca_pem


# --- token / reset -------------------------------------------------------------


def _admin_client(fl: dict) -> Client:
    path = flag(fl, "kubeconfig") or "/etc/kubernetes/admin.conf"
    if not os.path.exists(path):
        raise Fail(f'failed to load admin kubeconfig: open {path}: no such file or directory\nTo see the stack trace '
                   "of this error execute with --v=5 or higher")  # fmt: skip
    try:
        return Client.from_kubeconfig(path)
    except PermissionError:
        raise Fail(f"failed to load admin kubeconfig: open {path}: permission denied") from None


def cmd_token(kv: str, args: list[str], call: Call) -> int:
    fl, pos = parse_flags(args, {"print-join-command", "ttl", "description", "usages", "groups", "kubeconfig", "v",
                                 "certificate-key", "config", "dry-run"})  # fmt: skip
    sub = pos[0] if pos else ""
    if sub == "generate":
        out(f"{secrets.token_hex(3)}.{secrets.token_hex(8)}")
        return 0
    if sub == "create":
        token = pos[1] if len(pos) > 1 else f"{secrets.token_hex(3)}.{secrets.token_hex(8)}"
        if not TOKEN_RE.match(token):
            raise Fail(
                f'token "{token}" was not of form "\\\\A([a-z0-9]{{6}})\\\\.([a-z0-9]{{16}})\\\\z"'
            )
        ttl = _duration(flag(fl, "ttl") or "24h")
        client = _admin_client(fl)
        tid, secret = token.split(".")
        try:
            client.request("POST", "/gimme-testbed/tokens", {"id": tid, "token": {
                "secret": secret, "expires": time.time() + ttl if ttl else None, "description": flag(fl, "description") or "",
                "usages": (flag(fl, "usages") or "signing,authentication").split(","),
                "groups": (flag(fl, "groups") or "system:bootstrappers:kubeadm:default-node-token").split(",")}})  # fmt: skip
        except ApiError as e:
            raise Fail(
                f"failed to create or update bootstrap token with name bootstrap-token-{tid}: {e.message}"
            ) from None
        if is_true(fl, "print-join-command"):
            cfg = yaml.safe_load(
                Path(flag(fl, "kubeconfig") or "/etc/kubernetes/admin.conf").read_text()
            )
            cluster = cfg["clusters"][0]["cluster"]
            ca_pem = base64.b64decode(cluster["certificate-authority-data"])
            server = cluster["server"].removeprefix("https://")
            line = f"kubeadm join {server} --token {token} --discovery-token-ca-cert-hash {pki.ca_hash(ca_pem)} "
            if flag(fl, "certificate-key"):
                line += f"--control-plane --certificate-key {flag(fl, 'certificate-key')} "
            out(line)
        else:
            out(token)
        return 0
    if sub == "list":
        client = _admin_client(fl)
        toks = client.request("GET", "/gimme-testbed/tokens")
        out(
            "TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION                                                EXTRA GROUPS"
        )
        for tid, t in toks.items():
            left = int((t["expires"] - time.time()) / 3600) if t.get("expires") else None
            out(f"{tid}.{t['secret']}   {str(left) + 'h' if left is not None else '<forever>':<11} "
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t['expires'])) if t.get('expires') else '<never>':<22} "
                f"{','.join(t.get('usages', [])):<24} {t.get('description', '') or '<none>':<58} {','.join(t.get('groups', []))}")  # fmt: skip
        return 0
    raise Fail(f'unknown command "{sub}" for "kubeadm token"')


def _duration(text: str) -> float:
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(h|m|s|ms)", text):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    if not re.fullmatch(r"(\d+(\.\d+)?(h|m|s|ms))+", text):
        raise Fail(f'invalid argument "{text}" for "--ttl" flag: time: invalid duration "{text}"')
    return total


def cmd_reset(kv: str, args: list[str], call: Call) -> int:
    fl, pos = parse_flags(args, {"force", "f", "cri-socket", "ignore-preflight-errors", "cleanup-tmp-dir",
                                 "skip-phases", "kubeconfig", "v", "dry-run", "config", "cert-dir"})  # fmt: skip
    force = is_true(fl, "force") or "f" in fl
    if not core.is_root():
        raise Fail("error execution phase preflight: [preflight] Some fatal errors occurred:\n\t[ERROR IsPrivilegedUser]: "
                   "user is not running as root")  # fmt: skip
    if not force:
        sys.stdout.write("[reset] Are you sure you want to proceed? [y/N]: ")
        sys.stdout.flush()
        if (sys.stdin.readline().strip().lower() if sys.stdin else "") not in ("y", "yes"):
            raise _phase_error("preflight", "aborted reset operation")
    st = state()
    out("[preflight] Running pre-flight checks")
    if st.get("role") == "control-plane":
        stop_apiserver()
        out("[reset] Deleted contents of the etcd data directory: /var/lib/etcd")
    system.stop_unit("kubelet.service")
    out(
        '[reset] Stopping the kubelet service\n[reset] Unmounting mounted directories in "/var/lib/kubelet"'
    )
    for p in (
        "/etc/kubernetes/manifests",
        "/etc/kubernetes/pki",
        "/var/lib/kubelet",
        "/var/lib/etcd",
    ):
        shutil.rmtree(p, ignore_errors=True)
    for p in ("admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf", "controller-manager.conf",
              "scheduler.conf"):  # fmt: skip
        Path("/etc/kubernetes", p).unlink(missing_ok=True)
    Path("/var/lib/kubelet").mkdir(parents=True, exist_ok=True)
    Path("/etc/kubernetes/manifests").mkdir(parents=True, exist_ok=True)
    core.save("kubeadm", {})
    out("[reset] Deleting files: [/etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf ...]\n\n"
        "The reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d\n\n"
        "The reset process does not reset or clean up iptables rules or IPVS tables.\n"
        "The reset process does not clean your kubeconfig files and you must remove them manually.\n"
        "Please, check the contents of the $HOME/.kube/config file.")  # fmt: skip
    return 0
