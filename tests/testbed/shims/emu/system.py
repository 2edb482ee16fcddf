"""systemd and kernel stand-ins: systemctl, modprobe/lsmod, sysctl, swap, SELinux, firewalld, names."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import socket
import time
import tomllib
from pathlib import Path

from . import core
from .core import Call, Fail, out

UNIT_DIRS = ["/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system"]  # fmt: skip
SOCKETS = {
    "containerd.service": "/run/containerd/containerd.sock",
    "crio.service": "/var/run/crio/crio.sock",
    "docker.service": "/var/run/docker.sock",
    "cri-docker.service": "/var/run/cri-dockerd.sock",
    "cri-docker.socket": "/var/run/cri-dockerd.sock",
    "docker.socket": "/var/run/docker.sock",
}
# binaries that exist only once installed: a unit whose ExecStart names a missing one fails
INSTALLED_BINARIES = {"containerd", "dockerd", "crio", "cri-dockerd", "kubelet"}

MODULE_DEPS = {
    "br_netfilter": ["bridge", "stp", "llc"],
    "ip_vs": ["nf_conntrack", "nf_defrag_ipv6", "nf_defrag_ipv4", "libcrc32c"],
    "ip_vs_rr": ["ip_vs"], "ip_vs_wrr": ["ip_vs"], "ip_vs_sh": ["ip_vs"],
    "nf_conntrack": ["nf_defrag_ipv6", "nf_defrag_ipv4", "libcrc32c"],
    "iptable_nat": ["ip_tables", "nf_nat"], "iptable_filter": ["ip_tables"], "iptable_mangle": ["ip_tables"],
    "xt_set": ["ip_set"], "vxlan": ["ip6_udp_tunnel", "udp_tunnel"], "nf_nat": ["nf_conntrack"],
}  # fmt: skip
KNOWN_MODULES = set(MODULE_DEPS) | {m for deps in MODULE_DEPS.values() for m in deps} | {
    "overlay", "ip6_tables", "ip6table_nat", "ip6table_filter", "xt_conntrack", "xt_comment", "xt_mark",
    "xt_multiport", "xt_REDIRECT", "xt_owner", "xt_statistic", "xt_socket", "xt_tproxy", "xt_MASQUERADE",
    "ipip", "geneve", "wireguard", "openvswitch", "veth", "sch_htb", "sch_ingress", "cls_bpf", "rbd",
    "ceph", "nbd", "dm_thin_pool", "dm_snapshot", "dm_mirror", "iscsi_tcp", "nf_tables", "nft_chain_nat",
    "ip_vs_lc", "ip_vs_wlc", "ip_vs_lblc", "ip_vs_lblcr", "ip_vs_dh", "ip_vs_sed", "ip_vs_nq", "ip_vs_mh",
    "ip_vs_fo", "ip_vs_ovf", "tun", "tap", "macvlan", "ipvlan", "8021q", "dummy", "vrf",
}  # fmt: skip
SYSCTL_DEFAULTS = {
    "net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "0", "net.ipv6.conf.default.forwarding": "0",
    "net.ipv4.conf.all.rp_filter": "2", "net.ipv4.conf.default.rp_filter": "2", "vm.swappiness": "60",
    "vm.overcommit_memory": "0", "vm.panic_on_oom": "0", "kernel.panic": "0", "kernel.panic_on_oops": "0",
    "fs.inotify.max_user_watches": "8192", "fs.inotify.max_user_instances": "128", "net.core.somaxconn": "4096",
    "kernel.pid_max": "4194304", "vm.max_map_count": "65530", "fs.file-max": "9223372036854775807",
}  # fmt: skip
SYSCTL_PREFIXES = ("net.ipv4.", "net.ipv6.", "net.core.", "vm.", "fs.", "kernel.", "net.unix.")
MODULE_SYSCTLS = {
    "br_netfilter": {"net.bridge.bridge-nf-call-iptables": "1", "net.bridge.bridge-nf-call-ip6tables": "1",
                     "net.bridge.bridge-nf-call-arptables": "1"},
    "nf_conntrack": {"net.netfilter.nf_conntrack_max": "262144"},
}  # fmt: skip


def main(call: Call) -> int:
    return {
        "systemctl": systemctl,
        "modprobe": modprobe,
        "lsmod": lsmod,
        "sysctl": sysctl,
        "swapoff": swapoff,
        "swapon": swapon,
        "setenforce": setenforce,
        "getenforce": getenforce,
        "firewall-cmd": firewall_cmd,
        "hostnamectl": hostnamectl,
        "hostname": hostname_cmd,
        "ip": ip_cmd,
        "update-crypto-policies": update_crypto_policies,
    }[call.tool](call)


def kernel() -> dict:
    return core.load("kernel")


# --- systemctl -------------------------------------------------------------


def unit_name(arg: str) -> str:
    suffixes = r"\.(service|socket|target|timer|mount|automount|path|swap|device|slice|scope)$"
    return arg if re.search(suffixes, arg) else arg + ".service"


def unit_file(name: str) -> Path | None:
    for d in UNIT_DIRS:
        p = Path(d) / name
        if p.is_file():
            return p
    return None


def unit_alias(name: str) -> str:
    """Resolve `Alias=` names (cri-o.service, sshd.service) to the unit that declares them."""
    if unit_file(name):
        return name
    for d in UNIT_DIRS:
        for p in glob.glob(f"{d}/*.service"):
            with contextlib.suppress(OSError):
                if re.search(rf"^Alias=.*\b{re.escape(name)}\b", Path(p).read_text(), re.M):
                    return os.path.basename(p)
    return name


def units() -> dict:
    return core.load("units", {"units": {}})["units"]


def unit_state(name: str) -> dict:
    return units().get(name, {"enabled": False, "active": "inactive", "masked": False})


def set_unit(name: str, **changes) -> None:
    with core.edit("units", {"units": {}}) as st:
        u = st["units"].setdefault(name, {"enabled": False, "active": "inactive", "masked": False})
        u.update(changes)


def is_active(name: str) -> bool:
    return unit_state(unit_name(name))["active"] == "active"


class UnitFailed(Exception):
    """The unit's start job failed (the daemon exited)."""


def start_unit(name: str) -> None:
    """Start `name`, applying what the daemon would do; raises UnitFailed."""
    path = unit_file(name)
    text = path.read_text() if path else ""
    m = re.search(r"^ExecStart=(?!$)-?@?(\S+)", text, re.M)
    if (
        m
        and os.path.basename(m.group(1)) in INSTALLED_BINARIES
        and not os.access(m.group(1), os.X_OK)
    ):
        set_unit(name, active="failed", result="exit-code", status="203/EXEC")
        raise UnitFailed
    try:
        loaded = DAEMONS.get(name, lambda: {})()
    except UnitFailed:
        set_unit(name, active="failed", result="exit-code")
        raise
    active = loaded.pop("_active", "active")
    set_unit(name, active=active, since=time.time(), loaded=loaded, result="success")
    if name in SOCKETS and active == "active":
        _bind_socket(Path(SOCKETS[name]))


def _bind_socket(path: Path) -> None:
    """Leave a real unix socket inode where the daemon would listen (`test -S` holds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))


def stop_unit(name: str) -> None:
    set_unit(name, active="inactive")
    if name == "firewalld.service":
        with core.edit("kernel") as k:
            k.setdefault("firewall", {"ports": [], "permanent_ports": []})["running"] = False
    if name in SOCKETS:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(SOCKETS[name])


def _start_containerd() -> dict:
    cfg_path = Path("/etc/containerd/config.toml")
    version = core.tool_version("containerd") or "1.7.0"
    cfg: dict = {}
    if cfg_path.exists():
        try:
            cfg = tomllib.loads(cfg_path.read_text())
        except tomllib.TOMLDecodeError as e:
            _journal(
                "containerd", f"containerd: failed to load TOML: /etc/containerd/config.toml: {e}"
            )
            raise UnitFailed from None
    cfg_version = cfg.get("version", 1)
    major = int(version.split(".")[0])
    if cfg_version > (3 if major >= 2 else 2):
        _journal("containerd", f"containerd: unsupported config version `{cfg_version}`")
        raise UnitFailed
    plugins = cfg.get("plugins", {})
    if cfg_version >= 3:
        runc = (
            plugins.get("io.containerd.cri.v1.runtime", {}).get("containerd", {}).get("runtimes", {})
            .get("runc", {}).get("options", {})
        )  # fmt: skip
        sandbox = (
            plugins.get("io.containerd.cri.v1.images", {}).get("pinned_images", {}).get("sandbox")
        )
    else:
        cri = plugins.get("io.containerd.grpc.v1.cri" if cfg_version == 2 else "cri", {})
        runc = cri.get("containerd", {}).get("runtimes", {}).get("runc", {}).get("options", {})
        sandbox = cri.get("sandbox_image")
    from .content import containerd_pause

    disabled = cfg.get("disabled_plugins", [])
    return {
        "version": version,
        "cri_disabled": any(p in ("cri", "io.containerd.grpc.v1.cri") for p in disabled),
        "systemd_cgroup": bool(runc.get("SystemdCgroup", major >= 2)),
        "sandbox_image": sandbox or f"registry.k8s.io/pause:{containerd_pause(version)}",
    }


def _start_docker() -> dict:
    if unit_file("containerd.service") and not is_active("containerd"):
        start_unit("containerd.service")
    daemon = Path("/etc/docker/daemon.json")
    opts = {}
    if daemon.exists():
        try:
            opts = json.loads(daemon.read_text() or "{}")
        except json.JSONDecodeError as e:
            _journal(
                "docker",
                f"unable to configure the Docker daemon with file /etc/docker/daemon.json: {e}",
            )
            raise UnitFailed from None
    driver = "systemd"
    for opt in opts.get("exec-opts", []):
        if opt.startswith("native.cgroupdriver="):
            driver = opt.split("=", 1)[1]
    return {"cgroup_driver": driver, "version": core.tool_version("dockerd") or ""}


def _start_cri_docker() -> dict:
    if not is_active("docker"):
        _journal("cri-docker", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock")
        raise UnitFailed
    return {"version": core.tool_version("cri-dockerd") or ""}


def _start_crio() -> dict:
    text = ""
    for p in ["/etc/crio/crio.conf", *sorted(glob.glob("/etc/crio/crio.conf.d/*.conf"))]:
        with contextlib.suppress(OSError):
            text += Path(p).read_text() + "\n"
    m = re.findall(r'^\s*cgroup_manager\s*=\s*"(\w+)"', text, re.M)
    return {"cgroup_manager": m[-1] if m else "systemd", "version": core.tool_version("crio") or ""}


def _start_kubelet() -> dict:
    from . import kubeadm

    return {"_active": kubeadm.kubelet_health()}


def _start_modules_load() -> dict:
    names = []
    for p in sorted(glob.glob("/etc/modules-load.d/*.conf")) + ["/etc/modules"]:
        with contextlib.suppress(OSError):
            names += [ln.split("#")[0].strip() for ln in Path(p).read_text().splitlines()]
    load_modules([n for n in names if n and n in KNOWN_MODULES])
    return {}


def _start_sysctl() -> dict:
    apply_sysctl_files(quiet=True)
    return {}


def _start_firewalld() -> dict:
    with core.edit("kernel") as k:
        fw = k.setdefault("firewall", {"ports": [], "permanent_ports": []})
        fw["running"] = True
        fw["ports"] = list(fw.get("permanent_ports", []))
    return {}


def _journal(unit: str, line: str) -> None:
    with contextlib.suppress(OSError), open(core.LOG_DIR / "journal.log", "a") as f:
        f.write(f"{time.strftime('%b %d %H:%M:%S')} {core.hostname()} {unit}: {line}\n")


DAEMONS = {
    "containerd.service": _start_containerd,
    "docker.service": _start_docker,
    "cri-docker.service": _start_cri_docker,
    "crio.service": _start_crio,
    "kubelet.service": _start_kubelet,
    "systemd-modules-load.service": _start_modules_load,
    "systemd-sysctl.service": _start_sysctl,
    "firewalld.service": _start_firewalld,
}

SYSTEMCTL_VERBS = {"daemon-reload", "enable", "disable", "start", "stop", "restart", "reload", "try-restart",
                   "reload-or-restart", "is-active", "is-enabled", "is-failed", "status", "mask", "unmask",
                   "reset-failed", "list-units", "list-unit-files", "show", "cat", "daemon-reexec"}  # fmt: skip
SYSTEMCTL_FLAGS = {"--now", "-q", "--quiet", "--no-pager", "--no-block", "-l", "--full", "--system",
                   "--no-ask-password", "--plain", "--no-legend", "-f", "--force", "--value"}  # fmt: skip


def systemctl(call: Call) -> int:
    args = [a for a in call.args if not a.startswith("-")]
    flags = {a for a in call.args if a.startswith("-")}
    for f in flags:
        if f not in SYSTEMCTL_FLAGS and not re.match(r"^(-p|--property|--type|-t|--state)(=|$)", f):
            raise Fail(f"systemctl: unrecognized option '{f}'")
    if not args:
        return _list_units()
    verb, names = args[0], [unit_name(a) for a in args[1:]]
    if verb not in SYSTEMCTL_VERBS:
        raise Fail(f"Unknown command verb {verb}.")
    quiet = bool(flags & {"-q", "--quiet"})
    mutating = verb in {"enable", "disable", "start", "stop", "restart", "reload", "mask", "unmask",
                        "daemon-reload", "try-restart", "reload-or-restart", "reset-failed", "daemon-reexec"}  # fmt: skip
    if mutating and not core.is_root():
        what = {
            "enable": "enable unit",
            "disable": "disable unit",
            "mask": "mask unit",
            "unmask": "unmask unit",
        }
        if verb in what:
            raise Fail(f"Failed to {what[verb]}: Access denied")
        if verb in ("daemon-reload", "daemon-reexec"):
            raise Fail(
                f"Failed to {verb.replace('daemon-', '')}: Interactive authentication required."
            )
        raise Fail(f"Failed to {verb} {names[0] if names else ''}: Interactive authentication required.\n"
                   f"See system logs and 'systemctl status {names[0] if names else ''}' for details.")  # fmt: skip
    if verb in ("daemon-reload", "daemon-reexec"):
        with core.edit("units", {"units": {}}) as st:
            st["daemon_reload"] = time.time()
        return 0
    if verb in ("reset-failed", "list-units", "list-unit-files"):
        return _list_units() if verb != "reset-failed" else 0
    if not names:
        raise Fail("Too few arguments.")
    names = [unit_alias(n) for n in names]
    if verb in ("enable", "disable"):
        return _enable(names, verb == "enable", "--now" in flags)
    if verb in ("mask", "unmask"):
        for n in names:
            set_unit(n, masked=verb == "mask")
            link = Path("/etc/systemd/system") / n
            if verb == "mask":
                link.unlink(missing_ok=True)
                link.symlink_to("/dev/null")
                core.err(f"Created symlink {link} \u2192 /dev/null.")
            elif link.is_symlink():
                link.unlink()
                core.err(f'Removed "{link}".')
        return 0
    if verb in ("start", "stop", "restart", "reload", "try-restart", "reload-or-restart"):
        return _jobs(verb, names)
    if verb == "is-active":
        states = [unit_state(n)["active"] for n in names]
        quiet or [out(st) for st in states]
        return 0 if all(st == "active" for st in states) else 3
    if verb == "is-failed":
        failed = [unit_state(n)["active"] == "failed" for n in names]
        quiet or [
            out("failed" if f else unit_state(n)["active"])
            for n, f in zip(names, failed, strict=True)
        ]
        return 0 if any(failed) else 1
    if verb == "is-enabled":
        code = 0
        for n in names:
            if not unit_file(n) and not unit_state(n)["masked"]:
                core.err(f"Failed to get unit file state for {n}: No such file or directory")
                code = 1
                continue
            st = unit_state(n)
            state = "masked" if st["masked"] else "enabled" if st["enabled"] else "disabled"
            quiet or out(state)
            code = code or (0 if state == "enabled" else 1)
        return code
    if verb == "status":
        return _status(names)
    if verb == "cat":
        for n in names:
            p = unit_file(n)
            if not p:
                raise Fail(f"No files found for {n}.")
            out(f"# {p}\n{p.read_text()}")
        return 0
    if verb == "show":
        for n in names:
            st = unit_state(n)
            out(
                f"Id={n}\nActiveState={st['active']}\nUnitFileState={'enabled' if st['enabled'] else 'disabled'}"
            )
        return 0
    return 0


def _enable(names: list[str], enable: bool, now: bool) -> int:
    for n in names:
        path = unit_file(n)
        if not path:
            raise Fail(
                f"Failed to {'enable' if enable else 'disable'} unit: Unit file {n} does not exist."
            )
        if unit_state(n)["masked"] and enable:
            raise Fail(f"Failed to enable unit: Unit file {path} is masked.")
        text = path.read_text()
        wanted = re.search(r"^WantedBy=(\S+)", text, re.M)
        link = (
            Path(f"/etc/systemd/system/{wanted.group(1) if wanted else 'multi-user.target'}.wants")
            / n
        )
        if enable and not unit_state(n)["enabled"]:
            if wanted:
                link.parent.mkdir(parents=True, exist_ok=True)
                link.unlink(missing_ok=True)
                link.symlink_to(path)
                core.err(f"Created symlink {link} \u2192 {path}.")
        elif not enable and unit_state(n)["enabled"]:
            link.unlink(missing_ok=True)
            core.err(f'Removed "{link}".')
        set_unit(n, enabled=enable)
    if now:
        return _jobs("start" if enable else "stop", names)
    return 0


def _jobs(verb: str, names: list[str]) -> int:
    for n in names:
        path = unit_file(n)
        if not path:
            raise Fail(f"Failed to {verb} {n}: Unit {n} not found.", 5)
        if unit_state(n)["masked"]:
            raise Fail(f"Failed to {verb} {n}: Unit {n} is masked.")
        if verb == "reload" and not re.search(r"^ExecReload=", path.read_text(), re.M):
            raise Fail(f"Failed to reload {n}: Job type reload is not applicable for unit {n}.")
        if verb == "try-restart" and unit_state(n)["active"] != "active":
            continue
        if verb in ("stop", "restart", "try-restart", "reload-or-restart"):
            stop_unit(n)
        if verb != "stop":
            try:
                start_unit(n)
            except UnitFailed:
                kind = "service" if n.endswith(".service") else n.rsplit(".", 1)[-1]
                raise Fail(
                    f"Job for {n} failed because the control process exited with error code.\n"
                    f'See "systemctl status {n}" and "journalctl -xe{"u " + n if kind == "service" else ""}" '
                    "for details."
                ) from None
    return 0


def _status(names: list[str]) -> int:
    code = 0
    for n in names:
        path = unit_file(n)
        if not path:
            core.err(f"Unit {n} could not be found.")
            code = 4
            continue
        st = unit_state(n)
        desc = re.search(r"^Description=(.*)$", path.read_text(), re.M)
        active = st["active"]
        detail = {"active": "(running)", "activating": "(auto-restart)", "failed": "(Result: exit-code)",
                  "inactive": "(dead)"}.get(active, "")  # fmt: skip
        since = time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(st.get("since", time.time())))
        out(f"\u25cf {n} - {desc.group(1) if desc else n}\n"
            f"     Loaded: loaded ({path}; {'enabled' if st['enabled'] else 'disabled'}; preset: enabled)\n"
            f"     Active: {active} {detail} since {since}")  # fmt: skip
        if active != "active":
            code = code or 3
    return code


def _list_units() -> int:
    for n, st in sorted(units().items()):
        out(f"{n:40} loaded {st['active']:10} {'running' if st['active'] == 'active' else 'dead'}")
    return 0


# --- kernel modules --------------------------------------------------------


def load_modules(names: list[str]) -> None:
    with core.edit("kernel") as k:
        loaded = k.setdefault("modules", [])
        sysctls = k.setdefault("sysctl", {})
        for name in names:
            for m in [*MODULE_DEPS.get(name, []), name]:
                if m not in loaded:
                    loaded.append(m)
                    for key, value in MODULE_SYSCTLS.get(m, {}).items():
                        sysctls.setdefault(key, value)


def modprobe(call: Call) -> int:
    args = list(call.args)
    remove = quiet = many = False
    names = []
    for a in args:
        if a in ("-r", "--remove"):
            remove = True
        elif a in ("-q", "--quiet"):
            quiet = True
        elif a in ("-a", "--all"):
            many = True
        elif a in ("-v", "--verbose", "-b", "--use-blacklist"):
            continue
        elif a.startswith("-"):
            raise Fail(f"modprobe: unrecognized option '{a}'", 1)
        else:
            names.append(a.replace("-", "_"))
    if not names:
        raise Fail("modprobe: ERROR: missing parameters. See -h.")
    if not (many or remove):
        names = names[:1]  # the rest are module parameters
    release = os.uname().release
    for n in names:
        if n not in KNOWN_MODULES:
            if quiet:
                return 1
            raise Fail(f"modprobe: FATAL: Module {n} not found in directory /lib/modules/{release}")
    if not core.is_root():
        raise Fail(f"modprobe: ERROR: could not insert '{names[0]}': Operation not permitted")
    if remove:
        with core.edit("kernel") as k:
            k["modules"] = [m for m in k.get("modules", []) if m not in names]
            for n in names:
                for key in MODULE_SYSCTLS.get(n, {}):
                    k.get("sysctl", {}).pop(key, None)
    else:
        load_modules(names)
    return 0


def lsmod(call: Call) -> int:
    if call.args:
        raise Fail("Usage: lsmod")
    mods = kernel().get("modules", [])
    out(f"{'Module':<28}{'Size':>8}  Used by")
    for m in reversed(mods):
        users = [u for u, deps in MODULE_DEPS.items() if m in deps and u in mods]
        out(
            f"{m:<28}{(len(m) * 4099) % 200000 + 16384:>8}  {len(users)} {','.join(users)}".rstrip()
        )
    return 0


# --- sysctl ----------------------------------------------------------------


def sysctl_known(key: str, k: dict) -> bool:
    return (
        key in k.get("sysctl", {})
        or key in SYSCTL_DEFAULTS
        or (key.startswith(SYSCTL_PREFIXES) and not key.startswith("net.bridge."))
    )


def sysctl_value(key: str, k: dict | None = None) -> str | None:
    k = k if k is not None else kernel()
    if not sysctl_known(key, k):
        return None
    return k.get("sysctl", {}).get(key, SYSCTL_DEFAULTS.get(key, "0"))


def _set_sysctl(pairs: list[tuple[str, str]], quiet: bool, ignore: bool) -> int:
    code = 0
    if not core.is_root():
        for key, _ in pairs:
            core.err(f'sysctl: permission denied on key "{key}"')
        return 255
    with core.edit("kernel") as k:
        table = k.setdefault("sysctl", {})
        for key, value in pairs:
            value = " ".join(value.split())
            if not sysctl_known(key, k):
                if not ignore:
                    core.err(
                        f"sysctl: cannot stat /proc/sys/{key.replace('.', '/')}: No such file or directory"
                    )
                    code = 255
                continue
            table[key] = value
            quiet or out(f"{key} = {value}")
    return code


def sysctl_files() -> list[str]:
    seen: dict[str, str] = {}
    for d in [
        "/etc/sysctl.d",
        "/run/sysctl.d",
        "/usr/local/lib/sysctl.d",
        "/usr/lib/sysctl.d",
        "/lib/sysctl.d",
    ]:
        for p in sorted(glob.glob(f"{d}/*.conf")):
            seen.setdefault(os.path.basename(p), p)
    files = [seen[n] for n in sorted(seen)]
    if os.path.isfile("/etc/sysctl.conf"):
        files.append("/etc/sysctl.conf")
    return files


def _parse_sysctl_file(path: str) -> list[tuple[str, str, bool]]:
    result = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        ignore = key.startswith("-")
        result.append((key.lstrip("-").replace("/", "."), value.strip(), ignore))
    return result


def apply_sysctl_files(files: list[str] | None = None, quiet: bool = False) -> int:
    code = 0
    for path in files if files is not None else sysctl_files():
        quiet or out(f"* Applying {path} ...")
        try:
            entries = _parse_sysctl_file(path)
        except OSError:
            core.err(f'sysctl: cannot open "{path}": No such file or directory')
            code = 255
            continue
        for key, value, ignore in entries:
            code = _set_sysctl([(key, value)], quiet, ignore) or code
    return code


def sysctl(call: Call) -> int:
    args = list(call.args)
    quiet = ignore = names_only = False
    write = False
    pairs, reads = [], []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-q", "--quiet"):
            quiet = True
        elif a in ("-e", "--ignore"):
            ignore = True
        elif a in ("-n", "--values"):
            names_only = True
        elif a in ("-w", "--write"):
            write = True
        elif a == "--system":
            return apply_sysctl_files(quiet=quiet)
        elif a in ("-p", "--load") or a.startswith("--load="):
            files = args[i + 1 :] if a != "--load=" and "=" not in a else [a.split("=", 1)[1]]
            files = [f for f in files if not f.startswith("-")] or ["/etc/sysctl.conf"]
            return apply_sysctl_files(files, quiet)
        elif a in ("-a", "--all", "-A", "-X"):
            k = kernel()
            table = {**SYSCTL_DEFAULTS, **k.get("sysctl", {})}
            for key in sorted(table):
                out(table[key] if names_only else f"{key} = {table[key]}")
            return 0
        elif a.startswith("-"):
            raise Fail(
                f"sysctl: invalid option -- '{a.lstrip('-')}'\nUsage:\n sysctl [options] [variable[=value] ...]",
                255,
            )
        elif "=" in a:
            key, value = a.split("=", 1)
            pairs.append((key.strip().replace("/", "."), value.strip()))
        else:
            if write:
                raise Fail(f'sysctl: "{a}" must be of the form name=value', 255)
            reads.append(a.replace("/", "."))
        i += 1
    code = _set_sysctl(pairs, quiet, ignore) if pairs else 0
    k = kernel()
    for key in reads:
        value = sysctl_value(key, k)
        if value is None:
            if not ignore:
                core.err(
                    f"sysctl: cannot stat /proc/sys/{key.replace('.', '/')}: No such file or directory"
                )
                code = 255
            continue
        out(value if names_only else f"{key} = {value}")
    return code


# --- swap ------------------------------------------------------------------


def fstab_swaps() -> list[str]:
    with contextlib.suppress(OSError):
        return [
            ln.split()[0]
            for ln in Path("/etc/fstab").read_text().splitlines()
            if ln.strip()
            and not ln.lstrip().startswith("#")
            and len(ln.split()) >= 3
            and ln.split()[2] == "swap"
        ]
    return []


def swap_active() -> list[str]:
    return kernel().get("swap", [])


def swapoff(call: Call) -> int:
    targets = [a for a in call.args if not a.startswith("-")]
    if not ({"-a", "--all"} & set(call.args)) and not targets:
        raise Fail("swapoff: bad usage\nTry 'swapoff --help' for more information.", 16)
    if not core.is_root():
        for dev in swap_active():
            core.err(f"swapoff: {dev}: swapoff failed: Operation not permitted")
        return 4 if swap_active() else 0
    with core.edit("kernel") as k:
        k["swap"] = [] if not targets else [d for d in k.get("swap", []) if d not in targets]
    return 0


def swapon(call: Call) -> int:
    args = set(call.args)
    if "--show" in args or "-s" in args or any(a.startswith("--show=") for a in args):
        active = swap_active()
        if active and "--noheadings" not in args:
            out("NAME      TYPE SIZE USED PRIO")
        for dev in active:
            out(f"{dev} file   2G   0B   -2")
        return 0
    if "-a" in args or "--all" in args:
        if not core.is_root():
            raise Fail("swapon: cannot open: Permission denied", 4)
        with core.edit("kernel") as k:
            k["swap"] = sorted(set(k.get("swap", [])) | set(fstab_swaps()))
        return 0
    raise Fail("swapon: bad usage\nTry 'swapon --help' for more information.", 16)


# --- SELinux, firewalld, crypto policies -----------------------------------


def getenforce(call: Call) -> int:
    out(kernel().get("selinux", "Disabled"))
    return 0


def setenforce(call: Call) -> int:
    if len(call.args) != 1 or call.args[0] not in (
        "0",
        "1",
        "Permissive",
        "Enforcing",
        "permissive",
        "enforcing",
    ):
        raise Fail("usage:  setenforce [ Enforcing | Permissive | 1 | 0 ]")
    if kernel().get("selinux", "Disabled") == "Disabled":
        raise Fail("setenforce: SELinux is disabled")
    if not core.is_root():
        raise Fail("setenforce: setenforce() failed")
    with core.edit("kernel") as k:
        k["selinux"] = "Enforcing" if call.args[0].lower() in ("1", "enforcing") else "Permissive"
    return 0


def firewall_cmd(call: Call) -> int:
    k = kernel()
    fw = k.get("firewall", {"running": False, "ports": [], "permanent_ports": []})
    args = call.args
    if "--state" in args:
        out("running" if fw["running"] else "not running")
        return 0 if fw["running"] else 252
    if not fw["running"]:
        raise Fail("FirewallD is not running", 252)
    if not core.is_root():
        raise Fail(
            "Authorization failed.\n    Make sure polkit agent is running or run the application as superuser.",
            11,
        )
    permanent = "--permanent" in args
    changed = False
    for a in args:
        if a in ("--permanent", "-q", "--quiet") or a.startswith("--zone="):
            continue
        if a == "--reload" or a == "--complete-reload":
            fw["ports"] = list(fw["permanent_ports"])
            changed = True
        elif a.startswith(("--add-port=", "--remove-port=")):
            port = a.split("=", 1)[1]
            if not re.fullmatch(r"\d+(-\d+)?/(tcp|udp|sctp|dccp)", port):
                raise Fail(f"Error: INVALID_PORT: {port}", 103)
            key = "permanent_ports" if permanent else "ports"
            if a.startswith("--add"):
                fw[key] = sorted(set(fw[key]) | {port})
            else:
                fw[key] = [p for p in fw[key] if p != port]
            changed = True
        elif a.startswith(("--add-service=", "--add-masquerade", "--add-source=", "--add-interface=",
                           "--add-rich-rule=", "--set-default-zone=", "--remove-service=", "--add-protocol=")):  # fmt: skip
            fw.setdefault("other", []).append(a + (" (permanent)" if permanent else ""))
            changed = True
        elif a == "--list-ports":
            out(" ".join(fw["permanent_ports" if permanent else "ports"]))
            return 0
        elif a in ("--list-all", "--get-default-zone"):
            out(
                "public"
                if a == "--get-default-zone"
                else f"public (active)\n  ports: {' '.join(fw['ports'])}"
            )
            return 0
        else:
            raise Fail(
                f"usage: see firewall-cmd man page\nfirewall-cmd: error: unrecognized arguments: {a}",
                2,
            )
    if changed:
        with core.edit("kernel") as kk:
            kk["firewall"] = fw
    out("success")
    return 0


def update_crypto_policies(call: Call) -> int:
    if "--show" in call.args:
        out(kernel().get("crypto_policy", "DEFAULT"))
        return 0
    if len(call.args) == 2 and call.args[0] == "--set":
        with core.edit("kernel") as k:
            k["crypto_policy"] = call.args[1]
        out(
            f"Setting system policy to {call.args[1]}\nNote: System-wide crypto policies are applied on application start-up.\nIt is recommended to restart the system for the change of policies\nto fully take place."
        )
        return 0
    raise Fail("usage: update-crypto-policies [--set POLICY | --show | --is-applied]", 1)


# --- host name and addresses -----------------------------------------------


def _set_hostname(name: str) -> None:
    Path("/etc/hostname").write_text(name + "\n")


def hostnamectl(call: Call) -> int:
    args = [
        a
        for a in call.args
        if not a.startswith("--") or a in ("--static", "--transient", "--pretty")
    ]
    args = [a for a in args if a not in ("--static", "--transient", "--pretty")]
    if not args or args[0] == "status":
        rel = core.os_release()
        out(f" Static hostname: {core.hostname()}\n       Icon name: computer-vm\n         Chassis: vm\n"
            f"Operating System: {rel.get('PRETTY_NAME', 'Linux')}\n          Kernel: Linux {os.uname().release}\n"
            f"    Architecture: x86-64")  # fmt: skip
        return 0
    if args[0] == "hostname" and len(args) == 1:
        out(core.hostname())
        return 0
    if args[0] in ("set-hostname", "hostname") and len(args) == 2:
        if not core.is_root():
            raise Fail("Could not set static hostname: Access denied")
        _set_hostname(args[1])
        return 0
    raise Fail(f"Unknown command verb '{args[0]}'.")


def hostname_cmd(call: Call) -> int:
    args = call.args
    if not args:
        out(core.hostname())
    elif args == ["-I"] or args == ["--all-ip-addresses"]:
        out(core.node_ip() + " ")
    elif args == ["-i"]:
        out(core.node_ip())
    elif args in (["-s"], ["--short"]):
        out(core.hostname().split(".")[0])
    elif args in (["-f"], ["--fqdn"], ["-A"]):
        out(core.hostname())
    elif len(args) == 1 and not args[0].startswith("-"):
        if not core.is_root():
            raise Fail("hostname: you must be root to change the host name")
        _set_hostname(args[0])
    else:
        raise Fail(
            f"hostname: invalid option -- '{args[0].lstrip('-')}'\nTry 'hostname --help' for more information.",
            64,
        )
    return 0


def ip_cmd(call: Call) -> int:
    """A small `ip`: addr, route, link for one interface eth0 carrying the node address."""
    args = [a for a in call.args if a not in ("-4", "-o", "-br", "-brief", "--brief", "-c", "-j")]
    oneline, brief = "-o" in call.args, bool({"-br", "-brief", "--brief"} & set(call.args))
    ip = core.node_ip()
    obj = args[0] if args else ""
    rest = args[1:]
    if obj in ("a", "addr", "address"):
        if (
            rest
            and rest[0] not in ("show", "list", "s")
            or (len(rest) >= 3 and rest[2] not in ("eth0", "lo"))
        ):
            raise Fail(
                f'Command "{rest[0] if rest else ""}" is unknown, try "ip address help".', 255
            )
        dev = rest[2] if len(rest) >= 3 else None
        for n, name, addr in ((1, "lo", "127.0.0.1/8"), (2, "eth0", f"{ip}/24")):
            if dev and dev != name:
                continue
            if brief:
                out(f"{name:<16} UP             {addr}")
            elif oneline:
                out(
                    f"{n}: {name}    inet {addr} scope {'host' if name == 'lo' else 'global'} {name}"
                )
            else:
                out(f"{n}: {name}: <UP,LOWER_UP> mtu 1500 state UP\n    inet {addr} scope "
                    f"{'host' if name == 'lo' else 'global'} {name}")  # fmt: skip
        return 0
    if obj in ("r", "route", "ro"):
        gw = ip.rsplit(".", 1)[0] + ".254"
        if rest[:1] == ["get"]:
            out(
                f"{rest[1] if len(rest) > 1 else ''} via {gw} dev eth0 src {ip} uid {os.getuid()}\n    cache"
            )
            return 0
        out(
            f"default via {gw} dev eth0 proto static\n{ip.rsplit('.', 1)[0]}.0/24 dev eth0 proto kernel scope link src {ip}"
        )
        return 0
    if obj in ("l", "link"):
        out(
            "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 state UNKNOWN\n2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP"
        )
        return 0
    raise Fail(f'Object "{obj}" is unknown, try "ip help".', 255)
