"""Unnumbered BGP (BGPPeer ``interface``) against FRR 8.4's ``neighbor eth0 interface``, in two namespaces.

The link between node and router has no address but the kernel's IPv6 link-local ones. Each side learns the other
from Router Advertisements, the session runs over link-local addresses, IPv4 prefixes go with an IPv6 next hop
(RFC 8950 extended next hop) and IPv6 ones with the link-local next hop: the router installs both in its kernel.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bgp.conftest import FRR
from tests.support.bfd_frr import nft_clear, nft_drop_bfd
from tests.support.bgp_interop import IronNode, doc, service_yaml
from tests.support.netns import NetnsLab
from tests.support.waits import STARTING, VTYSH_NOT_READY, wait_until

pytestmark = pytest.mark.netns

V4, V6 = "10.60.0.10", "fd00:60::10"
CONFIG = (
    doc(
        """
    apiVersion: metallb.io/v1beta1
    kind: IPAddressPool
    metadata: {name: bgp, namespace: metallb-system}
    spec: {addresses: ["10.60.0.0/24", "fd00:60::/120"]}
    ---
    apiVersion: metallb.io/v1beta1
    kind: BGPAdvertisement
    metadata: {name: all, namespace: metallb-system}
    spec: {ipAddressPools: [bgp]}
    """
    )
    + "---\n"
    + json.dumps(
        {
            "apiVersion": "metallb.io/v1beta2",
            "kind": "BGPPeer",
            "metadata": {"name": "tor", "namespace": "metallb-system"},
            "spec": {"myASN": 64512, "peerASN": 64513, "interface": "eth0", "holdTime": "9s", "connectTime": "1s"},
        }
    )
    + "\n"
)
FRR_CONF = """
router bgp 64513
 bgp router-id 10.255.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor eth0 interface remote-as 64512
 neighbor eth0 timers connect 1
 address-family ipv4 unicast
  neighbor eth0 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor eth0 activate
 exit-address-family
!
"""


@pytest.fixture
def link(netns_lab: NetnsLab, tmp_path: Path) -> Iterator[tuple[NetnsLab, str, str, IronNode, FRR]]:
    lab = netns_lab
    node, rtr = lab.netns("node"), lab.netns("rtr")
    lab.veth(node, "eth0", rtr, "eth0")
    lab.run(node, ["ip", "link", "set", "eth0", "up"])
    lab.run(rtr, ["ip", "link", "set", "eth0", "up"])
    lab.wait_link_local(node, "eth0")
    lab.wait_link_local(rtr, "eth0")
    iron = IronNode(lab, node, "node1", tmp_path)
    frr = FRR(lab, rtr, ("zebra", "bfdd", "bgpd"))
    try:
        frr.start()
        yield lab, node, rtr, iron, frr
    except Exception:
        print(iron.log())
        print(frr.logs())
        raise
    finally:
        iron.stop(timeout=5)
        lab.cleanup()
        frr.cleanup()


def neighbor(frr: FRR) -> dict[str, Any]:
    return dict(frr.json("show bgp neighbors eth0 json").get("eth0", {}))


def kernel_route(lab: NetnsLab, ns: str, prefix: str) -> str:
    fam = "-6" if ":" in prefix else "-4"
    return lab.run(ns, ["ip", fam, "route", "show", prefix]).stdout.strip()


def test_unnumbered_session_carries_ipv4_over_ipv6_next_hop(link: tuple[NetnsLab, str, str, IronNode, FRR]) -> None:
    lab, node, rtr, iron, frr = link
    frr.configure(FRR_CONF)
    our_ll = lab.wait_link_local(node, "eth0")
    iron.write("config.yaml", CONFIG)
    iron.write("web.yaml", service_yaml("web", V4))
    iron.write("web6.yaml", service_yaml("web6", V6))
    iron.start()
    wait_until(
        lambda: neighbor(frr).get("bgpState") == "Established",
        40.0,
        "FRR's unnumbered session Established",
        retry=STARTING + VTYSH_NOT_READY,
        interval=0.2,
    )
    n = neighbor(frr)
    caps = n.get("neighborCapabilities", {})
    assert caps.get("extendedNexthop") == "advertisedAndReceived", caps
    # IPv4 prefix, IPv6 next hop: our link-local address (RFC 8950), installed by zebra in the router's kernel.
    v4 = wait_until(lambda: kernel_route(lab, rtr, f"{V4}/32"), 20.0, "IPv4 route at the router", interval=0.2)
    assert "inet6" in v4 and our_ll in v4 and "eth0" in v4, v4
    v6 = wait_until(lambda: kernel_route(lab, rtr, f"{V6}/128"), 20.0, "IPv6 route at the router", interval=0.2)
    assert our_ll in v6 and "eth0" in v6, v6
    paths = frr.json(f"show bgp ipv4 unicast {V4}/32 json")["paths"]
    hops = {h["ip"] for p in paths for h in p["nexthops"]}
    assert our_ll in hops, paths
    # Our status names the peer by its interface.
    assert iron.peer_state("tor") == "Established", iron.status()
    # Withdrawal (the IPv4 prefix went out in MP_REACH with an IPv6 next hop): the router drops it.
    iron.remove("web.yaml")
    wait_until(lambda: not kernel_route(lab, rtr, f"{V4}/32"), 20.0, "IPv4 route withdrawn", interval=0.2)
    assert kernel_route(lab, rtr, f"{V6}/128")


BFD_CONFIG = CONFIG.replace('"connectTime": "1s"}', '"connectTime": "1s", "bfdProfile": "fast"}').replace(
    '"holdTime": "9s"', '"holdTime": "90s"'
) + doc(
    """
    ---
    apiVersion: metallb.io/v1beta1
    kind: BFDProfile
    metadata: {name: fast, namespace: metallb-system}
    spec: {receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}
    """
)
FRR_BFD_CONF = FRR_CONF.replace(
    " neighbor eth0 timers connect 1\n",
    " neighbor eth0 timers connect 1\n neighbor eth0 timers 30 90\n neighbor eth0 bfd\n neighbor eth0 bfd profile fast\n",
).replace("router bgp", "bfd\n profile fast\n  receive-interval 300\n  transmit-interval 300\n !\n!\nrouter bgp", 1)


def test_bfd_on_an_unnumbered_session(link: tuple[NetnsLab, str, str, IronNode, FRR]) -> None:
    """BFD to the router found on the link (its link-local address): a BFD failure withdraws long before the 90 s
    hold timer."""
    lab, node, rtr, iron, frr = link
    assert '"bfdProfile": "fast"' in BFD_CONFIG and "bfd profile fast" in FRR_BFD_CONF
    frr.configure(FRR_BFD_CONF)
    our_ll = lab.wait_link_local(node, "eth0")
    iron.write("config.yaml", BFD_CONFIG)
    iron.write("web.yaml", service_yaml("web", V4))
    iron.start()

    def bfd_up() -> bool:
        peers = frr.json("show bfd peers json")
        return any(p.get("peer") == our_ll and p.get("status") == "up" for p in peers)

    wait_until(
        lambda: kernel_route(lab, rtr, f"{V4}/32"),
        40.0,
        "route at the router",
        retry=STARTING + VTYSH_NOT_READY,
        interval=0.2,
    )
    wait_until(bfd_up, 20.0, "BFD up with our link-local address", retry=STARTING + VTYSH_NOT_READY, interval=0.2)
    dropped = int(neighbor(frr).get("connectionsDropped", 0))
    nft_drop_bfd(lab, node)

    def withdrawn() -> bool:
        # The route leaves the router when BFD takes the session down; it may be back a second later (FRR lets
        # the session up again with BFD down), so a poll that missed that window reads FRR's drop count instead.
        return not kernel_route(lab, rtr, f"{V4}/32") or int(neighbor(frr).get("connectionsDropped", 0)) > dropped

    wait_until(withdrawn, 10.0, "route withdrawn by BFD", retry=VTYSH_NOT_READY, interval=0.05)
    nft_clear(lab, node)
    wait_until(lambda: kernel_route(lab, rtr, f"{V4}/32"), 60.0, "route back", interval=0.2)
    wait_until(bfd_up, 20.0, "BFD up again", retry=STARTING + VTYSH_NOT_READY, interval=0.2)
