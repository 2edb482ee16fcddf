"""apt-get / apt / apt-cache / apt-mark / apt-key / add-apt-repository / dpkg stand-ins."""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from . import catalog, content, core, fetch, packages
from .core import Call, Fail, out

DIST_KEYRINGS = (
    "/usr/share/keyrings/ubuntu-archive-keyring.gpg",
    "/usr/share/keyrings/debian-archive-keyring.gpg",
)


def main(call: Call) -> int:
    tool = call.tool
    if tool in ("apt-get", "apt"):
        if tool == "apt":
            core.err(
                "\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n"
            )
        return apt_get(call)
    return {"apt-cache": apt_cache, "apt-mark": apt_mark, "apt-key": apt_key, "dpkg": dpkg,
            "dpkg-query": dpkg_query, "add-apt-repository": add_apt_repository}[tool](call)  # fmt: skip


# --- sources ---------------------------------------------------------------


def read_sources() -> list[dict]:
    """Every enabled `deb` source: uri, suite, components, options, file."""
    sources = []
    files = (["/etc/apt/sources.list"] if os.path.exists("/etc/apt/sources.list") else []) + sorted(
        glob.glob("/etc/apt/sources.list.d/*")
    )
    for path in files:
        if path.endswith(".sources"):
            sources += _deb822(path)
        elif path.endswith(".list"):
            for n, line in enumerate(Path(path).read_text().splitlines(), 1):
                line = line.split("#", 1)[0].strip()
                m = re.match(r"deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
                if m:
                    opts = dict(o.split("=", 1) for o in (m.group(1) or "").split() if "=" in o)
                    sources.append({"uri": m.group(2), "suite": m.group(3), "components": m.group(4).split(),
                                    "signed_by": opts.get("signed-by"), "trusted": opts.get("trusted") == "yes",
                                    "file": f"{path}:{n}"})  # fmt: skip
                elif line and not line.startswith("deb-src"):
                    raise Fail(f"E: Malformed entry {n} in list file {path} (Component)\n"
                               "E: The list of sources could not be read.", 100)  # fmt: skip
        elif os.path.isfile(path):
            core.err(f"N: Ignoring file '{os.path.basename(path)}' in directory '/etc/apt/sources.list.d/' "
                     "as it has an invalid filename extension")  # fmt: skip
    _check_conflicts(sources)
    return sources


def _deb822(path: str) -> list[dict]:
    result = []
    for stanza in re.split(r"\n\s*\n", Path(path).read_text()):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                result.append({"uri": uri, "suite": suite, "components": fields.get("components", "").split(),
                               "signed_by": fields.get("signed-by"), "trusted": fields.get("trusted") == "yes",
                               "file": path})  # fmt: skip
    return result


def _check_conflicts(sources: list[dict]) -> None:
    seen: dict[tuple, str | None] = {}
    for s in sources:
        key = (s["uri"].rstrip("/"), s["suite"])
        if key in seen and seen[key] != s["signed_by"]:
            raise Fail(f"E: Conflicting values set for option Signed-By regarding source {s['uri'].rstrip('/')}/ "
                       f"{s['suite']}: {seen[key]} != {s['signed_by']}\nE: The list of sources could not be read.",
                       100)  # fmt: skip
        seen[key] = s["signed_by"]


def _trusted_keys(source: dict) -> tuple[set[str], list[str]]:
    """Key ids apt would use for `source`, and warnings about ignored keyrings."""
    warnings = []
    signed = source["signed_by"]
    if signed and "BEGIN PGP PUBLIC KEY BLOCK" in signed:
        return content.key_ids(signed.encode()), warnings
    paths = (
        signed.split(",")
        if signed
        else ["/etc/apt/trusted.gpg", *glob.glob("/etc/apt/trusted.gpg.d/*")]
    )
    ids: set[str] = set()
    for p in paths:
        p = p.strip()
        if not os.path.isfile(p):
            continue
        data = Path(p).read_bytes()
        armored = data.lstrip().startswith(b"-----BEGIN PGP")
        if armored and not p.endswith(".asc"):
            warnings.append(f"W: {_release_name(source)}: The key(s) in the keyring {p} are ignored as the file "
                            "has an unsupported filetype.")  # fmt: skip
            continue
        ids |= content.key_ids(data)
    return ids, warnings


def _release_name(source: dict) -> str:
    uri = source["uri"].rstrip("/")
    return f"{uri} {source['suite']} InRelease" if source["suite"] != "/" else f"{uri}  InRelease"


def _fetch_repo(
    source: dict, os_id: str, version_id: str
) -> tuple[catalog.Repo | None, str | None]:
    """(repo, None) or (None, error) for one source; errors are apt's E:/W: lines."""
    host = urlsplit(source["uri"]).hostname or ""
    if catalog.is_distro_host(host):
        return catalog.Repo("distro", {}), None
    if host not in fetch.KNOWN_HOSTS:
        return None, f"W: Failed to fetch {source['uri'].rstrip('/')}/dists/{source['suite']}/InRelease  " \
                     f"Temporary failure resolving '{host}'"  # fmt: skip
    try:
        repo = catalog.find_repo(source["uri"], source["suite"], "deb")
    except catalog.RepoMissing:
        return None, (f"E: Failed to fetch {source['uri'].rstrip('/')}/{'dists/' + source['suite'] + '/' if source['suite'] != '/' else ''}InRelease  404  Not Found\n"
                      f"E: The repository '{_release_name(source)}' does not have a Release file.")  # fmt: skip
    if not source["trusted"]:
        ids, warnings = _trusted_keys(source)
        want = catalog.KEY_IDS[repo.vendor]
        if want not in ids:
            return None, "\n".join(warnings + [
                f"W: GPG error: {_release_name(source)}: The following signatures couldn't be verified because "
                f"the public key is not available: NO_PUBKEY {want}",
                f"E: The repository '{_release_name(source)}' is not signed.",
            ])  # fmt: skip
    return repo, None


def update() -> int:
    if not core.is_root():
        raise Fail("Reading package lists... Done\nE: Could not open lock file /var/lib/apt/lists/lock - open "
                   "(13: Permission denied)\nE: Unable to lock directory /var/lib/apt/lists/", 100)  # fmt: skip
    os_id, version_id = core.os_id()
    lists, errors = [], []
    for n, source in enumerate(read_sources(), 1):
        repo, error = _fetch_repo(source, os_id, version_id)
        name = _release_name(source).replace(" InRelease", "").rstrip() + " InRelease"
        if repo is None:
            out(f"Err:{n} {name}")
            errors.append(error)
            continue
        out(f"Get:{n} {name} [{1000 + 37 * n} B]")
        lists.append({"uri": source["uri"], "suite": source["suite"], "vendor": repo.vendor,
                      "packages": repo.packages})  # fmt: skip
    out("Reading package lists... Done")
    core.save("apt", {"lists": lists, "updated": time.time()})
    failed = any(e.startswith("E:") or "\nE:" in e for e in errors)
    for e in errors:
        core.err(e)
    if failed:
        core.err(
            "N: Updating from such a repository can't be done securely, and is therefore disabled by default."
        )
        return 100
    if errors:
        core.err(
            "W: Some index files failed to download. They have been ignored, or old ones used instead."
        )
    return 0


def available() -> dict[str, list[tuple[str, str]]]:
    """name -> [(version, origin)] from the distro and the lists of the last `update`."""
    os_id, version_id = core.os_id()
    result: dict[str, list[tuple[str, str]]] = {}
    for name, version in catalog.distro_packages(os_id, version_id, "debian").items():
        result.setdefault(name, []).append((version, "distro"))
    for lst in core.load("apt", {"lists": []})["lists"]:
        origin = f"{lst['uri'].rstrip('/')} {lst['suite']}"
        for name, versions in lst["packages"].items():
            result.setdefault(name, []).extend((v, origin) for v in versions)
    return result


# --- apt-get ---------------------------------------------------------------

APT_FLAGS = {"-y", "--yes", "--assume-yes", "-q", "-qq", "--quiet", "--no-install-recommends",
             "--allow-change-held-packages", "--allow-downgrades", "--reinstall", "--allow-unauthenticated",
             "-f", "--fix-broken", "--no-upgrade", "--only-upgrade", "-V", "--install-recommends",
             "--allow-releaseinfo-change", "--purge", "-m", "--fix-missing", "--no-install-suggests",
             "--allow-remove-essential", "-d", "--download-only", "-s", "--simulate"}  # fmt: skip


def apt_get(call: Call) -> int:
    args, flags, i = [], set(), 0
    raw = call.args
    while i < len(raw):
        a = raw[i]
        if a in ("-o", "--option", "-t", "--target-release"):
            i += 2
            continue
        if a.startswith("-o") or a.startswith("--option="):
            i += 1
            continue
        if a.startswith("-"):
            if a not in APT_FLAGS and not re.fullmatch(r"-[yqf]+", a):
                raise Fail(f"E: Command line option '{a}' [from {a}] is not understood in combination with the "
                           "other options.", 100)  # fmt: skip
            flags |= {a} if a in APT_FLAGS else {f"-{c}" for c in a[1:]}
        else:
            args.append(a)
        i += 1
    if not args:
        raise (
            Fail("E: No command given", 1)
            if call.tool == "apt-get"
            else Fail("apt 2.6.1 (amd64)", 1)
        )
    verb, names = args[0], args[1:]
    quiet = bool(flags & {"-qq"})
    if verb == "update":
        return update()
    if verb in ("install", "reinstall"):
        return install(names, flags, quiet)
    if verb in ("remove", "purge", "autoremove"):
        for n in names:
            packages.remove_package(n.split("=")[0])
        return 0
    if verb in ("upgrade", "dist-upgrade", "full-upgrade", "clean", "autoclean", "check"):
        quiet or out(
            "Reading package lists... Done\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded."
        )
        return 0
    if verb == "list" and call.tool == "apt":
        for name, info in sorted(packages.installed().items()):
            out(f"{name}/now {info['version']} amd64 [installed]")
        return 0
    if verb in ("policy", "madison", "show", "search"):
        return apt_cache(Call("apt-cache", [verb, *names], None))
    raise Fail(f"E: Invalid operation {verb}", 100)


def _resolve(spec: str, avail: dict) -> tuple[str, str, str] | str:
    """(name, version, origin) for `name[=version]`, or an apt error line."""
    name, _, want = spec.partition("=")
    cands = avail.get(name)
    if not cands:
        return f"E: Unable to locate package {name}"
    if want:
        match = [c for c in cands if c[0] == want or fnmatch.fnmatch(c[0], want)]
        if not match:
            return f"E: Version '{want}' for '{name}' was not found"
        cands = match
    version, origin = max(cands, key=lambda c: packages.version_key(c[0]))
    return name, version, origin


def install(specs: list[str], flags: set[str], quiet: bool) -> int:
    if not core.is_root():
        raise Fail("E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\n"
                   "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?", 100)  # fmt: skip
    quiet or out(
        "Reading package lists... Done\nBuilding dependency tree... Done\nReading state information... Done"
    )
    avail = available()
    local: dict[str, tuple[str, str]] = {}
    wanted, errors = [], []
    for spec in specs:
        if spec.endswith(".deb") and ("/" in spec):
            found = packages.marker_package(spec)
            if not found:
                errors.append(f"E: Unsupported file {spec} given on commandline")
                continue
            local[found[0]] = (found[1], "local")
            wanted.append((found[0], found[1], "local"))
            continue
        res = _resolve(spec, avail)
        (errors.append(res) if isinstance(res, str) else wanted.append(res))
    if errors:
        raise Fail("\n".join(errors), 100)
    plan: dict[str, tuple[str, str]] = {}
    explicit = {w[0] for w in wanted}
    todo = list(wanted)
    while todo:
        name, version, origin = todo.pop(0)
        if name in plan:
            continue
        plan[name] = (version, origin)
        for dep in catalog.depends(name, "debian"):
            if dep in plan or (packages.is_installed(dep) and dep not in explicit):
                continue
            res = _resolve(dep, avail)
            if isinstance(res, str):
                raise Fail(f"Some packages could not be installed. This may mean that you have\nrequested an "
                           f"impossible situation.\n\nThe following packages have unmet dependencies:\n {name} : "
                           f"Depends: {dep} but it is not installable\nE: Unable to correct problems, you have held "
                           "broken packages.", 100)  # fmt: skip
            todo.append(res)
    plan = {n: plan[n] for n in _dependencies_first(list(plan), plan)}
    inst = packages.installed()
    new = [n for n in plan if n not in inst]
    changed = [n for n in plan if n in inst and inst[n]["version"] != plan[n][0]]
    same = [n for n in plan if n in inst and inst[n]["version"] == plan[n][0]]
    held = [n for n in changed if inst[n].get("held")]
    if held and "--allow-change-held-packages" not in flags:
        raise Fail(
            "E: Held packages were changed and -y was used without --allow-change-held-packages.",
            100,
        )
    downgraded = [
        n
        for n in changed
        if packages.version_key(plan[n][0]) < packages.version_key(inst[n]["version"])
    ]
    if downgraded and "--allow-downgrades" not in flags:
        raise Fail("E: Packages were downgraded and -y was used without --allow-downgrades.", 100)
    removing = sorted(
        {c for n in plan for c in packages.CONFLICTS.get(n, []) if c in inst and c not in plan}
    )
    for n in same:
        quiet or out(f"{n} is already the newest version ({plan[n][0]}).")
    if not new and not changed:
        quiet or out("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
        return 0
    extra = [n for n in new if n not in explicit]
    if extra:
        quiet or out("The following additional packages will be installed:\n  " + " ".join(extra))
    if removing:
        quiet or out("The following packages will be REMOVED:\n  " + " ".join(removing))
    quiet or out("The following NEW packages will be installed:\n  " + " ".join(new))
    quiet or out(
        f"{len(changed)} upgraded, {len(new)} newly installed, {len(removing)} to remove and 0 not upgraded."
    )
    if (extra or removing) and not flags & {"-y", "--yes", "--assume-yes"}:
        sys.stdout.write("Do you want to continue? [Y/n] ")
        answer = sys.stdin.readline().strip().lower() if sys.stdin else ""
        if answer not in ("y", "yes"):
            raise Fail("Abort.", 1)
    for n in removing:
        quiet or out(f"Removing {n} ({inst[n]['version']}) ...")
        packages.remove_package(n)
    for n in plan:
        if n in same:
            continue
        version, origin = plan[n]
        quiet or out(f"Setting up {n} ({version}) ...")
        packages.install_package(n, version, origin)
    packages.post_install(new + changed)
    return 0


def _dependencies_first(names: list[str], plan: dict) -> list[str]:
    """`names` ordered so that each package comes after what it depends on (dpkg's setup order)."""
    ordered: list[str] = []

    def visit(n: str) -> None:
        if n in ordered:
            return
        for dep in catalog.depends(n, "debian"):
            if dep in plan:
                visit(dep)
        ordered.append(n)

    for n in names:
        visit(n)
    return ordered


# --- apt-cache, apt-mark, apt-key, add-apt-repository ----------------------


def apt_cache(call: Call) -> int:
    if not call.args:
        raise Fail("E: No command given", 1)
    verb, names = call.args[0], [a for a in call.args[1:] if not a.startswith("-")]
    avail = available()
    inst = packages.installed()
    if verb == "madison":
        for n in names:
            for version, origin in sorted(
                avail.get(n, []), key=lambda c: packages.version_key(c[0]), reverse=True
            ):
                src = origin if origin != "distro" else "http://archive.ubuntu.com/ubuntu main"
                out(f"{n:>10} | {version} | {src} Packages")
        return 0
    if verb == "policy":
        for n in names:
            cands = sorted(avail.get(n, []), key=lambda c: packages.version_key(c[0]), reverse=True)
            if not cands and n not in inst:
                continue
            out(f"{n}:\n  Installed: {inst.get(n, {}).get('version', '(none)')}\n"
                f"  Candidate: {cands[0][0] if cands else '(none)'}\n  Version table:")  # fmt: skip
            for version, origin in cands:
                out(f"     {version} 500\n        500 {origin} Packages")
        return 0
    if verb == "show":
        code = 0
        for n in names:
            cands = avail.get(n)
            if not cands:
                core.err(f"N: Unable to locate package {n}\nE: No packages found")
                code = 100
                continue
            version = max(cands, key=lambda c: packages.version_key(c[0]))[0]
            out(f"Package: {n}\nVersion: {version}\nArchitecture: amd64\n")
        return code
    if verb == "search":
        pattern = names[0] if names else ""
        for n in sorted(avail):
            if re.search(pattern, n):
                out(f"{n} - {n} package")
        return 0
    raise Fail(f"E: Invalid operation {verb}", 100)


def apt_mark(call: Call) -> int:
    if not call.args:
        raise Fail("E: No command given", 100)
    verb, names = call.args[0], [a for a in call.args[1:] if not a.startswith("-")]
    if verb == "showhold":
        for n, info in sorted(packages.installed().items()):
            if info.get("held"):
                out(n)
        return 0
    if verb in ("hold", "unhold"):
        if not core.is_root():
            raise Fail("E: Could not create temporary file for /var/lib/apt/extended_states - mkstemp "
                       "(13: Permission denied)\nE: Failed to write temporary StateFile /var/lib/apt/extended_states", 100)  # fmt: skip
        with core.edit("packages", {"installed": {}}) as st:
            for n in names:
                if n not in st["installed"]:
                    raise Fail(f"E: Unable to locate package {n}" if n not in available()
                               else f"W: Unable to locate package {n}", 100)  # fmt: skip
                was = st["installed"][n].get("held", False)
                st["installed"][n]["held"] = verb == "hold"
                if verb == "hold":
                    out(f"{n} was already set on hold." if was else f"{n} set on hold.")
                else:
                    out(f"Canceled hold on {n}." if was else f"{n} was already not on hold.")
        return 0
    if verb in ("manual", "auto", "showmanual", "showauto"):
        return 0
    raise Fail(f"E: Invalid operation {verb}", 100)


def apt_key(call: Call) -> int:
    os_id, version_id = core.os_id()
    if (os_id == "debian" and version_id.split(".")[0] >= "13") or (
        os_id == "ubuntu" and version_id >= "25"
    ):
        raise Fail("bash: apt-key: command not found", 127)
    core.err(
        "Warning: apt-key is deprecated. Manage keyring files in trusted.gpg.d instead (see apt-key(8))."
    )
    args = call.args
    if args[:1] == ["add"] and len(args) == 2:
        data = call.read_stdin().encode() if args[1] == "-" else Path(args[1]).read_bytes()
        binary = content.dearmor(data) or (data if content.key_ids(data) else None)
        if binary is None:
            raise Fail("gpg: no valid OpenPGP data found.", 2)
        with open("/etc/apt/trusted.gpg", "ab") as f:
            f.write(binary)
        out("OK")
        return 0
    if args[:1] == ["adv"]:
        raise Fail("gpg: keyserver receive failed: Server indicated a failure", 2)
    if args[:1] == ["list"]:
        return 0
    raise Fail("Usage: apt-key [--keyring file] [command] [arguments]", 1)


def add_apt_repository(call: Call) -> int:
    args = [a for a in call.args if a not in ("-y", "--yes", "-n", "--no-update", "-u", "--update")]
    if len(args) != 1:
        raise Fail("Error: need a single repository as argument", 2)
    line = args[0]
    if line.startswith("ppa:"):
        raise Fail(
            f"Cannot add PPA: '{line}'.\nERROR: '~{line[4:].split('/')[0]}' user or team does not exist.",
            1,
        )
    m = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
    if not m:
        raise Fail(f"Error: '{line}' invalid", 2)
    if not core.is_root():
        raise Fail("Error: must run as root", 1)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", m.group(1).split("://", 1)[-1]).strip("_")
    path = Path(
        f"/etc/apt/sources.list.d/archive_uri-{m.group(1).split(':', 1)[0]}_{slug}-{core.os_id()[0]}.list"
    )
    path.write_text(line + "\n")
    if not ({"-n", "--no-update"} & set(call.args)):
        return update()
    return 0


# --- dpkg ------------------------------------------------------------------


def dpkg(call: Call) -> int:
    args = call.args
    inst = packages.installed()
    if args in (["--print-architecture"],):
        out("amd64")
        return 0
    if args[:1] in (["-l"], ["--list"]):
        pats = args[1:] or ["*"]
        rows = [(n, i) for n, i in sorted(inst.items()) if any(fnmatch.fnmatch(n, p) for p in pats)]
        if not rows:
            raise Fail(f"dpkg-query: no packages found matching {pats[0]}", 1)
        out(
            "Desired=Unknown/Install/Remove/Purge/Hold\n| Status=Not/Inst/Conf-files/Unpacked/halF-conf/Half-inst/trig-aWait/Trig-pend\n|/ Err?=(none)/Reinst-required (Status,Err: uppercase=bad)\n||/ Name           Version      Architecture Description\n+++-==============-============-============-================================="
        )
        for n, i in rows:
            out(f"{'hi' if i.get('held') else 'ii'}  {n:<14} {i['version']:<12} amd64        {n}")
        return 0
    if args[:1] in (["-s"], ["--status"]):
        code = 0
        for n in args[1:]:
            if n not in inst:
                core.err(
                    f"dpkg-query: package '{n}' is not installed and no information is available"
                )
                code = 1
                continue
            state = "hold" if inst[n].get("held") else "install"
            out(
                f"Package: {n}\nStatus: {state} ok installed\nArchitecture: amd64\nVersion: {inst[n]['version']}\n"
            )
        return code
    if args[:1] in (["-i"], ["--install"]):
        if not core.is_root():
            raise Fail("dpkg: error: requested operation requires superuser privilege", 2)
        for path in args[1:]:
            found = packages.marker_package(path)
            if not found:
                raise Fail(f"dpkg-deb: error: '{path}' is not a Debian format archive", 1)
            out(
                f"Selecting previously unselected package {found[0]}.\nSetting up {found[0]} ({found[1]}) ..."
            )
            packages.install_package(found[0], found[1], "local")
            packages.post_install([found[0]])
        return 0
    if args[:1] in (["-W"], ["--show"]) or (args and args[0].startswith("-W")):
        return dpkg_query(Call("dpkg-query", args, None))
    raise Fail(
        f"dpkg: error: unknown option {args[0] if args else ''}\n\nType dpkg --help for help about installing and deinstalling packages [*];",
        2,
    )


def dpkg_query(call: Call) -> int:
    args = call.args
    fmt = "${Package}\t${Version}\n"
    names = []
    for a in args:
        if a.startswith(("-f", "--showformat=")):
            fmt = a.split("=", 1)[1] if "=" in a else a[2:]
        elif a in ("-W", "--show"):
            continue
        elif a.startswith("-"):
            continue
        else:
            names.append(a)
    if "-f" in args:
        fmt = args[args.index("-f") + 1]
        names = [n for n in names if n != fmt]
    inst = packages.installed()
    code = 0
    for n in names:
        if n not in inst:
            core.err(f"dpkg-query: no packages found matching {n}")
            code = 1
            continue
        status = ("hold" if inst[n].get("held") else "install") + " ok installed"
        sys.stdout.write(fmt.replace("${Package}", n).replace("${Version}", inst[n]["version"])
                         .replace("${Status}", status).replace("${db:Status-Status}", "installed")
                         .replace("\\n", "\n").replace("\\t", "\t"))  # fmt: skip
    return code
