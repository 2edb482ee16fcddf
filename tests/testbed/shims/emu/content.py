"""Stand-in file contents: unit files, signing keys, default runtime configs."""

from __future__ import annotations

import base64
import textwrap

UNITS = {
    "kubelet.service": """\
        [Unit]
        Description=kubelet: The Kubernetes Node Agent
        Documentation=https://kubernetes.io/docs/
        Wants=network-online.target
        After=network-online.target

        [Service]
        ExecStart=/usr/bin/kubelet
        Restart=always
        StartLimitInterval=0
        RestartSec=10

        [Install]
        WantedBy=multi-user.target
        """,
    "containerd.service": """\
        [Unit]
        Description=containerd container runtime
        Documentation=https://containerd.io
        After=network.target local-fs.target dbus.service

        [Service]
        ExecStartPre=-/sbin/modprobe overlay
        ExecStart={prefix}/bin/containerd
        Type=notify
        Delegate=yes
        KillMode=process
        Restart=always
        RestartSec=5
        LimitNPROC=infinity
        LimitCORE=infinity
        TasksMax=infinity
        OOMScoreAdjust=-999

        [Install]
        WantedBy=multi-user.target
        """,
    "docker.service": """\
        [Unit]
        Description=Docker Application Container Engine
        Documentation=https://docs.docker.com
        After=network-online.target docker.socket firewalld.service containerd.service time-set.target
        Wants=network-online.target containerd.service
        Requires=docker.socket

        [Service]
        Type=notify
        ExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock
        ExecReload=/bin/kill -s HUP $MAINPID
        TimeoutStartSec=0
        RestartSec=2
        Restart=always

        [Install]
        WantedBy=multi-user.target
        """,
    "docker.socket": """\
        [Unit]
        Description=Docker Socket for the API

        [Socket]
        ListenStream=/run/docker.sock
        SocketMode=0660
        SocketUser=root
        SocketGroup=docker

        [Install]
        WantedBy=sockets.target
        """,
    "crio.service": """\
        [Unit]
        Description=Container Runtime Interface for OCI (CRI-O)
        Documentation=https://github.com/cri-o/cri-o
        Wants=network-online.target
        Before=kubelet.service
        After=network-online.target

        [Service]
        Type=notify
        EnvironmentFile=-/etc/sysconfig/crio
        ExecStart=/usr/bin/crio $CRIO_CONFIG_OPTIONS $CRIO_RUNTIME_OPTIONS $CRIO_STORAGE_OPTIONS
        ExecReload=/bin/kill -s HUP $MAINPID
        TasksMax=infinity
        LimitNOFILE=1048576
        LimitNPROC=1048576
        LimitCORE=infinity
        OOMScoreAdjust=-999
        TimeoutStartSec=0
        Restart=on-failure
        RestartSec=10

        [Install]
        WantedBy=multi-user.target
        Alias=cri-o.service
        """,
    "cri-docker.service": """\
        [Unit]
        Description=CRI Interface for Docker Application Container Engine
        Documentation=https://docs.mirantis.com
        After=network-online.target firewalld.service docker.service
        Wants=network-online.target
        Requires=cri-docker.socket

        [Service]
        Type=notify
        ExecStart={prefix}/bin/cri-dockerd --container-runtime-endpoint fd://
        ExecReload=/bin/kill -s HUP $MAINPID
        TimeoutSec=0
        RestartSec=2
        Restart=always

        [Install]
        WantedBy=multi-user.target
        """,
    "cri-docker.socket": """\
        [Unit]
        Description=CRI Docker Socket for the API
        PartOf=cri-docker.service

        [Socket]
        ListenStream=%t/cri-dockerd.sock
        SocketMode=0660
        SocketUser=root
        SocketGroup=docker

        [Install]
        WantedBy=sockets.target
        """,
    "firewalld.service": """\
        [Unit]
        Description=firewalld - dynamic firewall daemon
        Before=network-pre.target
        Wants=network-pre.target

        [Service]
        ExecStart=/usr/sbin/firewalld --nofork --nopid $FIREWALLD_ARGS
        ExecReload=/bin/kill -HUP $MAINPID

        [Install]
        WantedBy=multi-user.target
        Alias=dbus-org.fedoraproject.FirewallD1.service
        """,
    "ssh.service": """\
        [Unit]
        Description=OpenBSD Secure Shell server

        [Service]
        ExecStart=/usr/sbin/sshd -D $SSHD_OPTS
        ExecReload=/bin/kill -HUP $MAINPID

        [Install]
        WantedBy=multi-user.target
        Alias=sshd.service
        """,
    "systemd-modules-load.service": """\
        [Unit]
        Description=Load Kernel Modules

        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart=/lib/systemd/systemd-modules-load
        """,
    "systemd-sysctl.service": """\
        [Unit]
        Description=Apply Kernel Variables

        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart=/lib/systemd/systemd-sysctl
        """,
}

KUBEADM_DROPIN = """\
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-{defaults}
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""


def unit_text(name: str, prefix: str = "/usr") -> str:
    return textwrap.dedent(UNITS[name]).replace("{prefix}", prefix)


# --- signing keys ----------------------------------------------------------

KEY_MAGIC = b"GIMME-TESTBED-PGP-KEY"


def armored_key(vendor: str, key_id: str) -> bytes:
    """An ASCII-armored stand-in public key that names its vendor and key id."""
    payload = KEY_MAGIC + f"\nvendor={vendor}\nkeyid={key_id}\n".encode() + bytes(range(64))
    body = base64.b64encode(payload).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return (
        f"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{lines}\n=GiMe\n-----END PGP PUBLIC KEY BLOCK-----\n"
    ).encode()


def dearmor(data: bytes) -> bytes | None:
    """Binary keyring bytes for an armored key, None when `data` is not armored."""
    text = data.decode("ascii", "replace")
    if "-----BEGIN PGP PUBLIC KEY BLOCK-----" not in text:
        return None
    body = text.split("-----BEGIN PGP PUBLIC KEY BLOCK-----", 1)[1].split("-----END", 1)[0]
    b64 = "".join(
        line.strip()
        for line in body.strip().splitlines()
        if line.strip() and ":" not in line and not line.startswith("=")
    )
    try:
        return b"\x99\x01\x0d" + base64.b64decode(b64)
    except ValueError:
        return None


def key_ids(data: bytes) -> set[str]:
    """Key ids inside a keyring file (binary, or armored when the file is .asc)."""
    raw = data if KEY_MAGIC in data else (dearmor(data) or b"")
    ids = set()
    for chunk in raw.split(KEY_MAGIC)[1:]:
        for line in chunk.split(b"\n"):
            if line.startswith(b"keyid="):
                ids.add(line[6:].decode())
    return ids


# --- runtime default configs -----------------------------------------------


def containerd_default_config(version: str, pause: str) -> str:
    """`containerd config default` output for containerd `version`."""
    if int(version.split(".")[0]) >= 2:
        return textwrap.dedent(f"""\
            version = 3
            root = '/var/lib/containerd'
            state = '/run/containerd'
            temp = ''
            plugin_dir = ''
            disabled_plugins = []
            required_plugins = []
            oom_score = 0
            imports = []

            [grpc]
              address = '/run/containerd/containerd.sock'
              tcp_address = ''
              uid = 0
              gid = 0
              max_recv_message_size = 16777216
              max_send_message_size = 16777216

            [plugins]
              [plugins.'io.containerd.cri.v1.images']
                snapshotter = 'overlayfs'
                disable_snapshot_annotations = true
                discard_unpacked_layers = false
                max_concurrent_downloads = 3
                image_pull_progress_timeout = '5m0s'
                image_pull_with_sync_fs = false
                stats_collect_period = 10

                [plugins.'io.containerd.cri.v1.images'.pinned_images]
                  sandbox = 'registry.k8s.io/pause:{pause}'

                [plugins.'io.containerd.cri.v1.images'.registry]
                  config_path = ''

              [plugins.'io.containerd.cri.v1.runtime']
                enable_selinux = false
                selinux_category_range = 1024
                max_container_log_line_size = 16384
                disable_apparmor = false
                restrict_oom_score_adj = false
                disable_proc_mount = false
                unset_seccomp_profile = ''
                tolerate_missing_hugetlb_controller = true
                disable_hugetlb_controller = true
                device_ownership_from_security_context = false
                ignore_image_defined_volumes = false
                netns_mounts_under_state_dir = false
                enable_unprivileged_ports = true
                enable_unprivileged_icmp = true
                enable_cdi = true
                cdi_spec_dirs = ['/etc/cdi', '/var/run/cdi']
                drain_exec_sync_io_timeout = '0s'
                ignore_deprecation_warnings = []

                [plugins.'io.containerd.cri.v1.runtime'.containerd]
                  default_runtime_name = 'runc'
                  ignore_blockio_not_enabled_errors = false
                  ignore_rdt_not_enabled_errors = false

                  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]
                    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
                      runtime_type = 'io.containerd.runc.v2'
                      runtime_path = ''
                      pod_annotations = []
                      container_annotations = []
                      privileged_without_host_devices = false
                      privileged_without_host_devices_all_devices_allowed = false
                      base_runtime_spec = ''
                      cni_conf_dir = ''
                      cni_max_conf_num = 0
                      snapshotter = ''
                      sandboxer = 'podsandbox'
                      io_type = ''

                      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
                        BinaryName = ''
                        CriuImagePath = ''
                        CriuWorkPath = ''
                        IoGid = 0
                        IoUid = 0
                        NoNewKeyring = false
                        Root = ''
                        ShimCgroup = ''

                [plugins.'io.containerd.cri.v1.runtime'.cni]
                  bin_dir = '/opt/cni/bin'
                  conf_dir = '/etc/cni/net.d'
                  max_conf_num = 1
                  setup_serially = false
                  conf_template = ''
                  ip_pref = ''
                  use_internal_loopback = false

              [plugins.'io.containerd.grpc.v1.cri']
                disable_tcp_service = true
                stream_server_address = '127.0.0.1'
                stream_server_port = '0'
                stream_idle_timeout = '4h0m0s'
                enable_tls_streaming = false
            """)
    return textwrap.dedent(f"""\
        disabled_plugins = []
        imports = []
        oom_score = 0
        plugin_dir = ""
        required_plugins = []
        root = "/var/lib/containerd"
        state = "/run/containerd"
        temp = ""
        version = 2

        [cgroup]
          path = ""

        [debug]
          address = ""
          format = ""
          gid = 0
          level = ""
          uid = 0

        [grpc]
          address = "/run/containerd/containerd.sock"
          gid = 0
          max_recv_message_size = 16777216
          max_send_message_size = 16777216
          tcp_address = ""
          uid = 0

        [plugins]

          [plugins."io.containerd.grpc.v1.cri"]
            device_ownership_from_security_context = false
            disable_apparmor = false
            disable_cgroup = false
            disable_hugetlb_controller = true
            disable_proc_mount = false
            disable_tcp_service = true
            enable_selinux = false
            enable_tls_streaming = false
            enable_unprivileged_icmp = false
            enable_unprivileged_ports = false
            max_concurrent_downloads = 3
            max_container_log_line_size = 16384
            restrict_oom_score_adj = false
            sandbox_image = "registry.k8s.io/pause:{pause}"
            selinux_category_range = 1024
            stats_collect_period = 10
            stream_idle_timeout = "4h0m0s"
            stream_server_address = "127.0.0.1"
            stream_server_port = "0"
            systemd_cgroup = false
            tolerate_missing_hugetlb_controller = true

            [plugins."io.containerd.grpc.v1.cri".cni]
              bin_dir = "/opt/cni/bin"
              conf_dir = "/etc/cni/net.d"
              conf_template = ""
              ip_pref = ""
              max_conf_num = 1

            [plugins."io.containerd.grpc.v1.cri".containerd]
              default_runtime_name = "runc"
              disable_snapshot_annotations = true
              discard_unpacked_layers = false
              ignore_rdt_not_enabled_errors = false
              no_pivot = false
              snapshotter = "overlayfs"

              [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]

                [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
                  base_runtime_spec = ""
                  cni_conf_dir = ""
                  cni_max_conf_num = 0
                  container_annotations = []
                  pod_annotations = []
                  privileged_without_host_devices = false
                  runtime_engine = ""
                  runtime_path = ""
                  runtime_root = ""
                  runtime_type = "io.containerd.runc.v2"

                  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
                    BinaryName = ""
                    CriuImagePath = ""
                    CriuPath = ""
                    CriuWorkPath = ""
                    IoGid = 0
                    IoUid = 0
                    NoNewKeyring = false
                    NoPivotRoot = false
                    Root = ""
                    ShimCgroup = ""
                    SystemdCgroup = false

            [plugins."io.containerd.grpc.v1.cri".image_decryption]
              key_model = "node"

            [plugins."io.containerd.grpc.v1.cri".registry]
              config_path = ""

        [timeouts]
          "io.containerd.timeout.shim.cleanup" = "5s"
          "io.containerd.timeout.shim.load" = "5s"
          "io.containerd.timeout.shim.shutdown" = "3s"
          "io.containerd.timeout.task.state" = "2s"

        [ttrpc]
          address = ""
          gid = 0
          uid = 0
        """)


# containerd.io from download.docker.com ships this /etc/containerd/config.toml
DOCKER_CONTAINERD_TOML = """\
#   Copyright 2018-2022 Docker Inc.

#   Licensed under the Apache License, Version 2.0 (the "License");
#   you may not use this file except in compliance with the License.

disabled_plugins = ["cri"]

#root = "/var/lib/containerd"
#state = "/run/containerd"
#subreaper = true
#oom_score = 0

#[grpc]
#  address = "/run/containerd/containerd.sock"
#  uid = 0
#  gid = 0

#[debug]
#  address = "/run/containerd/debug.sock"
#  uid = 0
#  gid = 0
#  level = "info"
"""


def containerd_pause(version: str) -> str:
    v = tuple(int(x) for x in version.split(".")[:2])
    if v >= (2, 0):
        return "3.10"
    if v >= (1, 7):
        return "3.8"
    if v >= (1, 6):
        return "3.6"
    return "3.5"


def crio_default_config(version: str, pause: str) -> str:
    return textwrap.dedent(f"""\
        # The CRI-O configuration file specifies all of the available configuration
        # options and command-line flags for the crio(8) OCI Kubernetes Container Runtime
        # daemon. crio version {version}

        [crio]
        root = "/var/lib/containers/storage"
        runroot = "/run/containers/storage"
        storage_driver = "overlay"
        log_dir = "/var/log/crio/pods"

        [crio.api]
        listen = "/var/run/crio/crio.sock"

        [crio.runtime]
        default_runtime = "crun"
        cgroup_manager = "systemd"
        conmon_cgroup = "pod"

        [crio.image]
        pause_image = "registry.k8s.io/pause:{pause}"

        [crio.network]
        network_dir = "/etc/cni/net.d/"
        plugin_dirs = [
            "/opt/cni/bin/",
        ]
        """)


CRIO_DROPIN = """\
[crio.runtime]
default_runtime = "crun"

[crio.runtime.runtimes.crun]
runtime_root = "/run/crun"
monitor_path = "/usr/libexec/crio/conmon"
allowed_annotations = [
    "io.containers.trace-syscall",
]
"""
