"""Shared pieces of the BGP interop tests: a LAN of nodes running ``ironlb run`` and a router namespace.

The router is the LAN's "client" host (``.100`` / ``fd00:1::64``); nodes are ``node1..N`` (``.11``...). Each node
runs ``python -m ironlb run`` on its own state directory (no ``--members``: BGP does not need membership), so a
test can give nodes different views when it needs to.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from ironlb.lab.lan import Lan, build_lan
from ironlb.lab.netns import NetnsLab

ROOT = Path(__file__).resolve().parents[2]
ROUTER4 = "192.168.1.100"
ROUTER6 = "fd00:1::64"



def doc(text: str) -> str:
    return textwrap.dedent(text).strip() + "\n"


def peer_yaml(name: str, my_asn: int, peer_asn: int, address: str, **spec: Any) -> str:
    body = {"myASN": my_asn, "peerASN": peer_asn, "peerAddress": address, **spec}
    meta = {"name": name, "namespace": "metallb-system"}
    return json.dumps({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": meta, "spec": body}) + "\n"


def service_yaml(name: str, ip: str, *, etp: str = "Cluster", labels: dict[str, str] | None = None) -> str:
    spec: dict[str, Any] = {"type": "LoadBalancer", "ports": [{"port": 80}], "externalTrafficPolicy": etp}
    spec["loadBalancerIP"] = ip
    if ":" in ip:
        spec["ipFamilies"] = ["IPv6"]
    meta: dict[str, Any] = {"name": name, "namespace": "default", "labels": labels or {}}
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}) + "\n"


def slice_yaml(service: str, *endpoints: tuple[str, str, bool]) -> str:
    """An EndpointSlice with (address, nodeName, ready) endpoints."""
    eps = [{"addresses": [a], "nodeName": n, "conditions": {"ready": r}} for a, n, r in endpoints]
    meta = {"name": f"{service}-eps", "namespace": "default", "labels": {"kubernetes.io/service-name": service}}
    obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta, "addressType": "IPv4"}
    obj["endpoints"] = eps
    return json.dumps(obj) + "\n"


class IronNode:
    """``ironlb run`` in a node namespace, with its own state directory and status file."""

    def __init__(self, lab: NetnsLab, ns: str, name: str, tmp: Path) -> None:
        self.lab, self.ns, self.name = lab, ns, name
        self.state = tmp / f"{name}-state"
        self.state.mkdir(exist_ok=True)
        self.status_file = tmp / f"{name}.status.json"
        self.log_file = tmp / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None

    def write(self, filename: str, text: str) -> None:
        """Atomically (re)write one manifest of the state directory."""
        tmp = self.state / f".{filename}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.state / filename)

    def remove(self, filename: str) -> None:
        (self.state / filename).unlink(missing_ok=True)

    def start(self) -> None:
        self.status_file.unlink(missing_ok=True)
        cmd = [
            sys.executable, "-m", "ironlb", "run", "--state", str(self.state), "--node", self.name,
            "--status-file", str(self.status_file), "--log-level", "debug",
        ]  # fmt: skip
        log = open(self.log_file, "a")  # noqa: SIM115 - closed with the process
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        self.proc = self.lab.popen(self.ns, cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def status(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def peer_state(self, peer: str) -> str | None:
        for p in self.status().get("bgpPeers", []):
            if p["peer"] == peer:
                return str(p["state"])
        return None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-5000:] if self.log_file.exists() else ""


class BgpLan:
    """``build_lan`` with the client as the router and every node ready to run ironlb."""

    def __init__(self, lab: NetnsLab, tmp: Path, nodes: int = 3) -> None:
        self.lab = lab
        self.lan: Lan = build_lan(lab, nodes=nodes, service_range="10.250.0.0/30")
        assert self.lan.client is not None
        self.router_ns = self.lan.client.netns
        self.nodes = {h.name: IronNode(lab, h.netns, h.name, tmp) for h in self.lan.nodes}

    def node_ip(self, name: str, v6: bool = False) -> str:
        host = self.lan.node(name)
        return host.ip6 if v6 else host.ip

    def write_all(self, filename: str, text: str) -> None:
        for n in self.nodes.values():
            n.write(filename, text)

    def remove_all(self, filename: str) -> None:
        for n in self.nodes.values():
            n.remove(filename)

    def stop_all(self) -> None:
        for n in self.nodes.values():
            try:
                n.stop(timeout=5)
            except subprocess.TimeoutExpired:
                n.stop(signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{n.log()}" for name, n in self.nodes.items())


def missing(*tools: str) -> str | None:
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None
