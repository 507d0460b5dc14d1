"""BFD through the fast process of ``ironlb run`` (the default ``--fastpath process``), against FRR 8.4's bfdd.

The BGP session runs in the main process, its BFD session in the fast process: the session must come up in FRR,
its state must reach the main process's ``/metrics``, and a BFD failure seen by the fast process must drop the BGP
session in the main process at once (the hold time is 90 s, so only BFD can explain a fast drop).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.bfd_frr import FRRInstance, frr_bfd_missing, nft_drop_bfd, router_conf
from tests.support.bgp_interop import ROUTER4, BgpLan, doc, frr_lan, peer_yaml, service_yaml
from tests.support.netns import NetnsLab
from tests.support.waits import STARTING, wait_until

pytestmark = pytest.mark.netns

CONFIG = doc(
    """
    apiVersion: metallb.io/v1beta1
    kind: IPAddressPool
    metadata: {name: bgp, namespace: metallb-system}
    spec: {addresses: ["10.50.0.0/24"]}
    ---
    apiVersion: metallb.io/v1beta1
    kind: BGPAdvertisement
    metadata: {name: bgp, namespace: metallb-system}
    ---
    apiVersion: metallb.io/v1beta1
    kind: BFDProfile
    metadata: {name: fast, namespace: metallb-system}
    spec: {receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}
    """
)


@pytest.fixture
def lan(netns_lab: NetnsLab, tmp_path: Path) -> Iterator[tuple[BgpLan, FRRInstance]]:
    reason = frr_bfd_missing()
    if reason:
        pytest.skip(reason)
    with frr_lan(netns_lab, tmp_path, nodes=1, daemons=("zebra", "bfdd", "bgpd")) as (lan, frr):
        yield lan, frr


def bfd_up_metric(lan: BgpLan) -> str:
    fetch = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9120/metrics', timeout=5).read().decode())"
    out = lan.lab.run(lan.nodes["node1"].ns, [sys.executable, "-c", fetch], check=False).stdout
    return next((line for line in out.splitlines() if line.startswith("metallb_bfd_session_up{")), "")


def test_bfd_runs_in_the_fast_process_and_drops_the_bgp_session(lan: tuple[BgpLan, FRRInstance]) -> None:
    bgp, frr = lan
    node = bgp.nodes["node1"]
    node_ip = bgp.node_ip("node1")
    frr.configure(router_conf(ROUTER4, node_ip, my_asn=64513, node_asn=64512, hold=90))
    node.write("config.yaml", CONFIG + "---\n" + peer_yaml("rtr", 64512, 64513, ROUTER4, bfdProfile="fast", holdTime="90s"))
    node.write("svc.yaml", service_yaml("svc", "10.50.0.1"))
    node.start()
    wait_until(lambda: node.peer_state("rtr") == "Established", 60, lambda: f"BGP up: {node.log()}", interval=0.1)
    wait_until(lambda: frr.bfd_status(node_ip) == "up", 60, "FRR sees the BFD session up", retry=STARTING)
    assert "ironlb.fastproc" in node.log()  # the fast process runs it
    wait_until(lambda: bfd_up_metric(bgp).endswith(" 1.0"), 20, "metallb_bfd_session_up 1 on the main /metrics")
    assert f'peer="{ROUTER4}"' in bfd_up_metric(bgp)

    nft_drop_bfd(bgp.lab, bgp.router_ns)  # the router's BFD packets vanish: our BFD detects it, not the hold timer
    wait_until(lambda: node.peer_state("rtr") != "Established", 10, "the BGP session dropped by BFD", interval=0.05)
    assert "BFD" in node.log()
