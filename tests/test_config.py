from __future__ import annotations

import os
from pathlib import Path

import pytest

from gimme.config import Secret, load_settings
from gimme.errors import ConfigError, ExitCode


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_engine_from_file_and_env_override(tmp_path: Path) -> None:
    pw = _write(tmp_path / "pw", "s3cret-file\n")
    cfg = _write(
        tmp_path / "c.yaml",
        f"engines:\n  rack-1:\n    url: https://e1/ovirt-engine/api\n    password_file: {pw}\n"
        "state: /tmp/x.json\ndefault_ttl: 2h\n",
    )
    env = {"GIMME_ENGINE_RACK_1_USERNAME": "bob@internal", "GIMME_STATE": "/tmp/y.json"}
    s = load_settings(cfg, env)
    engine = s.engine("rack-1")
    assert engine.username == "bob@internal"
    assert engine.password == Secret("s3cret-file")
    assert str(s.state) == "/tmp/y.json"
    assert s.default_ttl == 7200
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.masked())
    assert s.masked()["engines"]["rack-1"]["password"] == "***"


def test_engine_only_from_environment(tmp_path: Path) -> None:
    env = {
        "GIMME_ENGINE_RACK_2_URL": "https://e2/ovirt-engine/api",
        "GIMME_ENGINE_RACK_2_PASSWORD": "pw-from-env",
        "GIMME_ENGINE_RACK_2_INSECURE": "true",
    }
    s = load_settings(tmp_path / "missing.yaml", env)
    assert s.engine("rack-2").insecure is True
    assert s.engine("rack-2").require_password().reveal() == "pw-from-env"


def test_world_readable_password_is_refused(tmp_path: Path) -> None:
    cfg = _write(
        tmp_path / "c.yaml",
        "engines:\n  rack-1:\n    url: https://e1/ovirt-engine/api\n    password: hunter22\n",
        mode=0o644,
    )
    with pytest.raises(ConfigError, match="chmod 600") as info:
        load_settings(cfg, {})
    assert "hunter22" not in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE


def test_open_password_file_is_refused(tmp_path: Path) -> None:
    pw = _write(tmp_path / "pw", "x", mode=0o640)
    cfg = _write(
        tmp_path / "c.yaml", f"engines:\n  r:\n    url: https://e\n    password_file: {pw}\n"
    )
    with pytest.raises(ConfigError, match="readable by others"):
        load_settings(cfg, {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus: 1\n", "unknown key"),
        ("engines:\n  r:\n    url: ftp://x\n", "must start with https://"),
        ("engines:\n  r:\n    username: a\n", "has no url"),
        ("engines: [1]\n", "must be a mapping"),
        ("timeouts:\n  forever: 1\n", "unknown timeout"),
        (":\n  - [\n", "not valid YAML"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    cfg = _write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(cfg, {})
    assert "\n" not in str(info.value)


def test_missing_password_names_the_variable(tmp_path: Path) -> None:
    s = load_settings(tmp_path / "none.yaml", {"GIMME_ENGINE_RACK_1_URL": "https://e"})
    with pytest.raises(ConfigError, match="GIMME_ENGINE_RACK_1_PASSWORD"):
        s.engine("rack-1").require_password()
