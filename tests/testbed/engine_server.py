"""HTTP(S) transport of the fake engine.

A threading HTTP/1.1 server (keep-alive, like the Apache in front of a real engine) that
tracks its connections so `stop()` can close idle ones, a handler that logs every request
and applies the transport-level injected faults (slow, drop, http_500, http_503), and the
hand-off of /__testbed__/ paths to the control API.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .engine_api import Match, Reply, Request, RestApi
from .engine_state import Injections

CONTROL_PREFIX = "/__testbed__/"
REPLAY_WINDOW = 1.0  # seconds within which libcurl replays a request whose connection died


class RequestLog:
    """Thread-safe list of request records (see FakeEngine.requests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class EngineHTTPServer(ThreadingHTTPServer):
    """Serves one engine on 127.0.0.1 (random port), optionally over TLS."""

    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True

    def __init__(
        self,
        *,
        api: RestApi,
        injections: Injections,
        request_log: RequestLog,
        control: Callable[[str, str, bytes], Reply],
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(("127.0.0.1", 0), EngineRequestHandler)
        self.api, self.injections, self.request_log = api, injections, request_log
        self.control, self.ssl_context = control, ssl_context
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._replays: dict[tuple[str, str], float] = {}

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Runs in the connection's thread: TLS handshake there, then serve the connection."""
        conn = request
        try:
            if not self._track(None, conn):
                return
            # Headers and body go out in separate writes; without this, Nagle's algorithm
            # and the client's delayed ACK add 40 ms to every keep-alive response.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                request.settimeout(10)
                conn = self.ssl_context.wrap_socket(request, server_side=True)
                if not self._track(request, conn):
                    return
            self.RequestHandlerClass(conn, client_address, self)
        except OSError:  # includes ssl.SSLError: the client went away or failed the handshake
            pass
        finally:
            self._track(conn, None)
            conn.close()

    def _track(self, old: socket.socket | None, new: socket.socket | None) -> bool:
        """Replace `old` by `new` among the open connections; False once stopping."""
        with self._lock:
            if old is not None:
                self._connections.discard(old)
            if new is None or self.stopping.is_set():
                return False
            self._connections.add(new)
            return True

    def close_connections(self) -> None:
        """Shut down every open connection so idle keep-alive handlers return."""
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def expect_replay(self, method: str, path: str) -> None:
        with self._lock:
            self._replays[(method, path)] = time.monotonic() + REPLAY_WINDOW

    def is_replay(self, method: str, path: str) -> bool:
        with self._lock:
            deadline = self._replays.pop((method, path), None)
        return deadline is not None and deadline > time.monotonic()


class _Drop:
    """Marker: close the connection without a reply."""


DROP = _Drop()


class EngineRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Apache"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection is closed after this
    server: EngineHTTPServer

    def setup(self) -> None:
        super().setup()
        self.requests_on_connection = 0

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request log records what tests need."""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _handle(self) -> None:
        self.requests_on_connection += 1
        started = time.time()
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path.startswith(CONTROL_PREFIX):
            self._send(self.server.control(self.command, url.path, body))
            return

        api = self.server.api
        match = api.resolve(self.command, url.path)
        query = parse_qs(url.query, keep_blank_values=True)
        entry: dict[str, Any] = {
            "method": self.command,
            "path": url.path,
            "query": query,
            "status": None,
            "time": started,
            "kind": match.kind,
        }
        self.server.request_log.add(entry)  # in arrival order; the status is filled in below
        reply = self._injected_fault(match, url.path)
        if reply is DROP:
            self._drop(url.path)
            return
        if reply is None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = Request(self.command, url.path, query, headers, body)
            reply = api.respond(request, match)
        assert isinstance(reply, Reply)
        entry["status"] = reply.status
        self._send(reply)

    def _injected_fault(self, match: Match, path: str) -> Reply | _Drop | None:
        injections, kind = self.server.injections, match.kind or "unknown"
        slow = injections.take("slow", kind)
        if slow is not None:
            self.server.stopping.wait(float(slow.params["seconds"]))
        if self._is_replay(path) or injections.take("drop", kind) is not None:
            return DROP
        for fault in ("http_500", "http_503"):
            if injections.take(fault, kind) is not None:
                return self.server.api.injected_error(fault, match)
        return None

    def _is_replay(self, path: str) -> bool:
        """libcurl silently resends a request once when a reused connection died without a
        reply; a dropped request's replay is dropped too, so the client sees the failure."""
        return self.requests_on_connection == 1 and self.server.is_replay(self.command, path)

    def _drop(self, path: str) -> None:
        if self.requests_on_connection > 1:
            self.server.expect_replay(self.command, path)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
