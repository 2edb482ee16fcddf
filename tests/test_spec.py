from __future__ import annotations

import pytest

from gimme.errors import ExitCode, SpecError
from gimme.spec import build_spec, parse_ttl


def test_defaults_are_the_original_service_defaults() -> None:
    spec = build_spec()
    assert (spec.foundation, spec.k8s, spec.cri, spec.cni, spec.nodes, spec.ttl) == (
        "ovirt-rack-1-ubuntu-22.04",
        "1.23",
        "containerd",
        "calico",
        2,
        3600,
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("3600", 3600),
        ("90m", 5400),
        ("2h", 7200),
        ("1d", 86400),
        (" 45s ", 45),
        (120, 120),
    ],
)
def test_ttl_forms(text: str | int, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": 1}, "node count 1 is out of range 2..6"),
        ({"nodes": 7}, "node count 7 is out of range 2..6"),
        ({"ttl": -1}, "out of range"),
        ({"ttl": 86401}, "TTL 86401s is out of range"),
        ({"ttl": "25h"}, "out of range"),
        ({"ttl": "1w"}, "invalid TTL"),
        ({"ttl": "-1"}, "invalid TTL"),
        ({"k8s": "1.x"}, "expected MAJOR.MINOR"),
        ({"k8s": "1.30.1"}, "expected MAJOR.MINOR"),
        ({"k8s": "v1.30"}, "expected MAJOR.MINOR"),
        ({"cri": "rkt"}, "unknown container runtime 'rkt'"),
        ({"cni": "canal"}, "unknown CNI 'canal'"),
        ({"cni": "calico", "cni_primary": "flannel"}, "only applies to --cni multus"),
        ({"cni": "multus", "cni_primary": "multus"}, "other than multus"),
        ({"cni": "flannel", "kube_proxy_replacement": True}, "only available with --cni cilium"),
        ({"comment": "two\nlines"}, "one line"),
    ],
)
def test_bad_input_is_a_usage_error(kwargs: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        build_spec(**kwargs)
    assert info.value.exit_code == ExitCode.USAGE == 2
    assert "\n" not in str(info.value)


def test_crio_alias_and_multus_primary() -> None:
    spec = build_spec(cri="crio", cni="multus", cni_primary="flannel")
    assert spec.cri == "cri-o"
    assert spec.cni_primary == "flannel"
