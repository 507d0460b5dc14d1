"""A LAN of nodes and a client in network namespaces: what ``ironlb demo``, the L2 benchmarks and tests use.

A "switch" namespace holds a Linux bridge; every host gets an ``eth0`` whose veth peer is a bridge port. Nodes
accept traffic for the service range the way kube-proxy makes a node accept it: a ``local`` route for the pool on
``lo`` and ``arp_ignore=1`` / ``arp_announce=2`` so their kernels never answer ARP for it (ironlb does).
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ironlb.lab.netns import NetnsLab

NODE_SYSCTLS = {
    "net.ipv4.conf.all.arp_ignore": "1",
    "net.ipv4.conf.all.arp_announce": "2",
    "net.ipv4.conf.default.arp_ignore": "1",
    "net.ipv4.conf.default.arp_announce": "2",
}

# A small HTTP server for the nodes: answers every GET with the node's name.
HTTP_SERVER = """
import http.server, socketserver, sys
name = sys.argv[1].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(name))); self.end_headers()
        self.wfile.write(name)
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("0.0.0.0", int(sys.argv[2])), H).serve_forever()
"""


@dataclass
class Host:
    name: str
    netns: str
    ip: str
    ip6: str
    mac: str = ""


@dataclass
class Lan:
    lab: NetnsLab
    switch: str
    nodes: list[Host] = field(default_factory=list)
    client: Host | None = None

    def node(self, name: str) -> Host:
        return next(n for n in self.nodes if n.name == name)

    def members_flag(self, port: int = 7946) -> str:
        return ",".join(f"{n.name}={n.ip}:{port}" for n in self.nodes)


def build_lan(
    lab: NetnsLab,
    *,
    nodes: int = 3,
    subnet: str = "192.168.1",
    subnet6: str = "fd00:1",
    service_range: str = "192.168.1.240/28",
    service_range6: str | None = None,
) -> Lan:
    """Create the switch, ``nodes`` nodes (``.11``, ``.12``, ...) and a client (``.100``)."""
    switch = lab.netns("sw")
    lan = Lan(lab, switch)
    ports = []
    hosts = [(f"node{i + 1}", 11 + i, True) for i in range(nodes)] + [("client", 100, False)]
    for name, octet, is_node in hosts:
        ns = lab.netns(name[:8], NODE_SYSCTLS if is_node else None)
        port = f"p{octet}"
        # Locally administered, predictable MACs make the demo's output easy to read.
        mac = f"02:00:00:00:{octet // 256:02x}:{octet % 256:02x}"
        lab.veth(ns, "eth0", switch, port, mac_a=mac)
        ports.append(port)
        host = Host(name, ns, f"{subnet}.{octet}", f"{subnet6}::{octet:x}", mac)
        lab.addr(ns, "eth0", f"{host.ip}/24", f"{host.ip6}/64")
        if is_node:
            lab.run(ns, ["ip", "route", "add", "local", service_range, "dev", "lo"])
            if service_range6:
                lab.run(ns, ["ip", "-6", "route", "add", "local", service_range6, "dev", "lo"])
            lan.nodes.append(host)
        else:
            lan.client = host
    lab.bridge(switch, "br0", ports)
    return lan


def start_http_servers(lan: Lan, port: int = 80) -> None:
    for node in lan.nodes:
        lan.lab.popen(node.netns, [sys.executable, "-c", HTTP_SERVER, node.name, str(port)])


def new_secret(directory: Path) -> Path:
    path = directory / "memberlist-secret"
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(0o600)
    return path
