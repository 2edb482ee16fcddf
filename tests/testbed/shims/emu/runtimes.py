"""Container runtimes and node binaries: containerd/ctr, crictl, crio, docker, cri-dockerd, runc, kubelet."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml

from . import catalog, content, core, system
from .core import Call, Fail, out

DEFAULT_ENDPOINTS = ["unix:///run/containerd/containerd.sock", "unix:///run/crio/crio.sock",
                     "unix:///var/run/cri-dockerd.sock"]  # fmt: skip
SOCKET_UNITS = {
    "/run/containerd/containerd.sock": "containerd.service",
    "/run/crio/crio.sock": "crio.service",
    "/run/cri-dockerd.sock": "cri-docker.service",
    "/run/dockershim.sock": "docker.service",
}


def sock_path(endpoint: str) -> str:
    path = endpoint.removeprefix("unix://")
    return "/run/" + path[len("/var/run/") :] if path.startswith("/var/run/") else path


def cri_error(endpoint: str, kube_minor: int | None = None) -> str | None:
    """Why a CRI client cannot use `endpoint` (None when it can)."""
    path = sock_path(endpoint)
    unit = SOCKET_UNITS.get(path)
    unavailable = (
        f'validate service connection: validate CRI v1 runtime API for endpoint "{endpoint}": rpc error: '
        'code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix '
        f'{endpoint.removeprefix("unix://")}: connect: no such file or directory"'
    )
    unimplemented = (
        f'validate service connection: validate CRI v1 runtime API for endpoint "{endpoint}": rpc error: '
        "code = Unimplemented desc = unknown service runtime.v1.RuntimeService"
    )
    if path == "/run/dockershim.sock":
        return None if (kube_minor or 99) < 24 and system.is_active("docker") else unavailable
    if unit is None or not os.path.exists(path):
        return unavailable
    if unit == "cri-docker.service" and not system.is_active("docker"):
        return unavailable
    if unit == "containerd.service":
        loaded = system.unit_state(unit).get("loaded", {})
        if loaded.get("cri_disabled"):
            return unimplemented
        if (
            kube_minor
            and kube_minor >= 26
            and core.version_tuple(loaded.get("version", "1.7")) < (1, 6)
        ):
            return unimplemented
    return None


def runtime_info(endpoint: str) -> tuple[str, str]:
    """(RuntimeName, RuntimeVersion) behind `endpoint`."""
    unit = SOCKET_UNITS.get(sock_path(endpoint), "")
    loaded = system.unit_state(unit).get("loaded", {}) if unit else {}
    name = {"containerd.service": "containerd", "crio.service": "cri-o", "cri-docker.service": "docker",
            "docker.service": "docker"}.get(unit, "unknown")  # fmt: skip
    version = loaded.get("version") or ""
    if unit == "cri-docker.service":
        version = system.unit_state("docker.service").get("loaded", {}).get("version", "")
    return name, ("v" + version if name == "containerd" else version)


def node_runtime(endpoint: str) -> str:
    """A node's containerRuntimeVersion, e.g. containerd://1.7.12."""
    name, version = runtime_info(endpoint)
    return f"{name}://{version.lstrip('v')}"


def images() -> list[str]:
    return core.load("runtime", {"images": []})["images"]


def add_images(names: list[str]) -> None:
    with core.edit("runtime", {"images": []}) as st:
        for n in names:
            if n not in st["images"]:
                st["images"].append(n)


def main(call: Call) -> int:
    handler = {
        "containerd": containerd,
        "ctr": ctr,
        "crictl": crictl,
        "crio": crio,
        "docker": docker,
        "dockerd": simple_version,
        "cri-dockerd": simple_version,
        "runc": simple_version,
        "kubelet": kubelet,
        "containerd-shim-runc-v2": simple_version,
        "conmon": simple_version,
        "crun": simple_version,
        "cni-plugin": cni_plugin,
        "conntrack": simple_version,
    }[call.tool]
    return handler(call)


def _commit(call: Call) -> str:
    return hashlib.sha1(f"{call.tool}{call.version}".encode()).hexdigest()[:7]  # noqa: S324


def simple_version(call: Call) -> int:
    v = call.version or "0.0.0"
    if call.args and call.args[0] in ("--version", "-v", "version", "-V"):
        out({
            "dockerd": f"Docker version {v}, build {_commit(call)}",
            "cri-dockerd": f"cri-dockerd {v} ({_commit(call)})",
            "runc": f"runc version {v}\ncommit: v{v}-0-g{_commit(call)}\nspec: 1.2.0\ngo: go1.22.8\nlibseccomp: 2.5.5",
            "containerd-shim-runc-v2": f"containerd-shim-runc-v2:\n  Version:  v{v}",
            "conmon": f"conmon version {v}",
            "crun": f"crun version {v}\nspec: 1.0.0\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL",
            "conntrack": f"conntrack v{v} (conntrack-tools)",
        }[call.tool])  # fmt: skip
        return 0
    raise Fail(f"{call.tool}: this stand-in only runs under its systemd unit in the test bed", 1)


def containerd(call: Call) -> int:
    v = call.version or "1.7.0"
    args = call.args
    if args[:1] in (["--version"], ["-v"], ["-version"]):
        mod = (
            "github.com/containerd/containerd/v2"
            if v.startswith("2")
            else "github.com/containerd/containerd"
        )
        out(f"containerd {mod} v{v} {_commit(call)}")
        return 0
    if args[:2] in (["config", "default"], ["config", "dump"]):
        out(content.containerd_default_config(v, content.containerd_pause(v)).rstrip("\n"))
        return 0
    if args[:1] == ["config"]:
        raise Fail(f"containerd: No help topic for '{args[1] if len(args) > 1 else ''}'", 1)
    raise Fail("containerd: this stand-in only runs as containerd.service in the test bed", 1)


def _need_containerd(socket: str = "/run/containerd/containerd.sock") -> None:
    if not os.path.exists(socket):
        raise Fail(f'ctr: failed to dial "{socket}": connection error: desc = "transport: error while dialing: '
                   f'dial unix {socket}: connect: no such file or directory"', 1)  # fmt: skip


def ctr(call: Call) -> int:
    args = [a for a in call.args]
    while args and args[0] in ("-n", "--namespace", "-a", "--address"):
        args = args[2:]
    args = [a for a in args if not a.startswith("--namespace=") and a not in ("-q", "--quiet")]
    v = call.version or "1.7.0"
    if args[:1] in (["--version"], ["-v"]):
        out(f"ctr github.com/containerd/containerd v{v}")
        return 0
    _need_containerd()
    if not core.is_root():
        raise Fail('ctr: failed to dial "/run/containerd/containerd.sock": connection error: desc = "transport: '
                   'error while dialing: dial unix:///run/containerd/containerd.sock: connect: permission denied"', 1)  # fmt: skip
    if args[:1] == ["version"]:
        out(f"Client:\n  Version:  v{v}\n  Revision: {_commit(call)}\n  Go version: go1.22\n\n"
            f"Server:\n  Version:  v{v}\n  Revision: {_commit(call)}\n  UUID: 00000000-0000-0000-0000-000000000000")  # fmt: skip
        return 0
    if args[:1] in (["images"], ["image"], ["i"]):
        sub = args[1] if len(args) > 1 else "ls"
        if sub in ("ls", "list"):
            out("REF TYPE DIGEST SIZE PLATFORMS LABELS")
            for img in images():
                out(
                    f"{img} application/vnd.oci.image.index.v1+json sha256:{hashlib.sha256(img.encode()).hexdigest()} 10.0 MiB linux/amd64 -"
                )
            return 0
        if sub in ("pull", "import"):
            add_images([a for a in args[2:] if not a.startswith("-")])
            return 0
        if sub in ("rm", "remove", "tag"):
            return 0
    if args[:1] in (["plugins"], ["plugin"]):
        loaded = system.unit_state("containerd.service").get("loaded", {})
        out("TYPE                                   ID       PLATFORMS      STATUS")
        out(
            f"io.containerd.grpc.v1                  cri      linux/amd64    {'skip' if loaded.get('cri_disabled') else 'ok'}"
        )
        return 0
    if args[:1] in (["containers"], ["c"], ["tasks"], ["t"], ["namespaces"], ["ns"]):
        return 0
    raise Fail(f"ctr: No help topic for '{args[0] if args else ''}'", 1)


def _crictl_endpoint(args: list[str]) -> tuple[str | None, list[str]]:
    endpoint = None
    rest = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in (
            "-r",
            "--runtime-endpoint",
            "-i",
            "--image-endpoint",
            "--timeout",
            "-t",
            "--config",
            "-c",
        ):
            if a in ("-r", "--runtime-endpoint"):
                endpoint = args[i + 1]
            i += 2
            continue
        if a.startswith("--runtime-endpoint="):
            endpoint = a.split("=", 1)[1]
        elif a in ("--debug", "-D"):
            pass
        else:
            rest.append(a)
        i += 1
    if endpoint is None and os.path.exists("/etc/crictl.yaml"):
        try:
            cfg = yaml.safe_load(Path("/etc/crictl.yaml").read_text()) or {}
        except yaml.YAMLError as e:
            raise Fail(
                f'load config file: failed to unmarshal "/etc/crictl.yaml": {e}', 1
            ) from None
        endpoint = cfg.get("runtime-endpoint")
    return endpoint, rest


def crictl(call: Call) -> int:
    v = call.version or "1.30.0"
    endpoint, args = _crictl_endpoint(call.args)
    if args[:1] in (["--version"], ["-v"]):
        out(f"crictl version v{v}")
        return 0
    if not args:
        raise Fail("crictl: missing command", 1)
    if endpoint is None:
        core.err(f'WARN[0000] runtime connect using default endpoints: {DEFAULT_ENDPOINTS}. As the default '
                 "settings are now deprecated, you should set the endpoint instead.")  # fmt: skip
        endpoint = next(
            (e for e in DEFAULT_ENDPOINTS if cri_error(e) is None), DEFAULT_ENDPOINTS[0]
        )
    if not core.is_root():
        raise Fail(f'FATA[0000] validate service connection: validate CRI v1 runtime API for endpoint "{endpoint}": '
                   f'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
                   f'dial unix {endpoint.removeprefix("unix://")}: connect: permission denied"', 1)  # fmt: skip
    problem = cri_error(endpoint)
    if problem:
        raise Fail(f"FATA[0000] {problem}", 1)
    name, rversion = runtime_info(endpoint)
    cmd = args[0]
    if cmd == "version":
        out(
            f"Version:  0.1.0\nRuntimeName:  {name}\nRuntimeVersion:  {rversion}\nRuntimeApiVersion:  v1"
        )
    elif cmd == "info":
        loaded = system.unit_state(SOCKET_UNITS.get(sock_path(endpoint), "")).get("loaded", {})
        info = {"status": {"conditions": [{"type": "RuntimeReady", "status": True},
                                          {"type": "NetworkReady", "status": bool(os.listdir("/etc/cni/net.d")) if os.path.isdir("/etc/cni/net.d") else False}]},
                "config": {"containerd": {"runtimes": {"runc": {"options": {"SystemdCgroup": loaded.get("systemd_cgroup")}}}},
                           "sandboxImage": loaded.get("sandbox_image", "")}}  # fmt: skip
        out(json.dumps(info, indent=2))
    elif cmd in ("images", "img", "image"):
        out(f"{'IMAGE':<48}{'TAG':<16}{'IMAGE ID':<16}SIZE")
        for img in images():
            repo, _, tag = img.rpartition(":")
            out(f"{repo:<48}{tag:<16}{hashlib.sha256(img.encode()).hexdigest()[:13]:<16}10MB")
    elif cmd == "pull":
        names = [a for a in args[1:] if not a.startswith("-")]
        add_images(names)
        for n in names:
            out(f"Image is up to date for sha256:{hashlib.sha256(n.encode()).hexdigest()}")
    elif cmd in ("ps", "pods"):
        out("CONTAINER           IMAGE               CREATED             STATE               NAME" if cmd == "ps"
            else "POD ID              CREATED             STATE               NAME                NAMESPACE")  # fmt: skip
    elif cmd in ("rmi", "rm", "rmp", "stop", "stopp", "inspecti", "inspect", "logs", "stats"):
        pass
    else:
        raise Fail(f"crictl: No help topic for '{cmd}'", 1)
    return 0


def crio(call: Call) -> int:
    v = call.version or "1.30.0"
    args = call.args
    if args[:1] in (["--version"], ["-v"], ["version"]):
        out(
            f"crio version {v}"
            if args[0] != "version"
            else f"Version:        {v}\nGitCommit:      {_commit(call)}"
        )
        return 0
    if args[:1] == ["config"]:
        m = core.minor(v)
        out(
            content.crio_default_config(v, catalog.IMAGES.get(m, catalog.IMAGES[30])[0]).rstrip(
                "\n"
            )
        )
        return 0
    raise Fail("crio: this stand-in only runs as crio.service in the test bed", 1)


def docker(call: Call) -> int:
    v = call.version or "28.0.0"
    args = call.args
    if args[:1] in (["--version"], ["-v"]):
        out(f"Docker version {v}, build {_commit(call)}")
        return 0
    if not args:
        raise Fail("Usage:  docker [OPTIONS] COMMAND", 1)
    if not os.path.exists("/run/docker.sock"):
        raise Fail(
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
            1,
        )
    if not core.is_root():
        raise Fail("permission denied while trying to connect to the Docker daemon socket at "
                   "unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.47/info\": dial unix "
                   "/var/run/docker.sock: connect: permission denied", 1)  # fmt: skip
    loaded = system.unit_state("docker.service").get("loaded", {})
    driver = loaded.get("cgroup_driver", "systemd")
    cmd = args[0]
    if cmd == "version":
        out(f"Client: Docker Engine - Community\n Version:           {v}\n\nServer: Docker Engine - Community\n"
            f" Engine:\n  Version:          {loaded.get('version', v)}")  # fmt: skip
    elif cmd in ("info", "system"):
        fmt = next(
            (
                args[i + 1]
                for i, a in enumerate(args)
                if a in ("--format", "-f") and i + 1 < len(args)
            ),
            None,
        )
        fmt = fmt or next((a.split("=", 1)[1] for a in args if a.startswith("--format=")), None)
        if fmt:
            out(fmt.replace("{{.CgroupDriver}}", driver).replace("{{.ServerVersion}}", loaded.get("version", v))
                .replace("{{.CgroupVersion}}", "1" if core.cgroup_v1() else "2"))  # fmt: skip
        else:
            out(f"Server:\n Server Version: {loaded.get('version', v)}\n Storage Driver: overlay2\n"
                f" Cgroup Driver: {driver}\n Cgroup Version: {1 if core.cgroup_v1() else 2}")  # fmt: skip
    elif cmd == "pull":
        add_images([a for a in args[1:] if not a.startswith("-")])
    elif cmd in ("images", "ps", "run", "rm", "rmi", "load", "save", "tag", "logs", "stop", "exec", "network",
                 "volume", "container", "image", "compose", "buildx"):  # fmt: skip
        pass
    else:
        raise Fail(f"docker: '{cmd}' is not a docker command.\nSee 'docker --help'", 1)
    return 0


def kubelet(call: Call) -> int:
    v = call.version or "1.30.0"
    if call.args[:1] in (["--version"], ["version"]):
        out(f"Kubernetes v{v}")
        return 0
    raise Fail(
        'E0000 run.go:72] "command failed" err="failed to load kubelet config file, path: '
        '/var/lib/kubelet/config.yaml, error: open /var/lib/kubelet/config.yaml: no such file or directory"',
        1,
    )


def cni_plugin(call: Call) -> int:
    if os.environ.get("CNI_COMMAND") == "VERSION":
        out(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"],
                }
            )
        )
        return 0
    out(f"CNI plugin v{call.version or '1.4.0'}")
    return 0
