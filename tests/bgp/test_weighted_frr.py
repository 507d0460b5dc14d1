"""Traffic weighted by ready pods, and ETP Local take-over, against FRR 8.4 in network namespaces.

Three nodes run ``ironlb run`` and peer over eBGP with FRR (multipath across ASes). With ironlb's
``ironlb.io/link-bandwidth: ready-endpoints`` annotation each node's path carries the Link Bandwidth extended
community of its ready local endpoints, and FRR (weighted ECMP is its default when every path has one) installs
the route with next-hop weights in that ratio, in its RIB and in the kernel. BIRD 2, which has no weighted ECMP,
is checked to receive the community intact.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.bgp.conftest import FRR
from tests.support.bgp_interop import BgpLan, bird_bgp_conf, bird_lan, frr_lan, missing, service_yaml
from tests.support.bgp_weighted import (
    CONFIG,
    NODE_ASN,
    PEER,
    PREFIX,
    ROUTER_ASN,
    endpoints,
    kernel_weights,
    proportional,
    router_conf,
)
from tests.support.netns import NetnsLab, netns_available
from tests.support.waits import STARTING, wait_until

pytestmark = pytest.mark.netns


@pytest.fixture
def lan_frr(netns_lab: NetnsLab, tmp_path: Path) -> Iterator[tuple[BgpLan, FRR]]:
    with frr_lan(netns_lab, tmp_path, config=router_conf) as (lan, frr):
        lan.write_all("config.yaml", CONFIG + "---\n" + PEER)
        yield lan, frr


def rib_weights(frr: FRR, prefix: str) -> dict[str, int]:
    """Next hop -> weight of FRR's installed route (``show ip route json``)."""
    data = frr.json(f"show ip route {prefix} json").get(prefix, [])
    got: dict[str, int] = {}
    for route in data:
        if not route.get("installed"):
            continue
        for hop in route.get("nexthops", []):
            if hop.get("active"):
                got[hop["ip"]] = int(hop.get("weight", 1))
    return got


def link_bandwidths(frr: FRR, prefix: str) -> dict[str, str]:
    """Next hop -> the Link Bandwidth extended community FRR shows on that path."""
    paths = frr.json(f"show bgp ipv4 unicast {prefix} json").get("paths", [])
    return {p["nexthops"][0]["ip"]: p.get("extendedCommunity", {}).get("string", "") for p in paths}


def test_frr_weights_follow_ready_local_endpoints(lan_frr: tuple[BgpLan, FRR]) -> None:
    """1, 2 and 3 ready pods: FRR installs weights 1:2:3 (RIB and kernel), and they follow the pods as they scale."""
    lan, frr = lan_frr
    ip = {n: lan.node_ip(n) for n in sorted(lan.nodes)}
    lan.write_all("svc.yaml", service_yaml("local", "10.50.0.20", etp="Local"))
    counts = {"node1": 1, "node2": 2, "node3": 3}
    lan.write_all("eps.yaml", endpoints(counts))
    for n in lan.nodes.values():
        n.start()

    def converged(counts: dict[str, int]) -> bool:
        want = {ip[n]: c for n, c in counts.items() if c}
        return proportional(kernel_weights(lan, PREFIX), want) and proportional(rib_weights(frr, PREFIX), want)

    def state() -> str:
        return f"rib {rib_weights(frr, PREFIX)}, kernel {kernel_weights(lan, PREFIX)}\n{lan.logs()}"

    wait_until(lambda: converged(counts), 30, lambda: f"weights 1:2:3: {state()}", retry=STARTING, interval=0.1)
    assert link_bandwidths(frr, PREFIX) == {
        ip["node1"]: "LB:64513:125000 (1.000 Mbps)",
        ip["node2"]: "LB:64513:250000 (2.000 Mbps)",
        ip["node3"]: "LB:64513:375000 (3.000 Mbps)",
    }
    for scaled in ({"node1": 3, "node2": 2, "node3": 1}, {"node1": 5, "node2": 1, "node3": 1}):
        lan.write_all("eps.yaml", endpoints(scaled))
        wait_until(partial(converged, scaled), 20, f"weights {scaled}", retry=STARTING, interval=0.1)


def test_etp_local_take_over(lan_frr: tuple[BgpLan, FRR]) -> None:
    """The last ready pod on a node goes: that node withdraws (the others' weights re-split); it comes back: the
    node announces again (metallb#148)."""
    lan, frr = lan_frr
    ip = {n: lan.node_ip(n) for n in sorted(lan.nodes)}
    lan.write_all("svc.yaml", service_yaml("local", "10.50.0.20", etp="Local"))
    lan.write_all("eps.yaml", endpoints({"node1": 1, "node2": 2, "node3": 1}))
    for n in lan.nodes.values():
        n.start()
    wait_until(lambda: len(kernel_weights(lan, PREFIX)) == 3, 30, "three next hops", retry=STARTING, interval=0.1)
    lan.write_all("eps.yaml", endpoints({"node1": 1, "node2": 0, "node3": 1}))  # node2: one unready pod only
    wait_until(
        lambda: proportional(kernel_weights(lan, PREFIX), {ip["node1"]: 1, ip["node3"]: 1}),
        20, lambda: f"node2 withdrawn: {kernel_weights(lan, PREFIX)}", retry=STARTING, interval=0.1,
    )  # fmt: skip
    assert ip["node2"] not in link_bandwidths(frr, PREFIX)
    assert lan.nodes["node2"].peer_state("tor") == "Established"  # a withdrawal, not a session reset
    lan.write_all("eps.yaml", endpoints({"node1": 1, "node2": 2, "node3": 1}))
    wait_until(
        lambda: proportional(kernel_weights(lan, PREFIX), {ip["node1"]: 1, ip["node2"]: 2, ip["node3"]: 1}),
        20, lambda: f"node2 back: {kernel_weights(lan, PREFIX)}", retry=STARTING, interval=0.1,
    )  # fmt: skip


def test_bird_receives_the_link_bandwidth_community(tmp_path: Path) -> None:
    """BIRD 2 has no weighted ECMP, but gets the community intact: type 0x00/0x04, our AS, 2 pods' float32."""
    if why := netns_available() or missing("bird", "birdc"):
        pytest.skip(why)

    def router(lan: BgpLan) -> str:
        return bird_bgp_conf(lan.node_ip("node1"), ROUTER_ASN, NODE_ASN)

    with bird_lan(NetnsLab(), tmp_path, router) as (lan, bird):
        node = lan.nodes["node1"]
        node.write("config.yaml", CONFIG + "---\n" + PEER)
        node.write("svc.yaml", service_yaml("local", "10.50.0.20", etp="Local"))
        node.write("eps.yaml", endpoints({"node1": 2}))
        node.start()

        def ext_community() -> re.Match[str] | None:
            return re.search(r"BGP\.ext_community: \(unknown 0x4, (\d+), (\d+)\)", bird.show("show", "route", "all"))

        found = wait_until(ext_community, 20, "the route with its extended community in BIRD", retry=STARTING)
        asn, raw = int(found.group(1)), int(found.group(2))
        assert asn == NODE_ASN and struct.unpack("!f", raw.to_bytes(4, "big"))[0] == 2 * 125_000.0
