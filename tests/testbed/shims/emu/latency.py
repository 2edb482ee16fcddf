"""Configured command latency: make a stand-in take at least N seconds, as the real tool would.

`/etc/gimme-testbed/latency.json` maps rules to seconds, e.g.
`{"apt-get install": 4.0, "kubeadm init": 9.0, "curl": 0.9, "*": 0.3}`. A rule is a tool
name followed by words that must appear, in that order, among the call's arguments
(`"kubectl rollout"` matches `kubectl -n kube-system rollout status ...`); the rule with the
most words wins and `"*"` matches any call no other rule matches. A matched call sleeps,
after its work and before it exits, until it has run for the configured seconds since its
process started: its own run time is part of the latency, not added to it.
Without the file (the default) nothing waits.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

CONFIG = Path("/etc/gimme-testbed/latency.json")


def rule_for(rules: dict[str, float], tool: str, args: list[str]) -> str | None:
    """The rule of `rules` that `tool args` falls under: the most specific, else "*"."""
    best: tuple[int, str] | None = None
    for rule in rules:
        name, *words = rule.split()
        if name == tool and _in_order(words, args) and (best is None or len(words) > best[0]):
            best = (len(words), rule)
    if best is not None:
        return best[1]
    return "*" if "*" in rules else None


def seconds_for(rules: dict[str, float], tool: str, args: list[str]) -> float:
    """The configured latency of `tool args` under `rules` (0 when nothing matches)."""
    rule = rule_for(rules, tool, args)
    return 0.0 if rule is None else float(rules[rule])


def hold(tool: str, args: list[str]) -> None:
    """Sleep until this process has run for the latency configured for `tool args`."""
    try:
        left = seconds_for(json.loads(CONFIG.read_text()), tool, args) - _age()
    except (OSError, ValueError):
        return
    if left > 0:
        time.sleep(left)


def _in_order(words: list[str], args: list[str]) -> bool:
    rest = iter(args)
    return all(word in rest for word in words)


def _age() -> float:
    """Seconds since this process started, so interpreter start-up counts too."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, in ticks
    return time.clock_gettime(time.CLOCK_BOOTTIME) - started
