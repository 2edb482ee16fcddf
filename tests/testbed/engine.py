"""A wire-faithful fake oVirt engine for tests, the demo and benchmarks.

`FakeEngine` serves the engine's REST API (v4, XML) and SSO endpoints on 127.0.0.1 so
that the unmodified `ovirtsdk4` client can drive it, with VMs that go through the
engine's states over (scaled) time, boot emulated nodes through a `NodePool`, report
IPs through a guest agent, and fail on demand (`inject`). Modules:

- engine_inventory: data centers, clusters, templates (with the guest OS they carry)
- engine_state: VMs and their timed life cycle, tags, tokens, fault injection
- engine_api: routing tables, handlers, XML representations, SSO
- engine_search: the `?search=` language
- engine_server: HTTP(S) transport, request log, transport-level faults
- engine_tls: the CA and server certificate

Control API (JSON, no auth), mirroring the Python methods: GET /__testbed__/state,
GET /__testbed__/requests, POST /__testbed__/clear, POST /__testbed__/delay_scale
{"scale": x}, POST /__testbed__/inject {"kind": k, "count": n, ...params},
POST /__testbed__/expire_tokens.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import ovirtsdk4

from .engine_api import API, REQUEST_KINDS, Reply, RestApi
from .engine_inventory import (
    BLANK_TEMPLATE_ID,
    ClusterDef,
    DataCenterDef,
    Inventory,
    TemplateDef,
)
from .engine_server import CONTROL_PREFIX, EngineHTTPServer, RequestLog
from .engine_state import Delays, EngineState
from .engine_tls import write_ca_and_server_cert

__all__ = [
    "BLANK_TEMPLATE_ID",
    "ClusterDef",
    "DataCenterDef",
    "Delays",
    "FakeEngine",
    "Inventory",
    "NodePool",
    "TemplateDef",
]


class NodePool(Protocol):
    """Boots and stops the emulated machine behind a VM (implemented in testbed.nodes)."""

    def start_node(
        self,
        vm_id: str,
        *,
        hostname: str,
        user: str,
        authorized_keys: str,
        os_release: dict[str, str],
        custom_script: str | None,
    ) -> str:
        """Start the node; return its IPv4 (127.0.10.N) once sshd listens."""
        ...

    def stop_node(self, vm_id: str) -> None:
        """Stop the node; a no-op when it is not running."""
        ...


class FakeEngine:
    """A fake oVirt engine on 127.0.0.1; use as a context manager or start()/stop().

    Args:
        workdir: where the CA (`ca_file`) and the server certificate are written.
        tls: serve https (certificate for 127.0.0.1 and localhost) or plain http.
        node_pool: boots a node when a VM comes up; without one the engine hands out
            127.0.10.N addresses itself and nothing listens there.
        delay_scale: multiplies every `Delays` value (tests use ~0.05).
        inventory: data centers, clusters, templates; `Inventory.default()` if None.
        password: the admin password; a random one when None.
        token_ttl: seconds an SSO token stays valid (None: until expire_tokens/logout).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        tls: bool = True,
        node_pool: NodePool | None = None,
        delay_scale: float = 1.0,
        delays: Delays | None = None,
        inventory: Inventory | None = None,
        username: str = "admin@internal",
        password: str | None = None,
        token_ttl: float | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.tls = tls
        self.inventory = inventory if inventory is not None else Inventory.default()
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(18)
        self.ca_file = self.workdir / "ca.pem"
        self.url = ""
        self._state = EngineState(
            node_pool=node_pool,
            delays=delays or Delays(),
            delay_scale=delay_scale,
            token_ttl=token_ttl,
        )
        self._api = RestApi(
            self._state, self.inventory, username=self.username, password=self.password
        )
        self._log = RequestLog()
        self._server: EngineHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle

    def start(self) -> FakeEngine:
        """Write the CA and certificate, bind a free port and serve; returns self."""
        _, cert_file, key_file = write_ca_and_server_cert(self.workdir)
        context = None
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(cert_file, key_file)
        self._server = EngineHTTPServer(
            api=self._api,
            injections=self._state.injections,
            request_log=self._log,
            control=self._control,
            ssl_context=context,
        )
        port = self._server.server_address[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}{API}"
        self._state.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-engine-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close connections, join all threads and stop every node."""
        server, self._server = self._server, None
        if server is not None:
            server.stopping.set()
            server.shutdown()
            server.close_connections()
            server.server_close()
            assert self._thread is not None
            self._thread.join()
        self._state.close()

    def __enter__(self) -> FakeEngine:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def connection(self, **overrides: Any) -> ovirtsdk4.Connection:
        """An SDK connection to this engine; keyword arguments override the defaults."""
        params: dict[str, Any] = {
            "url": self.url,
            "username": self.username,
            "password": self.password,
            "ca_file": str(self.ca_file),
        }
        params.update(overrides)
        return ovirtsdk4.Connection(**params)

    # -- control

    def requests(self) -> list[dict[str, Any]]:
        """The request log, oldest first, without /__testbed__/ calls. Each entry:
        method, path, query (dict of value lists, as urllib.parse.parse_qs gives),
        status (None when the connection was dropped), time (epoch seconds at arrival)
        and kind (the request kind used by `inject(match=...)`, None for unknown paths)."""
        return self._log.entries()

    def mutating_requests(self) -> list[dict[str, Any]]:
        """POST/PUT/DELETE requests under /ovirt-engine/api (so no SSO)."""
        return [
            e
            for e in self.requests()
            if e["method"] in ("POST", "PUT", "DELETE") and e["path"].startswith(API)
        ]

    def clear_log(self) -> None:
        self._log.clear()

    def inject(self, kind: str, *, count: int = 1, **params: Any) -> None:
        """Arm a fault for the next `count` matching occasions.

        Kinds (each reply as seen by the SDK):
          http_500     500 <fault>, detail "[Internal Engine Error]" (SSO: JSON server_error)
          http_503     503 HTML page from "the proxy" (the SDK raises on the content type)
          drop         connection closed without a reply (also libcurl's silent replay)
          slow         seconds= of extra latency before the request is handled
          capacity     add_vm/start: 409 "no host satisfies scheduling constraints"
                       (host=, available_mb=); quota=True: 409 "Quota has insufficient
                       cluster resources" instead
          no_ip        the next `count` VMs named like vm_name= (glob, default all) to boot
                       lose their guest agent for good: reported devices stay empty
          start_fails  start of a VM named like vm_name=: 409 like capacity, or with
                       crash=True the VM comes up and crashes to down after= seconds
                       (default: half the scaled ip_report delay, so no IP shows)
        `match=` restricts http_500/http_503/drop/slow/capacity to one request kind
        (add_vm, start, stop, remove, get_vm, list_vms, add_tag, reported_devices, sso,
        ... see engine_api.API_ROUTES); default "any".
        """
        match = params.pop("match", "any")
        if match != "any" and match not in REQUEST_KINDS:
            raise ValueError(f"unknown request kind {match!r}; known: {sorted(REQUEST_KINDS)}")
        self._state.injections.arm(kind, count, match, **params)

    @property
    def delay_scale(self) -> float:
        return self._state.delay_scale

    def set_delay_scale(self, scale: float) -> None:
        """Scale the delays of transitions that start from now on."""
        if scale < 0:
            raise ValueError("scale must be >= 0")
        with self._state.locked():
            self._state.delay_scale = scale

    def vms(self) -> list[dict[str, Any]]:
        """Snapshot of every VM, sorted by name: id, name, status, tags, description,
        comment, ip (the IPv4 the guest agent reports now, or None), cluster, template,
        template_version, initialization (stored: user_name, host_name,
        authorized_ssh_keys, custom_script; or None), boot (what the node was started
        with: hostname, user, authorized_keys, os_release, custom_script; or None),
        node_error (why start_node failed, or None)."""
        with self._state.locked():
            return self._state.snapshot()

    def expire_tokens(self) -> None:
        """Invalidate every issued token: the next API call gets 401 (the SDK re-logs in)."""
        self._state.expire_tokens()

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        name = path[len(CONTROL_PREFIX) :]
        try:
            data = json.loads(body) if body.strip() else {}
            if (method, name) == ("GET", "state"):
                with self._state.locked():
                    tags = [
                        {"id": t.id, "name": t.name, "description": t.description}
                        for t in self._state.tags.values()
                    ]
                return Reply.json(
                    200,
                    {"vms": self.vms(), "tags": tags, "tokens": self._state.token_count()},
                )
            if (method, name) == ("GET", "requests"):
                return Reply.json(200, self.requests())
            if (method, name) == ("POST", "clear"):
                self.clear_log()
            elif (method, name) == ("POST", "delay_scale"):
                self.set_delay_scale(float(data["scale"]))
            elif (method, name) == ("POST", "inject"):
                self.inject(data.pop("kind"), count=int(data.pop("count", 1)), **data)
            elif (method, name) == ("POST", "expire_tokens"):
                self.expire_tokens()
            else:
                return Reply.json(404, {"error": f"no control operation {method} {name}"})
        except (ValueError, TypeError, KeyError) as exc:
            return Reply.json(400, {"error": f"{type(exc).__name__}: {exc}"})
        return Reply.json(200, {"ok": True})
