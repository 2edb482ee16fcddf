"""The one exception root and the exit codes the CLI maps it to."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    STATE = 3
    ENGINE = 4
    REMOTE = 5
    INTERRUPTED = 130


class GimmeError(Exception):
    """An expected failure: the CLI prints its message on one line and exits with exit_code."""

    exit_code: ExitCode = ExitCode.FAILURE


class UsageError(GimmeError):
    """Bad input, found before anything was created."""

    exit_code = ExitCode.USAGE


class SpecError(UsageError):
    """A cluster spec that breaks the rules or the compatibility matrix."""


class NotFoundError(UsageError):
    """No cluster with that id."""


class NotOwnerError(UsageError):
    """The cluster belongs to someone else and --force was not given."""


class ConfigError(UsageError):
    """The configuration file or environment is unusable."""


class StateError(GimmeError):
    """The shared state file is locked too long, corrupt or unreadable."""

    exit_code = ExitCode.STATE


class EngineError(GimmeError):
    """The oVirt engine refused or failed an operation."""

    exit_code = ExitCode.ENGINE


class RemoteError(GimmeError):
    """A bootstrap step or SSH connection to a node failed."""

    exit_code = ExitCode.REMOTE
