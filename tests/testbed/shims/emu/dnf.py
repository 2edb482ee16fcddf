"""dnf / yum / rpm stand-ins: repos from /etc/yum.repos.d, excludes, GPG keys, config-manager."""

from __future__ import annotations

import configparser
import fnmatch
import glob
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

from . import catalog, content, core, fetch, packages
from .core import Call, Fail, out

FLAGS = {"-y", "--assumeyes", "-q", "--quiet", "--nogpgcheck", "--allowerasing", "--nobest", "--best",
         "--skip-broken", "--refresh", "-C", "--cacheonly", "--noautoremove", "--setopt", "--nodocs",
         "--assumeno", "-v", "--showduplicates", "--installed", "--available"}  # fmt: skip


def main(call: Call) -> int:
    if call.tool == "rpm":
        return rpm(call)
    return dnf(call)


def _dnf5() -> bool:
    os_id, version_id = core.os_id()
    return os_id == "fedora" and int(re.match(r"\d+", version_id).group()) >= 41


def releasever() -> str:
    return core.os_id()[1].split(".")[0]


def _expand(url: str) -> str:
    """Substitute dnf's $basearch/$releasever variables."""
    values = {"$basearch": "x86_64", "$releasever": releasever(), "$arch": "x86_64"}
    return re.sub(r"\$\w+", lambda m: values.get(m.group(), m.group()), url)


def _expand(url: str) -> str:
    """Substitute dnf's $basearch/$releasever variables."""
    values = {"$basearch": "x86_64", "$releasever": releasever(), "$arch": "x86_64"}
    return re.sub(r"\$\w+", lambda m: values.get(m.group(), m.group()), url)


def read_repos() -> list[dict]:
    repos = []
    for path in sorted(glob.glob("/etc/yum.repos.d/*.repo")):
        cp = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            cp.read(path)
        except configparser.Error as e:
            raise Fail(f"Error: Parsing file failed: {path}: {e}".replace("\n", " "), 1) from None
        for section in cp.sections():
            sec = cp[section]
            baseurl = [_expand(u) for u in sec.get("baseurl", "").split()]
            repos.append({
                "id": section, "file": path, "baseurl": baseurl[0] if baseurl else "",
                "mirror": sec.get("mirrorlist") or sec.get("metalink") or "",
                "enabled": sec.get("enabled", "1").strip() in ("1", "true", "True", "yes"),
                "gpgcheck": sec.get("gpgcheck", "1").strip() in ("1", "true", "True", "yes"),
                "gpgkey": sec.get("gpgkey", "").split(),
                "exclude": re.split(r"[\s,]+", (sec.get("exclude") or sec.get("excludepkgs") or "").strip()),
            })  # fmt: skip
    return repos


def load_repos(opts: dict) -> list[dict]:
    """Enabled repos with their packages; fails like dnf when a repo's metadata cannot be fetched."""
    result = []
    enable = opts.get("enablerepo", set())
    disable = opts.get("disablerepo", set())
    only = opts.get("repo")
    for r in read_repos():
        on = (r["enabled"] or any(fnmatch.fnmatch(r["id"], e) for e in enable)) and not any(
            fnmatch.fnmatch(r["id"], d) for d in disable
        )
        if only:
            on = r["id"] in only
        if not on:
            continue
        host = urlsplit(r["baseurl"] or r["mirror"]).hostname or ""
        if catalog.is_distro_host(host):
            os_id, version_id = core.os_id()
            first = not any(x["vendor"] == "distro" for x in result)
            distro = catalog.distro_packages(os_id, version_id, "rhel") if first else {}
            r["packages"] = {n: [v] for n, v in distro.items()}
            r["vendor"] = "distro"
            result.append(r)
            continue
        url = r["baseurl"].rstrip("/") + "/repodata/repomd.xml"
        if host not in fetch.KNOWN_HOSTS:
            raise Fail(f"Errors during downloading metadata for repository '{r['id']}':\n  - Curl error (6): Couldn't "
                       f"resolve host name for {url} [Could not resolve host: {host}]\nError: Failed to download "
                       f"metadata for repo '{r['id']}': Cannot download repomd.xml: Cannot download repodata/repomd.xml: "
                       "All mirrors were tried", 1)  # fmt: skip
        try:
            repo = catalog.find_repo(r["baseurl"], "", "rpm")
        except catalog.RepoMissing:
            raise Fail(f"Errors during downloading metadata for repository '{r['id']}':\n  - Status code: 404 for "
                       f"{url} (IP: 127.0.0.1)\nError: Failed to download metadata for repo '{r['id']}': Cannot "
                       "download repomd.xml: Cannot download repodata/repomd.xml: All mirrors were tried", 1) from None  # fmt: skip
        r["packages"], r["vendor"] = repo.packages, repo.vendor
        result.append(r)
    return result


def parse(args: list[str]) -> tuple[dict, list[str]]:
    opts: dict = {
        "flags": set(),
        "enablerepo": set(),
        "disablerepo": set(),
        "disable_excludes": set(),
    }
    pos = []
    for a in args:
        name, eq, value = a.partition("=")
        if name in ("--enablerepo", "--disablerepo"):
            opts[name[2:]] |= set(value.split(","))
        elif name in ("--repo", "--repoid"):
            opts["repo"] = set(value.split(","))
        elif name == "--disableexcludes":
            opts["disable_excludes"] |= set(value.split(","))
        elif name == "--setopt":
            key, _, val = value.partition("=")
            if key == "disable_excludes" or key.endswith(".disable_excludes"):
                opts["disable_excludes"] |= set(val.split(","))
            elif key.endswith(".exclude") or key == "exclude":
                opts.setdefault("exclude_override", {})[
                    key.rsplit(".", 1)[0] if "." in key else "*"
                ] = val
        elif a.startswith("-") and name not in FLAGS and not re.fullmatch(r"-[yqC]+", a):
            raise Fail(
                f"usage: dnf [options] COMMAND\n\ndnf: error: unrecognized arguments: {a}",
                1 if not _dnf5() else 2,
            )
        elif a.startswith("-"):
            opts["flags"] |= {a} if name in FLAGS else {f"-{c}" for c in a[1:]}
        else:
            pos.append(a)
    return opts, pos


def dnf(call: Call) -> int:
    if "config-manager" in call.args:
        return config_manager(call, call.args[call.args.index("config-manager") + 1 :])
    opts, pos = parse(call.args)
    if not pos:
        raise Fail(
            "usage: dnf [options] COMMAND\n\nList of Main Commands:\n\ninstall   install a package or packages on your system",
            1,
        )
    cmd, rest = pos[0], pos[1:]
    quiet = bool(opts["flags"] & {"-q", "--quiet"})
    if cmd == "config-manager":
        return config_manager(call, rest)
    if cmd == "versionlock":
        if not packages.is_installed("python3-dnf-plugin-versionlock"):
            raise Fail("No such command: versionlock. Please use /usr/bin/dnf --help\nIt could be a DNF plugin command, "
                       "try: \"dnf install 'dnf-command(versionlock)'\"", 1)  # fmt: skip
        with core.edit("packages", {"installed": {}}) as st:
            for n in rest[1:]:
                if n in st["installed"]:
                    st["installed"][n]["held"] = rest[0] in ("add", "lock")
                    out(f"Adding versionlock on: {n}-0:{st['installed'][n]['version']}.*")
        return 0
    if cmd in ("install", "in", "reinstall", "remove", "erase", "rm", "makecache", "update", "upgrade", "check-update",
               "clean", "module") and cmd not in ("clean", "check-update") and not core.is_root():  # fmt: skip
        raise Fail(
            "Error: This command has to be run with superuser privileges (under the root user on most systems).",
            1,
        )
    if cmd in ("install", "in", "reinstall"):
        return install(rest, opts, quiet)
    if cmd in ("remove", "erase", "rm"):
        for n in rest:
            packages.remove_package(n)
        out("Complete!")
        return 0
    if cmd == "makecache":
        load_repos(opts)
        quiet or out("Metadata cache created.")
        return 0
    if cmd in ("update", "upgrade", "check-update", "clean", "module", "distro-sync"):
        if cmd in ("update", "upgrade"):
            load_repos(opts)
            quiet or out("Dependencies resolved.\nNothing to do.\nComplete!")
        return 0
    if cmd == "repolist":
        repos = read_repos()
        out("repo id                                    repo name")
        for r in repos:
            if r["enabled"] or rest[:1] == ["all"]:
                out(f"{r['id']:<42} {r['id']}")
        return 0
    if cmd in ("list", "info"):
        installed = packages.installed()
        avail = _available(load_repos(opts), opts)
        names = [n for n in rest if n not in ("installed", "available", "--showduplicates")]
        code = 1 if names else 0
        for n in sorted(set(avail) | set(installed)):
            if names and not any(fnmatch.fnmatch(n, p) for p in names):
                continue
            code = 0
            if n in installed and "available" not in rest:
                out(f"{n + '.x86_64':<40} {installed[n]['version']:<30} @{installed[n]['from']}")
            if n in avail and "installed" not in rest:
                for v, repo in avail[n]:
                    out(f"{n + '.x86_64':<40} {v:<30} {repo}")
        if code:
            core.err("Error: No matching Packages to list")
        return code
    raise Fail(f"No such command: {cmd}. Please use /usr/bin/dnf --help", 1)


def _available(repos: list[dict], opts: dict) -> dict[str, list[tuple[str, str]]]:
    result: dict[str, list[tuple[str, str]]] = {}
    for r in repos:
        excludes = [e for e in r["exclude"] if e]
        override = opts.get("exclude_override", {})
        if r["id"] in override or "*" in override:
            excludes = override.get(r["id"], override.get("*", "")).split()
        if r["id"] in opts["disable_excludes"] or "all" in opts["disable_excludes"]:
            excludes = []
        for name, versions in r["packages"].items():
            if any(fnmatch.fnmatch(name, e) for e in excludes):
                result.setdefault(name, [])
                continue
            result.setdefault(name, []).extend((v, r["id"]) for v in versions)
    return result


def _match(spec: str, avail: dict) -> tuple[str, list[tuple[str, str]]] | None:
    if spec not in avail and catalog.RPM_PROVIDES.get(spec) in avail:
        spec = catalog.RPM_PROVIDES[spec]
    for name in sorted(avail, key=len, reverse=True):
        if spec == name or fnmatch.fnmatch(name, spec):
            return name, avail[name]
        if spec.startswith(name + "-"):
            want = spec[len(name) + 1 :].removesuffix(".x86_64")
            cands = [(v, r) for v, r in avail[name]
                     if (bare := v.split(":", 1)[-1]) == want or bare.startswith(want + "-")
                     or bare.startswith(want + ".") or fnmatch.fnmatch(bare, want)]  # fmt: skip
            if cands:
                return name, cands
    return None


def install(specs: list[str], opts: dict, quiet: bool) -> int:
    repos = load_repos(opts)
    by_id = {r["id"]: r for r in repos}
    avail = _available(repos, opts)
    inst = packages.installed()
    plan: dict[str, tuple[str, str]] = {}
    errors = []
    for spec in specs:
        if spec.endswith(".rpm"):
            found = packages.marker_package(spec) if "/" in spec or Path(spec).exists() else None
            if not found:
                errors.append(f"Can not load RPM file: {spec}.\nCould not open: {spec}")
                continue
            plan[found[0]] = (found[1], "@commandline")
            continue
        m = _match(spec, avail)
        if not m or not m[1]:
            if m and not m[1]:
                core.err(f"All matches were filtered out by exclude filtering for argument: {spec}")
            else:
                core.err(f"No match for argument: {spec}")
            errors.append(spec)
            continue
        name, cands = m
        version, repo = max(cands, key=lambda c: packages.version_key(c[0]))
        if name in inst and inst[name]["version"] == version:
            quiet or out(f"Package {name}-{version}.x86_64 is already installed.")
            continue
        if name in inst and inst[name].get("held"):
            errors.append(spec)
            core.err(f"Package {name} is version-locked")
            continue
        plan[name] = (version, repo)
    if errors:
        raise Fail(f"Error: Unable to find a match: {' '.join(e for e in errors if not e.startswith('Can not'))}"
                   if any(not e.startswith("Can not") for e in errors) else errors[0], 1)  # fmt: skip
    todo = list(plan)
    while todo:
        n = todo.pop(0)
        for dep in catalog.depends(n, "rhel"):
            if dep in plan or dep in inst:
                continue
            m = _match(dep, avail)
            if not m or not m[1]:
                raise Fail(f"Error: \n Problem: conflicting requests\n  - nothing provides {dep} needed by "
                           f"{n}-{plan[n][0]}.x86_64", 1)  # fmt: skip
            plan[dep] = max(m[1], key=lambda c: packages.version_key(c[0]))
            todo.append(dep)
    if not plan:
        quiet or out("Dependencies resolved.\nNothing to do.\nComplete!")
        return 0
    conflicts = sorted(
        {c for n in plan for c in packages.CONFLICTS.get(n, []) if c in inst and c not in plan}
    )
    if conflicts and "--allowerasing" not in opts["flags"]:
        n = next(n for n in plan if set(packages.CONFLICTS.get(n, [])) & set(conflicts))
        raise Fail(f"Error: \n Problem: problem with installed package {conflicts[0]}-{inst[conflicts[0]]['version']}.x86_64\n"
                   f"  - package {n}-{plan[n][0]}.x86_64 conflicts with {conflicts[0]} provided by "
                   f"{conflicts[0]}-{inst[conflicts[0]]['version']}.x86_64\n(try to add '--allowerasing' to command line "
                   "to replace conflicting packages or '--skip-broken' to skip uninstallable packages)", 1)  # fmt: skip
    quiet or out("Dependencies resolved.\n" + "=" * 80 + "\n Package                 Arch     Version                  Repository\n"
                 + "=" * 80 + "\nInstalling:")  # fmt: skip
    for n, (v, repo) in plan.items():
        quiet or out(f" {n:<23} x86_64   {v:<24} {repo}")
    quiet or out(f"\nTransaction Summary\n{'=' * 80}\nInstall  {len(plan)} Packages\n")
    if not opts["flags"] & {"-y", "--assumeyes"}:
        sys.stdout.write("Is this ok [y/N]: ")
        if (sys.stdin.readline().strip().lower() if sys.stdin else "") not in ("y", "yes"):
            raise Fail("Operation aborted.", 1)
    if "--nogpgcheck" not in opts["flags"]:
        _import_keys({plan[n][1] for n in plan}, by_id, quiet)
    for n in conflicts:
        packages.remove_package(n)
    for n, (v, repo) in plan.items():
        quiet or out(f"  Installing       : {n}-{v}.x86_64")
        packages.install_package(n, v, repo)
    quiet or out(
        "\nInstalled:\n  "
        + "  ".join(f"{n}-{v}.x86_64" for n, (v, _) in plan.items())
        + "\n\nComplete!"
    )
    return 0


def _import_keys(repo_ids: set[str], by_id: dict, quiet: bool) -> None:
    keys = core.load("packages", {"installed": {}}).get("rpm_keys", [])
    for rid in sorted(repo_ids):
        r = by_id.get(rid)
        if not r or r["vendor"] == "distro" or not r["gpgcheck"]:
            continue
        want = catalog.KEY_IDS[r["vendor"]]
        if want in keys:
            continue
        got: set[str] = set()
        for url in r["gpgkey"]:
            try:
                if url.startswith("file://"):
                    data = Path(url[7:]).read_bytes()
                else:
                    resp = fetch.get(url)
                    if resp.status != 200:
                        raise Fail(f"Curl error (22): HTTP response code said error for {url} [The requested URL "
                                   f"returned error: {resp.status}]\nError: GPG key retrieval failed: Curl error (22)", 1)  # fmt: skip
                    data = resp.body
            except fetch.UnknownHost as e:
                raise Fail(f"Curl error (6): Couldn't resolve host name for {url} [Could not resolve host: {e}]\n"
                           "Error: GPG key retrieval failed: Curl error (6): Couldn't resolve host name", 1) from None  # fmt: skip
            except OSError:
                raise Fail(
                    f"Curl error (37): Couldn't read a file:// file for {url}\nError: GPG key retrieval failed",
                    1,
                ) from None
            got |= content.key_ids(data)
            quiet or out(f"Importing GPG key 0x{sorted(content.key_ids(data) or {'00000000'})[0][-8:]}:\n From       : {url}\n"
                         "Key imported successfully")  # fmt: skip
        if want not in got:
            raise Fail(f'The GPG keys listed for the "{rid}" repository are already installed but they are not correct '
                       "for this package.\nCheck that the correct key URLs are configured for this repository.. Failing "
                       "package is: (from repo)\nError: GPG check FAILED", 1)  # fmt: skip
        keys.append(want)
    with core.edit("packages", {"installed": {}}) as st:
        st["rpm_keys"] = sorted(set(st.get("rpm_keys", [])) | set(keys))


def config_manager(call: Call, args: list[str]) -> int:
    if not _dnf5() and not packages.is_installed("dnf-plugins-core"):
        raise Fail("No such command: config-manager. Please use /usr/bin/dnf --help", 1)
    if not core.is_root():
        raise Fail(
            "Error: This command has to be run with superuser privileges (under the root user on most systems).",
            1,
        )
    url = None
    if _dnf5():
        if args[:1] == ["addrepo"]:
            url = next((a.split("=", 1)[1] for a in args if a.startswith("--from-repofile=")), None)
            if url is None and "--from-repofile" in args:
                url = args[args.index("--from-repofile") + 1]
        elif args[:1] == ["setopt"]:
            return _setopt(args[1:])
        elif any(a.startswith("--add-repo") for a in args):
            raise Fail('Unknown argument "--add-repo" for command "config-manager". Add "--help" for more information '
                       "about the arguments.", 2)  # fmt: skip
        if not url:
            raise Fail('Missing command. Add "--help" for more information about the arguments.', 2)
    else:
        for i, a in enumerate(args):
            if a.startswith("--add-repo"):
                url = a.split("=", 1)[1] if "=" in a else args[i + 1]
            elif a in ("--set-enabled", "--enable", "--set-disabled", "--disable"):
                return _enable_repos(args[i + 1 :], a in ("--set-enabled", "--enable"))
            elif a.startswith("--setopt"):
                return _setopt([a.split("=", 1)[1] if "=" in a else args[i + 1]])
        if not url:
            raise Fail(
                "Error: one of --add-repo, --save, --set-enabled, --set-disabled is required", 1
            )
    out(f"Adding repo from: {url}")
    try:
        resp = fetch.get(url)
    except fetch.UnknownHost as e:
        raise Fail(f"Curl error (6): Couldn't resolve host name for {url} [Could not resolve host: {e}]\nError: "
                   f"Configuration of repo failed", 1) from None  # fmt: skip
    if resp.status != 200:
        raise Fail(f"Curl error (22): HTTP response code said error for {url} [The requested URL returned error: "
                   f"{resp.status}]\nError: Configuration of repo failed", 1)  # fmt: skip
    if url.endswith(".repo"):
        Path("/etc/yum.repos.d", url.rsplit("/", 1)[1]).write_bytes(resp.body)
    else:
        rid = re.sub(r"[^A-Za-z0-9]+", "_", url.split("://", 1)[-1]).strip("_")
        Path(f"/etc/yum.repos.d/{rid}.repo").write_text(f"[{rid}]\nname=created by dnf config-manager from {url}\n"
                                                        f"baseurl={url}\nenabled=1\n")  # fmt: skip
    return 0


def _enable_repos(names: list[str], enable: bool) -> int:
    for path in glob.glob("/etc/yum.repos.d/*.repo"):
        text = Path(path).read_text()
        for n in names:
            text = re.sub(
                rf"(\[{re.escape(n)}\][^\[]*?)^enabled\s*=\s*\S+",
                rf"\1enabled={1 if enable else 0}",
                text,
                flags=re.M | re.S,
            )
        Path(path).write_text(text)
    return 0


def _setopt(assignments: list[str]) -> int:
    for a in assignments:
        key, _, value = a.partition("=")
        rid, _, opt = key.rpartition(".")
        for path in glob.glob("/etc/yum.repos.d/*.repo"):
            text = Path(path).read_text()
            if f"[{rid}]" in text:
                text = re.sub(rf"(\[{re.escape(rid)}\]\n)", rf"\1{opt}={value}\n", text)
                Path(path).write_text(text)
    return 0


def rpm(call: Call) -> int:
    args = call.args
    inst = packages.installed()
    if not args:
        raise Fail("rpm: no arguments given", 1)
    if args[0] == "--import":
        if not core.is_root():
            raise Fail(
                "error: can't create transaction lock on /var/lib/rpm/.rpm.lock (Permission denied)",
                1,
            )
        for src in args[1:]:
            try:
                data = (
                    fetch.get(src).body
                    if "://" in src and not src.startswith("file://")
                    else Path(src.removeprefix("file://")).read_bytes()
                )
            except (fetch.UnknownHost, OSError):
                raise Fail(f"error: {src}: import read failed(2).", 1) from None
            ids = content.key_ids(data)
            if not ids:
                raise Fail(f"error: {src}: key 1 not an armored public key.", 1)
            with core.edit("packages", {"installed": {}}) as st:
                st["rpm_keys"] = sorted(set(st.get("rpm_keys", [])) | ids)
        return 0
    if args[0] in ("-q", "--query") or args[0].startswith("-q"):
        if "a" in args[0] or "--all" in args:
            for n, i in sorted(inst.items()):
                out(f"{n}-{i['version'].split(':', 1)[-1]}.x86_64")
            return 0
        fmt = None
        names = []
        it = iter(args[1:])
        for a in it:
            if a in ("--qf", "--queryformat"):
                fmt = next(it, "")
            elif not a.startswith("-"):
                names.append(a)
        code = 0
        for n in names:
            if n not in inst:
                out(f"package {n} is not installed")
                code = 1
            elif fmt:
                v = inst[n]["version"].split(":", 1)[-1]
                sys.stdout.write(fmt.replace("%{VERSION}", v.split("-")[0]).replace("%{RELEASE}", v.partition("-")[2])
                                 .replace("%{NAME}", n).replace("\\n", "\n"))  # fmt: skip
            else:
                out(f"{n}-{inst[n]['version'].split(':', 1)[-1]}.x86_64")
        return code
    if args[0] in ("-i", "-ivh", "-Uvh", "-U", "--install", "-Fvh"):
        if not core.is_root():
            raise Fail(
                "error: can't create transaction lock on /var/lib/rpm/.rpm.lock (Permission denied)",
                1,
            )
        for path in args[1:]:
            found = packages.marker_package(path)
            if not found:
                raise Fail(f"error: open of {path} failed: No such file or directory", 1)
            packages.install_package(found[0], found[1], "@commandline")
        return 0
    if args[0] in ("-e", "--erase"):
        for n in args[1:]:
            if n not in inst:
                raise Fail(f"error: package {n} is not installed", 1)
            packages.remove_package(n)
        return 0
    raise Fail(f"rpm: {args[0]}: unknown option", 1)
