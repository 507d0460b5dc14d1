"""Who answers, as the reference's election rules say, seen by a real client on the LAN.

Each test writes a state directory (config, Nodes, Services, EndpointSlices), runs three ``ironlb run`` nodes and
asks ``arping`` / ``ndisc6`` which MAC answers. The pure election has its own unit tests; these check the wiring.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ironlb.lab.lan import Lan
from ironlb.layer2.election import sort_candidates
from tests.support.waits import WaitTimeout, wait_until

from .conftest import VIP, Cluster

pytestmark = pytest.mark.netns

NODES = ("node1", "node2", "node3")
POOL = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec: {addresses: ["192.168.1.240-192.168.1.250", "fd00:1::f0/124"]}
"""
SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: %(etp)s
  ipFamilies: [%(family)s]
  selector: {app: web}
  ports: [{port: 80}]
"""


def nodes_yaml(labels: dict[str, dict[str, str]] | None = None) -> str:
    docs = []
    for name in NODES:
        lab = (labels or {}).get(name, {})
        docs.append(f"apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {lab or {}}}}\n")
    return "---\n".join(docs)


def slice_yaml(*on_nodes: str) -> str:
    eps = ", ".join(f"{{addresses: [10.1.0.{i + 1}], nodeName: {n}, conditions: {{ready: true}}}}" for i, n in enumerate(on_nodes))
    return (
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
        "metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}\n"
        f"addressType: IPv4\nendpoints: [{eps}]\n"
    )


def start(c: Cluster, ad: str, *, etp: str = "Cluster", family: str = "IPv4", labels: dict[str, dict[str, str]] | None = None,
          endpoints: tuple[str, ...] = NODES) -> None:
    (c.state / "pool.yaml").write_text(POOL + "---\n" + ad)
    (c.state / "nodes.yaml").write_text(nodes_yaml(labels))
    (c.state / "service.yaml").write_text(SERVICE % {"etp": etp, "family": family})
    (c.state / "slices.yaml").write_text(slice_yaml(*endpoints))
    for node in NODES:
        c.start(node)


def settle(c: Cluster, ip: str = VIP) -> str:
    try:
        wait_until(lambda: c.converged() and len(c.announcers(ip)) == 1, 60, f"one announcer of {ip}")
    except WaitTimeout as err:
        raise AssertionError([c.log(n)[-2000:] for n in NODES]) from err
    return c.announcers(ip)[0]


AD = """
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: ad, namespace: metallb-system}
"""


def test_node_selectors_choose_the_announcer(lan: Lan, tmp_path: Path) -> None:
    # Pick the node that would lose the hash election, and make it the only one selected.
    loser = sort_candidates(NODES, VIP)[-1]
    c = Cluster(lan, tmp_path)
    start(c, AD + "spec:\n  nodeSelectors: [{matchLabels: {edge: 'true'}}]\n", labels={loser: {"edge": "true"}})
    assert settle(c) == loser
    assert c.arping_macs() == {lan.node(loser).mac}


def test_etp_local_follows_the_endpoints(lan: Lan, tmp_path: Path) -> None:
    loser = sort_candidates(NODES, VIP)[-1]
    c = Cluster(lan, tmp_path)
    start(c, AD, etp="Local", endpoints=(loser,))
    assert settle(c) == loser
    assert c.arping_macs() == {lan.node(loser).mac}
    # The endpoint moves: so does the announcement, and the client's traffic follows (gratuitous ARP).
    other = next(n for n in NODES if n != loser)
    (c.state / "slices.yaml").write_text(slice_yaml(other))
    wait_until(lambda: c.announcers() == [other], 5, "c.announcers() == [other]")
    assert c.arping_macs() == {lan.node(other).mac}
    # No serving endpoint at all: nobody answers, the IP stays allocated.
    (c.state / "slices.yaml").write_text(slice_yaml())
    wait_until(lambda: c.announcers() == [], 5, "c.announcers() == []")
    assert c.arping_macs(count=1) == set()
    status = c.status("node1")
    assert status and status["services"]["default/web"]["ingress"] == [VIP]
    assert status["services"]["default/web"]["layer2"]["reason"] == "notOwner"


def test_exclude_label_moves_the_announcement(lan: Lan, tmp_path: Path) -> None:
    c = Cluster(lan, tmp_path)
    start(c, AD)
    winner = settle(c)
    assert winner == sort_candidates(NODES, VIP)[0]
    (c.state / "nodes.yaml").write_text(nodes_yaml({winner: {"node.kubernetes.io/exclude-from-external-load-balancers": ""}}))
    wait_until(lambda: len(c.announcers()) == 1 and c.announcers()[0] != winner, 5, "len(c.announcers()) == 1 and c.announcers()[0] != winner")
    moved = c.announcers()[0]
    assert moved == sort_candidates([n for n in NODES if n != winner], VIP)[0]
    assert c.arping_macs() == {lan.node(moved).mac}
    # Removing the label brings it back.
    (c.state / "nodes.yaml").write_text(nodes_yaml())
    wait_until(lambda: c.announcers() == [winner], 5, "c.announcers() == [winner]")


def test_preferred_nodes_win_over_the_hash(lan: Lan, tmp_path: Path) -> None:
    loser = sort_candidates(NODES, VIP)[-1]
    c = Cluster(lan, tmp_path)
    ad = AD + "spec:\n  preferredNodeSelectors: [{weight: 50, preference: {matchLabels: {tier: fast}}}]\n"
    start(c, ad, labels={loser: {"tier": "fast"}})
    assert settle(c) == loser
    assert c.arping_macs() == {lan.node(loser).mac}


def test_ipv6_is_answered_by_ndp(lan: Lan, tmp_path: Path) -> None:
    c = Cluster(lan, tmp_path)
    start(c, AD, family="IPv6")
    vip6 = "fd00:1::f0"
    owner = settle(c, vip6)
    assert c.ndisc_mac(vip6) == lan.node(owner).mac


def test_interface_selection(lan: Lan, tmp_path: Path) -> None:
    # A second LAN on eth1 of every node, with its own client.
    lab = lan.lab
    sw2 = lab.netns("sw2")
    ports = []
    for i, node in enumerate(lan.nodes):
        lab.veth(node.netns, "eth1", sw2, f"q{i}")
        lab.addr(node.netns, "eth1", f"192.168.2.{11 + i}/24")
        ports.append(f"q{i}")
    client2 = lab.netns("client2")
    lab.veth(client2, "eth0", sw2, "q9")
    ports.append("q9")
    lab.addr(client2, "eth0", "192.168.2.100/24")
    lab.bridge(sw2, "br0", ports)
    c = Cluster(lan, tmp_path)
    start(c, AD + "spec:\n  interfaces: [eth1]\n")
    owner = settle(c)
    status = c.status(owner)
    assert status and status["services"]["default/web"]["layer2"]["interfaces"] == ["eth1"]
    # Only the LAN on eth1 gets answers (with eth1's MAC); the client on eth0's LAN gets none.
    macs = c.arping_macs(client_ns=client2)
    assert macs == {lab.mac(lan.node(owner).netns, "eth1")}
    assert c.arping_macs(count=1) == set()
