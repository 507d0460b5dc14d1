"""A LAN of three nodes running ``ironlb run``, and the client's view of it (arping, ndisc6, /metrics)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironlb.lab.cluster import StandaloneCluster, parse_arping
from ironlb.lab.lan import Lan, build_lan
from ironlb.lab.netns import NetnsLab, netns_available

ROOT = Path(__file__).resolve().parents[2]
SEED = (ROOT / "examples" / "metallb-config.yaml").read_text()
SERVICE = (ROOT / "examples" / "my-service.yaml").read_text()
VIP = "192.168.1.240"


@pytest.fixture
def lan() -> Iterator[Lan]:
    reason = netns_available()
    if reason or shutil.which("arping") is None:
        pytest.skip(reason or "needs arping")
    lab = NetnsLab()
    try:
        yield build_lan(lab)
    finally:
        lab.cleanup()


class Cluster(StandaloneCluster):
    """The lab's cluster with the checks these tests add: split brain by arping, NDP, metrics, convergence."""

    def __init__(self, lan: Lan, tmp: Path) -> None:
        super().__init__(lan, tmp, log_level="debug")

    def arping_macs(self, ip: str = VIP, count: int = 2, client_ns: str | None = None) -> set[str]:
        """Every MAC that answers ARP for ``ip`` from the client (several MACs would be a split brain)."""
        cmd = ["arping", "-c", str(count), "-w", "2000000", "-i", "eth0", ip]
        r = self.lan.lab.run(client_ns or self.client_ns, cmd, check=False, timeout=10)
        return {mac.lower() for mac, _ in parse_arping(r.stdout)}

    def ndisc_mac(self, ip: str, dev: str = "eth0") -> str | None:
        """The MAC ``ndisc6`` resolves for ``ip`` from the client, or None."""
        r = self.lan.lab.run(self.client_ns, ["ndisc6", "-1", "-r", "2", "-w", "500", ip, dev], check=False, timeout=10)
        for line in r.stdout.splitlines():
            if "Target link-layer address" in line:
                return line.split(":", 1)[1].strip().lower()
        return None

    def converged(self) -> bool:
        """Every running node sees every running node alive (a late starter can still take an IP over)."""
        running = sorted(n for n in self.node_names if self.running(n))
        return all((self.status(n) or {}).get("members", {}).get("alive") == running for n in running)

    def metrics(self, node: str) -> str:
        """The node's /metrics page, fetched inside its namespace."""
        fetch = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9120/metrics', timeout=5).read().decode())"
        return self.lan.lab.run(self.lan.node(node).netns, [sys.executable, "-c", fetch]).stdout
