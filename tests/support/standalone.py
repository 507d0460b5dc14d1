"""Three ``ironlb run`` nodes on a netns LAN as the standalone tests see them (tests/standalone): the client's view
(arping, ndisc6, /metrics), convergence, and the start every test of a running cluster begins with."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ironlb.lab.cluster import StandaloneCluster, parse_arping
from ironlb.lab.lan import Lan
from tests.support.waits import STARTING, WaitTimeout, wait_until

ROOT = Path(__file__).resolve().parents[2]
SEED = (ROOT / "examples" / "metallb-config.yaml").read_text()
SERVICE = (ROOT / "examples" / "my-service.yaml").read_text()
VIP = "192.168.1.240"
NODES = ("node1", "node2", "node3")


class Cluster(StandaloneCluster):
    """The lab's cluster with the checks these tests add: split brain by arping, NDP, metrics."""

    def __init__(self, lan: Lan, tmp: Path) -> None:
        super().__init__(lan, tmp, log_level="debug")

    def start_one_announcer(self, nodes: Sequence[str] = NODES, timeout: float = 60.0) -> str:
        """Write the seed configuration and Service, start ``nodes`` and wait until they see each other alive and
        exactly one announces the VIP; its name. A start that does not get there fails with every node's log."""
        (self.state / "config.yaml").write_text(SEED)
        (self.state / "service.yaml").write_text(SERVICE)
        for node in nodes:
            self.start(node)
        try:
            wait_until(lambda: self.converged() and len(self.announcers()) == 1, timeout, "one announcer",
                       retry=STARTING)  # fmt: skip
        except WaitTimeout as err:
            raise AssertionError([self.log(n)[-3000:] for n in nodes]) from err
        return self.announcers()[0]

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

    def metrics(self, node: str) -> str:
        """The node's /metrics page, fetched inside its namespace."""
        fetch = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9120/metrics', timeout=5).read().decode())"
        return self.lan.lab.run(self.lan.node(node).netns, [sys.executable, "-c", fetch]).stdout
