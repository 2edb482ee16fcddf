"""REST surface of the fake engine: routing tables, handlers and XML representations.

Representations are ovirtsdk4 `types` objects written with the SDK's own `Writer`, and
request bodies are parsed with its `Reader`, so the XML is what the SDK expects. Every
object and nested reference carries an `href` under /ovirt-engine/api, as the SDK's
`follow_link` needs. Handlers run under the state lock, after due transitions fired.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import ovirtsdk4
from ovirtsdk4 import types
from ovirtsdk4.reader import Reader
from ovirtsdk4.writer import Writer

from .engine_inventory import (
    BLANK_TEMPLATE_ID,
    ClusterDef,
    GiB,
    Inventory,
    TemplateDef,
    stable_id,
)
from .engine_search import ID, TEXT, Field, FieldValue, SearchError, parse_search
from .engine_state import (
    INTERNAL_ERROR,
    ROOT_TAG_ID,
    EngineFault,
    EngineState,
    TagRecord,
    VmRecord,
    link_local_for,
    merge_initialization,
    refuse,
)

log = logging.getLogger(__name__)

API = "/ovirt-engine/api"
SSO_TOKEN_PATH = "/ovirt-engine/sso/oauth/token"
SSO_LOGOUT_PATH = "/ovirt-engine/services/sso-logout"
XML = "application/xml;charset=UTF-8"
JSON = "application/json"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
PROXY_503_PAGE = b"""<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>503 Service Unavailable</title>
</head><body>
<h1>Service Unavailable</h1>
<p>The server is temporarily unable to service your
request due to maintenance downtime or capacity
problems. Please try again later.</p>
</body></html>
"""
HOST_ID, NETWORK_ID = stable_id("host", "h1"), stable_id("network", "ovirtmgmt")
STORAGE_DOMAIN_ID, VNIC_PROFILE_ID = stable_id("storage", "data1"), stable_id("vnic", "ovirtmgmt")
TEMPLATE_TIME = datetime.datetime(2024, 1, 15, 10, 0, tzinfo=datetime.UTC)
ON_HOST = frozenset({"powering_up", "up", "powering_down"})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # names in lower case
    body: bytes

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() == "true"


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def xml(
        cls, status: int, obj: Any, root: str | None = None, location: str | None = None
    ) -> Reply:
        text = XML_DECLARATION + Writer.write(obj, root=root, indent=True)
        headers = {"Location": location} if location else {}
        return cls(status, text.encode(), XML, headers)

    @classmethod
    def json(cls, status: int, data: object) -> Reply:
        return cls(status, json.dumps(data).encode(), JSON)


class Missing(Exception):
    """The addressed entity does not exist: 404 with an empty body, like the engine."""


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    kind: str
    handler: str
    fixed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    """What a request resolved to: `kind` is None for unknown paths (then status 404/405)."""

    kind: str | None
    status: int = 200
    handler: Callable[..., Reply] | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    needs_auth: bool = True


def _route(
    method: str, template: str, kind: str, handler: str | None = None, **fixed: str
) -> Route:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return Route(method, re.compile(regex + "$"), kind, handler or kind, fixed)


# Paths below /ovirt-engine/api. The kind names the request in logs and fault injection.
API_ROUTES = (
    _route("GET", "/?", "api_root"),
    _route("GET", "/datacenters", "list_datacenters", "list_static", collection="datacenters"),
    _route("GET", "/datacenters/{id}", "get_datacenter", "get_static", collection="datacenters"),
    _route("GET", "/clusters", "list_clusters", "list_static", collection="clusters"),
    _route("GET", "/clusters/{id}", "get_cluster", "get_static", collection="clusters"),
    _route("GET", "/templates", "list_templates", "list_static", collection="templates"),
    _route("GET", "/templates/{id}", "get_template", "get_static", collection="templates"),
    _route("GET", "/hosts", "list_hosts", "list_static", collection="hosts"),
    _route("GET", "/hosts/{id}", "get_host", "get_static", collection="hosts"),
    _route(
        "GET", "/storagedomains", "list_storagedomains", "list_static", collection="storagedomains"
    ),
    _route(
        "GET",
        "/storagedomains/{id}",
        "get_storagedomain",
        "get_static",
        collection="storagedomains",
    ),
    _route("GET", "/networks", "list_networks", "list_static", collection="networks"),
    _route("GET", "/networks/{id}", "get_network", "get_static", collection="networks"),
    _route("GET", "/vnicprofiles", "list_vnicprofiles", "list_static", collection="vnicprofiles"),
    _route("GET", "/vnicprofiles/{id}", "get_vnicprofile", "get_static", collection="vnicprofiles"),
    _route("GET", "/vms", "list_vms"),
    _route("POST", "/vms", "add_vm"),
    _route("GET", "/vms/{vm}", "get_vm"),
    _route("PUT", "/vms/{vm}", "update_vm"),
    _route("DELETE", "/vms/{vm}", "remove"),
    _route("POST", "/vms/{vm}/start", "start"),
    _route("POST", "/vms/{vm}/stop", "stop", "power_off", action="stop"),
    _route("POST", "/vms/{vm}/shutdown", "shutdown", "power_off", action="shutdown"),
    _route("GET", "/vms/{vm}/reporteddevices", "reported_devices"),
    _route("GET", "/vms/{vm}/reporteddevices/{device}", "get_reported_device"),
    _route("GET", "/vms/{vm}/nics", "list_nics"),
    _route("GET", "/vms/{vm}/nics/{nic}", "get_nic"),
    _route("GET", "/vms/{vm}/nics/{nic}/reporteddevices", "reported_devices"),
    _route("GET", "/vms/{vm}/tags", "list_vm_tags"),
    _route("POST", "/vms/{vm}/tags", "assign_tag"),
    _route("GET", "/vms/{vm}/tags/{tag}", "get_vm_tag"),
    _route("DELETE", "/vms/{vm}/tags/{tag}", "unassign_tag"),
    _route("GET", "/tags", "list_tags"),
    _route("POST", "/tags", "add_tag"),
    _route("GET", "/tags/{tag}", "get_tag"),
    _route("DELETE", "/tags/{tag}", "remove_tag"),
)
SSO_ROUTES = (
    _route("POST", SSO_TOKEN_PATH, "sso", "sso_token"),
    _route("POST", SSO_LOGOUT_PATH, "sso_logout"),
)
REQUEST_KINDS = frozenset(r.kind for r in (*API_ROUTES, *SSO_ROUTES))

VM_STATUSES = frozenset(
    "unassigned down up poweringup paused migratingfrom migratingto unknown notresponding "
    "waitforlaunch rebootinprogress savingstate restoringstate suspended imageillegal "
    "imagelocked poweringdown".split()
)
VM_FIELDS: Mapping[str, Field] = {
    "name": TEXT,
    "id": ID,
    "status": Field("enum", VM_STATUSES),
    "description": TEXT,
    "comment": TEXT,
    "cluster": TEXT,
    "datacenter": TEXT,
    "tag": TEXT,
    "template.name": TEXT,
    "ip": TEXT,
    "fqdn": TEXT,
    "host": TEXT,
}
TEMPLATE_FIELDS: Mapping[str, Field] = {
    "name": TEXT,
    "id": ID,
    "status": Field("enum", frozenset({"ok", "locked", "illegal"})),
    "description": TEXT,
    "comment": TEXT,
    "datacenter": TEXT,
    "cluster": TEXT,
}
CLUSTER_FIELDS: Mapping[str, Field] = {
    "name": TEXT,
    "id": ID,
    "description": TEXT,
    "datacenter": TEXT,
}
DATACENTER_FIELDS: Mapping[str, Field] = {"name": TEXT, "id": ID, "status": TEXT}
HOST_FIELDS: Mapping[str, Field] = {
    "name": TEXT,
    "id": ID,
    "status": Field("enum", frozenset({"up", "maintenance", "down", "nonresponsive"})),
    "cluster": TEXT,
    "datacenter": TEXT,
}
STORAGE_FIELDS: Mapping[str, Field] = {"name": TEXT, "id": ID, "datacenter": TEXT}
NETWORK_FIELDS: Mapping[str, Field] = {"name": TEXT, "id": ID, "datacenter": TEXT}


def href(*parts: str) -> str:
    return "/".join((API, *parts))


def ref(cls: Callable[..., Any], *parts: str, **attrs: Any) -> Any:
    """A `types` object with id and href of the entity at API/parts."""
    obj = cls(id=parts[-1], **attrs)
    obj.href = href(*parts)
    return obj


def link(*parts: str) -> ovirtsdk4.List:
    """A link to a sub-collection (written as `<nics href="..."/>`)."""
    collection = ovirtsdk4.List()
    collection.href = href(*parts)
    return collection


def incomplete(entity: str, required: str, method: str) -> EngineFault:
    return EngineFault(400, f"{entity} [{required}] required for {method}", "Incomplete parameters")


def not_found(identifier: str) -> EngineFault:
    return EngineFault(404, f"Entity not found: {identifier}")


@dataclass
class _Static:
    """A read-only collection: XML root, search fields (None: no search), and
    (search record, object) pairs."""

    root: str
    fields: Mapping[str, Field] | None
    items: list[tuple[dict[str, FieldValue], Any]]


def static_collections(inv: Inventory) -> dict[str, _Static]:
    """Data centers, clusters, templates, and the single host, storage domain, network and
    vNIC profile (all in the first cluster's data center)."""
    dc_ids = {dc.name: dc.id for dc in inv.data_centers}
    home = inv.clusters[0]
    home_dc = ref(types.DataCenter, "datacenters", dc_ids[home.data_center])
    version = types.Version(major=4, minor=7)
    datacenters = [
        (
            {"name": dc.name, "id": dc.id, "status": "up"},
            ref(
                types.DataCenter,
                "datacenters",
                dc.id,
                name=dc.name,
                local=False,
                status=types.DataCenterStatus.UP,
                storage_format=types.StorageFormat.V5,
                version=version,
            ),
        )
        for dc in inv.data_centers
    ]
    clusters = [
        (
            {"name": c.name, "id": c.id, "datacenter": c.data_center},
            ref(
                types.Cluster,
                "clusters",
                c.id,
                name=c.name,
                cpu=types.Cpu(architecture=types.Architecture.X86_64, type="Intel Nehalem Family"),
                data_center=ref(types.DataCenter, "datacenters", dc_ids[c.data_center]),
                version=version,
            ),
        )
        for c in inv.clusters
    ]
    templates = [
        (
            {
                "name": t.name,
                "id": t.id,
                "status": "ok",
                "description": t.summary,
                "datacenter": t.data_center or None,  # Blank belongs to no data center
                "cluster": [c.name for c in inv.clusters if c.data_center == t.data_center],
            },
            _template(t, inv),
        )
        for t in inv.all_templates()
    ]
    host = ref(
        types.Host,
        "hosts",
        HOST_ID,
        name="h1",
        address="127.0.0.1",
        status=types.HostStatus.UP,
        memory=64 * GiB,
        cluster=ref(types.Cluster, "clusters", home.id),
        type=types.HostType.RHEL,
    )
    storage = ref(
        types.StorageDomain,
        "storagedomains",
        STORAGE_DOMAIN_ID,
        name="data1",
        type=types.StorageDomainType.DATA,
        external_status=types.ExternalStatus.OK,
        master=True,
        available=900 * GiB,
        used=100 * GiB,
        committed=300 * GiB,
        storage=types.HostStorage(
            type=types.StorageType.NFS, address="127.0.0.1", path="/exports/data1"
        ),
        data_centers=[home_dc],
    )
    network = ref(
        types.Network,
        "networks",
        NETWORK_ID,
        name="ovirtmgmt",
        description="Management Network",
        data_center=home_dc,
    )
    profile = ref(
        types.VnicProfile,
        "vnicprofiles",
        VNIC_PROFILE_ID,
        name="ovirtmgmt",
        network=ref(types.Network, "networks", NETWORK_ID),
    )
    in_home = {"datacenter": home.data_center}
    return {
        "datacenters": _Static("data_centers", DATACENTER_FIELDS, datacenters),
        "clusters": _Static("clusters", CLUSTER_FIELDS, clusters),
        "templates": _Static("templates", TEMPLATE_FIELDS, templates),
        "hosts": _Static(
            "hosts",
            HOST_FIELDS,
            [
                (
                    {"name": "h1", "id": HOST_ID, "status": "up", "cluster": home.name, **in_home},
                    host,
                )
            ],
        ),
        "storagedomains": _Static(
            "storage_domains",
            STORAGE_FIELDS,
            [({"name": "data1", "id": STORAGE_DOMAIN_ID, **in_home}, storage)],
        ),
        "networks": _Static(
            "networks",
            NETWORK_FIELDS,
            [({"name": "ovirtmgmt", "id": NETWORK_ID, **in_home}, network)],
        ),
        "vnicprofiles": _Static("vnic_profiles", None, [({}, profile)]),
    }


def _template(t: TemplateDef, inv: Inventory) -> types.Template:
    base = min(
        (o for o in inv.all_templates() if (o.name, o.data_center) == (t.name, t.data_center)),
        key=lambda o: o.version,
    )
    # The cluster a template was made in: the first of its data center (Blank has none).
    origin = next((c for c in inv.clusters if c.data_center == t.data_center), None)
    return ref(
        types.Template,
        "templates",
        t.id,
        name=t.name,
        cluster=ref(types.Cluster, "clusters", origin.id) if origin else None,
        description=t.summary,
        status=types.TemplateStatus.OK,
        memory=t.memory,
        cpu=types.Cpu(topology=types.CpuTopology(sockets=1, cores=t.cpu_cores, threads=1)),
        os=types.OperatingSystem(type=t.os_type),
        type=types.VmType.SERVER,
        creation_time=TEMPLATE_TIME,
        version=types.TemplateVersion(
            version_number=t.version,
            version_name=None if t.version == 1 else f"v{t.version}",
            base_template=ref(types.Template, "templates", base.id),
        ),
    )


class RestApi:
    """Resolves requests to handlers and runs them against the engine state."""

    def __init__(
        self, state: EngineState, inventory: Inventory, *, username: str, password: str
    ) -> None:
        self.state, self.inventory = state, inventory
        self.username, self.password = username, password
        self._static = static_collections(inventory)

    # -- dispatch

    def resolve(self, method: str, path: str) -> Match:
        if path.startswith(API) and (path == API or path[len(API)] == "/"):
            routes, relative, needs_auth = API_ROUTES, path[len(API) :], True
        else:
            routes, relative, needs_auth = SSO_ROUTES, path, False
        allowed = []
        for route in routes:
            m = route.pattern.match(relative)
            if m is None:
                continue
            if route.method != method:
                allowed.append(route.method)
                continue
            handler = getattr(self, route.handler)
            return Match(route.kind, 200, handler, {**m.groupdict(), **route.fixed}, needs_auth)
        return Match(None, 405 if allowed else 404)

    def respond(self, request: Request, match: Match) -> Reply:
        if match.handler is None:
            return Reply(match.status)
        if match.needs_auth and not self._authenticated(request.headers):
            return Reply(401, headers={"WWW-Authenticate": 'Bearer realm="RESTAPI"'})
        try:
            with self.state.locked():
                return match.handler(request, **match.params)
        except Missing:
            return Reply(404)
        except EngineFault as fault:
            return Reply.xml(fault.status, types.Fault(reason=fault.reason, detail=fault.detail))
        except Exception as exc:  # a bug here: answer like the engine does, and say so
            log.exception("%s %s failed", request.method, request.path)
            return Reply.xml(500, types.Fault(reason="Operation Failed", detail=repr(exc)))

    def injected_error(self, kind: str, match: Match) -> Reply:
        """The reply of an injected http_500 / http_503 for a request resolved to `match`."""
        if kind == "http_503":
            return Reply(503, PROXY_503_PAGE, "text/html; charset=iso-8859-1")
        if not match.needs_auth:  # SSO
            return Reply.json(500, {"error_code": "server_error", "error": "Internal Engine Error"})
        return Reply.xml(500, types.Fault(reason="Operation Failed", detail=INTERNAL_ERROR))

    def _authenticated(self, headers: Mapping[str, str]) -> bool:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return self.state.token_valid(credentials.strip())
        if scheme.lower() == "basic":  # deprecated by the engine, still accepted
            try:
                user, _, password = base64.b64decode(credentials).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return self._credentials_ok(user, password)
        return False

    def _credentials_ok(self, user: str, password: str) -> bool:
        return secrets.compare_digest(
            user.encode(), self.username.encode()
        ) and secrets.compare_digest(password.encode(), self.password.encode())

    # -- SSO (JSON, like the engine's SSO servlets)

    def sso_token(self, request: Request) -> Reply:
        form = parse_qs(request.body.decode(errors="replace"), keep_blank_values=True)
        grant, scope, user, password = (
            form.get(k, [""])[-1] for k in ("grant_type", "scope", "username", "password")
        )
        scopes = scope.split()
        if "ovirt-app-api" not in scopes:
            return Reply.json(
                400,
                {
                    "error": "invalid_scope",
                    "error_description": f"The requested scope '[{', '.join(scopes)}]' is invalid, "
                    "unknown, malformed, or exceeds the scope granted by the resource owner.",
                },
            )
        if grant != "password":
            message = "The authorization grant type is not supported by the authorization server."
            return Reply.json(400, {"error_code": "unsupported_grant_type", "error": message})
        if not self._credentials_ok(user, password):
            principal = user if "@" in user else f"{user}@N/A"
            message = (
                f"Cannot authenticate user '{principal}': The username or password is incorrect.."
            )
            return Reply.json(400, {"error_code": "access_denied", "error": message})
        token = self.state.issue_token()
        ttl = self.state.token_ttl
        expires_ms = int((time.time() + (ttl if ttl is not None else 10 * 365 * 86400)) * 1000)
        return Reply.json(
            200,
            {"access_token": token, "scope": scope, "exp": str(expires_ms), "token_type": "bearer"},
        )

    def sso_logout(self, request: Request) -> Reply:
        form = parse_qs(request.body.decode(errors="replace"))
        for token in form.get("token", []):
            self.state.revoke_token(token)
        return Reply.json(200, {})

    # -- parsing

    def _body(self, request: Request, expected: type) -> Any:
        try:
            obj = Reader.read(request.body) if request.body.strip() else None
        except Exception as exc:  # the SDK's reader raises bare Exception on malformed XML
            raise EngineFault(400, str(exc), "Request syntactically incorrect.") from exc
        if not isinstance(obj, expected):
            raise EngineFault(
                400, f"Expected a <{expected.__name__.lower()}> document", "Bad request"
            )
        return obj

    def _max(self, request: Request) -> int | None:
        value = request.param("max")
        if value is None:
            return None
        if not re.fullmatch(r"-?[0-9]+", value):
            raise EngineFault(400, f"Value '{value}' of parameter 'max' is not a valid number.")
        return int(value)

    def _select(
        self,
        request: Request,
        items: list[Any],
        fields: Mapping[str, Field] | None = None,
        record: Callable[[Any], Mapping[str, FieldValue]] = lambda item: {},
    ) -> list[Any]:
        """Apply `search` (when `fields` allow it), `case_sensitive` and `max`."""
        text = request.param("search")
        max_results = self._max(request)
        if not text or fields is None:
            return items if max_results is None or max_results < 0 else items[:max_results]
        case_sensitive = (request.param("case_sensitive") or "true").lower() != "false"
        try:
            search = parse_search(text, fields, case_sensitive=case_sensitive)
        except SearchError as exc:
            raise refuse(exc.code, status=400) from exc
        return search.apply(items, record, max_results)

    def _vm(self, vm_id: str) -> VmRecord:
        vm = self.state.vms.get(vm_id)
        if vm is None:
            raise Missing(vm_id)
        return vm

    # -- root and read-only collections

    def api_root(self, request: Request) -> Reply:
        vms = self.state.vms.values()
        item = types.ApiSummaryItem
        api = types.Api(
            product_info=types.ProductInfo(
                name="oVirt Engine",
                vendor="ovirt.org",
                version=types.Version(
                    major=4, minor=5, build=7, revision=0, full_version="4.5.7-1.el9"
                ),
            ),
            special_objects=types.SpecialObjects(
                blank_template=ref(types.Template, "templates", BLANK_TEMPLATE_ID),
                root_tag=ref(types.Tag, "tags", ROOT_TAG_ID),
            ),
            summary=types.ApiSummary(
                hosts=item(active=1, total=1),
                storage_domains=item(active=1, total=1),
                users=item(active=1, total=1),
                vms=item(active=sum(vm.status == "up" for vm in vms), total=len(vms)),
            ),
            time=datetime.datetime.now(datetime.UTC),
        )
        return Reply.xml(200, api)

    def list_static(self, request: Request, collection: str) -> Reply:
        static = self._static[collection]
        chosen = self._select(request, static.items, static.fields, lambda item: item[0])
        return Reply.xml(200, [obj for _, obj in chosen], root=static.root)

    def get_static(self, request: Request, collection: str, id: str) -> Reply:
        for _, obj in self._static[collection].items:
            if obj.id == id:
                return Reply.xml(200, obj)
        raise Missing(id)

    # -- VMs

    def list_vms(self, request: Request) -> Reply:
        vms = sorted(self.state.vms.values(), key=lambda vm: vm.name)
        chosen = self._select(request, vms, VM_FIELDS, self._vm_record)
        return Reply.xml(200, [self._vm_type(vm) for vm in chosen], root="vms")

    def get_vm(self, request: Request, vm: str) -> Reply:
        return Reply.xml(200, self._vm_type(self._vm(vm)))

    def add_vm(self, request: Request) -> Reply:
        body: types.Vm = self._body(request, types.Vm)
        if body.cluster is None or (body.cluster.id is None and body.cluster.name is None):
            raise incomplete("Vm", "cluster.id|name", "add")
        if body.name is None:
            raise incomplete("Vm", "name", "add")
        if body.template is None or (body.template.id is None and body.template.name is None):
            raise incomplete("Vm", "template.id|name", "add")
        cluster = self._cluster(body.cluster)
        template = self._template_for(body.template, cluster.data_center)
        vm = self.state.add_vm(
            name=body.name,
            cluster=cluster,
            template=template,
            clone=request.flag("clone"),
            description=body.description,
            comment=body.comment,
            memory=body.memory,
            cpu=body.cpu,
            initialization=body.initialization,
        )
        if vm.status == "down":  # nothing to copy: created synchronously
            return Reply.xml(201, self._vm_type(vm), location=href("vms", vm.id))
        return Reply.xml(202, self._vm_type(vm))

    def update_vm(self, request: Request, vm: str) -> Reply:
        record = self._vm(vm)
        body: types.Vm = self._body(request, types.Vm)
        self.state.update_vm(
            record, name=body.name, description=body.description, comment=body.comment
        )
        return Reply.xml(200, self._vm_type(record))

    def remove(self, request: Request, vm: str) -> Reply:
        self.state.remove_vm(
            self._vm(vm), force=request.flag("force"), detach_only=request.flag("detach_only")
        )
        if request.flag("async"):
            return Reply(202)
        return Reply.xml(200, types.Action(status="complete"))

    def start(self, request: Request, vm: str) -> Reply:
        record = self._vm(vm)
        action: types.Action = self._body(request, types.Action)
        if [action.use_cloud_init, action.use_sysprep, action.use_ignition].count(True) > 1:
            reason = "Cannot use multiple initialization tags simultaneously when running VM."
            return Reply.xml(409, types.Fault(reason=reason))
        if action.use_cloud_init is False:
            initialization = None
        else:
            run_once = action.vm.initialization if action.vm is not None else None
            initialization = merge_initialization(record.initialization, run_once)
        return self._act(action, lambda: self.state.start_vm(record, initialization))

    def power_off(self, request: Request, vm: str, action: str) -> Reply:
        record = self._vm(vm)
        body: types.Action = self._body(request, types.Action)
        return self._act(body, lambda: self.state.stop_vm(record, action))

    def _act(self, action: types.Action, run: Callable[[], None]) -> Reply:
        """Run an action; the engine echoes the action, with a fault when it failed."""
        try:
            run()
        except EngineFault as fault:
            action.status = "failed"
            action.fault = types.Fault(reason=fault.reason, detail=fault.detail)
            return Reply.xml(fault.status, action)
        action.status = "complete"
        return Reply.xml(200, action)

    def reported_devices(self, request: Request, vm: str, nic: str | None = None) -> Reply:
        """What the guest agent reports: lo and eth0 (only eth0 below the NIC)."""
        record = self._vm(vm)
        if nic is not None and nic != self._nic_id(record):
            raise Missing(nic)
        devices = self._devices(record)
        if nic is not None:
            devices = [d for d in devices if d.mac.address == record.mac]
        return Reply.xml(200, devices, root="reported_devices")

    def get_reported_device(self, request: Request, vm: str, device: str) -> Reply:
        found = [d for d in self._devices(self._vm(vm)) if d.id == device]
        if not found:
            raise Missing(device)
        return Reply.xml(200, found[0])

    def _devices(self, vm: VmRecord) -> list[types.ReportedDevice]:
        ipv4 = self.state.reported_ipv4(vm)
        if ipv4 is None:
            return []
        return [
            self._device(vm, "lo", "00:00:00:00:00:00", ["127.0.0.1", "::1"]),
            self._device(vm, "eth0", vm.mac, [ipv4, link_local_for(vm.mac)]),
        ]

    def list_nics(self, request: Request, vm: str) -> Reply:
        return Reply.xml(200, [self._nic(self._vm(vm))], root="nics")

    def get_nic(self, request: Request, vm: str, nic: str) -> Reply:
        record = self._vm(vm)
        if nic != self._nic_id(record):
            raise Missing(nic)
        return Reply.xml(200, self._nic(record))

    def _cluster(self, cluster_ref: types.Cluster) -> ClusterDef:
        if cluster_ref.id is not None:
            found = [c for c in self.inventory.clusters if c.id == cluster_ref.id]
            identifier = "GetClusterById"
        else:
            found = [c for c in self.inventory.clusters if c.name == cluster_ref.name]
            identifier = f"Cluster: name={cluster_ref.name}"
        if not found:
            raise not_found(identifier)
        return found[0]

    def _template_for(self, template_ref: types.Template, data_center: str) -> TemplateDef:
        """By id, or by name: the highest version in the cluster's data center (as the engine)."""
        templates = self.inventory.all_templates()
        if template_ref.id is not None:
            found = [t for t in templates if t.id == template_ref.id]
            if found and found[0].data_center not in ("", data_center):
                raise refuse("Cannot add VM. The relevant Template doesn't exist.", status=400)
        else:
            found = sorted(
                (
                    t
                    for t in templates
                    if t.name == template_ref.name and t.data_center in ("", data_center)
                ),
                key=lambda t: -t.version,
            )
        if not found:
            raise not_found("GetVmTemplate")
        return found[0]

    def _vm_record(self, vm: VmRecord) -> dict[str, FieldValue]:
        ipv4 = self.state.reported_ipv4(vm)
        return {
            "name": vm.name,
            "id": vm.id,
            "status": vm.status.replace("_", ""),
            "description": vm.description,
            "comment": vm.comment,
            "cluster": vm.cluster.name,
            "datacenter": vm.cluster.data_center,
            "tag": [self.state.tags[t].name for t in vm.tags],
            "template.name": vm.template.name,
            "ip": ipv4,
            "fqdn": _fqdn(vm, ipv4),
            "host": "h1" if vm.status in ON_HOST else None,
        }

    def _vm_type(self, vm: VmRecord) -> types.Vm:
        return ref(
            types.Vm,
            "vms",
            vm.id,
            name=vm.name,
            description=vm.description,
            comment=vm.comment,
            status=types.VmStatus(vm.status),
            type=types.VmType.SERVER,
            memory=vm.memory,
            cpu=vm.cpu,
            os=types.OperatingSystem(type=vm.template.os_type),
            creation_time=vm.creation_time,
            start_time=vm.start_time,
            stop_time=vm.stop_time,
            initialization=vm.initialization,
            fqdn=_fqdn(vm, self.state.reported_ipv4(vm)),
            cluster=ref(types.Cluster, "clusters", vm.cluster.id),
            template=ref(types.Template, "templates", vm.template.id),
            original_template=ref(types.Template, "templates", vm.template.id),
            host=ref(types.Host, "hosts", HOST_ID) if vm.status in ON_HOST else None,
            nics=link("vms", vm.id, "nics"),
            reported_devices=link("vms", vm.id, "reporteddevices"),
            tags=link("vms", vm.id, "tags"),
        )

    def _nic_id(self, vm: VmRecord) -> str:
        return stable_id("nic", vm.id)

    def _nic(self, vm: VmRecord) -> types.Nic:
        nic_id = self._nic_id(vm)
        return ref(
            types.Nic,
            "vms",
            vm.id,
            "nics",
            nic_id,
            name="nic1",
            interface=types.NicInterface.VIRTIO,
            linked=True,
            plugged=True,
            mac=types.Mac(address=vm.mac),
            vnic_profile=ref(types.VnicProfile, "vnicprofiles", VNIC_PROFILE_ID),
            vm=ref(types.Vm, "vms", vm.id),
            reported_devices=link("vms", vm.id, "nics", nic_id, "reporteddevices"),
        )

    def _device(
        self, vm: VmRecord, name: str, mac: str, addresses: list[str]
    ) -> types.ReportedDevice:
        return ref(
            types.ReportedDevice,
            "vms",
            vm.id,
            "reporteddevices",
            stable_id("reported", vm.id, name),
            name=name,
            type=types.ReportedDeviceType.NETWORK,
            mac=types.Mac(address=mac),
            ips=[
                types.Ip(address=a, version=types.IpVersion.V6 if ":" in a else types.IpVersion.V4)
                for a in addresses
            ],
            vm=ref(types.Vm, "vms", vm.id),
        )

    # -- tags

    def list_tags(self, request: Request) -> Reply:
        tags = sorted(self.state.tags.values(), key=lambda t: t.name)
        return Reply.xml(200, [self._tag_type(t) for t in self._select(request, tags)], root="tags")

    def get_tag(self, request: Request, tag: str) -> Reply:
        return Reply.xml(200, self._tag_type(self._tag(tag)))

    def add_tag(self, request: Request) -> Reply:
        body: types.Tag = self._body(request, types.Tag)
        if not body.name:
            raise incomplete("Tag", "name", "add")
        parent = ROOT_TAG_ID
        if body.parent is not None and (body.parent.id or body.parent.name):
            parent = self._tag_by_ref(body.parent).id
        tag = self.state.add_tag(body.name, body.description, parent)
        return Reply.xml(201, self._tag_type(tag), location=href("tags", tag.id))

    def remove_tag(self, request: Request, tag: str) -> Reply:
        self.state.remove_tag(self._tag(tag).id)
        return Reply.xml(200, types.Action(status="complete"))

    def list_vm_tags(self, request: Request, vm: str) -> Reply:
        record = self._vm(vm)
        tags = sorted((self.state.tags[t] for t in record.tags), key=lambda t: t.name)
        return Reply.xml(200, [self._tag_type(t, record) for t in tags], root="tags")

    def assign_tag(self, request: Request, vm: str) -> Reply:
        record = self._vm(vm)
        body: types.Tag = self._body(request, types.Tag)
        if not (body.id or body.name):
            raise incomplete("Tag", "id|name", "add")
        tag = self._tag_by_ref(body)
        record.tags.add(tag.id)
        return Reply.xml(201, self._tag_type(tag, record), location=href("vms", vm, "tags", tag.id))

    def get_vm_tag(self, request: Request, vm: str, tag: str) -> Reply:
        record = self._vm(vm)
        if tag not in record.tags:
            raise Missing(tag)
        return Reply.xml(200, self._tag_type(self.state.tags[tag], record))

    def unassign_tag(self, request: Request, vm: str, tag: str) -> Reply:
        record = self._vm(vm)
        if tag not in record.tags:
            raise Missing(tag)
        record.tags.discard(tag)
        return Reply.xml(200, types.Action(status="complete"))

    def _tag(self, tag_id: str) -> TagRecord:
        tag = self.state.tags.get(tag_id)
        if tag is None:
            raise Missing(tag_id)
        return tag

    def _tag_by_ref(self, tag_ref: types.Tag) -> TagRecord:
        if tag_ref.id:
            tag = self.state.tags.get(tag_ref.id)
            if tag is None:
                raise refuse("The specified Tag does not exist.", status=400)
            return tag
        tag = self.state.tag_by_name(tag_ref.name)
        if tag is None:
            raise not_found(tag_ref.name)
        return tag

    def _tag_type(self, tag: TagRecord, vm: VmRecord | None = None) -> types.Tag:
        parts = ("vms", vm.id, "tags", tag.id) if vm is not None else ("tags", tag.id)
        return ref(
            types.Tag,
            *parts,
            name=tag.name,
            description=tag.description,
            parent=ref(types.Tag, "tags", tag.parent) if tag.parent else None,
            vm=ref(types.Vm, "vms", vm.id) if vm is not None else None,
        )


def _fqdn(vm: VmRecord, reported_ipv4: str | None) -> str | None:
    """The guest agent reports the FQDN along with the addresses."""
    return vm.boot.hostname if reported_ipv4 is not None and vm.boot is not None else None
