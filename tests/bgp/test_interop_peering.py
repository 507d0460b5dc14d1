"""``ironlb run`` against FRR 8.4 in namespaces: per-peer ``localASN``, passive sessions and connection collisions.

One LAN per test (``BgpLan``): nodes ``node1..`` running ``ironlb run`` and the router (FRR) at ``.100``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bgp.conftest import FRR
from tests.support.bgp_interop import ROUTER4, BgpLan, frr_bgp_conf, frr_lan, peer_yaml, service_yaml
from tests.support.netns import NetnsLab
from tests.support.objects import BGP_ADVERTISED
from tests.support.waits import STARTING, wait_until

pytestmark = pytest.mark.netns

CONFIG = BGP_ADVERTISED


@pytest.fixture
def bgp_lan(netns_lab: NetnsLab, tmp_path: Path) -> Iterator[tuple[BgpLan, FRR]]:
    with frr_lan(netns_lab, tmp_path, nodes=1) as (lan, frr):
        yield lan, frr


def frr_conf(asn: int, neighbor: str, remote_asn: int, *extra: str) -> str:
    """``router bgp`` with one IPv4 neighbor and the given per-neighbor lines."""
    return frr_bgp_conf(asn, [(neighbor, remote_asn, extra)], options=["no bgp network import-check"])


def neighbor(frr: FRR, addr: str) -> dict[str, Any]:
    info: dict[str, Any] = frr.json(f"show bgp neighbor {addr} json").get(addr, {})
    return info


def paths(frr: FRR, prefix: str) -> list[dict[str, Any]]:
    routes = frr.json("show bgp ipv4 unicast json").get("routes", {})
    if prefix not in routes:
        return []
    found: list[dict[str, Any]] = frr.json(f"show bgp ipv4 unicast {prefix} json").get("paths", [])
    return found


def test_local_asn_is_the_session_asn_and_the_as_path(bgp_lan: tuple[BgpLan, FRR]) -> None:
    """localASN 65010 on a node whose myASN is 64513: FRR peers with ``remote-as 65010`` and sees only 65010."""
    lan, frr = bgp_lan
    node = lan.nodes["node1"]
    ip = lan.node_ip("node1")
    frr.configure(frr_conf(64512, ip, 65010, "timers connect 1"))
    peer = peer_yaml("r", 64513, 64512, ROUTER4, localASN=65010, connectTime="1s", holdTime="9s")
    node.write("config.yaml", CONFIG + "---\n" + peer)
    node.write("svc.yaml", service_yaml("web", "10.50.0.10"))
    node.start()
    wait_until(lambda: neighbor(frr, ip).get("bgpState") == "Established", 20, "session", retry=STARTING, interval=0.1)
    wait_until(lambda: paths(frr, "10.50.0.10/32"), 10, "route", retry=STARTING, interval=0.1)
    (path,) = paths(frr, "10.50.0.10/32")
    assert path["aspath"]["string"] == "65010", path["aspath"]
    assert neighbor(frr, ip)["remoteAs"] == 65010
    assert node.peer_state("r") == "Established"


def passive_peer(*args: Any, **spec: Any) -> str:
    """:func:`peer_yaml` with ironlb's ``ironlb.io/passive: "true"`` annotation."""
    obj = json.loads(peer_yaml(*args, **spec))
    obj["metadata"]["annotations"] = {"ironlb.io/passive": "true"}
    return json.dumps(obj) + "\n"


def test_passive_peer_takes_the_routers_connection_with_md5(bgp_lan: tuple[BgpLan, FRR]) -> None:
    """A passive peer never dials: FRR connects to the node's port 179 (TCP MD5 on the listening socket)."""
    lan, frr = bgp_lan
    node = lan.nodes["node1"]
    ip = lan.node_ip("node1")
    frr.configure(frr_conf(64512, ip, 64513, "timers connect 1", "password s3cret"))
    peer = passive_peer("r", 64513, 64512, ROUTER4, connectTime="1s", holdTime="9s", password="s3cret")
    node.write("config.yaml", CONFIG + "---\n" + peer)
    node.write("svc.yaml", service_yaml("web", "10.50.0.10"))
    node.start()
    wait_until(lambda: neighbor(frr, ip).get("bgpState") == "Established", 20, "session", retry=STARTING, interval=0.1)
    wait_until(lambda: paths(frr, "10.50.0.10/32"), 10, "route", retry=STARTING, interval=0.1)
    info = neighbor(frr, ip)
    assert info["portForeign"] == 179, info  # FRR dialled the node
    assert node.peer_state("r") == "Established"
    assert "BGP connect to" not in node.log()  # the node never dialled


def test_passive_peer_waits_for_a_router_that_does_not_dial(bgp_lan: tuple[BgpLan, FRR]) -> None:
    """Both sides passive: no session, and the node reports Active (waiting), not a dial error."""
    lan, frr = bgp_lan
    node = lan.nodes["node1"]
    ip = lan.node_ip("node1")
    frr.configure(frr_conf(64512, ip, 64513, "passive"))
    node.write("config.yaml", CONFIG + "---\n" + passive_peer("r", 64513, 64512, ROUTER4, holdTime="9s"))
    node.start()
    wait_until(lambda: node.peer_state("r") == "Active", 20, "passive session waiting", retry=STARTING, interval=0.1)
    assert neighbor(frr, ip).get("bgpState") != "Established"
    assert "BGP connect to" not in node.log()


@pytest.mark.parametrize("router_id", ["192.168.1.1", "192.168.1.250"])
def test_both_sides_dial_one_session_survives(bgp_lan: tuple[BgpLan, FRR], router_id: str) -> None:
    """FRR and the node both dial (connect timers 1 s) and both accept: one session comes up, whichever side's
    identifier is higher (the node's routerID below and above FRR's 192.168.1.100). Whether the two dials
    actually cross depends on timing; ``test_bgp_listener`` makes them cross every time."""
    lan, frr = bgp_lan
    node = lan.nodes["node1"]
    ip = lan.node_ip("node1")
    frr.configure(frr_conf(64512, ip, 64513, "timers connect 1"))
    peer = peer_yaml("r", 64513, 64512, ROUTER4, connectTime="1s", holdTime="9s", routerID=router_id)
    node.write("config.yaml", CONFIG + "---\n" + peer)
    node.write("svc.yaml", service_yaml("web", "10.50.0.10"))
    node.start()
    wait_until(lambda: neighbor(frr, ip).get("bgpState") == "Established", 20, "session", retry=STARTING, interval=0.1)
    wait_until(lambda: paths(frr, "10.50.0.10/32"), 10, "route", retry=STARTING, interval=0.1)
    # Whichever connection won, it is the only one up on both sides. (RFC 4271 6.8 leaves a race: a peer that
    # confirmed a connection before it saw the other may see it closed; a retry then settles it, so the count of
    # sessions up, not of sessions ever established, is what is asserted.)

    def one_session() -> bool:
        info = neighbor(frr, ip)
        up = info.get("connectionsEstablished", 0) - info.get("connectionsDropped", 0)
        return info.get("bgpState") == "Established" and up == 1 and node.peer_state("r") == "Established"

    wait_until(one_session, 20, lambda: f"one session: {neighbor(frr, ip)}", retry=STARTING, interval=0.1)
