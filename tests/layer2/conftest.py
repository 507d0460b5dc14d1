"""Fixtures for the Layer 2 netns tests: a client and two nodes on one bridge."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.jsonlines import JsonLinesChild, popen_child
from tests.support.netns import NetnsLab, fresh_lab

HERE = Path(__file__).resolve().parent
CLIENT_IP4, NODE_A_IP4, NODE_B_IP4 = "10.99.0.1", "10.99.0.2", "10.99.0.3"
CLIENT_IP6, NODE_A_IP6, NODE_B_IP6 = "fd00:99::1", "fd00:99::2", "fd00:99::3"
VIP4, VIP4_UNANNOUNCED = "10.99.0.100", "10.99.0.101"
VIP6, VIP6_UNANNOUNCED = "fd00:99::100", "fd00:99::101"
# Interface name inside the node namespaces: "eth0", not veth*, which MetalLB's default list excludes.
DEV = "eth0"


class ResponderProcess(JsonLinesChild):
    """A Responder running in a node namespace, driven by JSON lines (responder_proc.py)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(proc, "responder helper")

    def read(self, timeout: float = 5.0) -> dict[str, Any]:
        return super().read(timeout)

    def command(self, **cmd: Any) -> dict[str, Any]:
        self.send(**cmd)
        return self.read()

    def announce(self, announced: dict[str, Any]) -> None:
        assert self.command(cmd="set", announced=announced) == {"ok": True}

    def metric(self, name: str, ip: str) -> float:
        return float(self.command(cmd="metrics", ips=[ip])[name][ip])


@dataclass
class L2Lab:
    """Client ``c`` and nodes ``a``/``b``, each with ``eth0`` on a bridge in namespace ``sw``."""

    lab: NetnsLab
    client: str
    node_a: str
    node_b: str
    macs: dict[str, str] = field(default_factory=dict)

    def start_responder(self, ns: str, *args: str) -> ResponderProcess:
        return ResponderProcess(popen_child(self.lab, ns, "tests.layer2.responder_proc", *args))

    def client_run(self, *cmd: str, check: bool = False, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        return self.lab.run(self.client, list(cmd), check=check, timeout=timeout)

    def client_send_udp(self, ip: str) -> None:
        """Make the client's kernel resolve ``ip`` (no ping on this machine: a UDP datagram does it)."""
        family = "AF_INET6" if ":" in ip else "AF_INET"
        code = f"import socket; socket.socket(socket.{family}, socket.SOCK_DGRAM).sendto(b'x', ({ip!r}, 9))"
        self.client_run(sys.executable, "-c", code, check=True)


@pytest.fixture
def l2lab() -> Iterator[L2Lab]:
    with fresh_lab() as lab:
        sw = lab.netns("sw")
        names = {"c": lab.netns("c"), "a": lab.netns("a"), "b": lab.netns("b")}
        for short, ns in names.items():
            lab.veth(ns, DEV, sw, f"p{short}")
        lab.bridge(sw, "br0", [f"p{short}" for short in names])
        lab.addr(names["c"], DEV, f"{CLIENT_IP4}/24", f"{CLIENT_IP6}/64")
        lab.addr(names["a"], DEV, f"{NODE_A_IP4}/24", f"{NODE_A_IP6}/64")
        lab.addr(names["b"], DEV, f"{NODE_B_IP4}/24", f"{NODE_B_IP6}/64")
        env = L2Lab(lab, names["c"], names["a"], names["b"])
        for short, ns in names.items():
            lab.wait_link_local(ns, DEV)  # NDP responders need one at the first scan
            env.macs[short] = lab.mac(ns, DEV)
        yield env
