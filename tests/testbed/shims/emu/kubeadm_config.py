"""kubeadm's configuration API: decode and validate --config files like kubeadm does."""

from __future__ import annotations

import ipaddress
import re
import sys

import yaml

from .core import Fail

# apiVersion -> (first minor that accepts it, last minor that accepts it)
KUBEADM_APIS = {"kubeadm.k8s.io/v1beta2": (15, 26), "kubeadm.k8s.io/v1beta3": (22, 35),
                "kubeadm.k8s.io/v1beta4": (31, 99)}  # fmt: skip
OLD_APIS = {"kubeadm.k8s.io/v1alpha1", "kubeadm.k8s.io/v1alpha2", "kubeadm.k8s.io/v1alpha3",
            "kubeadm.k8s.io/v1beta1", "kubeadm.k8s.io/v1beta2", "kubeadm.k8s.io/v1beta3"}  # fmt: skip
COMPONENT_APIS = {"KubeletConfiguration": "kubelet.config.k8s.io/v1beta1",
                  "KubeProxyConfiguration": "kubeproxy.config.k8s.io/v1alpha1"}  # fmt: skip

S, INT, B, LS, MAP, ANY = "str", "int", "bool", "list[str]", "map", "any"


def _schemas(api: str) -> dict[str, dict]:
    """Field schemas of the kubeadm kinds in `api` (v1beta2/3/4)."""
    v4 = api.endswith("v1beta4")
    v2 = api.endswith("v1beta2")
    args = "args" if v4 else MAP
    env = ("list", {"name": S, "value": S, "valueFrom": ANY})
    volumes = ("list", {"name": S, "hostPath": S, "mountPath": S, "readOnly": B, "pathType": S})
    control = {"extraArgs": args, "extraVolumes": volumes, **({"extraEnvs": env} if v4 else {})}
    taints = ("list", {"key": S, "value": S, "effect": S, "timeAdded": S})
    node_reg = {
        "name": S,
        "criSocket": S,
        "taints": taints,
        "kubeletExtraArgs": args,
        "ignorePreflightErrors": LS,
    }
    if not v2:
        node_reg["imagePullPolicy"] = S
    if v4:
        node_reg["imagePullSerial"] = B
    endpoint = {"advertiseAddress": S, "bindPort": INT}
    token = (
        "list",
        {"token": S, "description": S, "ttl": S, "expires": S, "usages": LS, "groups": LS},
    )
    timeouts = {"controlPlaneComponentHealthCheck": S, "kubeletHealthCheck": S, "kubernetesAPICall": S,
                "etcdAPICall": S, "tlsBootstrap": S, "discovery": S, "upgradeManifests": S}  # fmt: skip
    init = {"bootstrapTokens": token, "nodeRegistration": node_reg, "localAPIEndpoint": endpoint,
            "certificateKey": S}  # fmt: skip
    if not v2:
        init |= {"skipPhases": LS, "patches": {"directory": S}}
    if v4:
        init |= {"timeouts": timeouts, "dryRun": B}
    api_server = {**control, "certSANs": LS}
    if not v4:
        api_server["timeoutForControlPlane"] = S
    etcd_local = {"imageRepository": S, "imageTag": S, "dataDir": S, "extraArgs": args, "serverCertSANs": LS,
                  "peerCertSANs": LS, **({"extraEnvs": env} if v4 else {})}  # fmt: skip
    cluster = {
        "etcd": {"local": etcd_local, "external": {"endpoints": LS, "caFile": S, "certFile": S, "keyFile": S}},
        "networking": {"serviceSubnet": S, "podSubnet": S, "dnsDomain": S},
        "kubernetesVersion": S, "controlPlaneEndpoint": S, "apiServer": api_server,
        "controllerManager": control, "scheduler": control,
        "dns": {"imageRepository": S, "imageTag": S, **({"disabled": B} if v4 else {}), **({"type": S} if v2 else {})},
        "certificatesDir": S, "imageRepository": S, "featureGates": ANY, "clusterName": S,
    }  # fmt: skip
    if v2:
        cluster["useHyperKubeImage"] = B
    if v4:
        cluster |= {"proxy": {"disabled": B}, "encryptionAlgorithm": S, "certificateValidityPeriod": S,
                    "caCertificateValidityPeriod": S}  # fmt: skip
    discovery = {
        "bootstrapToken": {
            "token": S,
            "apiServerEndpoint": S,
            "caCertHashes": LS,
            "unsafeSkipCAVerification": B,
        },
        "file": {"kubeConfigPath": S},
        "tlsBootstrapToken": S,
    }
    if not v4:
        discovery["timeout"] = S
    join = {"nodeRegistration": node_reg, "caCertPath": S, "discovery": discovery,
            "controlPlane": {"localAPIEndpoint": endpoint, "certificateKey": S}}  # fmt: skip
    if not v2:
        join |= {"skipPhases": LS, "patches": {"directory": S}}
    if v4:
        join |= {"timeouts": timeouts, "dryRun": B}
    kinds = {"InitConfiguration": init, "ClusterConfiguration": cluster, "JoinConfiguration": join}
    if v4:
        kinds["ResetConfiguration"] = {"cleanupTmpDir": B, "certificatesDir": S, "criSocket": S, "dryRun": B,
                                       "force": B, "ignorePreflightErrors": LS, "skipPhases": LS,
                                       "unmountFlags": LS}  # fmt: skip
        kinds["UpgradeConfiguration"] = {
            "apply": ANY,
            "diff": ANY,
            "node": ANY,
            "plan": ANY,
            "timeouts": timeouts,
        }
    return kinds


KUBELET_FIELDS = set("""
enableServer staticPodPath podLogsDir syncFrequency fileCheckFrequency httpCheckFrequency staticPodURL
staticPodURLHeader address port readOnlyPort tlsCertFile tlsPrivateKeyFile tlsCipherSuites tlsMinVersion
rotateCertificates serverTLSBootstrap authentication authorization registryPullQPS registryBurst imagePullCredentialsVerificationPolicy
preloadedImagesVerificationAllowlist eventRecordQPS eventBurst enableDebuggingHandlers enableContentionProfiling
healthzPort healthzBindAddress oomScoreAdj clusterDomain clusterDNS streamingConnectionIdleTimeout
nodeStatusUpdateFrequency nodeStatusReportFrequency nodeLeaseDurationSeconds imageMinimumGCAge imageMaximumGCAge
imageGCHighThresholdPercent imageGCLowThresholdPercent volumeStatsAggPeriod kubeletCgroups systemCgroups cgroupRoot
cgroupsPerQOS cgroupDriver cpuManagerPolicy singleProcessOOMKill cpuManagerPolicyOptions cpuManagerReconcilePeriod
memoryManagerPolicy topologyManagerPolicy topologyManagerScope topologyManagerPolicyOptions qosReserved
runtimeRequestTimeout hairpinMode maxPods podCIDR podPidsLimit resolvConf runOnce cpuCFSQuota cpuCFSQuotaPeriod
nodeStatusMaxImages maxOpenFiles contentType kubeAPIQPS kubeAPIBurst serializeImagePulls maxParallelImagePulls
evictionHard evictionSoft evictionSoftGracePeriod evictionPressureTransitionPeriod evictionMaxPodGracePeriod
evictionMinimumReclaim mergeDefaultEvictionSettings podsPerCore enableControllerAttachDetach protectKernelDefaults
makeIPTablesUtilChains iptablesMasqueradeBit iptablesDropBit featureGates failSwapOn failCgroupV1 memorySwap
containerLogMaxSize containerLogMaxFiles containerLogMaxWorkers containerLogMonitorInterval configMapAndSecretChangeDetectionStrategy
systemReserved kubeReserved reservedSystemCPUs showHiddenMetricsForVersion systemReservedCgroup kubeReservedCgroup
enforceNodeAllocatable allowedUnsafeSysctls volumePluginDir providerID kernelMemcgNotification logging enableSystemLogHandler
enableSystemLogQuery shutdownGracePeriod shutdownGracePeriodCriticalPods shutdownGracePeriodByPodPriority
crashLoopBackOff reservedMemory enableProfilingHandler enableDebugFlagsHandler seccompDefault memoryThrottlingFactor
registerWithTaints registerNode tracing localStorageCapacityIsolation containerRuntimeEndpoint imageServiceEndpoint
userNamespaces
""".split())  # fmt: skip
KUBEPROXY_FIELDS = set("""
featureGates clientConnection logging hostnameOverride bindAddress healthzBindAddress metricsBindAddress
bindAddressHardFail enableProfiling showHiddenMetricsForVersion mode iptables ipvs nftables winkernel
detectLocalMode detectLocal clusterCIDR nodePortAddresses oomScoreAdj conntrack configSyncPeriod portRange
windowsRunAsService linux windows
""".split())  # fmt: skip


def _gvk_error(api: str, kind: str, err: str) -> str:
    group, _, version = api.rpartition("/")
    return (f'error unmarshaling configuration schema.GroupVersionKind{{Group:"{group}", Version:"{version}", '
            f'Kind:"{kind}"}}: {err}')  # fmt: skip


def _check(value, schema, path: str, api: str, kind: str) -> None:
    def bad(want: str) -> None:
        got = "array" if isinstance(value, list) else "object" if isinstance(value, dict) else \
            "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else \
            "bool" if isinstance(value, bool) else "string"  # fmt: skip
        raise Fail(
            _gvk_error(
                api,
                kind,
                f"json: cannot unmarshal {got} into Go struct field {path} of type {want}",
            )
        )

    if value is None or schema == ANY:
        return
    if schema == S:
        isinstance(value, str) or bad("string")
    elif schema == INT:
        (isinstance(value, int) and not isinstance(value, bool)) or bad("int32")
    elif schema == B:
        isinstance(value, bool) or bad("bool")
    elif schema == LS:
        (isinstance(value, list) and all(isinstance(x, str) for x in value)) or bad("[]string")
    elif schema == MAP:
        (isinstance(value, dict) and all(isinstance(x, str) for x in value.values())) or bad(
            "map[string]string"
        )
    elif schema == "args":
        if not isinstance(value, list):
            bad(f"[]{api.rsplit('/', 1)[1]}.Arg")
        for n, item in enumerate(value):
            _check(item, {"name": S, "value": S}, f"{path}[{n}]", api, kind)
    elif isinstance(schema, tuple):
        isinstance(value, list) or bad("[]" + path.rsplit(".", 1)[-1])
        for n, item in enumerate(value):
            _check(item, schema[1], f"{path}[{n}]", api, kind)
    elif isinstance(schema, dict):
        isinstance(value, dict) or bad(path.rsplit(".", 1)[-1])
        for k, v in value.items():
            if k not in schema:
                raise Fail(
                    _gvk_error(
                        api,
                        kind,
                        f'strict decoding error: unknown field "{path + "." if path else ""}{k}"',
                    )
                )
            _check(v, schema[k], f"{path + '.' if path else ''}{k}", api, kind)


def load(path: str, kubeadm_minor: int) -> dict[str, dict]:
    """Decode a kubeadm --config file: kind -> document, validated like kubeadm `kubeadm_minor`."""
    try:
        text = open(path).read()
    except OSError as e:
        raise Fail(
            f"unable to read config from {path!r}: open {path}: {e.strerror.lower()}"
        ) from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise Fail(
            f"unable to decode config from {path!r}: error converting YAML to JSON: {e}".replace(
                "\n", " "
            )
        ) from None
    result: dict[str, dict] = {}
    for doc in docs:
        if not isinstance(doc, dict):
            raise Fail(
                f"unable to decode config from {path!r}: couldn't get version/kind; json parse error"
            )
        api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        if not api or not kind:
            raise Fail(f'invalid configuration for GroupVersionKind /, Kind={kind}: kind and apiVersion is '
                       "mandatory information that must be specified")  # fmt: skip
        if kind in result:
            raise Fail(f'invalid configuration: kind "{kind}" is specified twice in YAML file')
        body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
        if api.startswith("kubeadm.k8s.io/"):
            first, last = KUBEADM_APIS.get(api, (0, -1))
            if not first <= kubeadm_minor <= last:
                if api in OLD_APIS and kubeadm_minor > last:
                    raise Fail(f'your configuration file uses an old API spec: "{api}". Please use kubeadm '
                               f"v1.{last} instead and run 'kubeadm config migrate --old-config old.yaml "
                               "--new-config new.yaml', which will write the new, similar spec using a newer API "
                               "version.")  # fmt: skip
                raise Fail(f'no kind "{kind}" is registered for version "{api}" in scheme '
                           '"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"')  # fmt: skip
            schemas = _schemas(api)
            if kind not in schemas:
                raise Fail(f'no kind "{kind}" is registered for version "{api}" in scheme '
                           '"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"')  # fmt: skip
            _check(body, schemas[kind], "", api, kind)
            if api.endswith("v1beta3") and kubeadm_minor >= 31:
                _warn(f'W0000 00:00:00.000000       1 common.go:101] your configuration file uses a deprecated API spec: '
                      f'"{api}" (kind: "{kind}"). Please use \'kubeadm config migrate --old-config old.yaml '
                      "--new-config new.yaml', which will write the new, similar spec using a newer API version.")  # fmt: skip
        elif kind in COMPONENT_APIS:
            if api != COMPONENT_APIS[kind]:
                raise Fail(f'no kind "{kind}" is registered for version "{api}"')
            allowed = KUBELET_FIELDS if kind == "KubeletConfiguration" else KUBEPROXY_FIELDS
            for k in body:
                if k not in allowed:
                    raise Fail(_gvk_error(api, kind, f'strict decoding error: unknown field "{k}"'))
            _validate_component(kind, body)
        else:
            _warn(
                f"[config] WARNING: Ignored YAML document with GroupVersionKind {api}, Kind={kind}"
            )
            continue
        result[kind] = {"apiVersion": api, **body}
    return result


def _warn(text: str) -> None:
    sys.stderr.write(text + "\n")


def _validate_component(kind: str, body: dict) -> None:
    if kind == "KubeletConfiguration":
        driver = body.get("cgroupDriver")
        if driver is not None and driver not in ("systemd", "cgroupfs"):
            raise Fail(
                f'invalid configuration: cgroupDriver ("{driver}") must be one of "systemd" or "cgroupfs"'
            )
    if kind == "KubeProxyConfiguration":
        mode = body.get("mode", "")
        if mode not in ("", "iptables", "ipvs", "nftables"):
            raise Fail(f'KubeProxyConfiguration: mode: Unsupported value: "{mode}": supported values: "iptables", '
                       '"ipvs", "nftables"')  # fmt: skip


def args_dict(value) -> dict[str, str]:
    """extraArgs as a dict, from the v1beta3 map or the v1beta4 list of {name, value}."""
    if isinstance(value, list):
        return {a.get("name", ""): a.get("value", "") for a in value}
    return dict(value or {})


def validate_cidrs(field: str, value: str | None) -> None:
    if not value:
        return
    for cidr in value.split(","):
        try:
            ipaddress.ip_network(cidr.strip(), strict=True)
        except ValueError:
            raise Fail(f'{field}: Invalid value: "{value}": couldn\'t parse subnet') from None


def validate_cri_socket(value: str | None) -> None:
    if value and not re.match(r"^(unix|npipe)://", value):
        if value.startswith("/"):
            _warn(f'W0000 00:00:00.000000       1 initconfiguration.go:125] Usage of CRI endpoints without URL scheme '
                  f'is deprecated and can cause kubelet errors in the future. Automatically prepending scheme "unix" '
                  f'to the "criSocket" with value "{value}". Please update your configuration!')  # fmt: skip
            return
        raise Fail(f'nodeRegistration.criSocket: Invalid value: "{value}": unsupported URL scheme')
