"""The whole test bed in one object: a fake oVirt engine whose VMs boot as emulated nodes.

Used by the end-to-end tests, the demo (`nox -s demo`) and the benchmark (`nox -s bench`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.testbed.engine import Delays, FakeEngine
from tests.testbed.nodes import NodePool

ENGINE_NAME = "rack-1"


@dataclass
class GimmeEnv:
    """Files and variables that point a gimme process at the test bed."""

    config: Path
    state: Path
    home: Path

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            GIMME_CONFIG=str(self.config),
            GIMME_STATE=str(self.state),
            HOME=str(self.home),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
            XDG_CONFIG_HOME=str(self.home / ".config"),
        )
        env.pop("KUBECONFIG", None)
        return env


class TestBed:
    """Fake engine + node pool, started together and torn down together."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        workdir: Path,
        *,
        delay_scale: float = 0.05,
        delays: Delays | None = None,
        sshd_delay: float = 0.0,
        tls: bool = True,
        command_latency: dict[str, float] | None = None,
    ) -> None:
        self.workdir = workdir
        self.pool = NodePool(
            workdir / "nodes", sshd_delay=sshd_delay, command_latency=command_latency
        )
        self.engine = FakeEngine(
            workdir / "engine", tls=tls, node_pool=self.pool, delay_scale=delay_scale, delays=delays
        )

    def start(self) -> TestBed:
        try:
            self.engine.start()
        except BaseException:
            self.pool.close()
            raise
        return self

    def close(self) -> None:
        try:
            self.engine.stop()
        finally:
            self.pool.close()

    def __enter__(self) -> TestBed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def gimme_env(self, home: Path, *, extra: dict | None = None) -> GimmeEnv:
        """Write a gimme config for this test bed under `home` (password in a 0600 file)."""
        home.mkdir(parents=True, exist_ok=True)
        password_file = home / "engine.password"
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.engine.password)
        config = {
            "engines": {
                ENGINE_NAME: {
                    "url": self.engine.url,
                    "username": self.engine.username,
                    "password_file": str(password_file),
                    "ca_file": str(self.engine.ca_file),
                }
            },
            "timeouts": {
                "vm_create": 60,
                "vm_start": 60,
                "vm_ip": 60,
                "ssh_ready": 60,
                "step": 120,
            },
            **(extra or {}),
        }
        path = home / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        os.chmod(path, 0o600)
        return GimmeEnv(config=path, state=home / "state" / "state.json", home=home)
