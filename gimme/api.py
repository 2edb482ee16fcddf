"""`gimme serve`: the original service's REST API (/v0) on gimme's core.

Each request runs as the user its bearer token names, on the same state file and lock as the
CLI, so `gimme list` shows what the API made and `gimme reap` reaps it. Creates and deletes run
on bounded thread pools in the server; the record shows their progress and failures.
Only `gimme serve` imports this module, so no other command loads FastAPI.
"""

import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from gimme import __version__, core
from gimme.config import Settings, _check_private
from gimme.errors import (
    ConfigError,
    GimmeError,
    NotFoundError,
    NotOwnerError,
    SpecError,
    StateError,
    UsageError,
)
from gimme.spec import (
    MAX_COMMENT,
    MAX_NODES,
    MAX_TTL,
    MIN_NODES,
    RUNTIME_ALIASES,
    ClusterSpec,
    build_spec,
)
from gimme.store import CREATING, DELETED, DELETING, FAILED, READY, ClusterRecord, Store

log = logging.getLogger(__name__)

WORKERS = 4  # creates running at once, and deletes apart from them
ZERO_TTL = (
    "TTL 0 means delete now: there is nothing to create "
    "(POST /v0/clusters/{id}/prolong?ttl=0 deletes a cluster)"
)
# The original's values; its "crio" is gimme's "cri-o".
Runtime = Literal["containerd", "docker", "crio"]
NetworkAddon = Literal["calico", "flannel", "weave", "cilium", "kube-router", "antrea", "multus"]
_API_RUNTIME = {name: alias for alias, name in RUNTIME_ALIASES.items()}
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_HASH_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
_STATUS: dict[type[GimmeError], int] = {
    NotFoundError: 404,
    NotOwnerError: 403,
    SpecError: 422,
    ConfigError: 503,
    UsageError: 409,
    StateError: 503,
}


# -- tokens ---------------------------------------------------------------------------------


class Tokens:
    """API users and the SHA-256 of their tokens, from a YAML file only its owner may read.

    The file maps user names to `sha256:<hex digest of the token>`; the tokens themselves are
    never stored, logged or compared in variable time.
    """

    def __init__(self, digests: dict[str, bytes]) -> None:
        self._digests = digests

    @classmethod
    def load(cls, path: Path | None) -> "Tokens":
        if path is None:
            raise ConfigError(
                "gimme serve needs API tokens: set api_tokens_file in the config "
                "or GIMME_API_TOKENS_FILE"
            )
        try:
            _check_private(path, "holds API token hashes")
            data = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read API tokens file {path}: {exc.strerror}") from None
        except yaml.YAMLError:
            raise ConfigError(f"API tokens file {path} is not valid YAML") from None
        if not isinstance(data, dict) or not data:
            raise ConfigError(f"{path} must map user names to sha256:<hex> token hashes")
        digests: dict[str, bytes] = {}
        for user, value in data.items():
            match = _HASH_RE.match(str(value))
            if not isinstance(user, str) or not _USER_RE.match(user) or not match:
                raise ConfigError(
                    f"{path}: entry {str(user)[:64]!r} is not `user: sha256:<64 hex digits>`"
                )
            digests[user] = bytes.fromhex(match.group(1))
        if len(set(digests.values())) < len(digests):
            raise ConfigError(f"{path}: two users have the same token")
        return cls(digests)

    def user(self, token: str) -> str | None:
        """The user this token belongs to; every entry is compared, in constant time."""
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for user, expected in self._digests.items():
            if hmac.compare_digest(digest, expected):
                found = user
        return found


# -- background jobs ----------------------------------------------------------------------


class _Progress:
    """A core Reporter that keeps the running phase and each node's last step, for GET."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phase: str | None = None
        self._nodes: dict[str, str] = {}

    def phase(self, name: str) -> None:
        with self._lock:
            self._phase = name

    def node(self, node: str, message: str) -> None:
        with self._lock:
            self._nodes[node] = message

    def info(self, message: str) -> None:
        log.info("%s", message)

    def snapshot(self) -> tuple[str | None, dict[str, str]]:
        with self._lock:
            return self._phase, dict(self._nodes)


class Jobs:
    """Creates and deletes on bounded thread pools, off the request threads.

    While this server works on a record, or a job waits for a worker, the record's heartbeat
    is kept fresh so `gimme reap` does not take it for abandoned. A delete asked for while
    this server still creates the cluster runs as soon as the create ends.
    """

    def __init__(self, settings: Settings, workers: int) -> None:
        self._settings = settings
        self._creates = ThreadPoolExecutor(workers, thread_name_prefix="gimme-create")
        self._deletes = ThreadPoolExecutor(workers, thread_name_prefix="gimme-delete")
        self._lock = threading.Lock()
        self._progress: dict[str, _Progress] = {}  # every cluster with a job here
        self._queued: dict[str, Future[None]] = {}
        self._creating: set[str] = set()
        self._doomed: set[str] = set()
        self._stopped = threading.Event()
        threading.Thread(target=self._heartbeats, name="gimme-heartbeat", daemon=True).start()

    def progress(self, cluster_id: str) -> _Progress | None:
        with self._lock:
            return self._progress.get(cluster_id)

    def create(self, user: str, spec: ClusterSpec) -> ClusterRecord:
        """Insert the `creating` record and queue the build; returns at once."""
        progress = _Progress()
        ctx = core.Context(self._settings, reporter=progress, user=user)
        record = core.start_cluster(ctx, spec)
        with self._lock:
            self._progress[record.id] = progress
            self._creating.add(record.id)
            self._queued[record.id] = self._creates.submit(self._build, ctx, record)
        return record

    def delete(self, user: str, cluster_id: str) -> ClusterRecord:
        """Mark the cluster `deleting` and queue its deletion; deleting twice is fine."""
        ctx = core.Context(self._settings, user=user)
        record = _owned(ctx.store.get(cluster_id), user)
        if record.state == DELETED:
            return record
        progress = _Progress()
        with self._lock:
            if cluster_id in self._creating:
                self._doomed.add(cluster_id)
                return record
            if cluster_id in self._progress:
                return record
            self._progress[cluster_id] = progress
        try:
            record = ctx.store.update(cluster_id, _mark_deleting)
        except BaseException:
            self._forget(cluster_id)
            raise
        if record.state == DELETED:
            self._forget(cluster_id)
            return record
        ctx.reporter = progress
        with self._lock:
            self._queued[cluster_id] = self._deletes.submit(self._run_delete, ctx, cluster_id)
        return record

    def _build(self, ctx: core.Context, record: ClusterRecord) -> None:
        with self._lock:
            self._queued.pop(record.id, None)
            doomed = record.id in self._doomed
        try:
            if not doomed:
                core.build_cluster(ctx, record)
        except Exception as exc:  # recorded by build_cluster; the server goes on
            _log_failure(record.id, "create", exc)
        finally:
            with self._lock:
                self._creating.discard(record.id)
                doomed = record.id in self._doomed
            if doomed:
                self._delete(ctx, record.id)
            self._forget(record.id)

    def _run_delete(self, ctx: core.Context, cluster_id: str) -> None:
        with self._lock:
            self._queued.pop(cluster_id, None)
        try:
            self._delete(ctx, cluster_id)
        finally:
            self._forget(cluster_id)

    def _delete(self, ctx: core.Context, cluster_id: str) -> None:
        try:
            core.delete_cluster(ctx, cluster_id)
        except Exception as exc:
            _log_failure(cluster_id, "delete", exc)
            reason = _reason(exc)
            try:
                ctx.store.update(cluster_id, lambda r: replace(r, error=reason, worker=None))
            except GimmeError as again:
                log.warning("cluster %s: cannot record the failure: %s", cluster_id, again)

    def _forget(self, cluster_id: str) -> None:
        with self._lock:
            self._progress.pop(cluster_id, None)
            self._doomed.discard(cluster_id)

    def _heartbeats(self) -> None:
        interval = min(60.0, max(1.0, self._settings.reap_grace / 4))
        store = Store(self._settings.state, lock_timeout=self._settings.timeouts.lock)
        while not self._stopped.wait(interval):
            with self._lock:
                ids = set(self._progress)
            if ids:
                _refresh(store, ids)

    def shutdown(self) -> None:
        """Take no more jobs: creates still waiting are marked failed, running jobs finish.

        A delete still waiting keeps its `deleting` record; `gimme reap` finishes it.
        """
        self._stopped.set()
        with self._lock:
            queued = dict(self._queued)
            creating = set(self._creating)
        store = Store(self._settings.state, lock_timeout=self._settings.timeouts.lock)
        for cluster_id, future in queued.items():
            if not future.cancel():
                continue
            self._forget(cluster_id)
            if cluster_id in creating:
                try:
                    store.update(cluster_id, _never_started)
                except GimmeError as exc:
                    log.warning("cluster %s: cannot mark it failed: %s", cluster_id, exc)
        self._creates.shutdown(wait=False)
        self._deletes.shutdown(wait=False)
        with self._lock:
            running = len(self._progress)
        if running:
            log.warning("waiting for %d running create or delete job(s) to finish", running)


def _refresh(store: Store, ids: set[str]) -> None:
    try:
        store.claim(
            lambda r: r.id in ids and r.state in (CREATING, DELETING),
            lambda r: replace(r, heartbeat_at=time.time()),
        )
    except GimmeError as exc:
        log.warning("cannot refresh heartbeats: %s", exc)


def _mark_deleting(record: ClusterRecord) -> ClusterRecord | None:
    if record.state == CREATING:
        raise UsageError(
            f"cluster {record.id} is being created by {record.worker or 'another gimme'}; "
            "delete it once it is ready or failed"
        )
    if record.state == DELETED:
        return None
    return replace(record, state=DELETING, heartbeat_at=time.time())


def _never_started(record: ClusterRecord) -> ClusterRecord | None:
    if record.state != CREATING:
        return None
    return replace(
        record, state=FAILED, error="gimme serve stopped before this create started", worker=None
    )


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _log_failure(cluster_id: str, what: str, exc: Exception) -> None:
    if isinstance(exc, GimmeError):
        log.warning("cluster %s: %s failed: %s", cluster_id, what, _reason(exc))
    else:
        log.error("cluster %s: %s failed", cluster_id, what, exc_info=exc)


# -- representations ------------------------------------------------------------------------


class Message(BaseModel):
    detail: str


class Foundation(BaseModel):
    name: str
    engine: str
    cluster: str
    template: str
    os: str
    available: str = Field(description='"yes", "no template", or why the engine was not asked')


class Node(BaseModel):
    name: str
    address: str | None = Field(description="IP address, once the guest agent reported it")
    status: str | None = Field(description="Last step of a create or delete this server runs")


class Cluster(BaseModel):
    id: str
    owner: str
    state: str = Field(description="creating, ready, failed, deleting or deleted")
    foundation: str
    kubernetes_version: str
    container_runtime: str
    cluster_network_addon: str
    num_nodes: int
    comment: str
    created_at: datetime
    expires_at: datetime
    held_until: datetime | None
    deleted_at: datetime | None
    phase: str | None = Field(description="Phase running now, for work this server does")
    phases: dict[str, float] = Field(description="Seconds each finished phase took")
    error: str | None = Field(description="Why the create or delete failed")
    nodes: list[Node]


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _cluster(record: ClusterRecord, progress: _Progress | None) -> Cluster:
    phase, steps = progress.snapshot() if progress else (None, {})
    spec = record.spec
    runtime = str(spec.get("cri", ""))
    return Cluster(
        id=record.id,
        owner=record.owner,
        state=record.state,
        foundation=record.foundation,
        kubernetes_version=str(spec.get("k8s", "")),
        container_runtime=_API_RUNTIME.get(runtime, runtime),
        cluster_network_addon=str(spec.get("cni", "")),
        num_nodes=len(record.vms),
        comment=str(spec.get("comment") or ""),
        created_at=datetime.fromtimestamp(record.created_at, UTC),
        expires_at=datetime.fromtimestamp(record.expires_at, UTC),
        held_until=_time(record.hold_until),
        deleted_at=_time(record.deleted_at),
        phase=phase if record.state in (CREATING, DELETING) else None,
        phases=record.phases,
        error=record.error,
        nodes=[
            Node(name=vm.name, address=vm.address, status=steps.get(vm.name)) for vm in record.vms
        ],
    )


def _errors(
    *codes: int, also: dict[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    why = {
        401: "Missing or unknown API token",
        403: "The cluster belongs to another user",
        404: "No cluster with this id",
        409: "Not possible in the cluster's current state",
        503: "State file locked or unreadable, or the server is misconfigured",
    }
    errors = {code: {"model": Message, "description": why[code]} for code in (401, *codes, 503)}
    return (also or {}) | errors


# -- the application ------------------------------------------------------------------------


def create_app(settings: Settings, *, workers: int = WORKERS) -> FastAPI:
    """The API on `settings`; refuses (ConfigError) without a usable tokens file."""
    tokens = Tokens.load(settings.api_tokens_file)
    jobs = Jobs(settings, workers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.shutdown()

    app = FastAPI(
        title="gimme",
        version=__version__,
        description="Disposable Kubernetes clusters on oVirt. Every request needs "
        "`Authorization: Bearer <token>`; creates and deletes run in the background.",
        lifespan=lifespan,
    )
    bearer = HTTPBearer(auto_error=False, description="Your per-user API token")

    def authenticated(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        user = tokens.user(credentials.credentials) if credentials else None
        if user is None:
            raise HTTPException(
                401, "missing or unknown API token", headers={"WWW-Authenticate": "Bearer"}
            )
        return user

    User = Annotated[str, Depends(authenticated)]
    ClusterId = Annotated[
        str, PathParam(pattern=core.ID_RE.pattern, description="Cluster id (8 letters/digits)")
    ]

    def context(user: str) -> core.Context:
        return core.Context(settings, user=user)

    def view(record: ClusterRecord) -> Cluster:
        return _cluster(record, jobs.progress(record.id))

    def deleting(response: Response, record: ClusterRecord) -> Cluster:
        response.status_code = 200 if record.state == DELETED else 202
        return view(record)

    @app.exception_handler(GimmeError)
    async def gimme_error(request: Request, exc: GimmeError) -> JSONResponse:
        status = next((_STATUS[c] for c in type(exc).__mro__ if c in _STATUS), 500)
        if status == 422:  # a rule across fields (the compatibility matrix)
            detail: Any = [{"loc": ["query"], "msg": str(exc), "type": "value_error"}]
        else:
            detail = str(exc)
        return JSONResponse({"detail": detail}, status_code=status)

    @app.get("/v0/foundations", responses=_errors())
    def foundations(user: User) -> list[Foundation]:
        """Foundations (engine, oVirt cluster, template, OS) and whether each template exists."""
        return [Foundation(**row) for row in core.foundations_report(context(user))]

    @app.get("/v0/runtimes", responses=_errors())
    def runtimes(user: User) -> list[dict[str, Any]]:
        """The support matrix: per Kubernetes minor, runtimes and CNIs with versions."""
        from gimme.matrix import load_matrix

        return load_matrix().rows()

    @app.get("/v0/clusters", responses=_errors())
    def list_clusters(user: User) -> list[Cluster]:
        """Every cluster not deleted, everyone's, as `gimme list` shows them."""
        records = sorted(context(user).store.records(), key=lambda r: r.created_at)
        return [view(r) for r in records if r.state != DELETED]

    @app.post("/v0/clusters", status_code=202, responses=_errors())
    def create_cluster(
        user: User,
        response: Response,
        foundation: Annotated[
            str, Query(description="Where and from what; see GET /v0/foundations")
        ] = settings.default_foundation,
        container_runtime: Annotated[Runtime, Query()] = "containerd",
        cluster_network_addon: Annotated[NetworkAddon, Query()] = "calico",
        num_nodes: Annotated[
            int, Query(ge=MIN_NODES, le=MAX_NODES, description="Node 1 is the control plane")
        ] = 2,
        ttl: Annotated[
            int,
            Query(
                ge=0,
                le=MAX_TTL,
                description="Lifetime in seconds. 0 is refused with 422: "
                "TTL 0 means delete now, so there is nothing to create.",
            ),
        ] = settings.default_ttl,
        kubernetes_version: Annotated[
            str, Query(pattern=r"^[0-9]+\.[0-9]+$", description="MAJOR.MINOR")
        ] = "1.23",
        comment: Annotated[str, Query(max_length=MAX_COMMENT)] = "",
    ) -> Cluster:
        """Start creating a cluster and return its `creating` record at once.

        Poll GET /v0/clusters/{id} until `ready` (or `failed`, with `error`). Invalid
        parameters are refused with 422 naming the field, before anything is created.
        """
        checks: dict[str, Callable[[], object]] = {
            "foundation": lambda: _known_foundation(settings, foundation),
            "ttl": lambda: _nonzero_ttl(ttl),
            "kubernetes_version": lambda: build_spec(k8s=kubernetes_version),
            "comment": lambda: build_spec(comment=comment),
        }
        errors = []
        for name, check in checks.items():
            try:
                check()
            except SpecError as exc:
                errors.append({"loc": ("query", name), "msg": str(exc), "type": "value_error"})
        if errors:
            raise RequestValidationError(errors)
        spec = build_spec(
            foundation=foundation,
            k8s=kubernetes_version,
            cri=container_runtime,
            cni=cluster_network_addon,
            nodes=num_nodes,
            ttl=ttl,
            comment=comment,
        )
        record = jobs.create(user, spec)
        response.headers["Location"] = f"/v0/clusters/{record.id}"
        return view(record)

    @app.get("/v0/clusters/{id}", responses=_errors(404))
    def get_cluster(id: ClusterId, user: User) -> Cluster:
        """One cluster: state, running phase, per-phase seconds, nodes, error."""
        return view(context(user).store.get(id))

    @app.delete(
        "/v0/clusters/{id}",
        status_code=202,
        responses=_errors(
            403, 404, 409, also={200: {"model": Cluster, "description": "Already deleted"}}
        ),
    )
    def delete_cluster(id: ClusterId, user: User, response: Response) -> Cluster:
        """Start deleting your cluster (202); GET shows `deleting`, then `deleted`.

        A cluster this server is still creating is deleted as soon as the create ends.
        """
        return deleting(response, jobs.delete(user, id))

    @app.post(
        "/v0/clusters/{id}/prolong",
        responses=_errors(
            403, 404, 409, also={202: {"model": Cluster, "description": "ttl=0: deleting"}}
        ),
    )
    def prolong_cluster(
        id: ClusterId,
        user: User,
        response: Response,
        ttl: Annotated[
            int,
            Query(ge=0, le=MAX_TTL, description="New lifetime in seconds from now; 0 deletes now"),
        ] = 3600,
    ) -> Cluster:
        """Make your cluster expire `ttl` seconds from now; ttl=0 deletes it as DELETE does."""
        if ttl == 0:
            return deleting(response, jobs.delete(user, id))
        ctx = context(user)
        _owned(ctx.store.get(id), user)
        return view(core.prolong_cluster(ctx, id, ttl))

    @app.get(
        "/v0/clusters/{id}/kubernetes_config",
        response_class=Response,  # no media type: errors stay documented as JSON
        responses=_errors(
            403,
            404,
            409,
            also={200: {"content": {"application/yaml": {"schema": {"type": "string"}}}}},
        ),
    )
    def kubernetes_config(id: ClusterId, user: User) -> Response:
        """Your ready cluster's admin kubeconfig (context gimme-<id>)."""
        ctx = context(user)
        record = _owned(ctx.store.get(id), user)
        if record.state != READY:
            raise UsageError(f"cluster {record.id} is {record.state}: it has no kubeconfig")
        path = ctx.cluster_dir(record.id) / "kubeconfig"
        if not path.exists():
            raise UsageError(
                f"cluster {record.id} was created from another account; its kubeconfig is "
                f"there (`gimme kubeconfig {record.id}`)"
            )
        return Response(path.read_text(), media_type="application/yaml")

    return app


def _owned(record: ClusterRecord, user: str) -> ClusterRecord:
    if record.owner != user:
        raise NotOwnerError(f"cluster {record.id} belongs to {record.owner}")
    return record


def _known_foundation(settings: Settings, name: str) -> None:
    from gimme.profiles import load_foundations

    if name not in load_foundations(settings.foundations):
        raise SpecError(f"unknown foundation {name!r}: GET /v0/foundations lists them")


def _nonzero_ttl(ttl: int) -> None:
    if ttl == 0:
        raise SpecError(ZERO_TTL)


def run_server(settings: Settings, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the API with uvicorn until interrupted (put a TLS reverse proxy in front)."""
    import uvicorn

    app = create_app(settings)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(app, host=host, port=port)
