"""The `gimme` command line: parse, call one core function, render the result.

Data goes to stdout (ids, tables, JSON, kubeconfigs); progress and errors go to stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.live import Live
from rich.table import Table

from gimme import __version__, core, kubeconfig
from gimme.config import load_settings
from gimme.errors import ExitCode, GimmeError, UsageError
from gimme.files import write_private
from gimme.spec import CNIS, RUNTIMES, build_spec
from gimme.store import DELETED, ClusterRecord

app = typer.Typer(
    name="gimme",
    help="Disposable Kubernetes clusters on your own oVirt: any version x runtime x CNI x OS.",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.callback()
def _root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        out.print(ctx.get_help(), markup=False)


out = Console(highlight=False, soft_wrap=True)
if not out.is_terminal:
    out.width = 250  # pipes get whole table cells, not ellipses
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Act on another user's cluster.")]
IdArg = Annotated[str, typer.Argument(help="Cluster id, as `gimme list` shows it.")]


class _RichReporter:
    """Live per-phase and per-node progress on a terminal."""

    def __init__(self) -> None:
        self._phase = "starting"
        self._phase_started = time.monotonic()
        self._started = time.monotonic()
        self._nodes: dict[str, str] = {}
        self._lock = threading.Lock()

    def phase(self, name: str) -> None:
        with self._lock:
            self._phase, self._phase_started = name, time.monotonic()

    def node(self, node: str, message: str) -> None:
        with self._lock:
            self._nodes[node] = message

    def info(self, message: str) -> None:
        err.print(message)

    def __rich__(self) -> Table:
        with self._lock:
            table = Table.grid(padding=(0, 2))
            now = time.monotonic()
            table.add_row(
                f"[bold]{self._phase}[/]",
                f"{now - self._phase_started:5.1f}s",
                f"total {now - self._started:5.1f}s",
            )
            for name, message in self._nodes.items():
                table.add_row(f"  {name}", message, "")
            return table


class _LineReporter:
    """Plain timestamped lines (cron, pipes): only what deserves a log line."""

    def phase(self, name: str) -> None:
        pass

    def node(self, node: str, message: str) -> None:
        pass

    def info(self, message: str) -> None:
        sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
        sys.stderr.flush()


@contextmanager
def _reporting() -> Iterator[core.Reporter]:
    if not err.is_terminal:
        yield _LineReporter()
        return
    reporter = _RichReporter()
    with Live(reporter, console=err, refresh_per_second=4, transient=True):
        yield reporter


def _context(reporter: core.Reporter | None = None) -> core.Context:
    ctx = core.Context(settings=load_settings())
    if reporter is not None:
        ctx.reporter = reporter
    return ctx


def _age(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    seconds = abs(int(seconds))
    if seconds >= 3600:
        return f"{sign}{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{sign}{seconds // 60}m"
    return f"{sign}{seconds}s"


def _expiry(row: dict[str, Any], now: float) -> str:
    if row["state"] == DELETED:
        return "-"
    if row["held_until"] and row["held_until"] > now:
        return "held"
    return _age(row["expires_in_s"])


def _summary(r: ClusterRecord, now: float) -> dict[str, Any]:
    spec = r.spec
    return {
        "id": r.id,
        "owner": r.owner,
        "foundation": r.foundation,
        "k8s": spec.get("k8s"),
        "cri": spec.get("cri"),
        "cni": spec.get("cni"),
        "nodes": spec.get("nodes"),
        "state": r.state,
        "age_s": int(now - r.created_at),
        "expires_in_s": int(r.expires_at - now),
        "held_until": r.hold_until,
        "comment": spec.get("comment") or "",
    }


def _print_columns(header: list[str], rows: list[list[str]]) -> None:
    """Columns two spaces apart, header in bold on a terminal; plain text, never markup.

    Linear in the rows: rich's Table takes about 2 ms a row, half a minute for 10,000.
    """

    def width(text: str) -> int:
        return len(text) if text.isascii() else cell_len(text)

    widths = [max(map(width, column)) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        padded = (c + " " * (w - width(c)) for c, w in zip(cells, widths, strict=True))
        return "  ".join(padded).rstrip()

    out.print(line(header), style="bold", markup=False)
    out.file.write("".join(line(cells) + "\n" for cells in rows))
    out.file.flush()


# -- commands ---------------------------------------------------------------------------------


@app.command()
def create(
    foundation: Annotated[
        str | None,
        typer.Option(
            help="Where and from what: engine, oVirt cluster, template, OS (see `gimme foundations`)."
        ),
    ] = None,
    k8s: Annotated[str, typer.Option("--k8s", help="Kubernetes version MAJOR.MINOR.")] = "1.23",
    cri: Annotated[
        str, typer.Option(help=f"Container runtime: {', '.join(RUNTIMES)}.")
    ] = "containerd",
    cni: Annotated[str, typer.Option(help=f"Network plugin: {', '.join(CNIS)}.")] = "calico",
    cni_primary: Annotated[
        str | None, typer.Option(help="Primary CNI under multus (default: the matrix's choice).")
    ] = None,
    kube_proxy_replacement: Annotated[
        bool, typer.Option("--kube-proxy-replacement", help="Cilium without kube-proxy.")
    ] = False,
    nodes: Annotated[int, typer.Option(help="Node count 2..6; node 1 is the control plane.")] = 2,
    ttl: Annotated[
        str | None,
        typer.Option(help="Lifetime: seconds or 90m, 2h (max 24h). Default from config (3600)."),
    ] = None,
    comment: Annotated[str, typer.Option(help="Free text shown in `gimme list`.")] = "",
    keep_on_failure: Annotated[
        bool,
        typer.Option(
            "--keep-on-failure",
            help="Keep the VMs of a failed create for debugging (TTL still applies).",
        ),
    ] = False,
) -> None:
    """Create a cluster and print its id."""
    settings = load_settings()
    spec = build_spec(
        foundation=foundation or settings.default_foundation,
        k8s=k8s,
        cri=cri,
        cni=cni,
        nodes=nodes,
        ttl=ttl if ttl is not None else settings.default_ttl,
        comment=comment,
        cni_primary=cni_primary,
        kube_proxy_replacement=kube_proxy_replacement,
    )
    with _reporting() as reporter:
        ctx = core.Context(settings=settings, reporter=reporter)
        record = core.create_cluster(ctx, spec, keep_on_failure=keep_on_failure)
    err.print(
        f"cluster {record.id} ready in {record.phases.get('total', 0):.0f}s; "
        f"`gimme kubeconfig {record.id} > kc && kubectl --kubeconfig kc get nodes`"
    )
    out.print(record.id)


@app.command("list")
def list_clusters(
    all_: Annotated[bool, typer.Option("--all", help="Include deleted clusters.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List clusters (yours and everyone else's) from the shared state file."""
    now = time.time()
    records = [r for r in _context().store.records() if all_ or r.state != DELETED]
    records.sort(key=lambda r: r.created_at)
    rows = [_summary(r, now) for r in records]
    if as_json:  # what print_json prints, without its re-parse and highlighting (slow at 10,000)
        out.file.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return
    header = [
        "ID",
        "OWNER",
        "FOUNDATION",
        "K8S/CRI/CNI",
        "NODES",
        "STATE",
        "AGE",
        "EXPIRES IN",
        "COMMENT",
    ]
    cells = [
        [
            row["id"],
            row["owner"],
            row["foundation"],
            f"{row['k8s']}/{row['cri']}/{row['cni']}",
            str(row["nodes"]),
            row["state"],
            _age(row["age_s"]),
            _expiry(row, now),
            row["comment"],
        ]
        for row in rows
    ]
    _print_columns(header, cells)


@app.command()
def show(cluster_id: IdArg, as_json: JsonOpt = False) -> None:
    """Show one cluster: spec, nodes and addresses, phase timings, errors."""
    record = _context().store.get(core.check_id(cluster_id))
    data = record.to_doc()
    if as_json:
        out.print_json(json.dumps(data))
        return
    now = time.time()
    summary = _summary(record, now)
    for key in ("id", "owner", "state", "foundation", "k8s", "cri", "cni", "nodes", "comment"):
        out.print(f"{key:12} {summary[key]}")
    out.print(f"{'age':12} {_age(summary['age_s'])}")
    out.print(f"{'expires in':12} {_age(summary['expires_in_s'])}")
    for vm in record.vms:
        out.print(f"{'vm':12} {vm.name}  {vm.address or '-'}  {vm.id or '-'}")
    if record.phases:
        out.print(f"{'phases':12} " + ", ".join(f"{k} {v:.1f}s" for k, v in record.phases.items()))
    if record.error:
        out.print(f"{'error':12} {record.error}")


@app.command("kubeconfig")
def kubeconfig_cmd(
    cluster_id: IdArg,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write to FILE (mode 0600) instead of stdout."),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge", help="Add to ~/.kube/config (or $KUBECONFIG); removed again on delete."
        ),
    ] = False,
) -> None:
    """Print the cluster's admin kubeconfig (context gimme-<id>)."""
    ctx = _context()
    record = ctx.store.get(core.check_id(cluster_id))
    path = ctx.cluster_dir(record.id) / "kubeconfig"
    if not path.exists():
        if record.owner_uid != ctx.uid:
            raise UsageError(
                f"cluster {record.id} belongs to {record.owner}; its kubeconfig is in their account"
            )
        raise UsageError(f"cluster {record.id} has no kubeconfig (state: {record.state})")
    text = path.read_text()
    if output is not None:
        write_private(output, text)
        err.print(f"wrote {output}")
    if merge:
        target = kubeconfig.default_kubeconfig()
        kubeconfig.merge(target, text)
        write_private(ctx.cluster_dir(record.id) / "merged", str(target))
        err.print(f"merged into {target}; context gimme-{record.id}")
    if output is None and not merge:
        sys.stdout.write(text)


@app.command()
def ssh(
    cluster_id: IdArg,
    node: Annotated[str, typer.Argument(help="Node number (1 = control plane) or VM name.")] = "1",
    command: Annotated[list[str] | None, typer.Argument(help="Command to run (after --).")] = None,
) -> None:
    """Open an SSH session to a node, or run a command there."""
    ctx = _context()
    record = ctx.store.get(core.check_id(cluster_id))
    if not (node.isdigit() or core.VM_NAME_RE.match(node)):
        # `gimme ssh <id> -- cmd`: the node was left out, so the command's first word landed here.
        command, node = [node, *(command or [])], "1"
    vm = next((v for i, v in enumerate(record.vms, 1) if node in (str(i), v.name)), None)
    if vm is None:
        raise UsageError(f"cluster {record.id} has no node {node!r} (1..{len(record.vms)})")
    cdir = ctx.cluster_dir(record.id)
    if not (cdir / "id_ed25519").exists():
        raise UsageError(f"cluster {record.id}: no SSH key on this account (owner: {record.owner})")
    if not vm.address:
        raise UsageError(f"{vm.name} has no address yet (state: {record.state})")
    from gimme.profiles import load_foundations, load_os_profiles

    foundation = load_foundations(ctx.settings.foundations).get(record.foundation)
    user = ctx.settings.ssh_user or (
        load_os_profiles()[foundation.os].default_user if foundation else "root"
    )
    ssh_binary = shutil.which("ssh")
    if ssh_binary is None:
        raise UsageError("no ssh client found on PATH")
    argv = [
        ssh_binary,
        "-i",
        str(cdir / "id_ed25519"),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={cdir / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ForwardAgent=no",
        f"{user}@{vm.address}",
        *(["--", *command] if command else []),
    ]
    os.execv(ssh_binary, argv)


@app.command()
def prolong(
    cluster_id: IdArg,
    ttl: Annotated[
        str,
        typer.Option(help="New lifetime from now: seconds or 90m, 2h (max 24h); 0 deletes now."),
    ],
    force: ForceOpt = False,
) -> None:
    """Set a cluster's expiry to TTL from now."""
    record = core.prolong_cluster(_context(), cluster_id, ttl, force=force)
    if record.state == DELETED:
        err.print(f"cluster {record.id} deleted")
    else:
        err.print(f"cluster {record.id} now expires in {_age(record.expires_at - time.time())}")


@app.command()
def hold(
    cluster_id: IdArg,
    duration: Annotated[
        str, typer.Option("--for", help="Keep past the TTL for this long (e.g. 8h); 0 releases.")
    ],
    force: ForceOpt = False,
) -> None:
    """Keep a cluster past its TTL for debugging, up to the configured maximum."""
    record = core.hold_cluster(_context(), cluster_id, duration, force=force)
    if record.hold_until:
        err.print(f"cluster {record.id} held for {_age(record.hold_until - time.time())}")
    else:
        err.print(f"cluster {record.id} released; it expires with its TTL")


@app.command()
def delete(cluster_id: IdArg, force: ForceOpt = False) -> None:
    """Stop and remove the cluster's VMs; deleting twice is fine."""
    with _reporting() as reporter:
        record = core.delete_cluster(_context(reporter), cluster_id, force=force)
    err.print(f"cluster {record.id} deleted")


@app.command()
def reap(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be deleted.")] = False,
) -> None:
    """Delete expired clusters and orphaned VMs (run it from cron every few minutes)."""
    ctx = _context(_LineReporter())
    report = core.reap(ctx, dry_run=dry_run)
    if report.busy:
        _LineReporter().info("another gimme reap is running; nothing to do")
        return
    if dry_run:
        for line in report.planned or ["nothing to reap"]:
            out.print(line)
        return
    ctx.reporter.info(
        f"reap: {len(report.deleted)} cluster(s) deleted, {len(report.orphans)} orphan VM(s), "
        f"{len(report.vanished)} vanished record(s), {len(report.failed)} failure(s)"
    )
    if report.failed:
        raise typer.Exit(ExitCode.FAILURE)


@app.command()
def foundations(as_json: JsonOpt = False) -> None:
    """List foundations and whether each engine has their template."""
    rows = core.foundations_report(_context())
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("FOUNDATION", "ENGINE", "CLUSTER", "TEMPLATE", "OS", "AVAILABLE"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"], row["engine"], row["cluster"], row["template"], row["os"], row["available"]
        )
    out.print(table)


@app.command()
def runtimes(as_json: JsonOpt = False) -> None:
    """Supported Kubernetes versions, runtimes and CNIs."""
    from gimme.matrix import load_matrix

    rows = load_matrix().rows()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    from gimme.matrix import markdown_table

    out.print(markdown_table(load_matrix()))


@app.command()
def render(
    foundation: Annotated[str | None, typer.Option(help="As for create.")] = None,
    k8s: Annotated[str, typer.Option("--k8s", help="As for create.")] = "1.23",
    cri: Annotated[str, typer.Option(help="As for create.")] = "containerd",
    cni: Annotated[str, typer.Option(help="As for create.")] = "calico",
    cni_primary: Annotated[str | None, typer.Option(help="As for create.")] = None,
    kube_proxy_replacement: Annotated[
        bool, typer.Option("--kube-proxy-replacement", help="As for create.")
    ] = False,
    nodes: Annotated[int, typer.Option(help="As for create.")] = 2,
    node: Annotated[str, typer.Option(help="Which node's steps: control or worker.")] = "control",
) -> None:
    """Print exactly what `create` would run on a node, without touching an engine."""
    if node not in ("control", "worker"):
        raise UsageError(f"--node must be control or worker, not {node!r}")
    settings = load_settings()
    spec = build_spec(
        foundation=foundation or settings.default_foundation,
        k8s=k8s,
        cri=cri,
        cni=cni,
        nodes=nodes,
        cni_primary=cni_primary,
        kube_proxy_replacement=kube_proxy_replacement,
    )
    plan = core.make_plan(core.Context(settings=settings), spec)
    for step in plan.steps[node]:
        sys.stdout.write(f"# ---- phase: {step.phase} ({step.name}) ----\n{step.script}\n")


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; put a TLS reverse proxy in front.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Offer the original service's REST API (/v0) on top of the same state file."""
    from gimme.api import run_server

    run_server(load_settings(), host=host, port=port)


@config_app.command("show")
def config_show(as_json: JsonOpt = False) -> None:
    """Print the effective configuration, secrets masked."""
    data = load_settings().masked()
    if as_json:
        out.print_json(json.dumps(data))
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


@app.command()
def version() -> None:
    """Print gimme's version."""
    out.print(__version__)


def _error(message: str) -> None:
    """`gimme: error: <first line>`; further lines (remote output tails) indented below it."""
    first, *rest = message.splitlines() or [""]
    sys.stderr.write(f"gimme: error: {' '.join(first.split())}\n")
    sys.stderr.writelines(f"  {line}\n" for line in rest)
    sys.stderr.flush()


def _interrupted() -> int:
    err.print(
        "gimme: interrupted; `gimme list` shows what is left, `gimme reap` cleans up",
        markup=False,
    )
    return ExitCode.INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors, exit codes from gimme.errors.ExitCode."""
    try:
        result = app(args=argv, prog_name="gimme", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:
        _error(exc.format_message())
        return exc.exit_code
    except typer.Abort:
        _error("interrupted")
        return ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        return _interrupted()
    except GimmeError as exc:
        _error(str(exc) or type(exc).__name__)
        return exc.exit_code
    # With standalone_mode off, --help and no-args-is-help come back as exit codes, and so
    # does Ctrl-C: typer turns KeyboardInterrupt into exit code 130.
    if result == ExitCode.INTERRUPTED:
        return _interrupted()
    return result if isinstance(result, int) else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
