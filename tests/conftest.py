"""Shared fixtures: an isolated gimme home for every test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def gimme_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point config, state, per-user data and kubeconfig at tmp_path; never the real ones."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIMME_CONFIG", str(home / "config.yaml"))
    monkeypatch.setenv("GIMME_STATE", str(tmp_path / "state" / "state.json"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    for name in list(__import__("os").environ):
        if name.startswith("GIMME_ENGINE_"):
            monkeypatch.delenv(name)
    return home
