"""``ironlb run`` against FRR 8.4 in network namespaces, checked in FRR's own RIB (vtysh JSON).

One LAN per test: a bridge, nodes ``node1..3`` running ``ironlb run``, and the router (FRR) at ``.100``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.bgp.conftest import FRR
from tests.support.bgp_interop import (
    ROUTER4,
    ROUTER6,
    BgpLan,
    doc,
    frr_bgp_conf,
    frr_lan,
    peer_yaml,
    service_yaml,
    slice_yaml,
)
from tests.support.netns import NetnsLab
from tests.support.waits import STARTING, VTYSH_NOT_READY, wait_until

pytestmark = pytest.mark.netns

POOL = doc(
    """
    apiVersion: metallb.io/v1beta1
    kind: IPAddressPool
    metadata: {name: bgp, namespace: metallb-system}
    spec: {addresses: ["10.50.0.0/24", "fd00:50::/120"]}
    """
)


@pytest.fixture
def bgp_lan(netns_lab: NetnsLab, tmp_path: Path) -> Iterator[tuple[BgpLan, FRR]]:
    with frr_lan(netns_lab, tmp_path) as (lan, frr):
        yield lan, frr


def frr_conf(asn: int, neighbors: list[tuple[str, int, str]], extra: str = "") -> str:
    """``router bgp`` with (address, remote ASN, per-neighbor extra lines) neighbors, each in its family."""
    options = ["no bgp network import-check", *([extra.strip()] if extra.strip() else [])]
    lines = [(addr, remote, ["timers connect 1", *(m for m in more.split(";") if m)]) for addr, remote, more in neighbors]
    return frr_bgp_conf(asn, lines, options=options)


def rib(frr: FRR, v6: bool = False) -> dict[str, list[dict[str, Any]]]:
    routes: dict[str, list[dict[str, Any]]] = frr.json(f"show bgp {'ipv6' if v6 else 'ipv4'} unicast json").get(
        "routes", {}
    )
    return routes


def next_hops(frr: FRR, prefix: str) -> set[str]:
    """The next hop of every path FRR has for ``prefix`` (one path per advertising node)."""
    paths = rib(frr, ":" in prefix).get(prefix, [])
    return {h["ip"] for p in paths for h in p["nexthops"] if h.get("afi", "ipv6" if ":" in prefix else "ipv4")}


def detail(frr: FRR, prefix: str) -> list[dict[str, Any]]:
    fam = "ipv6" if ":" in prefix else "ipv4"
    paths: list[dict[str, Any]] = frr.json(f"show bgp {fam} unicast {prefix} json")["paths"]
    return paths


def established(frr: FRR, addr: str) -> bool:
    n = frr.json(f"show bgp neighbor {addr} json").get(addr, {})
    return n.get("bgpState") == "Established"


def test_cluster_local_communities_localpref_aggregation_v4_v6_and_withdrawal(bgp_lan: tuple[BgpLan, FRR]) -> None:
    lan, frr = bgp_lan
    names = sorted(lan.nodes)
    v4 = {n: lan.node_ip(n) for n in names}
    v6 = {n: lan.node_ip(n, v6=True) for n in names}
    neighbors = [(ip, 64512, "") for ip in v4.values()] + [(ip, 64512, "") for ip in v6.values()]
    frr.configure(frr_conf(64512, neighbors))
    config = (
        POOL
        + "---\n"
        + doc(
            """
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: hosts, namespace: metallb-system}
        spec:
          ipAddressPools: [bgp]
          communities: ["64512:100", "large:64512:7:8", "no-advertise-ish"]
          localPref: 150
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: agg, namespace: metallb-system}
        spec: {ipAddressPools: [bgp], aggregationLength: 28, aggregationLengthV6: 124, communities: ["64512:200"]}
        ---
        apiVersion: metallb.io/v1beta1
        kind: Community
        metadata: {name: aliases, namespace: metallb-system}
        spec: {communities: [{name: no-advertise-ish, value: "65000:1"}]}
        """
        )
    )
    config += "---\n" + peer_yaml("tor4", 64512, 64512, ROUTER4, holdTime="9s", connectTime="1s")
    config += "---\n" + peer_yaml("tor6", 64512, 64512, ROUTER6, holdTime="9s", connectTime="1s")
    lan.write_all("config.yaml", config)
    lan.write_all("web.yaml", service_yaml("web", "10.50.0.10"))
    lan.write_all("web-eps.yaml", slice_yaml("web", ("10.1.0.5", "node1", True)))
    lan.write_all("local.yaml", service_yaml("local", "10.50.0.20", etp="Local"))
    lan.write_all("local-eps.yaml", slice_yaml("local", ("10.1.0.6", "node2", True)))
    lan.write_all("web6.yaml", service_yaml("web6", "fd00:50::10"))  # no slice: served on every node (standalone)
    for n in lan.nodes.values():
        n.start()

    every4, every6 = set(v4.values()), set(v6.values())
    wait_until(lambda: next_hops(frr, "10.50.0.10/32") == every4, 20, "ETP Cluster /32 from all nodes", retry=STARTING, interval=0.1)
    wait_until(lambda: next_hops(frr, "10.50.0.0/28") == every4, 5, "aggregated /28 from all nodes", retry=STARTING, interval=0.1)
    wait_until(lambda: next_hops(frr, "10.50.0.20/32") == {v4["node2"]}, 5, "ETP Local /32 only from node2", retry=STARTING, interval=0.1)
    wait_until(lambda: next_hops(frr, "10.50.0.16/28") == {v4["node2"]}, 5, "ETP Local /28 only from node2", retry=STARTING, interval=0.1)
    wait_until(lambda: next_hops(frr, "fd00:50::10/128") == every6, 10, "IPv6 /128 from all nodes", retry=STARTING, interval=0.1)
    wait_until(lambda: next_hops(frr, "fd00:50::10/124") == every6, 5, "IPv6 /124 from all nodes", retry=STARTING, interval=0.1)

    for path in detail(frr, "10.50.0.10/32"):
        assert sorted(path["community"]["string"].split()) == ["64512:100", "65000:1"]
        assert path["largeCommunity"]["string"] == "64512:7:8"
        assert path["locPrf"] == 150
        assert path["origin"] == "IGP"
    for path in detail(frr, "10.50.0.0/28"):
        assert path["community"]["string"] == "64512:200" and "largeCommunity" not in path
        assert path["locPrf"] == 100  # unset localPref: the iBGP default
    for path in detail(frr, "fd00:50::10/128"):
        assert path["largeCommunity"]["string"] == "64512:7:8" and path["locPrf"] == 150

    # The status file says the same, per peer and prefix.
    def node1_status() -> bool:
        got = {(e["peer"], e["prefix"]): e["state"] for e in lan.nodes["node1"].status()["announcing"]["bgp"]}
        return got == {
            ("tor4", "10.50.0.0/28"): "advertised",
            ("tor4", "10.50.0.10/32"): "advertised",
            ("tor6", "fd00:50::10/124"): "advertised",
            ("tor6", "fd00:50::10/128"): "advertised",
        }

    wait_until(node1_status, 5, "node1 status", retry=STARTING, interval=0.1)

    # The endpoint goes unready: the service (and its now unused aggregate) is withdrawn everywhere.
    lan.write_all("web-eps.yaml", slice_yaml("web", ("10.1.0.5", "node1", False)))
    wait_until(lambda: "10.50.0.10/32" not in rib(frr) and "10.50.0.0/28" not in rib(frr), 5, "withdrawal (no endpoints)", retry=STARTING, interval=0.1)
    # The Service goes away: withdrawn too; the other services are untouched.
    lan.remove_all("local.yaml")
    wait_until(lambda: "10.50.0.20/32" not in rib(frr) and "10.50.0.16/28" not in rib(frr), 5, "withdrawal (deleted)", retry=STARTING, interval=0.1)
    assert next_hops(frr, "fd00:50::10/128") == every6
    # None of this reset a session.
    for addr in [*v4.values(), *v6.values()]:
        n = frr.json(f"show bgp neighbor {addr} json")[addr]
        assert n["bgpState"] == "Established" and n.get("connectionsEstablished") == 1, n


ROUTER_LO = "10.255.0.1"
MULTIHOP_ASN_ROUTER = 4200000001
MULTIHOP_ASN_NODE = 4200000002


def multihop_topology(lab: NetnsLab) -> tuple[str, str]:
    """node -- hop (forwarding) -- router: the router's address is two IP hops away from the node."""
    node = lab.netns("mnode")
    hop = lab.netns("mhop", {"net.ipv4.ip_forward": "1"})
    rtr = lab.netns("mrtr")
    lab.veth(node, "eth0", hop, "a0")
    lab.veth(hop, "b0", rtr, "eth0")
    lab.addr(node, "eth0", "10.61.0.1/24")
    lab.addr(hop, "a0", "10.61.0.2/24")
    lab.addr(hop, "b0", "10.62.0.1/24")
    lab.addr(rtr, "eth0", "10.62.0.2/24")
    lab.addr(rtr, "lo", f"{ROUTER_LO}/32")
    lab.run(node, ["ip", "route", "add", "default", "via", "10.61.0.2"])
    lab.run(hop, ["ip", "route", "add", f"{ROUTER_LO}/32", "via", "10.62.0.2"])
    lab.run(rtr, ["ip", "route", "add", "10.61.0.0/24", "via", "10.62.0.1"])
    return node, rtr


def test_md5_wrong_password_multihop_and_4byte_asn(netns_lab: NetnsLab, tmp_path: Path) -> None:
    from tests.support.bgp_interop import IronNode

    lab = netns_lab
    node_ns, rtr_ns = multihop_topology(lab)
    frr = FRR(lab, rtr_ns)
    node = IronNode(lab, node_ns, "mnode", tmp_path)
    try:
        frr.start()
        frr.configure(
            frr_conf(
                MULTIHOP_ASN_ROUTER,
                [("10.61.0.1", MULTIHOP_ASN_NODE, "password right-one;ebgp-multihop 2;update-source lo")],
            )
        )
        pool = (
            POOL
            + "---\n"
            + doc(
                """
            apiVersion: metallb.io/v1beta1
            kind: BGPAdvertisement
            metadata: {name: hosts, namespace: metallb-system}
            spec: {ipAddressPools: [bgp], communities: ["large:4200000002:1:2"]}
            """
            )
        )
        svc = service_yaml("web", "10.50.0.10")
        node.write("svc.yaml", svc)
        # A wrong MD5 key: the router drops our SYNs, the session never comes up.
        wrong = peer_yaml(
            "r", MULTIHOP_ASN_NODE, MULTIHOP_ASN_ROUTER, ROUTER_LO, password="wrong-one", ebgpMultiHop=True
        )
        node.write("config.yaml", pool + "---\n" + wrong)
        node.start()
        wait_until(lambda: node.peer_state("r") in ("Connect", "Active"), 10, "session attempts", retry=STARTING, interval=0.1)
        time.sleep(3)
        assert not established(frr, "10.61.0.1")
        assert node.peer_state("r") != "Established"
        assert "10.50.0.10/32" not in rib(frr)
        # Without ebgpMultiHop our TTL 1 dies at the hop, even with the right key.
        right_single_hop = peer_yaml("r", MULTIHOP_ASN_NODE, MULTIHOP_ASN_ROUTER, ROUTER_LO, password="right-one")
        node.write("config.yaml", pool + "---\n" + right_single_hop)
        time.sleep(3)
        assert not established(frr, "10.61.0.1")
        # The right key and multi-hop: up, with 4-byte ASNs on both sides.
        right = peer_yaml(
            "r", MULTIHOP_ASN_NODE, MULTIHOP_ASN_ROUTER, ROUTER_LO, password="right-one", ebgpMultiHop=True
        )
        node.write("config.yaml", pool + "---\n" + right)
        wait_until(lambda: next_hops(frr, "10.50.0.10/32") == {"10.61.0.1"}, 20, "route over MD5 multi-hop eBGP", retry=STARTING, interval=0.1)
        (path,) = detail(frr, "10.50.0.10/32")
        assert path["aspath"]["string"] == str(MULTIHOP_ASN_NODE)
        assert path["largeCommunity"]["string"] == "4200000002:1:2"
        n = frr.json("show bgp neighbor 10.61.0.1 json")["10.61.0.1"]
        assert n["remoteAs"] == MULTIHOP_ASN_NODE and n["localAs"] == MULTIHOP_ASN_ROUTER
        assert node.peer_state("r") == "Established"
    except Exception:
        print(node.log())
        print(frr.logs())
        raise
    finally:
        node.stop()
        lab.cleanup()
        frr.cleanup()


def test_hold_timer_expiry_when_the_router_goes_silent(bgp_lan: tuple[BgpLan, FRR]) -> None:
    lan, frr = bgp_lan
    node = lan.nodes["node1"]
    frr.configure(frr_conf(64512, [(lan.node_ip("node1"), 64513, "timers 1 3")]))
    cfg = (
        POOL
        + "---\n"
        + doc(
            """
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: hosts, namespace: metallb-system}
        spec: {ipAddressPools: [bgp]}
        """
        )
    )
    node.write("config.yaml", cfg + "---\n" + peer_yaml("r", 64513, 64512, ROUTER4, holdTime="3s", connectTime="1s"))
    node.write("svc.yaml", service_yaml("web", "10.50.0.10"))
    node.start()
    wait_until(lambda: next_hops(frr, "10.50.0.10/32") == {lan.node_ip("node1")}, 20, "route", retry=STARTING, interval=0.1)
    wait_until(lambda: node.peer_state("r") == "Established", 5, "Established in status", retry=STARTING, interval=0.1)
    # Silence the router towards the node (and the node towards the router): nothing but timers can notice.
    lan.lab.run(node.ns, ["nft", "add", "table", "inet", "ilbtest"])
    lan.lab.run(node.ns, ["nft", "add", "chain", "inet", "ilbtest", "in", "{ type filter hook input priority 0 ; }"])
    # From just before the drop rule: taken after it, the time the last nft takes to exit on a loaded machine
    # (100 ms and more) would come off the measured time and could put it under the lower bound.
    t0 = time.monotonic()
    lan.lab.run(node.ns, ["nft", "add", "rule", "inet", "ilbtest", "in", "ip", "saddr", ROUTER4, "drop"])
    wait_until(lambda: node.peer_state("r") not in (None, "Established"), 20, "hold timer expiry", retry=STARTING, interval=0.05)
    took = time.monotonic() - t0
    # Not before the 3 s hold time allows (the last keepalive came at most 1 s before the drop); the upper bound
    # only says "this hold timer, not the 90 s default", wide enough for a loaded machine.
    assert 2.0 <= took <= 20.0, took
    assert "hold timer expired" in node.log().lower()
    # The path comes back: the session is re-established by itself.
    lan.lab.run(node.ns, ["nft", "delete", "table", "inet", "ilbtest"])
    wait_until(lambda: node.peer_state("r") == "Established", 15, "re-established", retry=STARTING, interval=0.1)


def test_graceful_restart_keeps_routes_across_a_speaker_restart(bgp_lan: tuple[BgpLan, FRR]) -> None:
    lan, frr = bgp_lan
    gr, plain = lan.nodes["node1"], lan.nodes["node2"]
    frr.configure(
        frr_conf(
            64512,
            [(lan.node_ip("node1"), 64513, "graceful-restart"), (lan.node_ip("node2"), 64513, "")],
            extra=" bgp graceful-restart",
        )
    )
    base = (
        POOL
        + "---\n"
        + doc(
            """
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: hosts, namespace: metallb-system}
        spec: {ipAddressPools: [bgp]}
        """
        )
    )
    gr.write(
        "config.yaml",
        base + "---\n" + peer_yaml("r", 64513, 64512, ROUTER4, enableGracefulRestart=True, connectTime="1s"),
    )
    plain.write("config.yaml", base + "---\n" + peer_yaml("r", 64513, 64512, ROUTER4, connectTime="1s"))
    lan.write_all("svc.yaml", service_yaml("web", "10.50.0.10"))
    gr.start()
    plain.start()
    n1, n2 = lan.node_ip("node1"), lan.node_ip("node2")
    wait_until(lambda: next_hops(frr, "10.50.0.10/32") == {n1, n2}, 20, "route from both nodes", retry=STARTING, interval=0.1)
    info = frr.json(f"show bgp neighbor {n1} json")[n1]
    assert info["gracefulRestartInfo"]["remoteGrMode"] == "Restart", info.get("gracefulRestartInfo")

    # SIGTERM both: the GR node closes TCP silently (FRR keeps its route as stale), the other sends a cease.
    assert gr.stop(signal.SIGTERM) == 0
    assert plain.stop(signal.SIGTERM) == 0
    wait_until(lambda: next_hops(frr, "10.50.0.10/32") == {n1}, 5, "only node2's route withdrawn", retry=STARTING, interval=0.1)
    assert any(p.get("stale") for p in rib(frr)["10.50.0.10/32"]), rib(frr)["10.50.0.10/32"]
    # Restart the GR node: the route never went away, and is fresh again once re-established.
    gr.start()

    def fresh_again() -> bool:
        paths = rib(frr).get("10.50.0.10/32", [])
        assert paths, "the GR route disappeared during the restart"
        return established(frr, n1) and not any(p.get("stale") for p in paths)

    wait_until(fresh_again, 20, "the GR route fresh again", retry=VTYSH_NOT_READY, interval=0.1)


def test_dual_stack_session_carries_the_other_family_with_a_next_hop_of_its_own(bgp_lan: tuple[BgpLan, FRR]) -> None:
    """dualStackAddressFamily: one IPv4 session carries IPv6 prefixes too, with the node's own IPv6 as next hop
    (found beside the session's IPv4 on the same interface), not a v4-mapped or empty one."""
    lan, frr = bgp_lan
    names = sorted(lan.nodes)
    v4 = {n: lan.node_ip(n) for n in names}
    v6 = {n: lan.node_ip(n, v6=True) for n in names}
    lines = ["router bgp 64512", f" bgp router-id {ROUTER4}", " no bgp ebgp-requires-policy",
             " no bgp default ipv4-unicast", " no bgp network import-check"]
    for ip in v4.values():
        lines += [f" neighbor {ip} remote-as 64513", f" neighbor {ip} timers connect 1"]
    for family in ("ipv4", "ipv6"):
        lines.append(f" address-family {family} unicast")
        lines += [f"  neighbor {ip} activate" for ip in v4.values()]
        lines.append(" exit-address-family")
    frr.configure("\n".join(lines) + "\n")
    config = POOL + "---\n" + doc(
        """
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: all, namespace: metallb-system}
        spec: {ipAddressPools: [bgp]}
        """
    )
    config += "---\n" + peer_yaml("tor", 64513, 64512, ROUTER4, holdTime="9s", connectTime="1s",
                                  dualStackAddressFamily=True)
    lan.write_all("config.yaml", config)
    lan.write_all("web.yaml", service_yaml("web", "10.50.0.10"))
    lan.write_all("web6.yaml", service_yaml("web6", "fd00:50::10"))
    for n in lan.nodes.values():
        n.start()
    wait_until(lambda: all(established(frr, ip) for ip in v4.values()), 20, "sessions up", retry=STARTING, interval=0.1)
    wait_until(lambda: next_hops(frr, "10.50.0.10/32") == set(v4.values()), 10, "IPv4 /32 from all nodes", retry=STARTING, interval=0.1)
    wait_until(lambda: next_hops(frr, "fd00:50::10/128") == set(v6.values()), 10, "IPv6 /128 over the IPv4 sessions", retry=STARTING, interval=0.1)
    for n in lan.nodes.values():
        assert all(e["state"] == "advertised" for e in n.status()["announcing"]["bgp"]), n.status()["announcing"]
