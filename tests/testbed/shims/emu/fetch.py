"""Offline network: curl, wget and gpg, and the table of upstream URLs that answer."""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from . import catalog, content, core, manifests
from .core import Call, Fail, out

SEMVER = r"v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?"


class UnknownHost(Exception):
    """DNS would not resolve this host offline."""


class Response:
    def __init__(self, status: int, body: bytes = b"", location: str = ""):
        self.status = status
        self.body = body
        self.location = location


def not_found() -> Response:
    return Response(404, b"404: Not Found")


def redirect(url: str) -> Response:
    return Response(302, f'<a href="{url}">Found</a>.\n'.encode(), url)


def get(url: str, follow: bool = True) -> Response:
    """Fetch `url` from the offline world; raises UnknownHost. Follows redirects if asked."""
    for _ in range(10):
        resp = _get_once(url)
        if resp.status in (301, 302) and follow:
            url = resp.location
            continue
        return resp
    return Response(508)


def _get_once(url: str) -> Response:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host == "localhost" or re.fullmatch(r"127\.\d+\.\d+\.\d+", host):
        return _loopback(url)
    for pattern, handler in ROUTES:
        m = re.fullmatch(pattern, f"{host}{parts.path}")
        if m:
            return handler(*m.groups())
    if host in KNOWN_HOSTS or catalog.is_distro_host(host):
        return not_found()
    raise UnknownHost(host)


def _loopback(url: str) -> Response:
    import ssl
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
            return Response(r.status, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.read())
    except OSError as e:
        raise ConnectionError(str(e)) from None


# --- stand-in files --------------------------------------------------------


def _targz(members: dict[str, bytes], gz_mtime: int = 0) -> bytes:
    """A deterministic .tar.gz; members ending in '/' are directories, others mode 0755."""
    import gzip
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = 1700000000
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=gz_mtime)


def _tool(tool: str, version: str | None) -> bytes:
    return core.wrapper_text(tool, version.lstrip("v") if version else None).encode()


def _package_file(name: str, version: str) -> bytes:
    """A stand-in .deb/.rpm: a marker line naming the package, then filler."""
    return f"GIMME-TESTBED-PACKAGE name={name} version={version}\n".encode() + b"\0" * 64


def _key(vendor: str) -> Response:
    return Response(200, content.armored_key(vendor, catalog.KEY_IDS[vendor]))


def _k8s_key(m: str, kind: str) -> Response:
    return _key("k8s") if int(m) in catalog.K8S_PATCH and int(m) >= 24 else not_found()


def _k8s_text(name: str) -> Response:
    if name == "stable.txt" or name == "latest.txt":
        return Response(200, f"v{catalog.k8s_full(catalog.K8S_LATEST)}".encode())
    m = re.fullmatch(r"(?:stable|latest)-1\.(\d+)\.txt", name)
    if m and int(m.group(1)) in catalog.K8S_PATCH:
        return Response(200, f"v{catalog.k8s_full(int(m.group(1)))}".encode())
    return not_found()


def _k8s_binary(version: str, tool: str, suffix: str) -> Response:
    m = re.fullmatch(r"v1\.(\d+)\.(\d+)", version)
    if (
        not m
        or int(m.group(1)) not in catalog.K8S_PATCH
        or int(m.group(2)) > catalog.K8S_PATCH[int(m.group(1))]
    ):
        return not_found()
    return _with_checksum(_tool(tool, version), suffix, tool)


def _with_checksum(data: bytes, suffix: str, name: str) -> Response:
    if suffix in (".sha256", ".sha256sum"):
        digest = hashlib.sha256(data).hexdigest()
        return Response(
            200, (digest if suffix == ".sha256" else f"{digest}  {name}").encode() + b"\n"
        )
    if suffix == ".sha512":
        return Response(200, hashlib.sha512(data).hexdigest().encode() + b"\n")
    if suffix == ".sha1":
        return Response(200, hashlib.sha1(data).hexdigest().encode() + b"\n")  # noqa: S324
    return Response(200, data)


def _docker_repo_file(dist: str) -> Response:
    text = "".join(
        f"[docker-ce-{chan}]\nname=Docker CE {chan.title()} - $basearch\n"
        f"baseurl=https://download.docker.com/linux/{dist}/$releasever/$basearch/{chan}\n"
        f"enabled={1 if chan == 'stable' else 0}\ngpgcheck=1\n"
        f"gpgkey=https://download.docker.com/linux/{dist}/gpg\n\n"
        for chan in ("stable", "test")
    )
    return Response(200, text.encode())


def _crio_repo_file(m: str) -> Response:
    base = f"https://download.opensuse.org/repositories/isv:/cri-o:/stable:/v1.{m}/rpm/"
    return Response(
        200,
        f"[isv_cri-o_stable_v1.{m}]\nname=stable:v1.{m} (rpm)\ntype=rpm-md\nbaseurl={base}\ngpgcheck=1\n"
        f"gpgkey={base}repodata/repomd.xml.key\nenabled=1\n".encode(),
    )


def _release_asset(org: str, repo: str, tag: str, asset: str) -> Response:
    """Files attached to GitHub releases (after the redirect to objects.githubusercontent.com)."""
    key = f"{org}/{repo}"
    v = tag.lstrip("v")
    suffix = next(
        (s for s in (".sha256sum", ".sha256", ".sha512", ".sha1") if asset.endswith(s)), ""
    )
    base = asset[: -len(suffix)] if suffix else asset
    data: bytes | None = None
    if key == "containernetworking/plugins" and base == f"cni-plugins-linux-amd64-{tag}.tgz":
        data = _targz(
            {"./": b"", **{f"./{p}": _tool("cni-plugin", v) for p in catalog.CNI_PLUGINS}}
        )
    elif key == "kubernetes-sigs/cri-tools" and base in (f"crictl-{tag}-linux-amd64.tar.gz",):
        data = _targz({"crictl": _tool("crictl", v)})
    elif key == "containerd/containerd" and base == f"containerd-{v}-linux-amd64.tar.gz":
        names = ["containerd", "ctr", "containerd-shim-runc-v2", "containerd-stress"]
        data = _targz(
            {
                "bin/": b"",
                **{
                    f"bin/{n}": _tool(n if n != "containerd-stress" else "containerd", v)
                    for n in names
                },
            }
        )
    elif key == "opencontainers/runc" and base == "runc.amd64":
        data = _tool("runc", v)
    elif key == "Mirantis/cri-dockerd":
        if base == f"cri-dockerd-{v}.amd64.tgz":
            data = _targz({"cri-dockerd/": b"", "cri-dockerd/cri-dockerd": _tool("cri-dockerd", v)})
        elif re.fullmatch(
            rf"cri-dockerd_{re.escape(v)}\.3-0\.(ubuntu|debian)-\w+_amd64\.deb", base
        ):
            data = _package_file("cri-dockerd", f"{v}~3-0")
        elif re.fullmatch(rf"cri-dockerd-{re.escape(v)}-3\.(el[789]|fc\d+)\.x86_64\.rpm", base):
            data = _package_file("cri-dockerd", f"{v}-3")
    elif key == "cilium/cilium-cli" and base == "cilium-linux-amd64.tar.gz":
        data = _targz({"cilium": _tool("cilium", v)})
    elif key == "flannel-io/flannel" and base == "kube-flannel.yml":
        data = manifests.flannel(tag).encode()
    elif (
        key == "weaveworks/weave" and re.fullmatch(r"weave-daemonset-k8s-1\.(8|9|11)\.yaml", base)
    ) or (key == "rajch/weave" and re.fullmatch(r"weave-daemonset-k8s(-1\.\d+)?\.yaml", base)):
        data = manifests.weave(tag, org).encode()
    elif key == "antrea-io/antrea" and base == "antrea.yml":
        data = manifests.antrea(tag).encode()
    elif key == "projectcalico/calico" and base in (
        "calico.yaml",
        "tigera-operator.yaml",
        "custom-resources.yaml",
    ):
        return _calico(tag, base)
    elif key == "helm/helm" and base.startswith("helm-"):
        return _helm_tarball(base + suffix)
    if data is None:
        return not_found()
    return _with_checksum(data, suffix, base)


def _release(org: str, repo: str, tag: str, asset: str) -> Response:
    if not re.fullmatch(SEMVER, tag):
        return not_found()
    resp = _release_asset(org, repo, tag, asset)
    if resp.status != 200:
        return resp
    return redirect(
        f"https://objects.githubusercontent.com/github-production-release-asset/{org}/{repo}/{tag}/{asset}"
    )


def _latest_release(org: str, repo: str, asset: str) -> Response:
    latest = {"flannel-io/flannel": "v0.28.9", "rajch/weave": "v2.8.10", "weaveworks/weave": "v2.8.1",
              "antrea-io/antrea": "v2.2.0", "cilium/cilium-cli": "v0.18.7"}.get(f"{org}/{repo}")  # fmt: skip
    if not latest:
        return not_found()
    return redirect(f"https://github.com/{org}/{repo}/releases/download/{latest}/{asset}")


def _calico(tag: str, name: str) -> Response:
    if not re.fullmatch(SEMVER, tag):
        return not_found()
    text = {"calico.yaml": manifests.calico, "tigera-operator.yaml": manifests.tigera_operator,
            "custom-resources.yaml": manifests.calico_custom_resources}[name](tag)  # fmt: skip
    return Response(200, text.encode())


def _raw(org: str, repo: str, ref: str, path: str) -> Response:
    """raw.githubusercontent.com/<org>/<repo>/<ref>/<path>."""
    key = f"{org}/{repo}"
    if key == "projectcalico/calico" and path.startswith("manifests/"):
        return _calico(ref, path.split("/", 1)[1])
    if key in ("flannel-io/flannel", "coreos/flannel") and path == "Documentation/kube-flannel.yml":
        return Response(200, manifests.flannel(ref).encode())
    if key == "cloudnativelabs/kube-router" and re.fullmatch(
        r"daemonset/kubeadm-kuberouter(-all-features)?\.yaml", path
    ):
        return Response(200, manifests.kube_router(ref, path).encode())
    if key == "k8snetworkplumbingwg/multus-cni" and path in (
        "deployments/multus-daemonset-thick.yml", "deployments/multus-daemonset-thick-plugin.yml",
        "deployments/multus-daemonset.yml",
    ):  # fmt: skip
        return Response(200, manifests.multus(ref, "thick" in path).encode())
    if key == "kubernetes/release" and path.endswith(
        ("kubelet/kubelet.service", "system/kubelet.service")
    ):
        return Response(200, content.unit_text("kubelet.service").encode())
    if key == "kubernetes/release" and path.endswith("10-kubeadm.conf"):
        return Response(
            200, content.KUBEADM_DROPIN.replace("{defaults}", "/etc/sysconfig/kubelet").encode()
        )
    if key == "containerd/containerd" and path == "containerd.service":
        return Response(200, content.unit_text("containerd.service", "/usr/local").encode())
    if key == "Mirantis/cri-dockerd" and path in ("packaging/systemd/cri-docker.service",
                                                  "packaging/systemd/cri-docker.socket"):  # fmt: skip
        return Response(200, content.unit_text(path.rsplit("/", 1)[1]).encode())
    if key == "cilium/cilium-cli" and path == "stable.txt":
        return Response(200, b"v0.18.7\n")
    if key == "helm/helm" and path == "scripts/get-helm-3":
        return Response(200, GET_HELM.encode())
    return not_found()


def _helm_tarball(name: str) -> Response:
    m = re.fullmatch(r"helm-(v[34]\.\d+\.\d+)-linux-amd64\.tar\.gz(\.sha256sum|\.sha256)?", name)
    if not m:
        return not_found()
    data = _targz({"linux-amd64/": b"", "linux-amd64/helm": _tool("helm", m.group(1)),
                   "linux-amd64/LICENSE": b"Apache License 2.0\n"})  # fmt: skip
    return _with_checksum(data, m.group(2) or "", name.removesuffix(m.group(2) or ""))


def _cilium_index() -> Response:
    entries = "".join(
        f"  - name: cilium\n    version: 1.{mi}.{p}\n    appVersion: 1.{mi}.{p}\n"
        f"    urls:\n    - https://helm.cilium.io/cilium-1.{mi}.{p}.tgz\n"
        for mi, top in ((13, 15), (14, 19), (15, 19), (16, 12), (17, 9), (18, 6), (19, 6), (20, 1))
        for p in range(top, -1, -1)
    )
    return Response(200, f"apiVersion: v1\nentries:\n  cilium:\n{entries}".encode())


def _chart_index(chart: str, versions: list[str]) -> Response:
    entries = "".join(
        f"  - name: {chart}\n    version: {v}\n    appVersion: v{v}\n" for v in reversed(versions)
    )
    return Response(200, f"apiVersion: v1\nentries:\n  {chart}:\n{entries}".encode())


GET_HELM = """\
#!/usr/bin/env bash
# Stand-in for helm's get-helm-3 installer: fetches the release tarball and installs helm.
set -e
HELM_INSTALL_DIR=${HELM_INSTALL_DIR:-/usr/local/bin}
TAG=${DESIRED_VERSION:-v3.19.0}
tmp=$(mktemp -d)
curl -fsSL -o "$tmp/helm.tar.gz" "https://get.helm.sh/helm-${TAG}-linux-amd64.tar.gz"
tar -xzf "$tmp/helm.tar.gz" -C "$tmp"
echo "Preparing to install helm into ${HELM_INSTALL_DIR}"
install -m 0755 "$tmp/linux-amd64/helm" "$HELM_INSTALL_DIR/helm"
echo "helm installed into ${HELM_INSTALL_DIR}/helm"
rm -rf "$tmp"
"""

GH = r"github\.com/([\w.-]+)/([\w.-]+)"
ROUTES: list[tuple[str, object]] = [
    (r"pkgs\.k8s\.io/core:/stable:/v1\.(\d+)/(deb/Release\.key|rpm/repodata/repomd\.xml\.key)", _k8s_key),
    (r"pkgs\.k8s\.io/addons:/cri-o:/stable:/v1\.(\d+)/(deb/Release\.key|rpm/repodata/repomd\.xml\.key)",
     lambda m, k: _key("k8s") if 28 <= int(m) <= 32 else not_found()),
    (r"download\.docker\.com/linux/(?:ubuntu|debian|raspbian|centos|rhel|fedora)/gpg", lambda: _key("docker")),
    (r"download\.docker\.com/linux/(centos|rhel|fedora)/docker-ce\.repo", _docker_repo_file),
    (r"download\.opensuse\.org/repositories/isv:/cri-o:/stable:/v1\.(\d+)/(?:deb/Release\.key|rpm/repodata/repomd\.xml\.key)",
     lambda m: _key("opensuse") if int(m) >= 28 else not_found()),
    (r"download\.opensuse\.org/repositories/isv:/cri-o:/stable:/v1\.(\d+)/rpm/isv:cri-o:stable:v1\.\d+\.repo",
     _crio_repo_file),
    (r"download\.opensuse\.org/repositories/devel:/kubic:/libcontainers:/stable(?::/cri-o:/1\.\d+)?/[\w.]+/(?:repodata/)?(?:Release|repomd\.xml)\.key",
     lambda: _key("opensuse")),
    (r"(?:baltocdn\.com/helm/signing\.asc|packages\.buildkite\.com/helm-linux/helm-debian/gpgkey)", lambda: _key("helm")),
    (r"dl\.k8s\.io/release/([\w.-]+\.txt)", _k8s_text),
    (r"dl\.k8s\.io/(?:release/)?(v[\d.]+/bin/linux/amd64/(?:kubeadm|kubelet|kubectl)(?:\.sha256|\.sha512)?)",
     lambda path: redirect(f"https://cdn.dl.k8s.io/release/{path}")),
    (r"cdn\.dl\.k8s\.io/release/(v[\d.]+)/bin/linux/amd64/(kubeadm|kubelet|kubectl)(\.sha256|\.sha512)?",
     lambda v, tool, suffix: _k8s_binary(v, tool, suffix or "")),
    (GH + r"/releases/download/([^/]+)/([^/]+)", _release),
    (GH + r"/releases/latest/download/([^/]+)", _latest_release),
    (r"objects\.githubusercontent\.com/github-production-release-asset/([\w.-]+)/([\w.-]+)/([^/]+)/([^/]+)", _release_asset),
    (r"raw\.githubusercontent\.com/([\w.-]+)/([\w.-]+)/([^/]+)/(.+)", _raw),
    (r"get\.helm\.sh/(.+)", _helm_tarball),
    (r"helm\.cilium\.io/index\.yaml", _cilium_index),
    (r"docs\.tigera\.io/calico/charts/index\.yaml", lambda: _chart_index("tigera-operator", ["3.28.2", "3.29.3", "3.30.4"])),
    (r"flannel-io\.github\.io/flannel/index\.yaml", lambda: _chart_index("flannel", ["0.26.4", "0.27.4"])),
    (r"docs\.projectcalico\.org/(?:v3\.\d+/)?manifests/(calico\.yaml|tigera-operator\.yaml|custom-resources\.yaml)",
     lambda name: redirect(f"https://raw.githubusercontent.com/projectcalico/calico/v3.25.2/manifests/{name}")),
]  # fmt: skip
KNOWN_HOSTS = {
    "pkgs.k8s.io", "prod-cdn.packages.k8s.io", "dl.k8s.io", "cdn.dl.k8s.io", "download.docker.com",
    "download.opensuse.org", "github.com", "objects.githubusercontent.com", "raw.githubusercontent.com",
    "get.helm.sh", "helm.cilium.io", "baltocdn.com", "docs.tigera.io", "flannel-io.github.io", "packages.buildkite.com", "docs.projectcalico.org",
}  # fmt: skip


def main(call: Call) -> int:
    return {"curl": curl, "wget": wget, "gpg": gpg}[call.tool](call)


# --- curl ------------------------------------------------------------------

CURL_FLAGS = {"-f": "fail", "--fail": "fail", "--fail-with-body": "fail", "-s": "silent", "--silent": "silent",
              "-S": "show_error", "--show-error": "show_error", "-L": "location", "--location": "location",
              "-k": "insecure", "--insecure": "insecure", "-O": "remote_name", "--remote-name": "remote_name", "--remote-name-all": "remote_name",
              "--create-dirs": "create_dirs", "-#": "", "--progress-bar": "", "-v": "", "--verbose": "",
              "--compressed": "", "-q": "", "--tlsv1.2": "", "--http1.1": "", "--no-progress-meter": "silent_meter",
              "-g": "", "--globoff": "", "--fail-early": "", "--retry-connrefused": "", "--retry-all-errors": "",
              "-J": "", "--remote-header-name": ""}  # fmt: skip
CURL_VALUE = {"-o": "output", "--output": "output", "--retry": "", "--retry-delay": "", "--retry-max-time": "",
              "--connect-timeout": "", "-m": "", "--max-time": "", "-H": "", "--header": "", "-A": "",
              "--user-agent": "", "--proto": "", "-X": "", "--request": "", "-w": "write_out",
              "--write-out": "write_out", "--cacert": "", "-x": "", "--proxy": "", "--output-dir": "output_dir",
              "-e": "", "--referer": "", "-d": "", "--data": ""}  # fmt: skip


def _parse_curl(args: list[str]) -> tuple[dict, list[str], list[str]]:
    opts: dict = {}
    outputs: list[str] = []
    urls: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--") and "=" in a and a.split("=", 1)[0] in CURL_VALUE:
            a, val = a.split("=", 1)
            args = args[: i + 1] + [val] + args[i + 1 :]
        if a in CURL_FLAGS:
            if CURL_FLAGS[a]:
                opts[CURL_FLAGS[a]] = True
        elif a in CURL_VALUE:
            if i + 1 >= len(args):
                raise Fail(
                    f"curl: option {a}: requires parameter\ncurl: try 'curl --help' for more information",
                    2,
                )
            i += 1
            if CURL_VALUE[a] == "output":
                outputs.append(args[i])
            elif CURL_VALUE[a]:
                opts[CURL_VALUE[a]] = args[i]
        elif re.fullmatch(r"-[a-zA-Z#]{2,}", a):
            # bundled short options: the last may take a value (-fsSLo FILE)
            for j, ch in enumerate(a[1:]):
                flag = "-" + ch
                if flag in CURL_FLAGS:
                    if CURL_FLAGS[flag]:
                        opts[CURL_FLAGS[flag]] = True
                elif flag in CURL_VALUE and j == len(a) - 2:
                    i += 1
                    if CURL_VALUE[flag] == "output":
                        outputs.append(args[i])
                    elif CURL_VALUE[flag]:
                        opts[CURL_VALUE[flag]] = args[i]
                else:
                    raise Fail(
                        f"curl: option {a}: is unknown\ncurl: try 'curl --help' or 'curl --manual' for more information",
                        2,
                    )
        elif a.startswith("-") and a != "-":
            raise Fail(
                f"curl: option {a}: is unknown\ncurl: try 'curl --help' or 'curl --manual' for more information",
                2,
            )
        else:
            urls.append(a)
        i += 1
    return opts, outputs, urls


def curl(call: Call) -> int:
    opts, outputs, urls = _parse_curl(call.args)
    if not urls:
        raise Fail(
            "curl: no URL specified!\ncurl: try 'curl --help' or 'curl --manual' for more information",
            2,
        )
    show = not opts.get("silent") or opts.get("show_error")
    code = 0
    for n, url in enumerate(urls):
        if "://" not in url:
            url = "http://" + url
        target = outputs[n] if n < len(outputs) else None
        if target is None and opts.get("remote_name"):
            target = os.path.join(opts.get("output_dir", ""), url.rstrip("/").rsplit("/", 1)[-1])
        try:
            resp = get(url, follow=bool(opts.get("location")))
        except UnknownHost as e:
            show and core.err(f"curl: (6) Could not resolve host: {e}")
            code = 6
            continue
        except ConnectionError:
            show and core.err(
                f"curl: (7) Failed to connect to {urlsplit(url).hostname} port {urlsplit(url).port or 443}: Connection refused"
            )
            code = 7
            continue
        if resp.status >= 400 and opts.get("fail"):
            show and core.err(f"curl: (22) The requested URL returned error: {resp.status}")
            code = 22
            continue
        if target and target != "-":
            if opts.get("create_dirs"):
                Path(target).parent.mkdir(parents=True, exist_ok=True)
            try:
                Path(target).write_bytes(resp.body)
            except OSError as e:
                show and core.err(
                    f"Warning: Failed to open the file {target}: {e.strerror}\ncurl: (23) Failure writing output to destination"
                )
                code = 23
                continue
        else:
            os.write(1, resp.body)
        if opts.get("write_out"):
            out(
                opts["write_out"]
                .replace("%{http_code}", str(resp.status))
                .replace("\\n", "\n")
                .rstrip("\n")
            )
    return code


# --- wget ------------------------------------------------------------------


def wget(call: Call) -> int:
    args = list(call.args)
    output = None
    directory = ""
    quiet = False
    urls = []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--output-document="):
            output = a.split("=", 1)[1]
        elif a == "--output-document":
            i += 1
            output = args[i]
        elif a.startswith("--directory-prefix="):
            directory = a.split("=", 1)[1]
        elif a == "--directory-prefix":
            i += 1
            directory = args[i]
        elif a in ("--quiet", "--no-verbose", "-nv"):
            quiet = True
        elif a in ("--continue", "--timestamping", "--no-check-certificate", "--https-only", "--show-progress",
                   "-nc", "--no-clobber") or a.startswith(("--tries=", "--timeout=", "--progress=")):  # fmt: skip
            pass
        elif re.fullmatch(r"-[qcNvOPtT].*", a):
            # bundled short options; -O and -P take the rest of the word or the next argument
            for j, ch in enumerate(a[1:], 1):
                if ch in "OPtT":
                    value = a[j + 1 :]
                    if not value:
                        i += 1
                        value = args[i] if i < len(args) else ""
                    if ch == "O":
                        output = value
                    elif ch == "P":
                        directory = value
                    break
                if ch == "q":
                    quiet = True
        elif a.startswith("-"):
            raise Fail(f"wget: unrecognized option '{a}'\nUsage: wget [OPTION]... [URL]...\n\n"
                       "Try `wget --help' for more options.", 2)  # fmt: skip
        else:
            urls.append(a)
        i += 1
    if not urls:
        raise Fail(
            "wget: missing URL\nUsage: wget [OPTION]... [URL]...\n\nTry `wget --help' for more options.",
            1,
        )
    for url in urls:
        if "://" not in url:
            url = "http://" + url
        try:
            resp = get(url)
        except UnknownHost as e:
            quiet or core.err(f"wget: unable to resolve host address '{e}'")
            return 4
        except ConnectionError:
            return 4
        if resp.status >= 400:
            quiet or core.err(f"ERROR {resp.status}: Not Found.")
            return 8
        if output == "-":
            os.write(1, resp.body)
            continue
        target = output or os.path.join(
            directory, url.rstrip("/").rsplit("/", 1)[-1] or "index.html"
        )
        if not output:
            base, n = target, 1
            while os.path.exists(target):
                target, n = f"{base}.{n}", n + 1
        try:
            Path(target).write_bytes(resp.body)
        except OSError as e:
            raise Fail(f"{target}: {e.strerror}", 3) from None
        quiet or core.err(f"'{target}' saved [{len(resp.body)}/{len(resp.body)}]")
    return 0


# --- gpg -------------------------------------------------------------------


def gpg(call: Call) -> int:
    args = list(call.args)
    output = None
    keyring = None
    yes = False
    command = None
    files = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-o", "--output"):
            i += 1
            output = args[i]
        elif a.startswith("--output="):
            output = a.split("=", 1)[1]
        elif a == "--keyring":
            i += 1
            keyring = args[i]
        elif a == "--yes":
            yes = True
        elif a in ("--batch", "--no-tty", "-q", "--quiet", "--no-default-keyring", "--no-auto-check-trustdb",
                   "--with-colons", "--with-fingerprint", "--fingerprint"):  # fmt: skip
            pass
        elif a in ("--dearmor", "--enarmor", "--import", "--show-keys", "--list-keys", "-k", "--recv-keys",
                   "--export", "--import-options"):  # fmt: skip
            command = a
        elif a == "--keyserver":
            i += 1
        elif a == "--homedir":
            i += 1
        elif a.startswith("-"):
            raise Fail(f'gpg: invalid option "{a}"', 2)
        else:
            files.append(a)
        i += 1
    if command == "--recv-keys":
        raise Fail("gpg: keyserver receive failed: Server indicated a failure", 2)

    def read_input() -> bytes:
        if files and files[0] != "-":
            try:
                return Path(files[0]).read_bytes()
            except OSError:
                raise Fail(f"gpg: can't open '{files[0]}': No such file or directory", 2) from None
        return call.read_stdin().encode("utf-8", "surrogateescape")

    if command == "--dearmor":
        data = read_input()
        binary = content.dearmor(data)
        if binary is None:
            raise Fail("gpg: no valid OpenPGP data found.", 2)
        if output and output != "-":
            if os.path.exists(output) and not yes:
                raise Fail(f"File '{output}' exists. Overwrite? (y/N) gpg: signal Hangup caught\n"
                           "gpg: cannot open '/dev/tty': No such device or address", 2)  # fmt: skip
            try:
                Path(output).write_bytes(binary)
            except OSError as e:
                raise Fail(
                    f"gpg: can't create '{output}': {e.strerror}\ngpg: dearmoring failed: {e.strerror}",
                    2,
                ) from None
        else:
            os.write(1, binary)
        return 0
    if command in ("--import", "--show-keys"):
        data = read_input()
        ids = content.key_ids(data)
        if not ids:
            raise Fail("gpg: no valid OpenPGP data found.\ngpg: Total number processed: 0", 2)
        if command == "--import":
            target = Path(keyring) if keyring else Path(os.path.expanduser("~/.gnupg/pubring.kbx"))
            target.parent.mkdir(parents=True, exist_ok=True)
            existing = target.read_bytes() if target.exists() else b""
            target.write_bytes(existing + (content.dearmor(data) or data))
            for kid in sorted(ids):
                core.err(f'gpg: key {kid}: public key "{kid} signing key" imported')
            core.err(
                f"gpg: Total number processed: {len(ids)}\ngpg:               imported: {len(ids)}"
            )
        else:
            for kid in sorted(ids):
                out(
                    f"pub   rsa4096 2023-08-08 [SC]\n      {kid:>40}\nuid                      {kid} signing key\n"
                )
        return 0
    if command in ("--list-keys", "-k", "--export"):
        return 0
    raise Fail(
        "gpg: WARNING: no command supplied.  Trying to guess what you mean ...\ngpg: no valid OpenPGP data found.",
        2,
    )
