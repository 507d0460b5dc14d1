"""A real multi-node Kubernetes cluster in network namespaces on one machine: what ``make demo-k8s`` and the
cluster tests (``pytest -m cluster``) run ironlb on, installed with ``kubectl apply`` as a user installs it.

Topology (only addresses inside the lab's namespaces and the host's loopback are used)::

    <prefix>-sw      the LAN switch: a bridge, one port per host
    <prefix>-cp      192.168.1.10   etcd, kube-apiserver (:6443), kube-controller-manager, kube-scheduler
    <prefix>-node1   192.168.1.11   containerd, kubelet, kube-proxy (iptables); pods in 10.244.1.0/24 on cni0
    <prefix>-node2   192.168.1.12   ... 10.244.2.0/24
    <prefix>-node3   192.168.1.13   ... 10.244.3.0/24
    <prefix>-client  192.168.1.100  where the tests' and the demo's curl runs; 10.77.0.0/16 routed via the router
    <prefix>-router  192.168.1.1    FRR (zebra, bgpd, bfdd; AS 64512, ECMP), a BGP neighbour of every node (AS 64513)

Every node is a network namespace with its own containerd (own root, state and socket, ``restrict_oom_score_adj``
because root here lacks CAP_SYS_RESOURCE, cgroupfs) and kubelet (``failCgroupV1: false``, no QoS cgroups so the
three kubelets never manage each other's cgroups, own root, log and pod directories). containerd and kubelet
enter only the node's *network* namespace (``nsenter --net``), not a private mount namespace, so the volumes the
kubelet mounts are the ones containerd hands to runc. Pod networking is the Debian CNI bridge plugin with
host-local IPAM on the node's subnet, and static routes between the nodes (and from the control plane, which
calls the webhook at the controller pod's IP: ``--enable-aggregator-routing``). ``kubectl`` runs in the control
plane's namespace (``ip netns exec <prefix>-cp kubectl --kubeconfig <workdir>/kubeconfig ...``): the host's own
namespace is never given an address or route. A RuntimeClass ``ironlb-rt`` (:data:`RT_RUNTIME_CLASS`) lets a
pod's processes run at real-time priority where the kernel's real-time group scheduling would refuse it.

Images come from ``scripts/build-images.py`` (docker-archive tars, ``ctr images import`` into each node), the
binaries from ``scripts/build-k8s.sh --cluster``. :meth:`KubeCluster.stop` stops everything the lab started by
PID (the containers by the PIDs under their shims, found by their containerd's socket), unmounts what they
mounted, removes their cgroups and namespaces; it runs on failure and at exit too.

    cluster = KubeCluster.start(bin_dir, images_dir, workdir)
    cluster.kubectl("get", "nodes")
    cluster.stop()
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import yaml

from ironlb.lab import waits
from ironlb.lab.frr import FRRInstance, frr_missing
from ironlb.lab.netns import NetnsLab

LAN_PREFIX = "192.168.1"
CP_IP = f"{LAN_PREFIX}.10"
CLIENT_IP = f"{LAN_PREFIX}.100"
ROUTER_IP = f"{LAN_PREFIX}.1"  # the nodes' default gateway: the FRR router (it routes only the BGP range back)
ROUTER_ASN = 64512
NODE_ASN = 64513
BGP_RANGE = "10.77.0.0/16"  # the BGP tests' pools: the client reaches them through the router's BGP routes
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/12"
KUBERNETES_SERVICE_IP = "10.96.0.1"
APISERVER_PORT = 6443
CNI_BIN_DIR = "/usr/lib/cni"
PAUSE_IMAGE = "ironlb.local/pause:1"
IMAGE_TARS = ("pause.tar", "ironlb.tar", "http-echo.tar")
CLUSTER_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
                    "kubectl")
HOST_TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "nsenter", "openssl")
NETNS_DIR = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")
RT_RUNTIME_CLASS = "ironlb-rt"
"""A RuntimeClass whose containers may run at real-time priority (the speaker's fast process asks for SCHED_RR)."""
RT_CONTAINER_BUDGET_US = 50_000
"""Real-time budget of each container of :data:`RT_RUNTIME_CLASS`, microseconds per second (see _pods_cgroup)."""
RT_PODS_BUDGET_US = 600_000
"""Real-time budget of all the lab's pods together (/k8s.io), microseconds per second: 12 such containers."""
DEVICE_PLUGIN_SOCKET = Path("/var/lib/kubelet/device-plugins/kubelet.sock")  # every kubelet's, whatever --root-dir
CONTAINER_LOG_LINKS = Path("/var/log/containers")  # the kubelets' symlinks to their pods' logs

T = TypeVar("T")


def log(msg: str) -> None:
    print(f"kube-cluster: {msg}", file=sys.stderr, flush=True)


def missing_requirements(bin_dir: Path | None, images_dir: Path | None) -> str | None:
    """None when the cluster can start here, else what is missing (for a skip message or an error)."""
    if os.geteuid() != 0:
        return "the cluster lab needs root"
    missing = [t for t in HOST_TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]
    if missing:
        return f"missing host tools {missing} (scripts/setup.sh installs them)"
    if not Path(CNI_BIN_DIR, "bridge").exists():
        return f"no CNI plugins in {CNI_BIN_DIR} (Debian containernetworking-plugins)"
    if bin_dir is None or any(not (bin_dir / b).is_file() for b in CLUSTER_BINARIES):
        return "Kubernetes binaries not built: run scripts/build-k8s.sh --cluster"
    if images_dir is None or any(not (images_dir / t).is_file() for t in IMAGE_TARS):
        return "lab images not built: run scripts/build-images.py"
    return None


# What a starting part of the cluster raises meanwhile: kubectl or ctr failing, connection refused, half a JSON.
CLUSTER_STARTING: tuple[type[BaseException], ...] = (
    OSError, subprocess.SubprocessError, ValueError, KeyError, RuntimeError,
)


def wait_until(check: Callable[[], T | None], timeout: float, what: str | Callable[[], str],
               interval: float = 0.5) -> T:
    """:func:`ironlb.lab.waits.wait_until` retrying :data:`CLUSTER_STARTING`, polling every half second."""
    return waits.wait_until(check, timeout, what, retry=CLUSTER_STARTING, interval=interval)


class ClusterFailed(Exception):
    """A part of the cluster exited while the lab waited for it (not retried, unlike the errors of a starting one)."""


def _die_with_parent() -> None:
    """In a child before exec: SIGKILL when the lab's process dies, so a killed run leaves no daemon behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """CA; the apiserver's serving certificate; the admin client (system:masters) that the host's kubectl and the
    cluster's own components use; the service-account signing key pair."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "365",
             "-subj", "/CN=ironlb-lab-ca", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", cwd=d)
    sans = ",".join([
        "IP:127.0.0.1", f"IP:{CP_IP}", f"IP:{KUBERNETES_SERVICE_IP}", "DNS:localhost", "DNS:kubernetes",
        "DNS:kubernetes.default", "DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local",
    ])
    for name, subj, ext in [
        ("apiserver", "/CN=kube-apiserver", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth"),
        ("admin", "/O=system:masters/CN=admin", "extendedKeyUsage=clientAuth"),
    ]:
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subj, cwd=d)
        (d / f"{name}.ext").write_text(
            f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n{ext}\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "365", "-extfile", f"{name}.ext", cwd=d)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def router_config(node_ips: Sequence[str]) -> str:
    """The lab router's FRR configuration: eBGP with every node (1 s connect retry), paths of different nodes
    installed together (ECMP), graceful restart helper (FRR's default, written out)."""
    neighbors = "".join(f" neighbor {ip} remote-as {NODE_ASN}\n neighbor {ip} timers connect 1\n" for ip in node_ips)
    return (f"router bgp {ROUTER_ASN}\n bgp router-id {ROUTER_IP}\n no bgp ebgp-requires-policy\n"
            f" bgp bestpath as-path multipath-relax\n bgp graceful-restart\n{neighbors}"
            " address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n")


@dataclass
class Node:
    name: str
    index: int
    netns: str
    ip: str
    pod_cidr: str
    dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    dead: bool = False

    @property
    def socket(self) -> Path:
        return self.dir / "containerd.sock"

    @property
    def pod_gateway(self) -> str:
        return self.pod_cidr.replace(".0/24", ".1")


@dataclass
class KubeCluster:
    bin_dir: Path
    images_dir: Path
    workdir: Path
    node_count: int = 3
    lab: NetnsLab = field(default_factory=NetnsLab)
    nodes: list[Node] = field(default_factory=list)
    switch: str = ""
    cp: str = ""
    client: str = ""
    router: str = ""
    frr: FRRInstance | None = None  # the router's FRR (None when FRR is not installed: no BGP tests then)
    cp_procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    _stopped: bool = False

    # ---- life cycle -------------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, bin_dir: Path, images_dir: Path, workdir: Path, *, nodes: int = 3, timeout: float = 300,
              prefix: str | None = None) -> KubeCluster:
        """Bring the whole cluster up and wait until every node is Ready; on any failure stop what started."""
        problem = missing_requirements(bin_dir, images_dir)
        if problem:
            raise RuntimeError(problem)
        cluster = cls(bin_dir=bin_dir, images_dir=images_dir, workdir=workdir, node_count=nodes,
                      lab=NetnsLab(prefix))
        atexit.register(cluster.stop)
        t0 = time.monotonic()
        try:
            cluster._start(timeout)
        except BaseException:
            cluster.dump_logs()
            cluster.stop()
            raise
        cluster.timings["up"] = time.monotonic() - t0
        return cluster

    def _start(self, timeout: float) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Shim sockets and the kubelet's paths must stay short; keep everything under one short directory.
        self._topology()
        self._start_router()
        make_pki(self.pki)
        self._write_kubeconfigs()
        self._start_control_plane()
        for node in self.nodes:
            self._start_containerd(node)
        # Started above from this thread: PR_SET_PDEATHSIG fires when the *thread* that forked a child ends.
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(self._import_images, self.nodes))
        self.wait_api(timeout)
        self._start_controllers()
        self._pods_cgroup()
        for node in self.nodes:
            self._start_kubelet(node)
            self._start_kube_proxy(node)
            self._wait_device_plugin_socket(node)
        self.wait_nodes_ready(timeout)
        self._runtime_class()
        # Pods can be created once the service-account and root-CA controllers have done the default namespace.
        wait_until(lambda: self.kubectl("-n", "default", "get", "serviceaccount/default", "configmap/kube-root-ca.crt",
                                        check=False).returncode == 0, timeout, "default ServiceAccount")

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (https://192.168.1.10:6443), for kubectl in the control plane's namespace and for
        the cluster's own components in theirs."""
        return self.workdir / "kubeconfig"

    def _topology(self) -> None:
        lab = self.lab
        self.switch = lab.netns("sw")
        ports: list[str] = []

        def host(suffix: str, octet: int, sysctls: dict[str, str] | None = None) -> str:
            ns = lab.netns(suffix, sysctls)
            port = f"p{octet}"
            lab.veth(ns, "eth0", self.switch, port, mac_a=f"02:00:00:00:{octet // 256:02x}:{octet % 256:02x}")
            lab.addr(ns, "eth0", f"{LAN_PREFIX}.{octet}/24")
            ports.append(port)
            return ns

        routing = {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0",
                   "net.ipv4.conf.default.rp_filter": "0"}
        self.cp = host("cp", 10)
        for i in range(1, self.node_count + 1):
            d = self.workdir / f"node{i}"
            d.mkdir(parents=True, exist_ok=True)
            ns = host(f"node{i}", 10 + i, routing)
            self.nodes.append(Node(f"node{i}", i, ns, f"{LAN_PREFIX}.{10 + i}", f"10.244.{i}.0/24", d))
        self.client = host("client", 100)
        # No ICMP redirects: the client shares the LAN with the nodes, so the router would tell it to send a Service's
        # traffic straight to the node it chose, and the client (which accepts them) would bypass the router's ECMP
        # and graceful-restart handling for a while: its BGP measurements would not measure BGP.
        self.router = host("router", 1, {**routing, "net.ipv4.conf.all.send_redirects": "0",
                                         "net.ipv4.conf.default.send_redirects": "0"})
        lab.bridge(self.switch, "br0", ports)
        lab.run(self.client, ["ip", "route", "add", BGP_RANGE, "via", ROUTER_IP])
        for node in self.nodes:
            lab.run(self.cp, ["ip", "route", "add", node.pod_cidr, "via", node.ip])
            self._node_routes(node)

    def _start_router(self) -> None:
        """FRR in the router namespace, a neighbour of every node (ECMP over them), when FRR is installed."""
        if frr_missing(("zebra", "bgpd", "bfdd")) is not None:
            return
        self.frr = FRRInstance(self.lab, self.router, ("zebra", "bgpd", "bfdd"))
        self.frr.start()
        self.frr.configure(router_config([n.ip for n in self.nodes]))

    def _node_routes(self, node: Node) -> None:
        """The node's routes on the LAN (gone with its link when it dies): the other nodes' pod subnets, and a
        default route, which the Service range needs: the node's own processes (the hostNetwork speaker) reach
        the apiserver at 10.96.0.1, which kube-proxy's OUTPUT rule rewrites only after that route lookup."""
        self.lab.run(node.netns, ["ip", "route", "replace", "default", "via", ROUTER_IP])
        for other in self.nodes:
            if other is not node:
                self.lab.run(node.netns, ["ip", "route", "replace", other.pod_cidr, "via", other.ip])

    def _popen(self, ns: str, cmd: Sequence[str], log_name: str, *, net_only: bool = False) -> subprocess.Popen[bytes]:
        """Start a daemon in a namespace, its output in workdir/logs/<log_name>.log. ``net_only`` enters only the
        network namespace (``nsenter --net``) instead of ``ip netns exec``'s private mount namespace."""
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        prefix = ["nsenter", f"--net={NETNS_DIR / ns}"] if net_only else ["ip", "netns", "exec", ns]
        with open(logs / f"{log_name}.log", "ab") as out:
            return subprocess.Popen([*prefix, *cmd], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=_die_with_parent)

    def _write_kubeconfigs(self) -> None:
        for path, server in [(self.kubeconfig, f"https://{CP_IP}:{APISERVER_PORT}")]:
            cfg = {
                "apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "ironlb-lab", "cluster": {
                    "server": server, "certificate-authority": str(self.pki / "ca.crt")}}],
                "users": [{"name": "admin", "user": {"client-certificate": str(self.pki / "admin.crt"),
                                                     "client-key": str(self.pki / "admin.key")}}],
                "contexts": [{"name": "ironlb-lab", "context": {"cluster": "ironlb-lab", "user": "admin"}}],
                "current-context": "ironlb-lab",
            }
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))

    # ---- control plane ----------------------------------------------------------------------------------------------
    def _start_control_plane(self) -> None:
        b, p, w = self.bin_dir, self.pki, self.workdir
        self.cp_procs["etcd"] = self._popen(self.cp, [
            str(b / "etcd"), "--name=lab", f"--data-dir={w / 'etcd'}",
            "--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
            "--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=lab=http://127.0.0.1:2380", "--unsafe-no-fsync=true", "--log-level=warn",
        ], "etcd")
        self.cp_procs["kube-apiserver"] = self._popen(self.cp, [
            str(b / "kube-apiserver"), "--etcd-servers=http://127.0.0.1:2379",
            "--bind-address=0.0.0.0", f"--advertise-address={CP_IP}", f"--secure-port={APISERVER_PORT}",
            f"--cert-dir={w / 'apiserver-certs'}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC", "--allow-privileged=true",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}", f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--kubelet-client-certificate={p / 'admin.crt'}", f"--kubelet-client-key={p / 'admin.key'}",
            # Webhooks are called at the Service's endpoint (the controller pod's IP), which the control plane's
            # namespace routes to; there is no kube-proxy in it for ClusterIPs.
            "--enable-aggregator-routing=true",
            "--kubelet-preferred-address-types=InternalIP",  # `kubectl logs` reaches the kubelet at the node IP
            "--profiling=false", "--v=1",
        ], "kube-apiserver")

    def wait_api(self, timeout: float) -> None:
        def ready() -> bool:
            for name, proc in self.cp_procs.items():
                if proc.poll() is not None:
                    raise ClusterFailed(f"{name} exited with {proc.returncode}; see {self.workdir / 'logs'}")
            return self.kubectl("get", "--raw", "/readyz", check=False, timeout=10).returncode == 0

        wait_until(ready, timeout, "kube-apiserver /readyz")

    def _start_controllers(self) -> None:
        b, p = self.bin_dir, self.pki
        self.cp_procs["kube-controller-manager"] = self._popen(self.cp, [
            str(b / "kube-controller-manager"), f"--kubeconfig={self.kubeconfig}",
            f"--service-account-private-key-file={p / 'sa.key'}", f"--root-ca-file={p / 'ca.crt'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--leader-elect=false", "--bind-address=127.0.0.1",
            "--controllers=*,-nodeipam", "--v=1",
        ], "kube-controller-manager")
        self.cp_procs["kube-scheduler"] = self._popen(self.cp, [
            str(b / "kube-scheduler"), f"--kubeconfig={self.kubeconfig}", "--leader-elect=false",
            "--bind-address=127.0.0.1", "--v=1",
        ], "kube-scheduler")

    # ---- nodes ------------------------------------------------------------------------------------------------------
    def _start_containerd(self, node: Node) -> None:
        d = node.dir
        (d / "cni").mkdir(parents=True, exist_ok=True)
        (d / "cni" / "10-lab.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0", "name": "lab",
            "plugins": [
                {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": node.pod_cidr}]],
                          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(d / "ipam")}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }, indent=1))
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        (d / "containerd.toml").write_text(f"""\
version = 2
root = "{d / 'containerd'}"
state = "{d / 'containerd-state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{node.socket}"
[ttrpc]
  address = "{node.socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
    [{cri}.containerd.runtimes.{RT_RUNTIME_CLASS}]
      runtime_type = "io.containerd.runc.v2"{self._rt_base_spec(node)}
      [{cri}.containerd.runtimes.{RT_RUNTIME_CLASS}.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{d / 'cni'}"
""")
        node.procs["containerd"] = self._popen(node.netns, ["containerd", "--config", str(d / "containerd.toml")],
                                               f"{node.name}-containerd", net_only=True)

    def _rt_base_spec(self, node: Node) -> str:
        """The ``base_runtime_spec`` line of :data:`RT_RUNTIME_CLASS`: on a kernel with real-time group scheduling
        (cgroup v1 ``cpu.rt_runtime_us``) a new cgroup's budget is 0 and the kernel refuses SCHED_RR to its
        processes, so this runtime's containers get a budget of their own (containerd's default spec, from
        ``ctr oci spec``, plus ``realtimeRuntime``). Elsewhere nothing limits SCHED_RR: no base spec."""
        if not _rt_group_scheduling():
            return ""
        out = subprocess.run(["ctr", "oci", "spec"], capture_output=True, text=True, check=True, timeout=30).stdout
        spec = json.loads(out)
        spec.setdefault("linux", {}).setdefault("resources", {})["cpu"] = {
            "realtimePeriod": 1_000_000, "realtimeRuntime": RT_CONTAINER_BUDGET_US}
        path = node.dir / "rt-spec.json"
        path.write_text(json.dumps(spec, indent=1))
        return f'\n      base_runtime_spec = "{path}"'

    def _runtime_class(self) -> None:
        """The RuntimeClass of :data:`RT_RUNTIME_CLASS` (a pod asks for it with ``runtimeClassName``)."""
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(
            {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": RT_RUNTIME_CLASS},
             "handler": RT_RUNTIME_CLASS}))  # fmt: skip

    def _import_images(self, node: Node) -> None:
        wait_until(lambda: self._ctr(node, "version").returncode == 0, 60, f"{node.name} containerd")
        for tar in IMAGE_TARS:
            r = self._ctr(node, "-n", "k8s.io", "images", "import", str(self.images_dir / tar), timeout=300)
            if r.returncode:
                raise RuntimeError(f"{node.name}: importing {tar}: {r.stderr.strip()}")

    def _ctr(self, node: Node, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "--address", str(node.socket), *args], capture_output=True, text=True,
                              timeout=timeout, check=False)

    def _pods_cgroup(self) -> None:
        """Give containerd's cgroup of CRI pods (``/k8s.io``, cgroup v1, shared by the nodes' containerds) the CPU
        weight of the whole lab's nodes (2 CPUs each). Without QoS cgroups every pod container gets cpu.shares 2
        under it, and ``/k8s.io`` itself only the weight of one process: on a busy machine all the pods together
        would get a sliver of a CPU, and the speakers' Python would take minutes to start (seen: killed by their
        liveness probes). Removed at stop once empty."""
        cpu = CGROUP_ROOT / "cpu"
        if (cpu / "cgroup.procs").exists():
            (cpu / "k8s.io").mkdir(exist_ok=True)
            (cpu / "k8s.io" / "cpu.shares").write_text(str(2048 * len(self.nodes)))
            if _rt_group_scheduling():
                # The containers of RT_RUNTIME_CLASS take their real-time budgets from this one (the kernel
                # refuses a child more than its parent has left); refused when a stale child still holds some.
                with contextlib.suppress(OSError):
                    (cpu / "k8s.io" / "cpu.rt_runtime_us").write_text(str(RT_PODS_BUDGET_US))

    def _start_kubelet(self, node: Node) -> None:
        d = node.dir
        cfg = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "failCgroupV1": False, "cgroupDriver": "cgroupfs",
            # No QoS cgroup tree: with one per kubelet under the same root, each would clean up the others' pods.
            # containerd puts the pods' cgroups under /k8s.io (see _pods_cgroup).
            "cgroupsPerQOS": False, "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{node.socket}",
            "address": node.ip, "port": 10250, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                               "x509": {"clientCAFile": str(self.pki / "ca.crt")}},
            "authorization": {"mode": "AlwaysAllow"},
            "clusterDomain": "cluster.local", "resolvConf": "",
            "podLogsDir": str(d / "pod-logs"),
            "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%",
                             "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False, "maxPods": 30,
            "nodeStatusUpdateFrequency": "4s",
        }
        (d / "kubelet.yaml").write_text(yaml.safe_dump(cfg))
        node.procs["kubelet"] = self._popen(node.netns, [
            str(self.bin_dir / "kubelet"), f"--config={d / 'kubelet.yaml'}", f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={d / 'kubelet'}", f"--hostname-override={node.name}", f"--node-ip={node.ip}", "--v=1",
        ], f"{node.name}-kubelet", net_only=True)

    def _wait_device_plugin_socket(self, node: Node, timeout: float = 60) -> None:
        """Wait until this kubelet has bound its device-plugin registry socket. Its path is fixed
        (/var/lib/kubelet/device-plugins/kubelet.sock, not under --root-dir) and the kubelets share the machine's
        mount namespace: each removes the file and binds its own, so two starting at once can fail with "address
        already in use" (seen). One at a time, each keeps its listener once the next replaces the file."""
        before = self._socket_id()
        proc = node.procs["kubelet"]

        def bound() -> bool:
            if proc.poll() is not None:
                raise ClusterFailed(f"{node.name} kubelet exited ({proc.returncode}); see {self.workdir}/logs")
            now = self._socket_id()
            return now is not None and now != before

        wait_until(bound, timeout, f"{node.name} kubelet's device-plugin socket", interval=0.2)

    @staticmethod
    def _socket_id() -> tuple[int, int] | None:
        try:
            st = os.stat(DEVICE_PLUGIN_SOCKET)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def _start_kube_proxy(self, node: Node) -> None:
        cfg = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.kubeconfig)},
            "mode": "iptables", "clusterCIDR": POD_CIDR, "hostnameOverride": node.name,
            "healthzBindAddress": f"{node.ip}:10256", "metricsBindAddress": "127.0.0.1:10249",
            # A network namespace cannot set the machine-wide conntrack table size: leave conntrack alone.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        }
        (node.dir / "kube-proxy.yaml").write_text(yaml.safe_dump(cfg))
        node.procs["kube-proxy"] = self._popen(node.netns, [
            str(self.bin_dir / "kube-proxy"), f"--config={node.dir / 'kube-proxy.yaml'}", "--v=1",
        ], f"{node.name}-kube-proxy")

    def wait_nodes_ready(self, timeout: float) -> None:
        def ready() -> bool:
            for node in self.nodes:
                for name, proc in node.procs.items():
                    if proc.poll() is not None:
                        raise ClusterFailed(f"{node.name} {name} exited ({proc.returncode}); see {self.workdir}/logs")
            data = self.get_json("nodes")
            ok = {n["metadata"]["name"] for n in data["items"]
                  if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))}
            return ok >= {n.name for n in self.nodes}

        wait_until(ready, timeout, "all nodes Ready", interval=1)

    # ---- using it ---------------------------------------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``kubectl --kubeconfig <kubeconfig> ARGS`` in the control plane's namespace; raises on failure when
        ``check``."""
        r = subprocess.run(["ip", "netns", "exec", self.cp, str(self.bin_dir / "kubectl"),
                            f"--kubeconfig={self.kubeconfig}", *args], input=input,
                           capture_output=True, text=True, timeout=timeout, check=False)
        if check and r.returncode:
            raise RuntimeError(f"kubectl {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-2000:]}")
        return r

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def container_pid(self, pod: dict[str, Any], container: str) -> int:
        """The host PID of a running container of ``pod`` (a pod object), from its node's containerd: to look at
        what the container really runs as (``/proc/<pid>/status``, ``mountinfo``, ``root``)."""
        status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == container)
        cid = status["containerID"].removeprefix("containerd://")
        r = self._ctr(self.node(pod["spec"]["nodeName"]), "-n", "k8s.io", "tasks", "ls")
        for line in r.stdout.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 2 and fields[0] == cid and fields[1].isdigit():
                return int(fields[1])
        raise RuntimeError(f"container {container} of pod {pod['metadata']['name']} ({cid}) has no task: {r.stdout}")

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def client_run(self, cmd: Sequence[str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """Run a command in the client namespace (outside the cluster, on the LAN)."""
        return self.lab.run(self.client, cmd, check=False, timeout=timeout)

    def client_get(self, url: str, timeout: float = 2) -> str | None:
        """The body of an HTTP GET from the client, or None when it fails."""
        r = self.client_run(["curl", "-sS", "--max-time", str(timeout), url], timeout=timeout + 5)
        return r.stdout if r.returncode == 0 else None

    def kill_node(self, name: str) -> None:
        """The node dies as a machine does: its LAN link goes down, then its kubelet, kube-proxy, containerd and
        every container (the speaker among them) are killed with SIGKILL."""
        node = self.node(name)
        self.lab.run(node.netns, ["ip", "link", "set", "eth0", "down"])
        for proc in node.procs.values():
            _kill(proc, signal.SIGKILL)
        for proc in node.procs.values():
            proc.wait()
        inodes, cgroups = _kill_containers(node.socket, signal.SIGKILL)
        node.dead = True
        # What a reboot clears (/run and the kernel's state): the pods' mounts, namespaces and cgroups, and
        # containerd's state directory. Its root (images, container records) and the kubelet's directory stay.
        _remove_netns_files(inodes)
        _unmount_under(node.dir)
        _remove_cgroups(cgroups)
        shutil.rmtree(node.dir / "containerd-state", ignore_errors=True)

    def revive_node(self, name: str, timeout: float = 180) -> None:
        """Boot a node killed by :meth:`kill_node` again: link up, containerd, kubelet and kube-proxy started; waits
        until the node is Ready (its pods then come back as after a reboot)."""
        node = self.node(name)
        booted = time.time()
        self.lab.run(node.netns, ["ip", "link", "set", "eth0", "up"])
        self._node_routes(node)
        self._start_containerd(node)
        wait_until(lambda: self._ctr(node, "version").returncode == 0, 60, f"{node.name} containerd")
        self._start_kubelet(node)
        self._start_kube_proxy(node)
        self._wait_device_plugin_socket(node)
        node.dead = False

        def ready() -> bool:
            # Ready as reported by the new kubelet (the node controller may not have noticed the death yet).
            conds = self.get_json("node", node.name)["status"].get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True"
                       and _epoch(c["lastHeartbeatTime"]) >= int(booted) + 1 for c in conds)

        wait_until(ready, timeout, f"{node.name} Ready again", interval=1)

    # ---- teardown ---------------------------------------------------------------------------------------------------
    def dump_logs(self, lines: int = 15) -> None:
        logs = self.workdir / "logs"
        for f in sorted(logs.glob("*.log")) if logs.is_dir() else []:
            tail = f.read_text(errors="replace").splitlines()[-lines:]
            log(f"--- {f.name} (last {len(tail)} lines)\n" + "\n".join(tail))

    def stop(self) -> None:
        """Stop everything this lab started (by PID), unmount and remove what it made. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        # A second Ctrl-C must not cut the cleanup half-way (the signal is ignored meanwhile, main thread only).
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            self._stop()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)

    def _stop(self) -> None:
        for node in self.nodes:
            for name in ("kubelet", "kube-proxy"):
                _stop(node.procs.get(name))
        for node in self.nodes:
            _stop(node.procs.get("containerd"))
        netns_inodes: set[int] = set()
        cgroups: set[str] = set()
        for node in self.nodes:
            inodes, groups = _kill_containers(node.socket, signal.SIGKILL)
            netns_inodes |= inodes
            cgroups |= groups
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver",
                     "etcd"):
            _stop(self.cp_procs.get(name))
        _remove_netns_files(netns_inodes)
        _unmount_under(self.workdir)
        _remove_cgroups(cgroups | {"/k8s.io"})
        if self.frr is not None:
            self.frr.cleanup()  # its directory (the lab's cleanup below stops its daemons by PID)
        base = str(self.workdir.resolve()) + "/"
        for link in CONTAINER_LOG_LINKS.glob("*.log") if CONTAINER_LOG_LINKS.is_dir() else []:
            with contextlib.suppress(OSError):
                if os.readlink(link).startswith(base):
                    link.unlink()
        self.lab.cleanup()


def _epoch(timestamp: str) -> float:
    """An API timestamp (RFC 3339, UTC, ``2026-12-07T05:03:22Z``) as seconds since the epoch."""
    from datetime import datetime

    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


# ---- process and mount helpers ---------------------------------------------------------------------------------
def _kill(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """SIGTERM one process we started, SIGKILL if it does not exit in time, and reap it."""
    if proc is None:
        return
    _kill(proc, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill(proc, signal.SIGKILL)
        proc.wait()


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, cmdline) of every process."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry)] = (ppid, cmd)
    return table


def _kill_containers(socket_path: Path, sig: int) -> tuple[set[int], set[str]]:
    """Kill the containerd shims serving ``socket_path`` (found by their ``-address`` argument, which is unique to
    one node of one lab) and every process under them. Returns the network-namespace inodes and cgroup paths those
    processes had, so the caller can remove what runc and the CNI plugin would have."""
    table = _proc_table()
    shims = [pid for pid, (_, cmd) in table.items()
             if "containerd-shim" in cmd and f"-address {socket_path} " in f"{cmd} "]
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    victims: list[int] = []
    todo = list(shims)
    while todo:
        pid = todo.pop()
        victims.append(pid)
        todo.extend(children.get(pid, []))
    inodes: set[int] = set()
    cgroups: set[str] = set()
    host_netns = os.stat("/proc/self/ns/net").st_ino
    for pid in victims:
        if pid in shims:
            continue
        with contextlib.suppress(OSError):
            ino = os.stat(f"/proc/{pid}/ns/net").st_ino
            if ino != host_netns:
                inodes.add(ino)
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
                path = line.split(":", 2)[2]
                if path not in ("/", ""):
                    cgroups.add(path)
    # Containers first (their shim would restart nothing, but it reaps them), then the shims.
    for pid in [v for v in victims if v not in shims] + shims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in shims):
        time.sleep(0.1)
    return inodes, cgroups


def _remove_netns_files(inodes: set[int]) -> None:
    """Unmount and delete the /run/netns entries (CRI's ``cni-*``) of the given namespaces: only the lab's pods'."""
    if not inodes or not NETNS_DIR.is_dir():
        return
    for entry in NETNS_DIR.iterdir():
        if not entry.name.startswith("cni-"):  # hostNetwork pods share the node's own namespace: never that one
            continue
        try:
            if entry.stat().st_ino not in inodes:
                continue
        except OSError:
            continue
        subprocess.run(["umount", "-l", str(entry)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            entry.unlink()


def _unmount_under(directory: Path) -> None:
    """Lazily unmount every mount point under ``directory`` (kubelet volumes, container root filesystems), deepest
    first."""
    base = str(directory.resolve()) + "/"
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(base):
                points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _remove_cgroups(paths: set[str]) -> None:
    """rmdir the containers' cgroups (cgroup v1: in every hierarchy; deepest first), ignoring busy or absent ones."""
    if not CGROUP_ROOT.is_dir():
        return
    # Their parents too (containerd's /k8s.io): rmdir removes only an empty cgroup, so a busy one stays.
    paths = paths | {str(parent) for p in paths for parent in Path(p).parents if str(parent) != "/"}
    for path in sorted(paths, key=len, reverse=True):
        for hierarchy in CGROUP_ROOT.iterdir():
            d = hierarchy / path.lstrip("/")
            with contextlib.suppress(OSError):
                d.rmdir()


# ---- command line ------------------------------------------------------------------------------------------------
def _rt_group_scheduling() -> bool:
    """Does this kernel give cgroups (v1) real-time budgets, which start at 0?"""
    return (CGROUP_ROOT / "cpu" / "cpu.rt_runtime_us").exists()


def default_bin_dir() -> Path | None:
    env = os.environ.get("IRONLB_K8S_BIN")
    if env:
        return Path(env)
    script = _repo_script("build-k8s.sh")
    if script is None:
        return None
    out = subprocess.run([str(script), "--bin-dir"], capture_output=True, text=True, check=False).stdout.strip()
    return Path(out.splitlines()[-1]) if out else None


def default_images_dir() -> Path:
    env = os.environ.get("IRONLB_IMAGES")
    if env:
        return Path(env)
    return Path(os.environ.get("IRONLB_CACHE", Path.home() / ".cache" / "ironlb")) / "images"


def _repo_script(name: str) -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "scripts" / name
        if candidate.is_file():
            return candidate
    return None


def main(argv: Sequence[str] | None = None, out: IO[str] = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m ironlb.lab.kube_cluster",
                                     description="Bring the lab cluster up and keep it until Ctrl-C.")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ironlb-k8s."))
    cluster = KubeCluster.start(default_bin_dir() or Path("."), default_images_dir(), workdir, nodes=args.nodes)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print(f"cluster up in {cluster.timings['up']:.1f} s; kubectl: ip netns exec {cluster.cp} "
              f"{cluster.bin_dir / 'kubectl'} --kubeconfig {cluster.kubeconfig}", file=out, flush=True)
        print(cluster.kubectl("get", "nodes", "-o", "wide").stdout, file=out, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
