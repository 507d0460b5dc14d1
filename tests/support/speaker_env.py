"""A cluster for ``ironlb speaker`` end-to-end tests and the speaker benchmark.

The real control plane (etcd + kube-apiserver on the host's 127.0.0.1) plus, in network namespaces, a LAN with
three nodes running ``ironlb speaker``, a client and an FRR router; ``ironlb controller`` runs on the host so
Services get their IPs as in a cluster. There is no kubelet: this module creates the Node objects, the speaker
Pods (their status says where they run, for membership discovery) and the EndpointSlices.

The nodes reach the apiserver through :mod:`ironlb.lab.unixbridge`: one forwarder on the host listens on a Unix
socket, and one per node namespace listens on that namespace's ``127.0.0.1:<apiserver port>``, so the control
plane's own kubeconfig works unchanged inside every namespace and nothing is added to the host namespace.
Everything made here carries the lab's unique prefix and is removed by :meth:`SpeakerEnv.close` (processes by
PID, namespaces by name, Nodes and Pods through the API).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from ironlb.lab.cluster import parse_arping
from ironlb.lab.frr import FRRInstance
from ironlb.lab.lan import Lan, build_lan
from ironlb.lab.netns import NetnsLab
from tests.support.controller import ControllerProcess
from tests.support.controlplane import ControlPlane, KubeError, death_signal
from tests.support.jsonlines import JsonLineReader
from tests.support.waits import wait_until

REPO = Path(__file__).resolve().parents[2]
ROUTER_IP = "192.168.1.1"
ROUTER_ASN = 64512
NODE_ASN = 64513
ML_LABELS = "app=metallb,component=speaker"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
BGP_POOL = "10.77.0.0/24"
T = TypeVar("T")

# The seed example's ConfigMap (examples/metallb-config.yaml) and Service, in the test's namespaces.
SEED_CONFIG = (REPO / "examples" / "metallb-config.yaml").read_text()




def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def router_config(nodes: Sequence[str]) -> str:
    neighbors = "".join(f" neighbor {ip} remote-as {NODE_ASN}\n neighbor {ip} timers connect 1\n" for ip in nodes)
    return (
        f"router bgp {ROUTER_ASN}\n bgp router-id {ROUTER_IP}\n no bgp ebgp-requires-policy\n"
        f" bgp bestpath as-path multipath-relax\n{neighbors}"
        " address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n"
    )


class SpeakerEnv:
    """See the module docstring. ``ns`` is ironlb's namespace, ``app`` the Services' namespace."""

    def __init__(self, cp: ControlPlane, workdir: Path, *, speaker_args: Sequence[str] = (),
                 log_level: str = "debug") -> None:
        self.cp = cp
        self.workdir = workdir
        self.lab = NetnsLab()
        self.prefix = self.lab.prefix
        self.ns = f"t-{self.prefix}-lb"
        self.app = f"t-{self.prefix}-app"
        self.speaker_args = list(speaker_args)
        self.log_level = log_level
        self.lan: Lan | None = None
        self.router: FRRInstance | None = None
        self.controller: ControllerProcess | None = None
        self.speakers: dict[str, subprocess.Popen[str]] = {}
        self._logs: list[IO[str]] = []
        self._host_procs: list[subprocess.Popen[bytes]] = []
        self.socket = workdir / "apiserver.sock"
        self.ml_dir = workdir / "memberlist"
        self.nodes: list[str] = []  # Kubernetes node names (= the node namespaces' names)
        self.ip: dict[str, str] = {}
        self.mac: dict[str, str] = {}

    # ------------------------------------------------------------------------------------------------ set-up
    def start(self, *, speakers: bool = True) -> SpeakerEnv:
        try:
            self._build_network()
            self._bridge()
            self._kube_objects()
            self._start_controller()
            if speakers:
                for node in self.nodes:
                    self.start_speaker(node)
        except BaseException:
            self.close()
            raise
        return self

    def _build_network(self) -> None:
        lan = build_lan(self.lab, nodes=3)
        self.lan = lan
        for host in lan.nodes:
            self.nodes.append(host.netns)
            self.ip[host.netns] = host.ip
            self.mac[host.netns] = host.mac.lower()
        router = self.lab.netns("router")
        self.lab.veth(router, "eth0", lan.switch, "prtr", mac_a="02:00:00:00:00:01")
        self.lab.run(lan.switch, ["ip", "link", "set", "prtr", "master", "br0"])
        self.lab.run(lan.switch, ["ip", "link", "set", "prtr", "up"])
        self.lab.addr(router, "eth0", f"{ROUTER_IP}/24")
        self.router = FRRInstance(self.lab, router, ("zebra", "bgpd"))
        self.router.start()
        self.router.configure(router_config([self.ip[n] for n in self.nodes]))

    def start_host_bridge(self) -> None:
        """The host side of the bridge: the Unix socket, forwarded to the apiserver's port on 127.0.0.1."""
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        host = subprocess.Popen(
            [sys.executable, "-m", "ironlb.lab.unixbridge", "--listen", f"unix:{self.socket}",
             "--connect", f"tcp:127.0.0.1:{self.cp.port}"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            preexec_fn=death_signal(),
        )  # fmt: skip
        self._host_procs.append(host)
        self._ready(host.stdout)

    def stop_host_bridge(self) -> None:
        """Cut every node off the apiserver (open connections included), as an apiserver outage would."""
        for proc in self._host_procs:
            _stop(proc)
        self._host_procs.clear()

    def _bridge(self) -> None:
        """Host: unix socket -> apiserver; every node namespace: 127.0.0.1:<port> -> unix socket."""
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        self.start_host_bridge()
        for node in self.nodes:
            proc = self.lab.popen(
                node,
                [sys.executable, "-m", "ironlb.lab.unixbridge", "--listen", f"tcp:127.0.0.1:{self.cp.port}",
                 "--connect", f"unix:{self.socket}"],
                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
            self._ready(proc.stdout)

    @staticmethod
    def _ready(stream: IO[Any] | None) -> None:
        assert stream is not None
        line = stream.readline()
        if "ready" not in str(line):
            raise RuntimeError(f"unixbridge did not start: {line!r}")

    def _kube_objects(self) -> None:
        cp = self.cp
        for ns in (self.ns, self.app):
            cp.create("/api/v1/namespaces", {"metadata": {"name": ns}})
        for node in self.nodes:
            cp.create("/api/v1/nodes", {"metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}}})
            self.set_network_unavailable(node, False)
            pod = f"speaker-{node}"
            cp.create(f"/api/v1/namespaces/{self.ns}/pods", {
                "metadata": {"name": pod, "labels": {"app": "metallb", "component": "speaker"}},
                "spec": {"nodeName": node, "hostNetwork": True,
                         "containers": [{"name": "speaker", "image": "ironlb:test"}]},
            })  # fmt: skip
            cp.patch(f"/api/v1/namespaces/{self.ns}/pods/{pod}/status", {
                "status": {"phase": "Running", "podIP": self.ip[node], "podIPs": [{"ip": self.ip[node]}]},
            })  # fmt: skip
        self.ml_dir.mkdir(exist_ok=True)
        (self.ml_dir / "secretkey").write_text(secrets.token_urlsafe(16) + "\n")
        seed = SEED_CONFIG.replace("namespace: metallb-system", f"namespace: {self.ns}")
        import yaml

        cp.create(f"/api/v1/namespaces/{self.ns}/configmaps", yaml.safe_load(seed))
        mlb = f"/apis/metallb.io/v1beta1/namespaces/{self.ns}"
        cp.create(f"{mlb}/ipaddresspools", {
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "bgp"},
            "spec": {"addresses": [BGP_POOL], "autoAssign": False},
        })  # fmt: skip
        cp.create(f"{mlb}/bgpadvertisements", {
            "apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": {"name": "to-router"},
            "spec": {"ipAddressPools": ["bgp"]},
        })  # fmt: skip
        cp.create(f"/apis/metallb.io/v1beta2/namespaces/{self.ns}/bgppeers", {
            "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": {"name": "router"},
            "spec": {"myASN": NODE_ASN, "peerASN": ROUTER_ASN, "peerAddress": ROUTER_IP, "holdTime": "9s",
                     "keepaliveTime": "3s"},
        })  # fmt: skip

    def _start_controller(self) -> None:
        self.controller = ControllerProcess(self.cp, self.ns, self.workdir / "controller.log", ["--log-level", "info"])
        self.controller.start(wait=True)

    # ------------------------------------------------------------------------------------------------ speakers
    def speaker_command(self, node: str) -> list[str]:
        return [
            sys.executable, "-m", "ironlb", "speaker", "--node-name", node, "--kubeconfig", str(self.cp.kubeconfig),
            "--namespace", self.ns, "--ml-bindaddr", self.ip[node], "--ml-labels", ML_LABELS,
            "--ml-secret-key-path", str(self.ml_dir), "--log-level", self.log_level, *self.speaker_args,
        ]  # fmt: skip

    def start_speaker(self, node: str) -> None:
        log = open(self.workdir / f"{node}.log", "a")  # noqa: SIM115 - closed in close()
        self._logs.append(log)
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        env.pop("KUBECONFIG", None)
        self.speakers[node] = self.lab.popen(node, self.speaker_command(node), stdout=log,
                                             stderr=subprocess.STDOUT, env=env)

    def start_speakers(self, timeout: float = 120.0) -> None:
        """(Re)start every node's speaker and wait until each has synced its caches: on a loaded machine a
        Python process takes many seconds to start, which no behaviour deadline of a test should include."""
        marks = {node: len(self.speaker_log(node)) for node in self.nodes}
        for node in self.nodes:
            self.start_speaker(node)
        for node in self.nodes:
            wait_until(lambda n=node: "caches synced" in self.speaker_log(n)[marks[n]:], timeout,  # type: ignore[misc]
                       lambda n=node: f"{n}'s speaker started\n{self.logs()}")

    def stop_speaker(self, node: str) -> None:
        proc = self.speakers.get(node)
        if proc is not None:
            _stop(proc, timeout=10)

    def speaker_log(self, node: str) -> str:
        path = self.workdir / f"{node}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"==== {n}\n{self.speaker_log(n)[-3000:]}" for n in self.nodes)

    def wait_speakers_ready(self, timeout: float = 120.0) -> None:
        """Every speaker has written its ConfigurationState and sees all three members alive."""
        for node in self.nodes:
            wait_until(lambda n=node: self.configuration_state(n), timeout,  # type: ignore[misc]
                       lambda n=node: f"ConfigurationState of {n}\n{self.logs()}", retry=(KeyError,))
        want = ",".join(sorted(self.nodes))
        for node in self.nodes:
            wait_until(lambda n=node: f"members alive: {want}" in self.speaker_log(n), timeout,  # type: ignore[misc]
                       lambda n=node: f"{n} sees all members alive\n{self.logs()}")

    # ------------------------------------------------------------------------------------------------ API helpers
    def set_network_unavailable(self, node: str, value: bool) -> None:
        now = _now()
        cond = {"type": "NetworkUnavailable", "status": "True" if value else "False", "reason": "Test",
                "message": "set by the test", "lastTransitionTime": now, "lastHeartbeatTime": now}  # fmt: skip
        self.cp.patch(f"/api/v1/nodes/{node}/status", {"status": {"conditions": [cond]}}, kind="strategic")

    def set_excluded(self, node: str, value: bool) -> None:
        self.cp.patch(f"/api/v1/nodes/{node}", {"metadata": {"labels": {EXCLUDE_LABEL: "" if value else None}}})

    def create_service(self, name: str, *, annotations: dict[str, str] | None = None, etp: str = "Cluster",
                       endpoints_on: Sequence[str] = (), spec: dict[str, Any] | None = None) -> None:
        self.cp.create(f"/api/v1/namespaces/{self.app}/services", {
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "externalTrafficPolicy": etp,
                     "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}], **(spec or {})},
        })  # fmt: skip
        if endpoints_on:
            self.set_endpoints(name, endpoints_on)

    def set_endpoints(self, name: str, nodes: Sequence[str]) -> None:
        path = f"/apis/discovery.k8s.io/v1/namespaces/{self.app}/endpointslices"
        body = {
            "metadata": {"name": f"{name}-eps", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.244.{i}.10"], "nodeName": n, "conditions": {"ready": True}}
                          for i, n in enumerate(nodes)],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }  # fmt: skip
        try:
            self.cp.create(path, body)
        except KubeError as err:
            if err.status != 409:
                raise
            current = self.cp.get(f"{path}/{name}-eps")
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]  # type: ignore[index]
            self.cp.replace(f"{path}/{name}-eps", body)

    def delete_service(self, name: str) -> None:
        self.cp.delete(f"/api/v1/namespaces/{self.app}/services/{name}")
        with contextlib.suppress(KubeError):
            self.cp.delete(f"/apis/discovery.k8s.io/v1/namespaces/{self.app}/endpointslices/{name}-eps")

    def ingress(self, name: str) -> list[str]:
        svc = self.cp.get(f"/api/v1/namespaces/{self.app}/services/{name}")
        return [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]

    def wait_ingress(self, name: str, timeout: float = 20.0) -> list[str]:
        return wait_until(lambda: self.ingress(name), timeout, f"an IP for {name}")

    def statuses(self, kind: str, name: str | None = None) -> list[dict[str, Any]]:
        """ServiceL2Status (``l2``) or ServiceBGPStatus (``bgp``) objects, of Service ``name`` if given."""
        plural = "servicel2statuses" if kind == "l2" else "servicebgpstatuses"
        query = {"labelSelector": f"metallb.io/service-name={name},metallb.io/service-namespace={self.app}"} if name else {}
        items: list[dict[str, Any]] = self.cp.get(f"/apis/metallb.io/v1beta1/namespaces/{self.ns}/{plural}",
                                                  **query)["items"]
        return items

    def configuration_state(self, node: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.cp.get(
                f"/apis/metallb.io/v1beta1/namespaces/{self.ns}/configurationstates/speaker-{node}")
        except KubeError:
            return None
        return obj if (obj.get("status") or {}).get("result") else None

    def events(self, name: str) -> list[tuple[str, str, str, str]]:
        """(type, reason, message, host) of the speakers' Events about Service ``name``."""
        items = self.cp.get(f"/api/v1/namespaces/{self.app}/events", fieldSelector=f"involvedObject.name={name}")
        return [(e["type"], e["reason"], e["message"], (e.get("source") or {}).get("host", ""))
                for e in items["items"] if (e.get("source") or {}).get("component") == "metallb-speaker"]

    # ------------------------------------------------------------------------------------------------ network
    @property
    def client_ns(self) -> str:
        assert self.lan is not None and self.lan.client is not None
        return self.lan.client.netns

    def node_of_mac(self, mac: str) -> str | None:
        return next((n for n, m in self.mac.items() if m == mac.lower()), None)

    def arping(self, ip: str, count: int = 2) -> set[str]:
        """The nodes whose MAC answers ARP for ``ip`` at the client (several: split brain; none: silence)."""
        cmd = ["arping", "-c", str(count), "-w", "2000000", "-i", "eth0", ip]
        out = self.lab.run(self.client_ns, cmd, check=False, timeout=count + 10).stdout
        return {self.node_of_mac(mac) or mac for mac, _ in parse_arping(out)}

    def router_routes(self) -> dict[str, list[str]]:
        """Prefix -> the next hops FRR installed for it (ECMP when several)."""
        assert self.router is not None
        table = self.router.json("show ip route bgp json")
        routes: dict[str, list[str]] = {}
        for prefix, entries in table.items():
            for entry in entries:
                hops = [h["ip"] for h in entry.get("nexthops", []) if h.get("active") and "ip" in h]
                if entry.get("installed") or entry.get("selected"):
                    routes[prefix] = sorted(hops)
        return routes

    def next_hops(self, ip: str) -> list[str]:
        """The nodes FRR routes ``ip``/32 to, by name."""
        by_ip = {v: k for k, v in self.ip.items()}
        return sorted(by_ip.get(h, h) for h in self.router_routes().get(f"{ip}/32", []))

    def sniff_arp(self, ip: str) -> ArpSniffer:
        return ArpSniffer(self, ip)

    # ------------------------------------------------------------------------------------------------ teardown
    def close(self) -> None:
        for node in list(self.speakers):
            self.stop_speaker(node)
        if self.controller is not None:
            with contextlib.suppress(Exception):
                self.controller.stop()
        self.lab.cleanup()
        self.stop_host_bridge()
        if self.router is not None:
            self.router.cleanup()
        for log in self._logs:
            log.close()
        for node in self.nodes:
            with contextlib.suppress(Exception):
                self.cp.delete(f"/api/v1/nodes/{node}")
            with contextlib.suppress(Exception):
                self.cp.delete(f"/api/v1/namespaces/{self.ns}/pods/speaker-{node}")
        with contextlib.suppress(Exception):
            for svc in self.cp.get(f"/api/v1/namespaces/{self.app}/services")["items"]:
                self.cp.delete(f"/api/v1/namespaces/{self.app}/services/{svc['metadata']['name']}")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 5) -> None:
    """SIGTERM one process we started (by PID), SIGKILL if it lingers past ``timeout`` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()


class ArpSniffer:
    """The client's ARP sniffer for one IP (``ironlb.lab.probe probe``): every ARP packet with a timestamp."""

    def __init__(self, env: SpeakerEnv, ip: str) -> None:
        cmd = [sys.executable, "-m", "ironlb.lab.probe", "probe", ip, "--port", "9", "--interval", "60",
               "--timeout", "0.1"]  # fmt: skip
        self.env = env
        self.proc = env.lab.popen(env.client_ns, cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.reader = JsonLineReader(self.proc.stdout)
        while self.reader.read(10).get("ev") != "ready":
            pass

    def wait_mac_of(self, node: str, after: float, timeout: float = 5.0) -> float | None:
        """The monotonic time of the first ARP packet from ``node``'s MAC sent after ``after``, or None."""
        mac = self.env.mac[node]
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.reader.read(left)
            except TimeoutError:
                return None
            if event.get("ev") == "arp" and event.get("mac") == mac and event["t"] > after:
                return float(event["t"])
        return None

    def replies(self, wait: float = 1.0) -> set[str]:
        """The nodes (or MACs) named by the ARP replies for the IP read within ``wait`` seconds (and those already
        queued): the sender MAC inside each reply, which a stand-in sets to the held node's (arping shows the
        Ethernet source, the stand-in's own)."""
        out: set[str] = set()
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.reader.read(left)
            except TimeoutError:
                break
            if event.get("ev") == "arp" and event.get("op") == 2:
                out.add(self.env.node_of_mac(str(event["mac"])) or str(event["mac"]))
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=3)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ArpSniffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)
