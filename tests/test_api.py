"""`gimme serve` over real HTTP: auth, validation, ownership, the shared state file, a fuzz run
from the server's own OpenAPI document, and one create -> ready -> delete on the test bed."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from gimme.api import Tokens
from gimme.errors import ConfigError
from gimme.spec import CNIS, RUNTIMES, build_spec
from gimme.store import CREATING, READY, ClusterRecord, Store, VmRecord
from tests.testbed.bed import TestBed

TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-9876543210"}


def _private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def _tokens_file(path: Path, tokens: dict[str, str]) -> Path:
    lines = [
        f"{user}: sha256:{hashlib.sha256(t.encode()).hexdigest()}" for user, t in tokens.items()
    ]
    return _private(path, "\n".join(lines) + "\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A `gimme serve` subprocess and the files it shares with the CLI."""

    url: str
    environ: dict[str, str]
    home: Path
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def store(self) -> Store:
        return Store(Path(self.environ["GIMME_STATE"]))

    def client(self, user: str = "alice") -> httpx.Client:
        headers = {"Authorization": f"Bearer {TOKENS[user]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def cluster_dir(self, cluster_id: str) -> Path:
        return self.home / ".local/share/gimme/clusters" / cluster_id

    def gimme(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The CLI, as a user of the same host and state file."""
        return subprocess.run(
            [sys.executable, "-m", "gimme", *args],
            env=self.environ | env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _environ(home: Path, config: Path, state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GIMME_CONFIG=str(config),
        GIMME_STATE=str(state),
        GIMME_API_TOKENS_FILE=str(_tokens_file(home / "tokens.yaml", TOKENS)),
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_CONFIG_HOME=str(home / ".config"),
    )
    env.pop("KUBECONFIG", None)
    for name in [n for n in env if n.startswith("GIMME_ENGINE_")]:
        env.pop(name)
    return env


def _serve(environ: dict[str, str], home: Path) -> Served:
    """Start `gimme serve` on a free port and wait until it answers."""
    port = _free_port()
    log = home / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gimme", "serve", "--port", str(port)],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", environ, home, proc, log)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"gimme serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            httpx.get(f"{served.url}/openapi.json", timeout=2).raise_for_status()
            return served
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                served.stop()
                raise
            time.sleep(0.1)


def _unreachable_engine_server(home: Path) -> Served:
    """A server whose one engine fails every call at once (its CA file does not exist)."""
    password = _private(home / "engine.password", "secret\n")
    config = {
        "engines": {
            "rack-1": {
                "url": "https://127.0.0.1:9/ovirt-engine/api",
                "password_file": str(password),
                "ca_file": str(home / "no-such-ca.pem"),
            }
        },
        "reap_grace": 4,
    }
    config_path = _private(home / "config.yaml", yaml.safe_dump(config))
    return _serve(_environ(home, config_path, home / "state" / "state.json"), home)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = _unreachable_engine_server(tmp_path_factory.mktemp("api"))
    yield served
    served.stop()


def _record(cluster_id: str, owner: str, **extra: Any) -> ClusterRecord:
    """A record as `gimme create` on the CLI writes it."""
    now = time.time()
    spec = build_spec(k8s="1.30", cri="cri-o", cni="cilium", nodes=3, comment="from the CLI")
    fields: dict[str, Any] = dict(
        id=cluster_id,
        owner=owner,
        owner_uid=4242,
        state=READY,
        foundation=spec.foundation,
        engine="rack-1",
        spec=vars(spec).copy(),
        created_at=now - 60,
        expires_at=now + 3600,
        heartbeat_at=now,
        vms=[VmRecord(name=f"gimme-{cluster_id}-{n}", id=f"vm-{n}") for n in (1, 2, 3)],
        phases={"vms": 1.5, "total": 9.0},
    )
    fields.update(extra)
    return ClusterRecord(**fields)


def _new_id(served: Served) -> str:
    taken = {r.id for r in served.store.records()}
    for n in range(10**8):
        candidate = f"t{n:07d}"
        if candidate not in taken:
            return candidate
    raise AssertionError("no free id")


def _insert(served: Served, owner: str, **extra: Any) -> str:
    cluster_id = _new_id(served)
    served.store.insert(_record(cluster_id, owner, **extra))
    return cluster_id


def _wait(client: httpx.Client, cluster_id: str, done: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v0/clusters/{cluster_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["state"] in done or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


# -- the document, auth --------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/v0/foundations"),
    ("GET", "/v0/runtimes"),
    ("GET", "/v0/clusters"),
    ("POST", "/v0/clusters"),
    ("GET", "/v0/clusters/{id}"),
    ("DELETE", "/v0/clusters/{id}"),
    ("POST", "/v0/clusters/{id}/prolong"),
    ("GET", "/v0/clusters/{id}/kubernetes_config"),
]


def test_openapi_document_and_docs(served: Served) -> None:
    doc = httpx.get(f"{served.url}/openapi.json").json()
    assert (doc["info"]["title"], doc["info"]["version"]) == ("gimme", "0.1.0")
    operations = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert operations == set(ENDPOINTS)
    create = {p["name"]: p for p in doc["paths"]["/v0/clusters"]["post"]["parameters"]}
    assert set(create) == {
        "foundation",
        "container_runtime",
        "cluster_network_addon",
        "num_nodes",
        "ttl",
        "kubernetes_version",
        "comment",
    }
    assert create["foundation"]["schema"]["default"] == "ovirt-rack-1-ubuntu-22.04"
    assert create["container_runtime"]["schema"]["enum"] == ["containerd", "docker", "crio"]
    assert set(create["cluster_network_addon"]["schema"]["enum"]) == set(CNIS)
    assert {
        "cri-o" if r == "crio" else r for r in create["container_runtime"]["schema"]["enum"]
    } == set(RUNTIMES)
    num_nodes, ttl = create["num_nodes"]["schema"], create["ttl"]["schema"]
    assert (num_nodes["minimum"], num_nodes["maximum"], num_nodes["default"]) == (2, 6, 2)
    assert (ttl["minimum"], ttl["maximum"], ttl["default"]) == (0, 86400, 3600)
    assert "TTL 0 means delete now" in ttl["description"]
    version = create["kubernetes_version"]["schema"]
    assert (version["pattern"], version["default"]) == (r"^[0-9]+\.[0-9]+$", "1.23")
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path in ("/docs", "/redoc"):
        page = httpx.get(f"{served.url}{path}")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]


@pytest.mark.parametrize("method,path", ENDPOINTS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Basic {TOKENS['alice']}"},
        {"Authorization": f"Bearer {TOKENS['alice']}x"},
    ],
    ids=["none", "unknown", "basic", "suffixed"],
)
def test_every_endpoint_needs_a_token(
    served: Served, method: str, path: str, headers: dict[str, str]
) -> None:
    cluster_id = _insert(served, "alice")
    before = served.store.get(cluster_id)
    response = httpx.request(method, served.url + path.format(id=cluster_id), headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert served.store.get(cluster_id) == before
    assert TOKENS["alice"] not in served.log.read_text()


def test_tokens_file_rules(tmp_path: Path) -> None:
    path = _tokens_file(tmp_path / "tokens.yaml", TOKENS)
    tokens = Tokens.load(path)
    assert tokens.user(TOKENS["alice"]) == "alice" and tokens.user(TOKENS["bob"]) == "bob"
    assert tokens.user("") is None and tokens.user(TOKENS["alice"][:-1]) is None
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="readable by others"):
        Tokens.load(path)
    with pytest.raises(ConfigError, match="needs API tokens"):
        Tokens.load(None)
    digest = "sha256:" + "a" * 64
    for text, error in [
        ("alice: s3cret\n", "not `user: sha256"),
        ("alice: sha256:abc\n", "not `user: sha256"),
        ("'bad user': " + digest + "\n", "not `user: sha256"),
        (f"alice: {digest}\nbob: {digest}\n", "same token"),
        ("[alice]\n", "must map user names"),
        ("alice: [\n", "not valid YAML"),
    ]:
        with pytest.raises(ConfigError, match=error) as caught:
            Tokens.load(_private(tmp_path / "t.yaml", text))
        assert "s3cret" not in str(caught.value)


def test_serve_refuses_to_start_without_private_tokens(served: Served, tmp_path: Path) -> None:
    tokens = _tokens_file(tmp_path / "tokens.yaml", TOKENS)
    os.chmod(tokens, 0o644)
    port = str(_free_port())
    refused = served.gimme("serve", "--port", port, GIMME_API_TOKENS_FILE=str(tokens))
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"gimme: error: {tokens} holds API token hashes but is readable by others "
        f"(mode 644); run: chmod 600 {tokens}"
    ]
    refused = served.gimme("serve", "--port", port, GIMME_API_TOKENS_FILE="")
    assert refused.returncode == 2
    assert refused.stderr.startswith("gimme: error: gimme serve needs API tokens")


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params,fields",
    [
        ({"num_nodes": 1}, ["num_nodes"]),
        ({"num_nodes": 7}, ["num_nodes"]),
        ({"num_nodes": "two"}, ["num_nodes"]),
        ({"ttl": -1}, ["ttl"]),
        ({"ttl": 86401}, ["ttl"]),
        ({"ttl": "1h"}, ["ttl"]),
        ({"ttl": 0}, ["ttl"]),
        ({"container_runtime": "rkt"}, ["container_runtime"]),
        ({"container_runtime": "containerdx"}, ["container_runtime"]),
        ({"container_runtime": "xcrio"}, ["container_runtime"]),
        ({"container_runtime": "cri-o"}, ["container_runtime"]),
        ({"cluster_network_addon": "canal"}, ["cluster_network_addon"]),
        ({"cluster_network_addon": "calicox"}, ["cluster_network_addon"]),
        ({"cluster_network_addon": "xmultus"}, ["cluster_network_addon"]),
        ({"kubernetes_version": "1.x"}, ["kubernetes_version"]),
        ({"kubernetes_version": "1"}, ["kubernetes_version"]),
        ({"kubernetes_version": "01.23"}, ["kubernetes_version"]),
        ({"kubernetes_version": "1.2345"}, ["kubernetes_version"]),
        ({"foundation": "no-such-foundation"}, ["foundation"]),
        ({"foundation": "x' or name=*"}, ["foundation"]),
        ({"comment": "a\nb"}, ["comment"]),
        ({"comment": "x" * 513}, ["comment"]),
        ({"num_nodes": 9, "ttl": -1}, ["num_nodes", "ttl"]),
        (
            {"ttl": 0, "foundation": "nope", "kubernetes_version": "01.2"},
            ["foundation", "kubernetes_version", "ttl"],
        ),
    ],
)
def test_invalid_create_is_422_naming_the_field_and_creates_nothing(
    served: Served, params: dict[str, Any], fields: list[str]
) -> None:
    before = served.store.records()
    clusters = served.home / ".local/share/gimme/clusters"
    dirs = set(clusters.iterdir()) if clusters.is_dir() else set()
    with served.client() as client:
        response = client.post("/v0/clusters", params=params)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert sorted(e["loc"][1] for e in detail) == fields
    assert all(e["loc"][0] == "query" and e["msg"] for e in detail)
    if "ttl" in params and params["ttl"] == 0:
        ttl = next(e for e in detail if e["loc"][1] == "ttl")
        assert ttl["msg"].startswith("TTL 0 means delete now: there is nothing to create")
    assert served.store.records() == before
    assert (set(clusters.iterdir()) if clusters.is_dir() else set()) == dirs


def test_matrix_conflict_is_422_before_anything_is_created(served: Served) -> None:
    before = served.store.records()
    with served.client() as client:
        response = client.post("/v0/clusters", params={"kubernetes_version": "1.99"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query"] and "1.99" in error["msg"]
    assert served.store.records() == before


@pytest.mark.parametrize("method,path", [e for e in ENDPOINTS if "{id}" in e[1]])
def test_unknown_and_malformed_ids(served: Served, method: str, path: str) -> None:
    with served.client() as client:
        missing = client.request(method, path.format(id="zzzzzzzz"))
        malformed = client.request(method, path.format(id="ZZZ$(x)"))
    assert missing.status_code == 404 and "zzzzzzzz" in missing.json()["detail"]
    assert malformed.status_code == 422
    assert [e["loc"] for e in malformed.json()["detail"]] == [["path", "id"]]


# -- the shared state file -------------------------------------------------------------------


def test_cli_records_are_visible_through_the_api(served: Served) -> None:
    cluster_id = _insert(served, "carol")
    with served.client("bob") as client:
        listed = client.get("/v0/clusters").json()
        one = client.get(f"/v0/clusters/{cluster_id}").json()
    assert one in listed
    assert {k: one[k] for k in one if k not in ("created_at", "expires_at")} == {
        "id": cluster_id,
        "owner": "carol",
        "state": "ready",
        "foundation": "ovirt-rack-1-ubuntu-22.04",
        "kubernetes_version": "1.30",
        "container_runtime": "crio",
        "cluster_network_addon": "cilium",
        "num_nodes": 3,
        "comment": "from the CLI",
        "held_until": None,
        "deleted_at": None,
        "phase": None,
        "phases": {"vms": 1.5, "total": 9.0},
        "error": None,
        "nodes": [
            {"name": f"gimme-{cluster_id}-{n}", "address": None, "status": None} for n in (1, 2, 3)
        ],
    }
    expires = datetime.fromisoformat(one["expires_at"]).timestamp()
    assert abs(expires - served.store.get(cluster_id).expires_at) < 0.001
    deleted = _insert(served, "carol", state="deleted", deleted_at=time.time())
    with served.client("bob") as client:
        assert deleted not in {c["id"] for c in client.get("/v0/clusters").json()}
        assert client.get(f"/v0/clusters/{deleted}").json()["state"] == "deleted"


def test_api_clusters_are_visible_to_the_cli_and_failures_in_the_record(served: Served) -> None:
    """The server's engine fails every call, so the create fails in the background."""
    with served.client() as client:
        response = client.post(
            "/v0/clusters",
            params={
                "container_runtime": "crio",
                "cluster_network_addon": "flannel",
                "num_nodes": 3,
                "ttl": 600,
                "kubernetes_version": "1.30",
                "comment": "via the API",
            },
        )
        assert response.status_code == 202, response.text
        created = response.json()
        cluster_id = created["id"]
        assert response.headers["location"] == f"/v0/clusters/{cluster_id}"
        assert created["state"] == "creating" and created["owner"] == "alice"
        assert (created["container_runtime"], created["num_nodes"]) == ("crio", 3)
        failed = _wait(client, cluster_id, {"failed"}, timeout=60)
    assert failed["state"] == "failed"
    assert "no-such-ca.pem does not exist" in failed["error"]
    record = served.store.get(cluster_id)
    assert (record.owner, record.spec["cri"], record.spec["ttl"]) == ("alice", "cri-o", 600)
    assert 500 < record.expires_at - record.created_at <= 600
    cli = served.gimme("list", "--json")
    assert cli.returncode == 0, cli.stderr
    row = next(r for r in json.loads(cli.stdout) if r["id"] == cluster_id)
    assert (row["owner"], row["state"], row["cri"], row["comment"]) == (
        "alice",
        "failed",
        "cri-o",
        "via the API",
    )
    assert "no-such-ca.pem" in served.gimme("show", cluster_id).stdout


# -- ownership, prolong, delete, kubeconfig ------------------------------------------------


def test_another_users_cluster_cannot_be_changed(served: Served) -> None:
    cluster_id = _insert(served, "alice")
    (served.cluster_dir(cluster_id)).mkdir(parents=True)
    (served.cluster_dir(cluster_id) / "kubeconfig").write_text("apiVersion: v1\n")
    before = served.store.get(cluster_id)
    with served.client("bob") as bob:
        for method, path in [
            ("DELETE", ""),
            ("POST", "/prolong?ttl=60"),
            ("POST", "/prolong?ttl=0"),
            ("GET", "/kubernetes_config"),
        ]:
            response = bob.request(method, f"/v0/clusters/{cluster_id}{path}")
            assert response.status_code == 403, (method, path, response.text)
            assert "belongs to alice" in response.json()["detail"]
        assert bob.get(f"/v0/clusters/{cluster_id}").status_code == 200
    assert served.store.get(cluster_id) == before


def test_prolong(served: Served) -> None:
    cluster_id = _insert(served, "alice")
    with served.client() as client:
        response = client.post(f"/v0/clusters/{cluster_id}/prolong", params={"ttl": 120})
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "ready"
        assert 110 < served.store.get(cluster_id).expires_at - time.time() <= 120
        assert client.post(f"/v0/clusters/{cluster_id}/prolong").status_code == 200
        assert 3590 < served.store.get(cluster_id).expires_at - time.time() <= 3600
        for ttl in (-1, 86401, "2h"):
            response = client.post(f"/v0/clusters/{cluster_id}/prolong", params={"ttl": ttl})
            assert response.status_code == 422
            assert response.json()["detail"][0]["loc"] == ["query", "ttl"]
    row = next(
        r for r in json.loads(served.gimme("list", "--json").stdout) if r["id"] == cluster_id
    )
    assert 3500 < row["expires_in_s"] <= 3600
    gone = _insert(served, "alice", state="deleted", deleted_at=time.time())
    with served.client() as client:
        response = client.post(f"/v0/clusters/{gone}/prolong", params={"ttl": 60})
    assert response.status_code == 409 and "can no longer be prolonged" in response.json()["detail"]


def test_delete_runs_in_the_background_and_failures_stay_visible(served: Served) -> None:
    cluster_id = _insert(served, "alice")
    with served.client() as client:
        response = client.delete(f"/v0/clusters/{cluster_id}")
        assert response.status_code == 202, response.text
        assert response.json()["state"] == "deleting"
        deadline = time.monotonic() + 60
        while not served.store.get(cluster_id).error and time.monotonic() < deadline:
            time.sleep(0.1)
        body = client.get(f"/v0/clusters/{cluster_id}").json()
    # The engine fails, so the VMs may still exist: the record stays `deleting` for reap.
    assert body["state"] == "deleting" and "no-such-ca.pem" in body["error"]
    gone = _insert(served, "alice", state="deleted", deleted_at=time.time())
    with served.client() as client:
        response = client.delete(f"/v0/clusters/{gone}")
        assert response.status_code == 200 and response.json()["state"] == "deleted"
        response = client.post(f"/v0/clusters/{gone}/prolong", params={"ttl": 0})
        assert response.status_code == 200 and response.json()["state"] == "deleted"


def test_prolong_zero_deletes(served: Served) -> None:
    cluster_id = _insert(served, "alice")
    with served.client() as client:
        response = client.post(f"/v0/clusters/{cluster_id}/prolong", params={"ttl": 0})
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "deleting"
    assert served.store.get(cluster_id).state == "deleting"


def test_a_create_in_another_process_cannot_be_deleted_yet(served: Served) -> None:
    cluster_id = _insert(served, "alice", state=CREATING, worker="jumphost:4242")
    with served.client() as client:
        response = client.delete(f"/v0/clusters/{cluster_id}")
    assert response.status_code == 409
    assert "being created by jumphost:4242" in response.json()["detail"]
    assert served.store.get(cluster_id).state == CREATING


def test_kubernetes_config(served: Served) -> None:
    ready = _insert(served, "alice")
    text = "apiVersion: v1\nkind: Config\ncurrent-context: gimme-x\n"
    served.cluster_dir(ready).mkdir(parents=True)
    (served.cluster_dir(ready) / "kubeconfig").write_text(text)
    elsewhere = _insert(served, "alice")
    creating = _insert(served, "alice", state=CREATING)
    with served.client() as client:
        response = client.get(f"/v0/clusters/{ready}/kubernetes_config")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/yaml")
        assert response.text == text
        response = client.get(f"/v0/clusters/{elsewhere}/kubernetes_config")
        assert response.status_code == 409
        assert f"gimme kubeconfig {elsewhere}" in response.json()["detail"]
        response = client.get(f"/v0/clusters/{creating}/kubernetes_config")
        assert response.status_code == 409 and "is creating" in response.json()["detail"]


def test_foundations_and_runtimes(served: Served) -> None:
    with served.client() as client:
        foundations = client.get("/v0/foundations").json()
        runtimes = client.get("/v0/runtimes").json()
    default = next(f for f in foundations if f["name"] == "ovirt-rack-1-ubuntu-22.04")
    assert (default["engine"], default["os"]) == ("rack-1", "ubuntu-22.04")
    assert default["available"].startswith("engine unreachable")
    assert runtimes and all({"kubernetes", "runtimes", "cnis"} <= set(r) for r in runtimes)
    assert {"1.23", "1.30"} <= {r["kubernetes"] for r in runtimes}


# -- fuzzing from the server's own OpenAPI document ------------------------------------------


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = _unreachable_engine_server(tmp_path_factory.mktemp("fuzz"))
    yield served
    served.stop()


@pytest.fixture(scope="module")
def api_schema(fuzzed: Served) -> Any:
    # Unknown query parameters are ignored, as the original did; the token is sent with every case.
    config = SchemathesisConfig.from_dict(
        {"generation": {"allow-extra-parameters": False, "with-security-parameters": False}}
    )
    return schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json", config=config)


@pytest.mark.parametrize(
    "method,path,mode",
    [(m, p, GenerationMode.POSITIVE) for m, p in ENDPOINTS]
    # Operations without parameters have no invalid requests to make.
    + [(m, p, GenerationMode.NEGATIVE) for m, p in ENDPOINTS if "{id}" in p or m == "POST"],
)
def test_fuzz_from_the_openapi_document(
    api_schema: Any, fuzzed: Served, method: str, path: str, mode: GenerationMode
) -> None:
    """Valid and invalid requests for every operation: never a 5xx, always as documented."""
    operation = api_schema[path][method]
    strategy = operation.as_strategy(generation_mode=mode)
    if "{id}" in path and mode == GenerationMode.POSITIVE:
        # Random ids are all unknown: also aim at real records, in every state and of two owners.
        strategy = st.one_of(
            strategy,
            *(
                operation.as_strategy(path_parameters={"id": _insert(fuzzed, owner, state=state)})
                for owner in ("alice", "bob")
                for state in ("ready", "failed", "creating", "deleted")
            ),
        )

    @given(case=strategy)
    @settings(
        max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def fuzz(case: Any) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {TOKENS['alice']}"},
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
                negative_data_rejection,
            ],
        )

    fuzz()


# -- end to end on the test bed ------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="emulated nodes need root")


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestBed, Served]]:
    """The fake engine and emulated nodes, and `gimme serve` configured for them."""
    with TestBed(tmp_path_factory.mktemp("bed"), delay_scale=0.02) as testbed:
        home = tmp_path_factory.mktemp("bed-home")
        env = testbed.gimme_env(home)
        served = _serve(_environ(home, env.config, env.state), home)
        try:
            yield testbed, served
        finally:
            served.stop()


@needs_root
def test_bed_invalid_create_never_reaches_the_engine(bed: tuple[TestBed, Served]) -> None:
    testbed, served = bed
    testbed.engine.clear_log()
    before = served.store.records()
    with served.client() as client:
        for params in (
            {"num_nodes": 7},
            {"ttl": 0},
            {"container_runtime": "rkt"},
            {"kubernetes_version": "1.99"},
            {"foundation": "x' or name=*"},
        ):
            assert client.post("/v0/clusters", params=params).status_code == 422, params
    assert testbed.engine.mutating_requests() == []
    assert served.store.records() == before


@needs_root
def test_bed_failed_create_is_rolled_back_with_its_error(bed: tuple[TestBed, Served]) -> None:
    testbed, served = bed
    testbed.engine.inject("capacity", count=1, match="add_vm")
    with served.client() as client:
        response = client.post("/v0/clusters", params={"kubernetes_version": "1.30"})
        assert response.status_code == 202, response.text
        cluster_id = response.json()["id"]
        done = _wait(client, cluster_id, {"deleted"}, timeout=120)
    assert done["state"] == "deleted", done
    assert "no host that satisfies" in done["error"]
    assert not [vm for vm in testbed.engine.vms() if vm["name"].startswith(f"gimme-{cluster_id}-")]


@needs_root
@pytest.mark.timeout(600)
def test_bed_create_through_the_api_use_and_delete(bed: tuple[TestBed, Served]) -> None:
    testbed, served = bed
    with served.client() as client:
        started = time.monotonic()
        response = client.post(
            "/v0/clusters",
            params={
                "kubernetes_version": "1.30",
                "container_runtime": "containerd",
                "cluster_network_addon": "calico",
                "num_nodes": 2,
                "ttl": 3600,
                "comment": "api e2e",
            },
        )
        assert response.status_code == 202, response.text
        assert time.monotonic() - started < 10
        cluster_id = response.json()["id"]
        names = [f"gimme-{cluster_id}-{n}" for n in (1, 2)]
        seen_phases = set()
        deadline = time.monotonic() + 400
        while True:
            body = client.get(f"/v0/clusters/{cluster_id}").json()
            seen_phases.add(body["phase"])
            if body["state"] != "creating" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert body["state"] == "ready", body
        assert {"vms", "prepare", "init", "ready", "total"} <= set(body["phases"])
        assert "vms" in seen_phases and body["phase"] is None
        assert [n["name"] for n in body["nodes"]] == names and all(
            n["address"] for n in body["nodes"]
        )

        # The CLI on the same host sees it.
        listed = json.loads(served.gimme("list", "--json").stdout)
        row = next(r for r in listed if r["id"] == cluster_id)
        assert (row["owner"], row["state"], row["nodes"], row["comment"]) == (
            "alice",
            "ready",
            2,
            "api e2e",
        )

        response = client.get(f"/v0/clusters/{cluster_id}/kubernetes_config")
        assert response.status_code == 200
        kubeconfig = yaml.safe_load(response.text)
        assert kubeconfig["current-context"] == f"gimme-{cluster_id}"
        server = kubeconfig["clusters"][0]["cluster"]["server"]
        assert server == f"https://{body['nodes'][0]['address']}:6443"

        response = client.post(f"/v0/clusters/{cluster_id}/prolong", params={"ttl": 7200})
        assert response.status_code == 200
        with served.client("bob") as bob:
            assert bob.delete(f"/v0/clusters/{cluster_id}").status_code == 403

        response = client.delete(f"/v0/clusters/{cluster_id}")
        assert response.status_code == 202 and response.json()["state"] == "deleting"
        done = _wait(client, cluster_id, {"deleted"}, timeout=120)
    assert done["state"] == "deleted" and done["error"] is None
    assert not [vm for vm in testbed.engine.vms() if vm["name"] in names]
    assert not (served.cluster_dir(cluster_id) / "kubeconfig").exists()


@needs_root
@pytest.mark.timeout(600)
def test_bed_delete_during_create_deletes_when_the_create_ends(
    bed: tuple[TestBed, Served],
) -> None:
    testbed, served = bed
    with served.client() as client:
        response = client.post("/v0/clusters", params={"kubernetes_version": "1.30"})
        assert response.status_code == 202, response.text
        cluster_id = response.json()["id"]
        response = client.delete(f"/v0/clusters/{cluster_id}")
        assert response.status_code == 202 and response.json()["state"] == "creating"
        done = _wait(client, cluster_id, {"deleted"}, timeout=400)
    assert done["state"] == "deleted" and "total" in done["phases"], done  # made, then deleted
    assert not [vm for vm in testbed.engine.vms() if vm["name"].startswith(f"gimme-{cluster_id}-")]
