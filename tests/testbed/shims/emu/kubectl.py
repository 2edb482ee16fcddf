"""kubectl: apply/create/delete, get, wait, rollout status, taint, label, patch — against the fake apiserver."""

from __future__ import annotations

import calendar
import json
import os
import re
import sys
import time
from pathlib import Path

import yaml

from . import core, fetch
from .apiserver import ApiError, Client
from .core import Call, Fail, out

KINDS = {
    "nodes": "Node", "node": "Node", "no": "Node", "pods": "Pod", "pod": "Pod", "po": "Pod",
    "daemonsets": "DaemonSet", "daemonset": "DaemonSet", "ds": "DaemonSet", "deployments": "Deployment",
    "deployment": "Deployment", "deploy": "Deployment", "namespaces": "Namespace", "namespace": "Namespace",
    "ns": "Namespace", "configmaps": "ConfigMap", "configmap": "ConfigMap", "cm": "ConfigMap",
    "services": "Service", "service": "Service", "svc": "Service", "serviceaccounts": "ServiceAccount",
    "sa": "ServiceAccount", "customresourcedefinitions": "CustomResourceDefinition",
    "crd": "CustomResourceDefinition", "crds": "CustomResourceDefinition", "secrets": "Secret", "secret": "Secret",
    "installations": "Installation", "installation": "Installation", "tigerastatus": "TigeraStatus",
    "clusterroles": "ClusterRole", "clusterrolebindings": "ClusterRoleBinding",
    "network-attachment-definitions": "NetworkAttachmentDefinition", "net-attach-def": "NetworkAttachmentDefinition",
}  # fmt: skip
VALUE_FLAGS = {"-n", "--namespace", "-o", "--output", "-f", "--filename", "--kubeconfig", "--timeout", "--for",
               "-l", "--selector", "-p", "--patch", "--type", "--context", "--field-manager", "-c", "--container",
               "--request-timeout", "--raw", "--dry-run", "--validate", "--field-selector", "-k", "--kustomize",
               "--sort-by"}  # fmt: skip
BOOL = {"-A", "--all-namespaces", "--no-headers", "--all", "--server-side", "--force-conflicts", "--overwrite",
        "--client", "--show-labels", "-w", "--watch", "--wait", "--ignore-not-found", "--force", "--minify",
        "--flatten", "--raw-output", "-R", "--recursive", "--short", "--local", "-q"}  # fmt: skip


def parse(args: list[str]) -> tuple[dict, list[str]]:
    opts: dict = {"-f": []}
    pos: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        name, eq, value = a.partition("=")
        if a.startswith("-") and len(a) > 1:
            canon = {"--namespace": "-n", "--output": "-o", "--filename": "-f", "--selector": "-l", "--patch": "-p",
                     "--all-namespaces": "-A"}.get(name, name)  # fmt: skip
            if name in VALUE_FLAGS:
                if not eq:
                    if i + 1 >= len(args):
                        raise Fail(f"error: flag needs an argument: {a}")
                    i += 1
                    value = args[i]
                if canon == "-f":
                    opts["-f"].append(value)
                else:
                    opts[canon] = value
            elif a in BOOL or name in BOOL:
                opts[canon] = True
            elif re.fullmatch(r"-n\S+", a):
                opts["-n"] = a[2:]
            elif re.fullmatch(r"-o\S+", a):
                opts["-o"] = a[2:]
            else:
                raise Fail(f"error: unknown flag: {name}\nSee 'kubectl --help' for usage.")
        else:
            pos.append(a)
        i += 1
    return opts, pos


def kubeconfig_path(opts: dict) -> str | None:
    if opts.get("--kubeconfig"):
        return opts["--kubeconfig"]
    env = os.environ.get("KUBECONFIG")
    if env:
        for p in env.split(":"):
            if p and os.path.exists(p):
                return p
        return None
    home = os.path.expanduser("~/.kube/config")
    return home if os.path.exists(home) else None


def client(opts: dict) -> Client:
    path = kubeconfig_path(opts)
    if not path:
        raise Fail('E0000 memcache.go:265] couldn\'t get current server API group list: Get "http://localhost:8080/api?timeout=32s": '
                   "dial tcp [::1]:8080: connect: connection refused\nThe connection to the server localhost:8080 was "
                   "refused - did you specify the right host or port?")  # fmt: skip
    try:
        return Client.from_kubeconfig(path)
    except PermissionError:
        raise Fail(
            f'error: error loading config file "{path}": open {path}: permission denied'
        ) from None
    except ApiError as e:
        raise Fail(e.message) from None
    except (yaml.YAMLError, KeyError, StopIteration, TypeError):
        raise Fail(
            f'error: error loading config file "{path}": couldn\'t get version/kind; json parse error'
        ) from None


def request(c: Client, method: str, path: str, body: dict | None = None) -> dict:
    try:
        return c.request(method, path, body)
    except ApiError as e:
        raise Fail(e.message) from None


def main(call: Call) -> int:
    opts, pos = parse(call.args)
    if not pos:
        out("kubectl controls the Kubernetes cluster manager.")
        return 0
    verb, rest = pos[0], pos[1:]
    handlers = {"apply": cmd_apply, "create": cmd_apply, "delete": cmd_apply, "replace": cmd_apply, "get": cmd_get,
                "wait": cmd_wait, "rollout": cmd_rollout, "taint": cmd_taint, "label": cmd_label, "patch": cmd_patch,
                "set": cmd_set, "version": cmd_version, "cluster-info": cmd_cluster_info, "config": cmd_config,
                "describe": cmd_get}  # fmt: skip
    if verb not in handlers:
        raise Fail(f'error: unknown command "{verb}" for "kubectl"\n\nDid you mean this?\n\tget')
    return handlers[verb](call, verb, opts, rest)


# --- apply / create / delete -----------------------------------------------------


def read_manifests(call: Call, sources: list[str], recursive: bool) -> list[tuple[str, list[dict]]]:
    result = []
    for src in sources:
        if src == "-":
            text = call.read_stdin()
        elif re.match(r"https?://", src):
            try:
                resp = fetch.get(src)
            except fetch.UnknownHost as e:
                raise Fail(f'error: unable to read URL "{src}", server reported Get "{src}": dial tcp: lookup {e} on '
                           "127.0.0.53:53: server misbehaving, status code=0") from None  # fmt: skip
            if resp.status != 200:
                raise Fail(
                    f'error: unable to read URL "{src}", server reported {resp.status} Not Found, status code={resp.status}'
                )
            text = resp.body.decode()
        elif os.path.isdir(src):
            files = sorted(p for p in (Path(src).rglob("*") if recursive else Path(src).iterdir())
                           if p.suffix in (".yaml", ".yml", ".json"))  # fmt: skip
            result += read_manifests(call, [str(p) for p in files], recursive)
            continue
        else:
            try:
                text = Path(src).read_text()
            except FileNotFoundError:
                raise Fail(f'error: the path "{src}" does not exist') from None
            except PermissionError:
                raise Fail(f"error: open {src}: permission denied") from None
        try:
            docs = [d for d in yaml.safe_load_all(text) if d]
        except yaml.YAMLError as e:
            raise Fail(
                f"error: error parsing {src}: error converting YAML to JSON: {e}".replace("\n", " ")
            ) from None
        objs = []
        for d in docs:
            if not isinstance(d, dict):
                raise Fail(f"error: error parsing {src}: json: cannot unmarshal string into Go value of type "
                           "map[string]interface {}")  # fmt: skip
            objs += d.get("items", []) if d.get("kind") == "List" else [d]
        result.append((src if src != "-" else "STDIN", objs))
    return result


def cmd_apply(call: Call, verb: str, opts: dict, rest: list[str]) -> int:
    if not opts["-f"]:
        if verb == "delete" and len(rest) >= 2:
            return _delete_named(opts, rest)
        raise Fail("error: must specify one of -f and -k" if verb != "create" else
                   "error: must specify one of -f and -k\n\nerror: unknown command \"" + (rest[0] if rest else "") + '"')  # fmt: skip
    ns = opts.get("-n")
    c = client(opts)
    code = 0
    for source, objs in read_manifests(call, opts["-f"], bool(opts.get("-R"))):
        for o in objs:
            if ns and isinstance(o.get("metadata"), dict):
                if o["metadata"].get("namespace") and o["metadata"]["namespace"] != ns:
                    raise Fail(f"error: the namespace from the provided object \"{o['metadata']['namespace']}\" does "
                               f'not match the namespace "{ns}". You must pass \'--namespace={o["metadata"]["namespace"]}\' '
                               "to perform this operation.")  # fmt: skip
                o["metadata"].setdefault("namespace", ns)
        resp = request(c, "POST", "/gimme-testbed/apply", {"mode": verb, "objects": objs, "source": source,
                                                            "server_side": bool(opts.get("--server-side"))})  # fmt: skip
        for ok, line in resp["results"]:
            if ok:
                out(
                    line.replace(" configured", " serverside-applied")
                    if opts.get("--server-side") and verb == "apply"
                    else line
                )
            elif verb == "delete" and opts.get("--ignore-not-found") and "NotFound" in line:
                continue
            else:
                core.err(line)
                code = 1
    return code


def _delete_named(opts: dict, rest: list[str]) -> int:
    c = client(opts)
    kind, obj = _one_object(c, opts, rest)
    resp = request(
        c, "POST", "/gimme-testbed/apply", {"mode": "delete", "objects": [obj], "source": "kubectl"}
    )
    ok, line = resp["results"][0]
    (out if ok else core.err)(line)
    return 0 if ok else 1


# --- get -----------------------------------------------------------------------


def age(ts: str) -> str:
    try:
        secs = max(0, int(time.time() - calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))))
    except (ValueError, TypeError):
        return "<unknown>"
    return f"{secs}s" if secs < 120 else f"{secs // 60}m" if secs < 7200 else f"{secs // 3600}h"


def fetch_objects(c: Client, kind: str, ns: str | None) -> list[dict]:
    if kind == "Node":
        return request(c, "GET", "/api/v1/nodes")["items"]
    q = f"?kind={kind}" + (f"&namespace={ns}" if ns else "")
    return request(c, "GET", f"/gimme-testbed/objects{q}")["items"]


def node_status(n: dict) -> str:
    ready = next((x for x in n["status"]["conditions"] if x["type"] == "Ready"), {})
    return "Ready" if ready.get("status") == "True" else "NotReady"


def node_roles(n: dict) -> str:
    roles = [
        k.split("/", 1)[1]
        for k in n["metadata"]["labels"]
        if k.startswith("node-role.kubernetes.io/")
    ]
    return ",".join(sorted(roles)) or "<none>"


def matches_selector(obj: dict, selector: str | None) -> bool:
    if not selector:
        return True
    labels = obj["metadata"].get("labels") or {}
    for term in selector.split(","):
        k, eq, v = term.partition("=")
        if eq and labels.get(k.rstrip("!")) != v.lstrip("="):
            return False
        if not eq and k not in labels:
            return False
    return True


def cmd_get(call: Call, verb: str, opts: dict, rest: list[str]) -> int:
    c = client(opts)
    if verb == "get" and opts.get("--raw"):
        raw = request(c, "GET", opts["--raw"])
        out(raw.get("text", json.dumps(raw)))
        return 0
    if not rest:
        raise Fail(
            'You must specify the type of resource to get. Use "kubectl api-resources" for a complete list of supported resources.'
        )
    names: list[str] = []
    res = rest[0]
    if "/" in res:
        res, name = res.split("/", 1)
        names = [name]
    names += rest[1:]
    kind = KINDS.get(res.lower()) or next(
        (k for k in KINDS.values() if k.lower() == res.lower().rstrip("s")), None
    )
    if not kind:
        raise Fail(f'error: the server doesn\'t have a resource type "{res}"')
    all_ns = bool(opts.get("-A"))
    ns = None if all_ns or kind in ("Node", "Namespace", "CustomResourceDefinition", "ClusterRole",
                                    "ClusterRoleBinding", "Installation") else opts.get("-n", "default")  # fmt: skip
    items = [o for o in fetch_objects(c, kind, ns) if matches_selector(o, opts.get("-l"))]
    if names:
        found = [o for o in items if o["metadata"]["name"] in names]
        missing = [n for n in names if n not in {o["metadata"]["name"] for o in found}]
        if missing:
            plural = (kind.lower() + "s") if kind != "Node" else "nodes"
            grp = {"DaemonSet": ".apps", "Deployment": ".apps"}.get(kind, "")
            raise Fail(f'Error from server (NotFound): {plural}{grp} "{missing[0]}" not found')
        items = found
    if verb == "describe":
        for o in items:
            out(f"Name:         {o['metadata']['name']}\n" + yaml.safe_dump(o, sort_keys=False))
        return 0
    fmt = opts.get("-o", "")
    single = (
        bool(names)
        and len(items) == 1
        and "/" not in rest[0]
        or (len(names) == 1 and len(items) == 1)
    )
    doc = (
        items[0]
        if single
        else {
            "apiVersion": "v1",
            "kind": "List",
            "items": items,
            "metadata": {"resourceVersion": ""},
        }
    )
    if fmt == "json":
        out(json.dumps(doc, indent=4))
    elif fmt == "yaml":
        out(yaml.safe_dump(doc, sort_keys=False).rstrip())
    elif fmt == "name":
        grp = {"DaemonSet": ".apps", "Deployment": ".apps"}.get(kind, "")
        for o in items:
            out(f"{kind.lower()}{grp}/{o['metadata']['name']}")
    elif fmt.startswith("jsonpath=") or fmt.startswith("jsonpath-as-json="):
        sys.stdout.write(jsonpath(fmt.split("=", 1)[1], doc))
    elif fmt.startswith("custom-columns="):
        cols = [col.split(":", 1) for col in fmt.split("=", 1)[1].split(",")]
        opts.get("--no-headers") or out("   ".join(h for h, _ in cols))
        for o in items:
            out("   ".join(jsonpath("{" + p + "}", o) or "<none>" for _, p in cols))
    elif fmt in ("", "wide"):
        _table(
            kind,
            items,
            fmt == "wide",
            all_ns,
            bool(opts.get("--no-headers")),
            opts.get("-n", "default"),
        )
    else:
        raise Fail(f"error: unable to match a printer suitable for the output format \"{fmt}\", allowed formats are: "
                   "custom-columns,custom-columns-file,go-template,go-template-file,json,jsonpath,jsonpath-as-json,"
                   "jsonpath-file,name,template,templatefile,wide,yaml")  # fmt: skip
    return 0


def _table(
    kind: str, items: list[dict], wide: bool, all_ns: bool, no_headers: bool, ns: str
) -> None:
    if not items:
        core.err(
            "No resources found" + ("" if all_ns or kind == "Node" else f" in {ns} namespace") + "."
        )
        return
    rows = []
    if kind == "Node":
        head = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"] + (
            ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]
            if wide
            else []
        )
        for n in items:
            row = [n["metadata"]["name"], node_status(n), node_roles(n), age(n["metadata"]["creationTimestamp"]),
                   n["status"]["nodeInfo"]["kubeletVersion"]]  # fmt: skip
            if wide:
                info = n["status"]["nodeInfo"]
                row += [n["status"]["addresses"][0]["address"], "<none>", info["osImage"], info["kernelVersion"],
                        info["containerRuntimeVersion"]]  # fmt: skip
            rows.append(row)
    elif kind == "Pod":
        head = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (["IP", "NODE"] if wide else [])
        for p in items:
            st = p["status"].get("_status", p["status"]["phase"])
            row = [p["metadata"]["name"], "1/1" if st == "Running" else "0/1", st,
                   "3 (10s ago)" if st == "CrashLoopBackOff" else "0", "1m"]  # fmt: skip
            if wide:
                row += [p["status"].get("podIP") or "<none>", p["spec"].get("nodeName") or "<none>"]
            rows.append(([p["metadata"]["namespace"]] if all_ns else []) + row)
        head = (["NAMESPACE"] if all_ns else []) + head
    else:
        head = (["NAMESPACE"] if all_ns else []) + ["NAME", "AGE"]
        for o in items:
            rows.append(([o["metadata"].get("namespace", "")] if all_ns else [])
                        + [o["metadata"]["name"], age(o["metadata"].get("creationTimestamp", ""))])  # fmt: skip
    table = ([head] if not no_headers else []) + rows
    widths = [max(len(str(r[i])) for r in table) for i in range(len(table[0]))]
    for r in table:
        out("   ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


# --- jsonpath ------------------------------------------------------------------


def _eval_path(path: str, data) -> list:
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    current = [data]
    tokens = re.findall(r"\.\.|\.[^.\[]+|\[[^\]]*\]", path)
    for tok in tokens:
        nxt = []
        for cur in current:
            if tok.startswith("[?(") and isinstance(cur, list):
                m = re.fullmatch(r"\[\?\(@\.([\w.-]+)\s*(==|!=)\s*['\"]?([^'\"]*)['\"]?\)\]", tok)
                if not m:
                    raise Fail(f"error: error parsing jsonpath {path}, unrecognized filter {tok}")
                for item in cur:
                    vals = _eval_path("." + m.group(1), item)
                    hit = any(str(v) == m.group(3) for v in vals)
                    if hit == (m.group(2) == "=="):
                        nxt.append(item)
            elif tok in ("[*]", ".*"):
                nxt += (
                    cur
                    if isinstance(cur, list)
                    else list(cur.values())
                    if isinstance(cur, dict)
                    else []
                )
            elif tok.startswith("[") and isinstance(cur, list):
                inner = tok[1:-1]
                if ":" in inner:
                    a, _, b = inner.partition(":")
                    nxt += cur[int(a) if a else None : int(b) if b else None]
                elif re.fullmatch(r"-?\d+", inner) and -len(cur) <= int(inner) < len(cur):
                    nxt.append(cur[int(inner)])
            elif tok.startswith("[") and isinstance(cur, dict):
                key = tok[1:-1].strip("'\"")
                if key in cur:
                    nxt.append(cur[key])
            elif tok.startswith(".") and isinstance(cur, dict):
                key = tok[1:]
                if key in cur:
                    nxt.append(cur[key])
        current = nxt
    return current


def _fmt(v) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def jsonpath(template: str, data) -> str:
    """A subset of kubectl's JSONPath: paths, [n], [*], filters, range/end, quoted literals."""
    template = template.strip("'")
    parts = re.split(r"(\{[^{}]*\})", template)
    result: list[str] = []

    def render(items: list[str], ctx, start: int) -> int:
        i = start
        while i < len(items):
            part = items[i]
            if part.startswith("{") and part.endswith("}"):
                expr = part[1:-1].strip()
                if expr.startswith("range "):
                    values = _eval_path(expr[6:], ctx)
                    depth, j = 1, i + 1
                    while j < len(items) and depth:
                        e = items[j][1:-1].strip() if items[j].startswith("{") else ""
                        depth += e.startswith("range ") - (e == "end")
                        j += 1
                    for v in values:
                        render(items[i + 1 : j - 1], v, 0)
                    i = j
                    continue
                if expr == "end":
                    return i
                if expr.startswith(('"', "'")):
                    result.append(expr[1:-1].encode().decode("unicode_escape"))
                else:
                    result.append(" ".join(_fmt(v) for v in _eval_path(expr, ctx)))
            else:
                result.append(part)
            i += 1
        return i

    render([p for p in parts if p], data, 0)
    return "".join(result)


# --- wait / rollout ------------------------------------------------------------


def _timeout(opts: dict, default: float) -> float:
    t = opts.get("--timeout")
    if not t:
        return default
    m = re.fullmatch(r"(\d+)(s|m|h)?", t)
    if not m:
        raise Fail(
            f'error: invalid argument "{t}" for "--timeout" flag: time: invalid duration "{t}"'
        )
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def cmd_wait(call: Call, verb: str, opts: dict, rest: list[str]) -> int:
    cond = opts.get("--for", "")
    m = re.fullmatch(r"condition=([\w-]+)(?:=(\w+))?", cond)
    if not m:
        raise Fail(f'error: unrecognized condition: "{cond}"')
    want_type, want = m.group(1).lower(), (m.group(2) or "true").lower()
    if not rest:
        raise Fail("error: resource(s) were provided, but no name was specified")
    res, names = rest[0], rest[1:]
    if "/" in res:
        res, n = res.split("/", 1)
        names = [n]
    kind = KINDS.get(res.lower())
    if kind not in ("Node", "Pod", "Deployment"):
        raise Fail(f'error: the server doesn\'t have a resource type "{res}"')
    if not names and not opts.get("--all") and not opts.get("-l"):
        raise Fail("error: resource(s) were provided, but no name was specified")
    c = client(opts)
    deadline = time.time() + _timeout(opts, 30)
    met: set[str] = set()
    while True:
        items = fetch_objects(c, kind, None if kind == "Node" else opts.get("-n", "default"))
        items = [
            o
            for o in items
            if (not names or o["metadata"]["name"] in names) and matches_selector(o, opts.get("-l"))
        ]
        if names and len(items) < len(names):
            missing = set(names) - {o["metadata"]["name"] for o in items}
            raise Fail(
                f'Error from server (NotFound): {kind.lower()}s "{sorted(missing)[0]}" not found'
            )
        if not items:
            raise Fail("error: no matching resources found")
        pending = []
        for o in items:
            if kind == "Node":
                ok = next(
                    (
                        x["status"].lower() == want
                        for x in o["status"]["conditions"]
                        if x["type"].lower() == want_type
                    ),
                    False,
                )
            elif kind == "Pod":
                ok = (o["status"].get("_status") == "Running") == (
                    want == "true"
                ) and want_type == "ready"
            else:
                ok = True
            name = f"{kind.lower()}/{o['metadata']['name']}"
            if ok and name not in met:
                met.add(name)
                out(f"{name} condition met")
            elif not ok:
                pending.append(o["metadata"]["name"])
        if not pending:
            return 0
        if time.time() > deadline:
            raise Fail(
                f"error: timed out waiting for the condition on {kind.lower()}s/{pending[0]}"
            )
        time.sleep(0.25)


def cmd_rollout(call: Call, verb: str, opts: dict, rest: list[str]) -> int:
    if len(rest) < 2 or rest[0] != "status":
        raise Fail(f'error: unknown command "{rest[0] if rest else ""}" for "kubectl rollout"' if rest and rest[0] != "status"
                   else "error: required resource not specified")  # fmt: skip
    target = rest[1] if "/" in rest[1] else f"{rest[1]}/{rest[2] if len(rest) > 2 else ''}"
    res, name = target.split("/", 1)
    kind = KINDS.get(res.lower())
    if kind not in ("DaemonSet", "Deployment"):
        raise Fail(f"error: no status viewer has been implemented for {res}")
    ns = opts.get("-n", "default")
    c = client(opts)
    deadline = time.time() + _timeout(opts, 3600)
    label = "daemon set" if kind == "DaemonSet" else "deployment"
    shown = None
    while True:
        st = request(c, "GET", f"/gimme-testbed/rollout?kind={kind}&name={name}&namespace={ns}")
        if not st:
            grp = "daemonsets.apps" if kind == "DaemonSet" else "deployments.apps"
            raise Fail(f'Error from server (NotFound): {grp} "{name}" not found')
        if st["ready"] >= st["desired"] and (st["desired"] or kind == "DaemonSet"):
            out(f'{label} "{name}" successfully rolled out')
            return 0
        msg = (f'Waiting for {label} "{name}" rollout to finish: {st["ready"]} of {st["desired"]} updated pods are available...'
               if kind == "DaemonSet" else f'Waiting for deployment "{name}" rollout to finish: {st["ready"]} of '
               f'{st["desired"]} updated replicas are available...')  # fmt: skip
        if msg != shown:
            out(msg)
            shown = msg
        if time.time() > deadline:
            raise Fail("error: timed out waiting for the condition")
        time.sleep(0.25)


# --- taint / label / patch / set ---------------------------------------------------


def _target_nodes(c: Client, opts: dict, rest: list[str]) -> tuple[list[str], list[str]]:
    if (
        not rest
        or rest[0] not in ("nodes", "node", "no")
        and not rest[0].startswith(("node/", "nodes/"))
    ):
        raise Fail('error: at least one resource name must be specified since \'all\' parameter is not set' if not rest
                   else f'error: resource type "{rest[0]}" is not supported here')  # fmt: skip
    if "/" in rest[0]:
        names, specs = [rest[0].split("/", 1)[1]], rest[1:]
    elif opts.get("--all"):
        names, specs = [n["metadata"]["name"] for n in fetch_objects(c, "Node", None)], rest[1:]
    else:
        names, specs = rest[1:2], rest[2:]
    if not names:
        raise Fail(
            "error: at least one resource name must be specified since 'all' parameter is not set"
        )
    return names, specs


def cmd_taint(call: Call, verb: str, opts: dict, rest: list[str]) -> int:
    c = client(opts)
    names, specs = _target_nodes(c, opts, rest)
    add, remove = [], []
    for s in specs:
        m = re.fullmatch(
            r"([\w./-]+?)(?:=([\w.-]*))?(?::(NoSchedule|PreferNoSchedule|NoExecute))?(-)?", s
        )
        if not m or (not m.group(4) and not m.group(3)):
            raise Fail(f"error: unknown taint spec: {s}")
        t = {"key": m.group(1), "effect": m.group(3) or ""}
        if m.group(2):
            t["value"] = m.group(2)
        (remove if m.group(4) else add).append(t)
    code = 0
    for n in names:
        try:
            c.request(
                "PATCH", f"/gimme-testbed/nodes/{n}", {"taints_add": add, "taints_remove": remove}
            )
            out(f"node/{n} {'untainted' if remove and not add else 'tainted'}")
        except ApiError as e:
            core.err(
                f"error: {e.message}"
                if "not found" in e.message and "taint" in e.message
                else e.message
            )
            code = 1
    return code


def cmd_label(call: Call, verb: str, opts: dict, rest: list[str]) -> int:
    c = client(opts)
    names, specs = _target_nodes(c, opts, rest)
    labels = {s.split("=", 1)[0]: s.split("=", 1)[1] for s in specs if "=" in s}
    removes = [s[:-1] for s in specs if s.endswith("-") and "=" not in s]
    for n in names:
        try:
            c.request("PATCH", f"/gimme-testbed/nodes/{n}",
                      {"labels": labels, "remove_labels": removes, "overwrite": bool(opts.get("--overwrite"))})  # fmt: skip
        except ApiError as e:
            raise Fail(f"error: {e.message}") from None
        out(f"node/{n} {'unlabeled' if removes and not labels else 'labeled'}")
    return 0


def _merge(base: dict, patch: dict) -> dict:
    for k, v in patch.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def _one_object(c: Client, opts: dict, rest: list[str]) -> tuple[str, dict]:
    target = rest[0] if rest and "/" in rest[0] else "/".join(rest[:2])
    res, _, name = target.partition("/")
    kind = KINDS.get(res.lower())
    if not kind or not name:
        raise Fail("error: you must specify the type of resource and its name")
    ns = opts.get("-n", "default")
    if kind == "Node":
        raise Fail("error: patching nodes is not supported in the test bed; use label/taint")
    obj = next((o for o in fetch_objects(c, kind, ns) if o["metadata"]["name"] == name), None)
    if not obj:
        grp = {"DaemonSet": "daemonsets.apps", "Deployment": "deployments.apps"}.get(
            kind, kind.lower() + "s"
        )
        raise Fail(f'Error from server (NotFound): {grp} "{name}" not found')
    return kind, obj


def cmd_patch(call: Call, verb: str, opts: dict, rest: list[str]) -> int:
    c = client(opts)
    kind, obj = _one_object(c, opts, rest)
    try:
        patch = (
            json.loads(opts.get("-p", ""))
            if opts.get("-p", "").strip().startswith(("{", "["))
            else yaml.safe_load(opts.get("-p", ""))
        )
    except (ValueError, yaml.YAMLError):
        raise Fail(
            'error: unable to parse "'
            + opts.get("-p", "")
            + '": yaml: did not find expected node content'
        ) from None
    if isinstance(patch, dict) and opts.get("--type", "strategic") in ("merge", "strategic"):
        _merge(obj, patch)
        request(
            c,
            "POST",
            "/gimme-testbed/apply",
            {"mode": "apply", "objects": [obj], "source": "patch"},
        )
    grp = ".apps" if kind in ("DaemonSet", "Deployment") else ""
    out(f"{kind.lower()}{grp}/{obj['metadata']['name']} patched")
    return 0


def cmd_set(call: Call, verb: str, opts: dict, rest: list[str]) -> int:
    if not rest or rest[0] not in ("env", "image"):
        raise Fail(f'error: unknown command "{rest[0] if rest else ""}" for "kubectl set"')
    c = client(opts)
    kind, obj = _one_object(c, opts, rest[1:])
    containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    for pair in rest[2:] if "/" in rest[1] else rest[3:]:
        k, _, v = pair.partition("=")
        for ctr in containers:
            if rest[0] == "env":
                env = [e for e in ctr.setdefault("env", []) if e.get("name") != k.rstrip("-")]
                if not k.endswith("-"):
                    env.append({"name": k, "value": v})
                ctr["env"] = env
            elif ctr.get("name") == k:
                ctr["image"] = v
    request(c, "POST", "/gimme-testbed/apply", {"mode": "apply", "objects": [obj], "source": "set"})
    grp = ".apps" if kind in ("DaemonSet", "Deployment") else ""
    out(
        f"{kind.lower()}{grp}/{obj['metadata']['name']} {'env' if rest[0] == 'env' else 'image'} updated"
    )
    return 0


# --- version / cluster-info / config --------------------------------------------


def cmd_version(call: Call, verb: str, opts: dict, rest: list[str]) -> int:
    v = call.version or "1.30.0"
    if opts.get("--short") and core.minor(v) >= 28:
        raise Fail("error: unknown flag: --short\nSee 'kubectl version --help' for usage.")
    info = {"clientVersion": {"major": "1", "minor": str(core.minor(v)), "gitVersion": f"v{v}", "platform": "linux/amd64"},
            "kustomizeVersion": "v5.4.2"}  # fmt: skip
    if not opts.get("--client"):
        info["serverVersion"] = request(client(opts), "GET", "/version")
    if opts.get("-o") == "json":
        out(json.dumps(info, indent=2))
    elif opts.get("-o") == "yaml":
        out(yaml.safe_dump(info).rstrip())
    else:
        out(f"Client Version: v{v}\nKustomize Version: v5.4.2")
        if "serverVersion" in info:
            out(f"Server Version: {info['serverVersion']['gitVersion']}")
    return 0


def cmd_cluster_info(call: Call, verb: str, opts: dict, rest: list[str]) -> int:
    c = client(opts)
    request(c, "GET", "/version")
    out(f"Kubernetes control plane is running at {c.server}\nCoreDNS is running at {c.server}/api/v1/namespaces/"
        "kube-system/services/kube-dns:dns/proxy\n\nTo further debug and diagnose cluster problems, use "
        "'kubectl cluster-info dump'.")  # fmt: skip
    return 0


def cmd_config(call: Call, verb: str, opts: dict, rest: list[str]) -> int:
    path = kubeconfig_path(opts)
    cfg = (
        yaml.safe_load(Path(path).read_text())
        if path
        else {"apiVersion": "v1", "kind": "Config", "clusters": None}
    )
    sub = rest[0] if rest else ""
    if sub == "current-context":
        if not cfg.get("current-context"):
            raise Fail("error: current-context is not set")
        out(cfg["current-context"])
        return 0
    if sub == "view":
        if not opts.get("--raw"):
            for u in cfg.get("users") or []:
                for k in list(u.get("user", {})):
                    if k.endswith("-data"):
                        u["user"][k] = "DATA+OMITTED" if k != "client-key-data" else "DATA+OMITTED"
            for cl in cfg.get("clusters") or []:
                if "certificate-authority-data" in cl.get("cluster", {}):
                    cl["cluster"]["certificate-authority-data"] = "DATA+OMITTED"
        fmt = opts.get("-o", "")
        if fmt.startswith("jsonpath="):
            sys.stdout.write(jsonpath(fmt.split("=", 1)[1], cfg))
        else:
            out(yaml.safe_dump(cfg, sort_keys=False).rstrip())
        return 0
    raise Fail(f'error: unknown command "{sub}" for "kubectl config"')
