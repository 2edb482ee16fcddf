"""gimme's speed and memory on the test bed: `nox -s bench` (or `python -m tests.bench [--quick]`).

Runs the real CLI as subprocesses against the fake engine and emulated nodes, all in one
run, prints a table (measured value, ideal or reference, ratio, goal, pass/fail) and writes
it as JSON (`--out`, default bench-results.json). Needs root (emulated nodes) and, like the
tests, belongs in a private network namespace (nox does that).

Latencies. Real-world seconds (`ENGINE`, `ADD_VM`, `COMMANDS`) are multiplied by `--scale`:
the fake engine's `Delays`, the time it takes to answer each clone request, and the shims'
command latency (tests/testbed/shims/emu/latency.py: a matched call lasts at least its
latency, its own run time included; `*` covers every other call). `STEPS` says how many calls of each rule every bootstrap step of the benchmark's
cluster (k8s 1.30, containerd, calico, ubuntu-22.04) makes; each create checks it against
the nodes' call logs, so the ideal below cannot silently drift from what ran.

Critical path of `create` (the same for any node count: every VM and node works at once)::

    ideal = scale * (add_vm + image_locked + powering_up + ip_report)   clone, boot, IP
          + step(prepare)                                       every node, concurrently
          + step(init)                                          control plane
          + max(step(join), step(cni))                          workers join while CNI applies
          + step(ready)
    step(s) = sum over rules r of STEPS[s][r] * scale * COMMANDS[r]

It leaves out what the test bed itself costs outside those latencies (node boot beyond
ip_report, SSH, process start-up) and everything gimme does between waits, so a measured
create can only come close to it from above.

Other scenarios: `gimme reap` of N expired 2-node clusters whose VMs run on a fake engine
without nodes (VMs made through gimme's Engine adapter, records inserted through the Store;
stop and remove take `scale * powering_down` and `scale * remove`), N against 1; `gimme list`
over state files of 10,000 and 10 records, written directly in the Store's TinyDB JSON
layout ({"meta": {"1": {"schema": 1}}, "clusters": {"<n>": record.to_doc()}}) since 10,000
locked transactions would take minutes; `gimme --help` and `python -c pass` (list and
these: median of 5 runs, 3 with --quick); peak RSS of the largest create (wait4's ru_maxrss
of that child). The JSON also has each create's phases, CPU seconds, engine requests and
engine lag (how late gimme noticed a clone done and an address reported).
Children get PYTHONPYCACHEPREFIX in the bench's temp dir and are warmed up once, so they run
from compiled bytecode as an installed gimme does. `--quick` (smaller, lower scale) is for
working on the bench, not for numbers: its latencies are below the shims' own run times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from gimme.store import READY, SCHEMA_VERSION, ClusterRecord, Store, VmRecord
from tests.testbed.bed import ENGINE_NAME, GimmeEnv, TestBed
from tests.testbed.engine import Delays, FakeEngine
from tests.testbed.shims.emu.latency import rule_for

# Real-world seconds, before --scale.
ENGINE = Delays(image_locked=40, powering_up=30, ip_report=30, powering_down=20, remove=10)
ADD_VM = 1.5  # the engine's reply to one "add VM from template" request (a `slow` injection)
COMMANDS = {
    "apt-get update": 10.0,
    "apt-get install": 40.0,
    "curl": 6.0,
    "kubeadm init": 60.0,
    "kubeadm join": 40.0,
    "kubectl create": 5.0,
    "kubectl apply": 5.0,
    "kubectl rollout": 7.0,
    "kubectl wait": 20.0,
    "*": 2.0,
}
# Calls per rule in each step of the benchmark's cluster (see the module docstring).
STEPS: dict[str, dict[str, int]] = {
    "prepare": {"apt-get update": 2, "apt-get install": 2, "curl": 4, "*": 12},
    "init": {"kubeadm init": 1, "*": 1},
    "join": {"kubeadm join": 1},
    "cni": {"curl": 1, "kubectl create": 1, "kubectl rollout": 1, "*": 1},
    "ready": {"kubectl wait": 1, "kubectl rollout": 4, "*": 3},
}
ROLE_STEPS = {"control": ("prepare", "init", "cni", "ready"), "worker": ("prepare", "join")}
SPEC = ["--k8s", "1.30", "--cri", "containerd", "--cni", "calico"]
# Compiles what a create imports into the children's bytecode cache before anything is timed
# (compiling ovirtsdk4 alone raises a process's peak RSS by some 40 MiB).
WARM_UP = "import gimme.cli, gimme.core, gimme.engine, gimme.remote, gimme.render"


@dataclass
class Settings:
    scale: float
    nodes: tuple[int, ...]
    reap: int
    records: int
    repeat: int


FULL = Settings(scale=0.15, nodes=(2, 4, 6), reap=20, records=10_000, repeat=5)
QUICK = Settings(scale=0.05, nodes=(2, 6), reap=5, records=1_000, repeat=3)


@dataclass
class Run:
    code: int
    seconds: float
    max_rss_kib: int
    cpu_seconds: float
    stdout: str
    stderr: str


def step_seconds(step: str, scale: float) -> float:
    return sum(n * scale * COMMANDS[rule] for rule, n in STEPS[step].items())


def critical_path(scale: float) -> float:
    """The ideal create time for these latencies (module docstring)."""
    s = {step: step_seconds(step, scale) for step in STEPS}
    engine = scale * (ADD_VM + ENGINE.image_locked + ENGINE.powering_up + ENGINE.ip_report)
    return engine + s["prepare"] + s["init"] + max(s["join"], s["cni"]) + s["ready"]


def run(env: dict[str, str], *args: str, timeout: float = 900) -> Run:
    """Run `python -m gimme args` (or `python args` when args[0] is "-c"); time it, get its RSS."""
    argv = [sys.executable, *(args if args[0] == "-c" else ("-m", "gimme", *args))]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return Run(proc.returncode, seconds, usage.ru_maxrss, cpu, out.read(), err.read())


def must(result: Run, what: str) -> Run:
    if result.code != 0:
        raise SystemExit(f"bench: {what} exited {result.code}:\n{result.stderr[-3000:]}")
    return result


def child_env(env: GimmeEnv, cache: Path) -> dict[str, str]:
    environ = env.environ()
    environ.pop("PYTHONDONTWRITEBYTECODE", None)
    environ["PYTHONPYCACHEPREFIX"] = str(cache)
    return environ


# -- create -----------------------------------------------------------------------------------


def check_calls(bed: TestBed, record: dict) -> list[str]:
    """Differences between the nodes' call logs and STEPS (empty: the ideal is right)."""
    problems = []
    for n, vm in enumerate(record["vms"]):
        role = "control" if n == 0 else "worker"
        want: dict[str, int] = {}
        for step in ROLE_STEPS[role]:
            for rule, count in STEPS[step].items():
                want[rule] = want.get(rule, 0) + count
        got: dict[str, int] = {}
        for call in bed.pool.node(vm["id"]).calls():
            rule = rule_for(COMMANDS, call["tool"], call["argv"]) or "-"
            got[rule] = got.get(rule, 0) + 1
        if got != want:
            problems.append(f"{vm['name']} ({role}): calls per rule {got}, STEPS say {want}")
    return problems


def engine_lag(requests: list[dict], record: dict, scale: float) -> dict[str, float]:
    """How late gimme noticed each VM transition, from the engine's request log (worst VM).

    start: its start request after the clone was done (add + reply + image_locked); ip: its last
    reported-devices read (the one that found the address) after the guest agent could
    first report it (start + powering_up + ip_report; a node still booting then counts too).
    """
    adds = [r["time"] for r in requests if r["kind"] == "add_vm"]
    lag = {"start": 0.0, "ip": 0.0}
    for vm, added in zip(record["vms"], adds, strict=False):
        mine = [r for r in requests if f"/vms/{vm['id']}/" in r["path"] + "/"]
        start = next(r["time"] for r in mine if r["kind"] == "start")
        last_ip = max(r["time"] for r in mine if r["kind"] == "reported_devices")
        boot = scale * (ENGINE.powering_up + ENGINE.ip_report)
        clone = scale * (ADD_VM + ENGINE.image_locked)
        lag["start"] = max(lag["start"], start - added - clone)
        lag["ip"] = max(lag["ip"], last_ip - start - boot)
    return {k: round(v, 2) for k, v in lag.items()}


def bench_create(bed: TestBed, env: dict[str, str], nodes: int, scale: float) -> dict:
    bed.engine.set_delay_scale(scale)
    bed.engine.clear_log()
    bed.engine.inject("slow", count=nodes, match="add_vm", seconds=scale * ADD_VM)
    result = must(run(env, "create", *SPEC, "--nodes", str(nodes), "--ttl", "1h"), "create")
    requests = bed.engine.requests()
    cluster_id = result.stdout.strip()
    record = json.loads(must(run(env, "show", cluster_id, "--json"), "show").stdout)
    problems = check_calls(bed, record)
    bed.engine.set_delay_scale(0.01)
    must(run(env, "delete", cluster_id), "delete")
    return {
        "nodes": nodes,
        "seconds": round(result.seconds, 2),
        "max_rss_mib": round(result.max_rss_kib / 1024, 1),
        "cpu_s": round(result.cpu_seconds, 2),
        "phases": record["phases"],
        "engine_lag_s": engine_lag(requests, record, scale),
        "engine_requests": len(requests),
        "call_log_mismatches": problems,
    }


# -- reap -------------------------------------------------------------------------------------


def engine_env(engine: FakeEngine, home: Path) -> GimmeEnv:
    """A gimme config for a bare fake engine (what TestBed.gimme_env writes for a test bed)."""
    home.mkdir(parents=True, exist_ok=True)
    password = home / "engine.password"
    password.write_text(engine.password)
    password.chmod(0o600)
    config = {
        "engines": {
            ENGINE_NAME: {
                "url": engine.url,
                "username": engine.username,
                "password_file": str(password),
                "ca_file": str(engine.ca_file),
            }
        }
    }
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return GimmeEnv(config=path, state=home / "state" / "state.json", home=home)


def seed_expired(env: GimmeEnv, clusters: int) -> None:
    """`clusters` expired ready 2-node clusters: running VMs on the engine, records in the store."""
    from gimme.config import load_settings
    from gimme.engine import CloudInit, Engine

    settings = load_settings(env.config, env.environ())
    now = time.time()
    records = []
    with Engine(settings.engine(ENGINE_NAME)) as engine:
        engine.ensure_tag("gimme")
        template = engine.find_template("ubuntu-22.04", ENGINE_NAME)
        for _ in range(clusters):
            cluster_id = secrets.token_hex(4)
            engine.ensure_tag(f"gimme-{cluster_id}")
            vms = []
            for n in (1, 2):
                name = f"gimme-{cluster_id}-{n}"
                vm_id = engine.create_vm(
                    name=name,
                    cluster=ENGINE_NAME,
                    template=template,
                    description=f"gimme cluster={cluster_id}",
                    comment="",
                    memory_mib=2048,
                    cpus=2,
                    cloud_init=CloudInit(host_name=name, user_name="ubuntu", authorized_key=""),
                )
                for tag in ("gimme", f"gimme-{cluster_id}"):
                    engine.tag_vm(vm_id, tag)
                vms.append(VmRecord(name=name, id=vm_id, address=None))
            records.append(
                ClusterRecord(
                    id=cluster_id,
                    owner="bench",
                    owner_uid=os.getuid(),
                    state=READY,
                    foundation="ovirt-rack-1-ubuntu-22.04",
                    engine=ENGINE_NAME,
                    spec={"k8s": "1.30", "cri": "containerd", "cni": "calico", "nodes": 2},
                    created_at=now - 7200,
                    expires_at=now - 60,
                    heartbeat_at=now - 3600,
                    vms=vms,
                )
            )
        pending = {vm.id: vm.name for r in records for vm in r.vms}
        while pending:
            for vm_id, name in list(pending.items()):
                status = engine.vm_status(vm_id)
                if status == "down":
                    engine.start_vm(vm_id, name, CloudInit(name, "ubuntu", ""))
                elif status == "up":
                    del pending[vm_id]
            time.sleep(0.05)
    store = Store(env.state)
    for record in records:
        store.insert(record)


def bench_reap(workdir: Path, clusters: int, scale: float, cache: Path) -> dict:
    with FakeEngine(workdir / "engine", delays=ENGINE, delay_scale=0.001) as engine:
        env = engine_env(engine, workdir / "home")
        seed_expired(env, clusters)
        engine.set_delay_scale(scale)
        result = must(run(child_env(env, cache), "reap"), "reap")
        left = [vm["name"] for vm in engine.vms()]
    if left:
        raise SystemExit(f"bench: reap of {clusters} left VMs behind: {left}")
    return {"clusters": clusters, "vms": 2 * clusters, "seconds": round(result.seconds, 2)}


# -- list, --help -------------------------------------------------------------------------------


def write_state(path: Path, count: int) -> None:
    """A state file of `count` live records in the Store's own layout (see the docstring)."""
    now = time.time()
    clusters = {}
    for n in range(1, count + 1):
        cluster_id = f"{n:08x}"[-8:]
        nodes = 2 + n % 5
        record = ClusterRecord(
            id=cluster_id,
            owner=f"user{n % 37}",
            owner_uid=1000 + n % 37,
            state=READY,
            foundation="ovirt-rack-1-ubuntu-22.04",
            engine=ENGINE_NAME,
            spec={"k8s": "1.30", "cri": "containerd", "cni": "calico", "nodes": nodes},
            created_at=now - n,
            expires_at=now + 3600,
            heartbeat_at=now - n,
            vms=[
                VmRecord(f"gimme-{cluster_id}-{i}", f"vm-{n}-{i}", f"10.{n % 250}.{n % 199}.{i}")
                for i in range(1, nodes + 1)
            ],
            phases={"vms": 60.0, "prepare": 150.0, "total": 400.0},
        )
        clusters[str(n)] = record.to_doc()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": {"1": {"schema": SCHEMA_VERSION}}, "clusters": clusters}))


def median_ms(env: dict[str, str], repeat: int, *args: str) -> float:
    must(run(env, *args), " ".join(args))  # warm-up: bytecode, page cache
    return round(
        statistics.median(must(run(env, *args), "x").seconds for _ in range(repeat)) * 1000
    )


def bench_light(workdir: Path, records: int, repeat: int, cache: Path) -> dict:
    small = GimmeEnv(workdir / "small" / "config.yaml", workdir / "small" / "state.json", workdir)
    large = GimmeEnv(workdir / "large" / "config.yaml", workdir / "large" / "state.json", workdir)
    write_state(small.state, 10)
    write_state(large.state, records)
    env_small, env_large = child_env(small, cache), child_env(large, cache)
    rows = must(run(env_large, "list", "--json"), "list").stdout
    if len(json.loads(rows)) != records:
        raise SystemExit("bench: gimme list did not show every record")
    return {
        "python_pass_ms": median_ms(env_small, repeat, "-c", "pass"),
        "help_ms": median_ms(env_small, repeat, "--help"),
        "list_small_ms": median_ms(env_small, repeat, "list"),
        "list_large_ms": median_ms(env_large, repeat, "list"),
        "records_small": 10,
        "records_large": records,
    }


# -- report -----------------------------------------------------------------------------------


def rows(results: dict) -> list[dict]:
    """Table rows: what, value, ideal/reference, ratio, goal (max ratio or None), unit."""
    out = []
    ideal = results["critical_path_s"]
    creates = {c["nodes"]: c for c in results["create"]}
    for nodes, c in creates.items():
        out.append(_row(f"create, {nodes} nodes / critical path", c["seconds"], ideal, 1.15, "s"))
    low, high = min(creates), max(creates)
    out.append(
        _row(
            f"create {high} nodes / {low} nodes",
            creates[high]["seconds"],
            creates[low]["seconds"],
            1.2,
            "s",
        )
    )
    big, one = results["reap"]
    out.append(_row(f"reap {big['clusters']} clusters / 1", big["seconds"], one["seconds"], 2, "s"))
    light = results["light"]
    out.append(
        _row(
            f"list {light['records_large']:,} records / {light['records_small']}",
            light["list_large_ms"],
            light["list_small_ms"],
            3,
            "ms",
        )
    )
    base = light["python_pass_ms"]
    out.append(_row("gimme --help / python -c pass", light["help_ms"], base, None, "ms"))
    out.append(_row("gimme list (10) / python -c pass", light["list_small_ms"], base, None, "ms"))
    out.append(
        _row(f"peak RSS, create {high} nodes", creates[high]["max_rss_mib"], None, None, "MiB")
    )
    return out


def _row(what: str, value: float, ref: float | None, goal: float | None, unit: str) -> dict:
    ratio = round(value / ref, 2) if ref else None
    ok = None if goal is None or ratio is None else ratio <= goal
    return {
        "what": what,
        "value": value,
        "ref": ref,
        "ratio": ratio,
        "goal": goal,
        "unit": unit,
        "pass": ok,
    }


def _cells(row: dict) -> list[str]:
    unit = row["unit"]
    fmt = (lambda v: f"{v:.1f} {unit}") if unit != "ms" else (lambda v: f"{v:.0f} ms")
    return [
        row["what"],
        fmt(row["value"]),
        fmt(row["ref"]) if row["ref"] is not None else "-",
        f"{row['ratio']:.2f}" if row["ratio"] is not None else "-",
        f"<= {row['goal']}" if row["goal"] is not None else "-",
        {True: "pass", False: "FAIL", None: "-"}[row["pass"]],
    ]


HEADER = ["measure", "value", "ideal / reference", "ratio", "goal", "result"]


def markdown(table: list[dict]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in table]
    return "\n".join(lines)


def show(table: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    rich_table = Table(*HEADER)
    for row in table:
        rich_table.add_row(*_cells(row))
    Console(width=None if sys.stdout.isatty() else 110).print(rich_table)


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller, faster (not for numbers)")
    parser.add_argument("--out", type=Path, default=Path("bench-results.json"))
    parser.add_argument("--scale", type=float, help="override the latency scale")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--nodes", help="only these create sizes, e.g. 2,6 (for development)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: the emulated nodes need root")
    settings = QUICK if args.quick else FULL
    if args.scale:
        settings.scale = args.scale
    if args.nodes:
        settings.nodes = tuple(int(n) for n in args.nodes.split(","))
    scale = settings.scale
    latency = {rule: round(seconds * scale, 3) for rule, seconds in COMMANDS.items()}
    started = time.monotonic()
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "quick": args.quick,
        "scale": scale,
        "engine_delays_s": {k: round(v * scale, 3) for k, v in vars(ENGINE).items()}
        | {"add_vm": round(ADD_VM * scale, 3)},
        "command_latency_s": latency,
        "step_s": {step: round(step_seconds(step, scale), 3) for step in STEPS},
        "critical_path_s": round(critical_path(scale), 2),
        "load_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="gimme-bench-") as tmp:
        tmp_path = Path(tmp)
        cache = tmp_path / "pycache"
        with TestBed(
            tmp_path / "bed", delay_scale=scale, delays=ENGINE, command_latency=latency
        ) as bed:
            env = child_env(bed.gimme_env(tmp_path / "home"), cache)
            must(run(env, "-c", WARM_UP), "warm-up")
            results["create"] = []
            for nodes in settings.nodes:
                print(f"bench: create, {nodes} nodes ...", flush=True)
                results["create"].append(bench_create(bed, env, nodes, scale))
        print(f"bench: reap of {settings.reap} and of 1 ...", flush=True)
        results["reap"] = [
            bench_reap(tmp_path / "reap-many", settings.reap, scale, cache),
            bench_reap(tmp_path / "reap-one", 1, scale, cache),
        ]
        print("bench: --help and list ...", flush=True)
        results["light"] = bench_light(tmp_path / "light", settings.records, settings.repeat, cache)
    results["load_after"] = os.getloadavg()
    results["bench_seconds"] = round(time.monotonic() - started, 1)
    table = rows(results)
    results["table"] = table
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    show(table)
    for c in results["create"]:
        for problem in c["call_log_mismatches"]:
            print(f"bench: WARNING: the ideal does not match what ran: {problem}")
    if args.markdown:
        print(markdown(table))
    print(f"bench: {results['bench_seconds']} s; results in {args.out}")


if __name__ == "__main__":
    main()
