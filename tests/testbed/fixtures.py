"""pytest fixtures for the fake oVirt engine. Use them from a test module or conftest with

pytest_plugins = ["tests.testbed.fixtures"]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ovirtsdk4
import pytest

from .engine import FakeEngine

FAST = 0.05  # delay_scale: a whole add -> up -> IPs -> remove cycle takes about half a second


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[Callable[..., FakeEngine]]:
    """Factory: make_engine(**FakeEngine keyword args) starts an engine (delay_scale=FAST
    unless given); every engine it made is stopped after the test."""
    engines: list[FakeEngine] = []

    def make(**kwargs: Any) -> FakeEngine:
        kwargs.setdefault("delay_scale", FAST)
        engine = FakeEngine(tmp_path / f"fake-engine-{len(engines)}", **kwargs)
        engines.append(engine)
        return engine.start()

    yield make
    for engine in engines:
        engine.stop()


@pytest.fixture
def fake_engine(make_engine: Callable[..., FakeEngine]) -> FakeEngine:
    """A started FakeEngine over TLS with fast delays, stopped after the test."""
    return make_engine()


@pytest.fixture
def ovirt(fake_engine: FakeEngine) -> Iterator[ovirtsdk4.Connection]:
    """A real ovirtsdk4 connection to `fake_engine` (CA-verified), closed after the test."""
    connection = fake_engine.connection()
    yield connection
    connection.close()
