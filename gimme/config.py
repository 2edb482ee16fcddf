"""Settings from the YAML config file, each key overridable by an environment variable."""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from gimme.errors import ConfigError
from gimme.spec import DEFAULT_FOUNDATION, DEFAULT_TTL, parse_ttl

log = logging.getLogger(__name__)

DEFAULT_STATE = Path("/var/lib/gimme/state.json")
_ENGINE_KEYS = ("url", "username", "password", "password_file", "ca_file", "insecure")
_TOP_KEYS = {
    "api_tokens_file",
    "engines",
    "state",
    "ssh_user",
    "default_foundation",
    "default_ttl",
    "max_hold",
    "reap_grace",
    "foundations",
    "mirrors",
    "timeouts",
}
_MIRROR_KEYS = ("packages", "images", "manifests", "http_proxy", "no_proxy")


class Secret:
    """A value that never shows itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class EngineSettings:
    name: str
    url: str
    username: str
    password: Secret | None
    ca_file: Path | None = None
    insecure: bool = False

    def require_password(self) -> Secret:
        if self.password is None:
            env = _engine_env(self.name, "PASSWORD")
            raise ConfigError(
                f"engine {self.name!r} has no password: set {env}, or password_file in the config"
            )
        return self.password


@dataclass(frozen=True)
class Timeouts:
    """Deadlines in seconds for each wait; none is unbounded."""

    engine_call: float = 120
    vm_create: float = 900
    vm_start: float = 600
    vm_ip: float = 600
    vm_delete: float = 600
    ssh_ready: float = 600
    step: float = 1800
    lock: float = 30


@dataclass(frozen=True)
class Settings:
    config_path: Path | None
    engines: dict[str, EngineSettings]
    state: Path = DEFAULT_STATE
    ssh_user: str | None = None
    default_foundation: str = DEFAULT_FOUNDATION
    default_ttl: int = DEFAULT_TTL
    max_hold: int = 7 * 86400
    reap_grace: int = 900
    foundations: dict[str, dict[str, Any]] = field(default_factory=dict)
    mirrors: dict[str, str] = field(default_factory=dict)
    timeouts: Timeouts = field(default_factory=Timeouts)
    api_tokens_file: Path | None = None

    def engine(self, name: str) -> EngineSettings:
        try:
            return self.engines[name]
        except KeyError:
            known = ", ".join(sorted(self.engines)) or "none configured"
            raise ConfigError(f"unknown engine {name!r} (configured: {known})") from None

    def masked(self) -> dict[str, Any]:
        """The effective configuration with secrets masked, for `gimme config show`."""
        return {
            "config_path": str(self.config_path) if self.config_path else None,
            "state": str(self.state),
            "ssh_user": self.ssh_user,
            "default_foundation": self.default_foundation,
            "default_ttl": self.default_ttl,
            "max_hold": self.max_hold,
            "reap_grace": self.reap_grace,
            "engines": {
                name: {
                    "url": e.url,
                    "username": e.username,
                    "password": "***" if e.password else None,
                    "ca_file": str(e.ca_file) if e.ca_file else None,
                    "insecure": e.insecure,
                }
                for name, e in sorted(self.engines.items())
            },
            "foundations": self.foundations,
            "mirrors": self.mirrors,
            "timeouts": vars(self.timeouts),
            "api_tokens_file": str(self.api_tokens_file) if self.api_tokens_file else None,
        }


def config_path() -> Path:
    from platformdirs import user_config_path

    env = os.environ.get("GIMME_CONFIG")
    return Path(env) if env else user_config_path("gimme") / "config.yaml"


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file (missing is fine) and apply GIMME_* environment overrides."""
    env = os.environ if env is None else env
    path = path or config_path()
    raw = _read_yaml(path)
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s): {', '.join(sorted(unknown))}")

    engines_raw = raw.get("engines") or {}
    if not isinstance(engines_raw, dict):
        raise ConfigError(f"{path}: 'engines' must be a mapping of engine name to settings")
    names = set(engines_raw) | _engine_names_from_env(env)
    engines = {n: _engine(n, engines_raw.get(n) or {}, env, path) for n in sorted(names)}

    mirrors = dict(raw.get("mirrors") or {})
    for key in _MIRROR_KEYS:
        if f"GIMME_MIRROR_{key.upper()}" in env:
            mirrors[key] = env[f"GIMME_MIRROR_{key.upper()}"]
    bad = set(mirrors) - set(_MIRROR_KEYS)
    if bad:
        raise ConfigError(f"{path}: unknown mirror key(s): {', '.join(sorted(bad))}")

    return Settings(
        config_path=path if path.exists() else None,
        engines=engines,
        state=Path(_pick(raw, env, "state", "GIMME_STATE", str(DEFAULT_STATE))),
        ssh_user=_pick(raw, env, "ssh_user", "GIMME_SSH_USER", None),
        default_foundation=_pick(
            raw, env, "default_foundation", "GIMME_DEFAULT_FOUNDATION", DEFAULT_FOUNDATION
        ),
        default_ttl=parse_ttl(
            str(_pick(raw, env, "default_ttl", "GIMME_DEFAULT_TTL", DEFAULT_TTL))
        ),
        max_hold=_ttl_any(_pick(raw, env, "max_hold", "GIMME_MAX_HOLD", 7 * 86400), "max_hold"),
        reap_grace=_ttl_any(_pick(raw, env, "reap_grace", "GIMME_REAP_GRACE", 900), "reap_grace"),
        foundations=dict(raw.get("foundations") or {}),
        mirrors=mirrors,
        timeouts=_timeouts(raw.get("timeouts") or {}, env, path),
        api_tokens_file=_optional_path(
            _pick(raw, env, "api_tokens_file", "GIMME_API_TOKENS_FILE", None)
        ),
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping")
    engines = data.get("engines")
    if isinstance(engines, dict) and any(
        isinstance(e, dict) and e.get("password") for e in engines.values()
    ):
        _check_private(path, "holds an engine password")
    return data


def _check_private(path: Path, why: str) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path} {why} but is readable by others (mode {mode:o}); run: chmod 600 {path}"
        )


def _engine_env(name: str, key: str) -> str:
    return f"GIMME_ENGINE_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}_{key}"


def _engine_names_from_env(env: Mapping[str, str]) -> set[str]:
    """Engines defined only by environment: GIMME_ENGINE_<NAME>_URL (name lowercased, _ kept)."""
    names = set()
    for key in env:
        match = re.fullmatch(r"GIMME_ENGINE_([A-Z0-9_]+)_URL", key)
        if match:
            names.add(match.group(1).lower().replace("_", "-"))
    return names


def _engine(
    name: str, raw: Mapping[str, Any], env: Mapping[str, str], path: Path
) -> EngineSettings:
    unknown = set(raw) - set(_ENGINE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: engine {name!r}: unknown key(s): {', '.join(sorted(unknown))}")
    values = {k: env.get(_engine_env(name, k.upper()), raw.get(k)) for k in _ENGINE_KEYS}
    if not values["url"]:
        raise ConfigError(f"engine {name!r} has no url (config or {_engine_env(name, 'URL')})")
    password: Secret | None = None
    if values["password"]:
        password = Secret(str(values["password"]))
    elif values["password_file"]:
        pw_path = Path(str(values["password_file"])).expanduser()
        try:
            _check_private(pw_path, "holds an engine password")
            password = Secret(pw_path.read_text().strip())
        except OSError as exc:
            raise ConfigError(f"cannot read password file {pw_path}: {exc.strerror}") from None
    insecure = values["insecure"]
    if isinstance(insecure, str):
        insecure = insecure.strip().lower() in ("1", "true", "yes")
    url = str(values["url"]).rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"engine {name!r}: url must start with https:// (got {url!r})")
    return EngineSettings(
        name=name,
        url=url,
        username=str(values["username"] or "admin@internal"),
        password=password,
        ca_file=Path(str(values["ca_file"])).expanduser() if values["ca_file"] else None,
        insecure=bool(insecure),
    )


def _pick(
    raw: Mapping[str, Any], env: Mapping[str, str], key: str, env_key: str, default: Any
) -> Any:
    if env_key in env:
        return env[env_key]
    value = raw.get(key)
    return default if value is None else value


def _optional_path(value: Any) -> Path | None:
    return Path(str(value)).expanduser() if value else None


def _ttl_any(value: Any, key: str) -> int:
    try:
        return int(value) if not isinstance(value, str) else _seconds(value)
    except ValueError:
        raise ConfigError(f"{key} must be seconds or a duration like 8h (got {value!r})") from None


def _seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def _timeouts(raw: Mapping[str, Any], env: Mapping[str, str], path: Path) -> Timeouts:
    defaults = Timeouts()
    unknown = set(raw) - set(vars(defaults))
    if unknown:
        raise ConfigError(f"{path}: unknown timeout(s): {', '.join(sorted(unknown))}")
    values: dict[str, float] = {}
    for key in vars(defaults):
        value = env.get(f"GIMME_TIMEOUT_{key.upper()}", raw.get(key))
        if value is not None:
            try:
                values[key] = float(value)
            except ValueError:
                raise ConfigError(f"timeout {key} must be a number of seconds") from None
    return replace(defaults, **values)
