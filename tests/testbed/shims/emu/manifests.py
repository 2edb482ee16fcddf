"""Stand-in CNI manifests: small, valid YAML with the real object names and editable defaults."""

from __future__ import annotations

import re


def _ver(tag: str) -> tuple[int, ...]:
    nums = re.findall(r"\d+", tag)
    return tuple(int(n) for n in nums[:3]) if nums else (99, 0, 0)


def _crd(group: str, plural: str, kind: str, scope: str = "Cluster", version: str = "v1") -> str:
    return f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  names:
    kind: {kind}
    listKind: {kind}List
    plural: {plural}
    singular: {kind.lower()}
  scope: {scope}
  versions:
  - name: {version}
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"""


def _rbac(name: str, namespace: str) -> str:
    return f"""\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {name}
  namespace: {namespace}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {name}
rules:
- apiGroups: [""]
  resources: ["pods", "nodes", "namespaces"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["nodes/status"]
  verbs: ["patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {name}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {name}
subjects:
- kind: ServiceAccount
  name: {name}
  namespace: {namespace}
"""


def _daemonset(name: str, namespace: str, image: str, env: str = "", sa: str = "") -> str:
    return f"""\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    k8s-app: {name}
spec:
  selector:
    matchLabels:
      k8s-app: {name}
  updateStrategy:
    type: RollingUpdate
  template:
    metadata:
      labels:
        k8s-app: {name}
    spec:
      hostNetwork: true
      serviceAccountName: {sa or name}
      tolerations:
      - operator: Exists
      priorityClassName: system-node-critical
      containers:
      - name: {name}
        image: {image}
        securityContext:
          privileged: true
{env}"""


def _deployment(name: str, namespace: str, image: str, sa: str = "") -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    k8s-app: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      k8s-app: {name}
  template:
    metadata:
      labels:
        k8s-app: {name}
    spec:
      serviceAccountName: {sa or name}
      tolerations:
      - key: node-role.kubernetes.io/control-plane
        effect: NoSchedule
      - key: node-role.kubernetes.io/master
        effect: NoSchedule
      containers:
      - name: {name}
        image: {image}
"""


def calico(tag: str) -> str:
    pdb_api = "policy/v1" if _ver(tag) >= (3, 22) else "policy/v1beta1"
    env = """\
        env:
        - name: DATASTORE_TYPE
          value: "kubernetes"
        - name: CALICO_NETWORKING_BACKEND
          valueFrom:
            configMapKeyRef:
              name: calico-config
              key: calico_backend
        - name: CLUSTER_TYPE
          value: "k8s,bgp"
        - name: IP
          value: "autodetect"
        - name: CALICO_IPV4POOL_IPIP
          value: "Always"
        # The default IPv4 pool to create on startup if none exists. Pod IPs will be
        # chosen from this range. Changing this value after installation will have
        # no effect. This should fall within `--cluster-cidr`.
        # - name: CALICO_IPV4POOL_CIDR
        #   value: "192.168.0.0/16"
        - name: FELIX_IPV6SUPPORT
          value: "false"
"""
    return "---\n".join(
        [
            f"""\
# Source: calico/templates/calico-config.yaml
# This ConfigMap is used to configure a self-hosted Calico installation ({tag}).
kind: ConfigMap
apiVersion: v1
metadata:
  name: calico-config
  namespace: kube-system
data:
  typha_service_name: "none"
  calico_backend: "bird"
  veth_mtu: "0"
  cni_network_config: |-
    {{
      "name": "k8s-pod-network",
      "cniVersion": "0.3.1",
      "plugins": [
        {{
          "type": "calico",
          "ipam": {{ "type": "calico-ipam" }},
          "kubernetes": {{ "kubeconfig": "__KUBECONFIG_FILEPATH__" }}
        }},
        {{ "type": "portmap", "snat": true, "capabilities": {{"portMappings": true}} }}
      ]
    }}
""",
            _crd("crd.projectcalico.org", "ippools", "IPPool"),
            _crd("crd.projectcalico.org", "felixconfigurations", "FelixConfiguration"),
            _crd("crd.projectcalico.org", "bgpconfigurations", "BGPConfiguration"),
            _rbac("calico-node", "kube-system"),
            _rbac("calico-kube-controllers", "kube-system"),
            "# Source: calico/templates/calico-node.yaml\n"
            + _daemonset("calico-node", "kube-system", f"docker.io/calico/node:{tag}", env),
            _deployment(
                "calico-kube-controllers", "kube-system", f"docker.io/calico/kube-controllers:{tag}"
            ),
            f"""\
apiVersion: {pdb_api}
kind: PodDisruptionBudget
metadata:
  name: calico-kube-controllers
  namespace: kube-system
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      k8s-app: calico-kube-controllers
""",
        ]
    )


def tigera_operator(tag: str) -> str:
    return "---\n".join(
        [
            """\
apiVersion: v1
kind: Namespace
metadata:
  name: tigera-operator
  labels:
    name: tigera-operator
    pod-security.kubernetes.io/enforce: privileged
""",
            _crd("operator.tigera.io", "installations", "Installation"),
            _crd("operator.tigera.io", "apiservers", "APIServer"),
            _crd("operator.tigera.io", "tigerastatuses", "TigeraStatus"),
            _crd("crd.projectcalico.org", "ippools", "IPPool"),
            _rbac("tigera-operator", "tigera-operator"),
            _deployment("tigera-operator", "tigera-operator", f"quay.io/tigera/operator:{tag}"),
        ]
    )


def calico_custom_resources(tag: str) -> str:
    return """\
# This section includes base Calico installation configuration.
# For more information, see: https://docs.tigera.io/calico/latest/reference/installation/api#operator.tigera.io/v1.Installation
apiVersion: operator.tigera.io/v1
kind: Installation
metadata:
  name: default
spec:
  # Configures Calico networking.
  calicoNetwork:
    ipPools:
    - name: default-ipv4-ippool
      blockSize: 26
      cidr: 192.168.0.0/16
      encapsulation: VXLANCrossSubnet
      natOutgoing: Enabled
      nodeSelector: all()

---

# This section configures the Calico API server.
# For more information, see: https://docs.tigera.io/calico/latest/reference/installation/api#operator.tigera.io/v1.APIServer
apiVersion: operator.tigera.io/v1
kind: APIServer
metadata:
  name: default
spec: {}
"""


def flannel(tag: str) -> str:
    image = f"ghcr.io/flannel-io/flannel:{tag if tag.startswith('v') else 'v0.26.1'}"
    return "---\n".join(
        [
            """\
kind: Namespace
apiVersion: v1
metadata:
  name: kube-flannel
  labels:
    k8s-app: flannel
    pod-security.kubernetes.io/enforce: privileged
""",
            _rbac("flannel", "kube-flannel"),
            """\
kind: ConfigMap
apiVersion: v1
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
  labels:
    tier: node
    k8s-app: flannel
    app: flannel
data:
  cni-conf.json: |
    {
      "name": "cbr0",
      "cniVersion": "0.3.1",
      "plugins": [
        {
          "type": "flannel",
          "delegate": {
            "hairpinMode": true,
            "isDefaultGateway": true
          }
        },
        {
          "type": "portmap",
          "capabilities": {
            "portMappings": true
          }
        }
      ]
    }
  net-conf.json: |
    {
      "Network": "10.244.0.0/16",
      "EnableNFTables": false,
      "Backend": {
        "Type": "vxlan"
      }
    }
""",
            _daemonset("kube-flannel-ds", "kube-flannel", image, sa="flannel"),
        ]
    )


def weave(tag: str, org: str = "weaveworks") -> str:
    image = ("weaveworks/weave-kube:" if org == "weaveworks" else "rajchaudhuri/weave-kube:") + (
        tag.lstrip("v") if tag.startswith("v") else "2.8.1"
    )
    return f"""\
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ServiceAccount
    metadata:
      name: weave-net
      namespace: kube-system
      labels:
        name: weave-net
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRole
    metadata:
      name: weave-net
      labels:
        name: weave-net
    rules:
      - apiGroups: ['']
        resources: [pods, namespaces, nodes]
        verbs: [get, list, watch]
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRoleBinding
    metadata:
      name: weave-net
      labels:
        name: weave-net
    roleRef:
      kind: ClusterRole
      name: weave-net
      apiGroup: rbac.authorization.k8s.io
    subjects:
      - kind: ServiceAccount
        name: weave-net
        namespace: kube-system
  - apiVersion: apps/v1
    kind: DaemonSet
    metadata:
      name: weave-net
      namespace: kube-system
      labels:
        name: weave-net
    spec:
      minReadySeconds: 5
      selector:
        matchLabels:
          name: weave-net
      template:
        metadata:
          labels:
            name: weave-net
        spec:
          hostNetwork: true
          serviceAccountName: weave-net
          containers:
            - name: weave
              command:
                - /home/weave/launch.sh
              env:
                - name: INIT_CONTAINER
                  value: "true"
                - name: HOSTNAME
                  valueFrom:
                    fieldRef:
                      apiVersion: v1
                      fieldPath: spec.nodeName
              image: '{image}'
              securityContext:
                privileged: true
            - name: weave-npc
              image: '{image.replace("weave-kube", "weave-npc")}'
          tolerations:
            - effect: NoSchedule
              operator: Exists
            - effect: NoExecute
              operator: Exists
"""


def kube_router(ref: str, variant: str) -> str:
    return "---\n".join(
        [
            f"""\
# {variant} ({ref})
apiVersion: v1
kind: ConfigMap
metadata:
  name: kube-router-cfg
  namespace: kube-system
  labels:
    tier: node
    k8s-app: kube-router
data:
  cni-conf.json: |
    {{
       "cniVersion":"0.3.0",
       "name":"mynet",
       "plugins":[
          {{
             "name":"kubernetes",
             "type":"bridge",
             "bridge":"kube-bridge",
             "isDefaultGateway":true,
             "ipam":{{
                "type":"host-local"
             }}
          }}
       ]
    }}
""",
            _daemonset(
                "kube-router",
                "kube-system",
                "docker.io/cloudnativelabs/kube-router",
                env="""\
        args:
        - --run-router=true
        - --run-firewall=true
        - --run-service-proxy=false
        - --bgp-graceful-restart=true
""",
            ),
            _rbac("kube-router", "kube-system"),
        ]
    )


def antrea(tag: str) -> str:
    return "---\n".join(
        [
            _crd("crd.antrea.io", "antreaagentinfos", "AntreaAgentInfo", version="v1beta1"),
            _crd(
                "crd.antrea.io", "antreacontrollerinfos", "AntreaControllerInfo", version="v1beta1"
            ),
            _rbac("antrea-agent", "kube-system"),
            _rbac("antrea-controller", "kube-system"),
            """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: antrea-config
  namespace: kube-system
  labels:
    app: antrea
data:
  antrea-agent.conf: |
    # Name of the OpenVSwitch bridge antrea-agent will create and use.
    # Make sure it doesn't conflict with your existing OpenVSwitch bridges.
    ovsBridge: "br-int"
    # Determines how traffic is encapsulated. It has the following options:
    # encap(default), noEncap, hybrid, networkPolicyOnly
    trafficEncapMode: "encap"
    # The port for the antrea-agent APIServer to serve on.
    apiPort: 10350
  antrea-controller.conf: |
    # The port for the antrea-controller APIServer to serve on.
    apiPort: 10349
    nodeIPAM:
      # Enable the integrated Node IPAM controller within the Antrea controller.
      enableNodeIPAM: false
  antrea-cni.conflist: |
    {
        "cniVersion":"0.3.0",
        "name": "antrea",
        "plugins": [
            { "type": "antrea", "ipam": { "type": "host-local" } },
            { "type": "portmap", "capabilities": {"portMappings": true} }
        ]
    }
""",
            _daemonset("antrea-agent", "kube-system", f"antrea/antrea-agent-ubuntu:{tag}"),
            _deployment(
                "antrea-controller", "kube-system", f"antrea/antrea-controller-ubuntu:{tag}"
            ),
        ]
    )


def multus(ref: str, thick: bool) -> str:
    image = f"ghcr.io/k8snetworkplumbingwg/multus-cni:{ref if ref.startswith('v') else 'snapshot'}"
    return "---\n".join(
        [
            _crd(
                "k8s.cni.cncf.io",
                "network-attachment-definitions",
                "NetworkAttachmentDefinition",
                scope="Namespaced",
            ),  # fmt: skip
            _rbac("multus", "kube-system"),
            """\
kind: ConfigMap
apiVersion: v1
metadata:
  name: multus-daemon-config
  namespace: kube-system
  labels:
    tier: node
    app: multus
data:
  daemon-config.json: |
    {
        "chrootDir": "/hostroot",
        "cniVersion": "0.3.1",
        "logLevel": "verbose",
        "logToStderr": true,
        "cniConfigDir": "/host/etc/cni/net.d",
        "multusAutoconfigDir": "/host/etc/cni/net.d",
        "multusConfigFile": "auto",
        "socketDir": "/host/run/multus/"
    }
""",
            _daemonset(
                "kube-multus-ds", "kube-system", image + ("-thick" if thick else ""), sa="multus"
            ),
        ]
    )


def cilium(version: str, values: dict[str, str]) -> str:
    """What the cilium Helm chart / cilium CLI install submits (a small subset)."""
    ipam = values.get("ipam.mode", "cluster-pool")
    return "---\n".join(
        [
            _rbac("cilium", "kube-system"),
            _rbac("cilium-operator", "kube-system"),
            f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: cilium-config
  namespace: kube-system
data:
  ipam: "{ipam}"
  cluster-pool-ipv4-cidr: "{values.get("ipam.operator.clusterPoolIPv4PodCIDRList", "10.0.0.0/8")}"
  kube-proxy-replacement: "{values.get("kubeProxyReplacement", "false")}"
  cilium-version: "{version}"
""",
            _daemonset("cilium", "kube-system", f"quay.io/cilium/cilium:v{version.lstrip('v')}"),
            _deployment(
                "cilium-operator",
                "kube-system",
                f"quay.io/cilium/operator-generic:v{version.lstrip('v')}",
            ),
        ]
    )
