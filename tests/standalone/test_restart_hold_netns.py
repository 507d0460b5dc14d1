"""A restart that moves no IP (``ironlb run --restart-hold``), seen from a real client on the LAN.

The owner's process stops (SIGTERM) while its node stays up; the client's neighbour entry is flushed so that its
kernel must ask again, and a sniffer records every ARP frame about the IP. Every answer must carry the owner's MAC
(the successor stands in with it) and nobody may send a gratuitous ARP with another MAC, until the hold ends: when
the owner is back, or at H, then the usual failover. (The early end when the held node's kernel stops answering is
pinned without a LAN by tests/layer2/test_standin_unit.py and tests/membership/test_membership_hold.py.) Also: the
same for an IPv6 Service with a real ndisc6, a Service created during the hold (announced by the next node), and
the hold's metrics as /metrics shows them.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from ironlb.lab.cluster import ClientProbe, StandaloneCluster
from ironlb.lab.lan import Lan, start_http_servers
from ironlb.layer2.election import sort_candidates
from tests.support.announce import pinned_service
from tests.support.waits import wait_until

from .conftest import VIP, Cluster
from .test_l2_rules_netns import AD, settle
from .test_l2_rules_netns import start as start_services
from .test_metrics_netns import samples, value

pytestmark = pytest.mark.netns

HOLD = 30.0  # the longest hold the others accept by default (MembershipConfig.hold_max)


def arp_about_vip(events: list[dict[str, Any]], after: float) -> list[dict[str, Any]]:
    return [e for e in events if e.get("ev") == "arp" and e["t"] > after]


def ask(c: StandaloneCluster) -> None:
    """The client forgets the IP's MAC and asks again (its kernel's own ARP request)."""
    lab, ns = c.lan.lab, c.client_ns
    lab.run(ns, ["ip", "neigh", "flush", "dev", "eth0"], check=False)
    lab.run(ns, ["arping", "-c", "1", "-w", "1000000", "-i", "eth0", VIP], check=False, timeout=10)


def arp_answers(c: StandaloneCluster, probe: ClientProbe) -> list[str]:
    """Ask (:func:`ask`) and return the sender MACs of the ARP answers about the VIP that follow, once there is one
    (the client's probe reads them: arping shows a stand-in's Ethernet source, not the MAC it answers with)."""
    t_ask = time.monotonic()
    ask(c)
    answers: list[str] = wait_until(
        lambda: [e["mac"] for e in arp_about_vip(probe.snapshot(), t_ask) if e["op"] == 2] or None, 20,
        f"an ARP answer for {VIP}", interval=0.02,
    )  # fmt: skip
    return answers


def started(lan: Lan, tmp_path: Path, hold: float, fastpath: str = "process") -> tuple[Cluster, str]:
    start_http_servers(lan)
    c = Cluster(lan, tmp_path)  # log level debug
    c.extra_args = ("--restart-hold", str(hold), "--fastpath", fastpath)
    c.apply_seed()
    c.start_all()
    owner = c.wait_steady(VIP, timeout=60)
    assert owner is not None, [c.log(n) for n in c.node_names]
    return c, owner


def stop(c: StandaloneCluster, owner: str) -> float:
    t_term = time.monotonic()
    c.procs[owner].send_signal(signal.SIGTERM)
    assert c.procs[owner].wait(timeout=30) == 0
    return t_term


def stand_in_of(c: StandaloneCluster, owner: str) -> str:
    return wait_until(
        lambda: next((n for n in c.node_names if f"standing in for {owner}" in c.log(n)), None),
        10, "a stand-in", interval=0.02,
    )  # fmt: skip


@pytest.mark.parametrize("fastpath", ["process", "thread"])
def test_a_restart_keeps_the_ip_on_the_node_and_the_stand_in_answers_with_its_mac(
    lan: Lan, tmp_path: Path, fastpath: str
) -> None:
    """With the fast process (the default) and with the fast path on a thread (``--fastpath thread``): the same
    restart-hold code (``ironlb.fastproc.holds``) on either side."""
    c, owner = started(lan, tmp_path, hold=HOLD, fastpath=fastpath)
    owner_mac = lan.node(owner).mac.lower()
    try:
        with c.probe(VIP) as probe:
            assert probe.wait_ready()
            assert probe.wait_answer(owner, time.monotonic(), 20) is not None
            t_term = stop(c, owner)
            successor = stand_in_of(c, owner)
            ask(c)  # answered by the stand-in, with the owner's MAC
            wait_until(
                lambda: any(e["op"] == 2 for e in arp_about_vip(probe.snapshot(), t_term + 0.01)), 10,
                "an ARP answer for the IP during the hold", interval=0.02,
            )  # fmt: skip
            # The traffic still goes to the owner's node (its kernel serves the IP without ironlb).
            assert probe.wait_answer(owner, time.monotonic(), 10) is not None
            assert c.announcers(VIP) == [], "nobody took the IP over"

            # The owner comes back: it announces as before (a gratuitous ARP with its unchanged MAC).
            t_back = time.monotonic()
            c.start(owner)
            wait_until(lambda: c.steady(VIP) == owner, 60, f"{owner} announcing {VIP} again", interval=0.02)
            ask(c)
            assert probe.wait_answer(owner, time.monotonic(), 20) is not None
            events = probe.snapshot()
        # Only the owner's MAC, and no gratuitous ARP from anyone else, for as long as the hold lasted: until the
        # owner was back or, on a machine so loaded that its restart took longer than H, until H.
        others = [e["t"] for e in arp_about_vip(events, t_term) if e["mac"] != owner_mac]
        assert not others or min(others) - t_term > HOLD - 0.5, (owner_mac, t_term, arp_about_vip(events, t_term))
        assert any(e["t"] > t_back for e in arp_about_vip(events, t_term))
        # No gratuitous ARP at all while the owner was away (a stand-in only answers, to the asker).
        assert [e for e in arp_about_vip(events, t_term) if e["t"] < t_back and e.get("tip") == VIP] == []
        if not others:
            assert "reason='returned'" in c.log(successor), c.log(successor)
    finally:
        c.close()


def test_a_service_created_during_the_hold_is_announced_by_the_next_node(lan: Lan, tmp_path: Path) -> None:
    """The held node would win the new Service's IP, but it is a candidate only for the IPs it had: the next node
    of the election announces it at once (a real arping from the client is answered with that node's MAC)."""
    c, owner = started(lan, tmp_path, hold=HOLD)
    pool = [f"192.168.1.{i}" for i in range(241, 251)]  # the seed pool, less the VIP
    new_ip = next(ip for ip in pool if sort_candidates(c.node_names, ip)[0] == owner)
    successor = sort_candidates(c.node_names, new_ip)[1]
    try:
        t_term = stop(c, owner)
        stand_in_of(c, owner)
        c.write_manifest("new-service.yaml", pinned_service("new", new_ip))
        wait_until(lambda: c.announcers(new_ip) == [successor], 20, f"{successor} announcing {new_ip}", interval=0.02)
        macs = wait_until(lambda: {mac for mac, _ in c.arping(new_ip)} or None, 20, f"an ARP answer for {new_ip}")
        t_answer = time.monotonic()
        assert macs == {lan.node(successor).mac.lower()}, (macs, successor)
        # All of it during the hold: the owner's own IP is still held (nobody announces it) and far from H.
        assert c.announcers(VIP) == [], [c.log(n) for n in c.node_names]
        assert t_answer - t_term < HOLD - 1, t_answer - t_term
        assert f"HoldEnded(name='{owner}'" not in "".join(c.log(n) for n in c.node_names)
    finally:
        c.close()


def test_stand_in_metrics_from_a_real_restart(lan: Lan, tmp_path: Path) -> None:
    """The fast process's counts of a hold, read from the nodes' /metrics: every member counts the hold begun and
    ended (returned); the stand-in its IP and its answers with the owner's MAC to a real client's ARP request."""
    c, owner = started(lan, tmp_path, hold=HOLD)
    others = [n for n in c.node_names if n != owner]
    try:
        t_term = stop(c, owner)
        stand_in = stand_in_of(c, owner)

        def answered() -> bool:
            ask(c)  # the stand-in answers once the owner's kernel answered one of its probes
            page = samples(c.metrics(stand_in))  # reported every second
            return (value(page, "ironlb_layer2_standin_answers_total", node=owner) or 0) >= 1

        wait_until(answered, 20, "the stand-in's answer counted")
        page = samples(c.metrics(stand_in))
        assert value(page, "ironlb_layer2_standin_ips", node=owner) == 1  # the VIP
        for node in others:
            wait_until(lambda n=node: value(samples(c.metrics(n)), "ironlb_membership_holds_begun_total", node=owner),
                       10, f"{node} counting the hold")  # fmt: skip
        c.start(owner)
        wait_until(lambda: c.steady(VIP) == owner, 60, f"{owner} announcing {VIP} again", interval=0.02)
        # Returned, unless a machine so loaded that the restart took longer than H ended it first (expired).
        reason = "returned" if time.monotonic() - t_term < HOLD - 1 else None
        for node in others:
            def ended(n: str = node) -> bool:
                page = samples(c.metrics(n))
                ends = {k[1]: v for k, v in page.items() if k[0] == "ironlb_membership_holds_ended_total"}
                return sum(ends.values()) == 1 and not value(page, "ironlb_layer2_standin_ips", node=owner)

            wait_until(ended, 10, f"{node} counting the hold's end")
            page = samples(c.metrics(node))
            assert value(page, "ironlb_membership_holds_begun_total", node=owner) == 1
            if reason is not None:
                assert value(page, "ironlb_membership_holds_ended_total", reason=reason) == 1, page
    finally:
        c.close()


def test_the_ipv6_stand_in_answers_a_real_ndisc6_with_the_held_mac(lan: Lan, tmp_path: Path) -> None:
    """An IPv6 Service: during the hold, the client's neighbour solicitation (ndisc6) is answered by the stand-in
    with the owner's MAC (the node's kernel does not answer NDP for the IP: no ironlb, no answer), nobody
    announces the IP, and the stand-in counts its answer; the owner back, it answers itself again."""
    c = Cluster(lan, tmp_path)
    c.extra_args = ("--restart-hold", str(HOLD))
    start_services(c, AD, family="IPv6")
    vip6 = "fd00:1::f0"
    owner = settle(c, vip6)
    owner_mac = lan.node(owner).mac.lower()
    try:
        assert c.ndisc_mac(vip6) == owner_mac
        t_term = stop(c, owner)
        stand_in = stand_in_of(c, owner)
        # Retried: the stand-in answers once the owner's kernel has answered one of its probes (milliseconds).
        mac = wait_until(lambda: c.ndisc_mac(vip6), 20, f"an NDP answer for {vip6} during the hold")
        assert mac == owner_mac, (mac, owner_mac)
        assert c.announcers(vip6) == [], "nobody took the IP over"
        wait_until(
            lambda: value(samples(c.metrics(stand_in)), "ironlb_layer2_standin_answers_total", node=owner), 10,
            f"{stand_in} counting its answer as a stand-in",
        )  # fmt: skip
        assert time.monotonic() - t_term < HOLD - 1, "all of it during the hold"
        assert f"HoldEnded(name='{owner}'" not in "".join(c.log(n) for n in c.node_names)

        c.start(owner)
        wait_until(lambda: c.converged() and c.announcers(vip6) == [owner], 60, f"{owner} announcing {vip6} again")
        assert wait_until(lambda: c.ndisc_mac(vip6), 10, f"an NDP answer for {vip6}") == owner_mac
    finally:
        c.close()


def test_the_hold_ends_at_h_then_the_ip_moves(lan: Lan, tmp_path: Path) -> None:
    hold = 3.0
    c, owner = started(lan, tmp_path, hold=hold)
    owner_mac = lan.node(owner).mac.lower()
    try:
        with c.probe(VIP) as probe:
            assert probe.wait_ready()
            t_term = stop(c, owner)
            stand_in_of(c, owner)
            new = wait_until(lambda: next(iter(c.announcers(VIP)), None), hold + 20, "the move at H", interval=0.02)
            t_new = time.monotonic()
            new_mac = lan.node(new).mac.lower()
            wait_until(
                lambda: any(e["mac"] == new_mac for e in arp_about_vip(probe.snapshot(), t_term)), 10,
                "the new owner's gratuitous ARP", interval=0.02,
            )  # fmt: skip
            events = probe.snapshot()
        first_new = min(e["t"] for e in arp_about_vip(events, t_term) if e["mac"] == new_mac)
        # Nothing moved before H (less a margin for the LEAVE's delivery), everything moved after it.
        assert first_new - t_term > hold - 0.5, (first_new - t_term, [e for e in events if e.get("ev") == "arp"])
        assert t_new - t_term < hold + 20
        assert {e["mac"] for e in arp_about_vip(events, t_term) if e["t"] < first_new} <= {owner_mac}
    finally:
        c.close()


def test_a_node_that_dies_during_the_hold_fails_over_in_about_the_dead_time(lan: Lan, tmp_path: Path) -> None:
    c, owner = started(lan, tmp_path, hold=HOLD)
    try:
        stop(c, owner)
        stand_in_of(c, owner)
        t_down = time.monotonic()
        c.link(owner, up=False)
        new = wait_until(lambda: next(iter(c.announcers(VIP)), None), HOLD, "the failover", interval=0.02)
        t_new = time.monotonic()
        # The stand-in's probes went unanswered: the hold ended long before H.
        assert new != owner and t_new - t_down < HOLD / 3, (new, t_new - t_down)
        assert "stopped answering our probes" in "".join(c.log(n) for n in c.node_names)
    finally:
        c.close()


def test_a_stand_in_that_dies_during_the_hold_ends_it_and_the_ip_moves(lan: Lan, tmp_path: Path) -> None:
    """The owner restarts (held); its stand-in's machine dies meanwhile. Nobody would answer for the IP (nor probe
    the owner) until H, so the third node ends the hold (``standin_down``) and, the next live candidate, takes the
    IP over with its own gratuitous ARP within about the dead time. (Quorum off: with 3 members, one held and one
    dead, the survivor would withdraw by the usual quorum rule, which a hold does not change.)"""
    start_http_servers(lan)
    c = Cluster(lan, tmp_path)
    c.extra_args = ("--restart-hold", str(HOLD), "--quorum", "off")
    c.apply_seed()
    c.start_all()
    owner = c.wait_steady(VIP, timeout=60)
    assert owner is not None, [c.log(n) for n in c.node_names]
    try:
        with c.probe(VIP) as probe:
            assert probe.wait_ready()
            t_term = stop(c, owner)
            stand_in = stand_in_of(c, owner)
            third = next(n for n in c.node_names if n not in (owner, stand_in))
            t_kill = c.kill(stand_in)
            wait_until(lambda: c.announcers(VIP) == [third], HOLD, f"{third} taking {VIP} over", interval=0.02)
            t_new = time.monotonic()
            third_mac = lan.node(third).mac.lower()
            wait_until(
                lambda: any(e["mac"] == third_mac for e in arp_about_vip(probe.snapshot(), t_kill)), 10,
                f"{third}'s gratuitous ARP", interval=0.02,
            )  # fmt: skip
        assert t_new - t_kill < HOLD / 3, (t_new - t_kill, c.log(third))
        assert t_new - t_term < HOLD - 1, "long before H"
        assert f"HoldEnded(name='{owner}', reason='standin_down')" in c.log(third), c.log(third)
    finally:
        c.close()


DUAL_SERVICE = """
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  annotations: {metallb.io/loadBalancerIPs: "%(ips)s"}
spec:
  type: LoadBalancer
  ipFamilyPolicy: %(policy)s
  ipFamilies: [%(families)s]
  selector: {app: web}
  ports: [{port: 80}]
"""


def test_a_service_gaining_an_ipv6_address_during_the_hold_moves_only_that_one(lan: Lan, tmp_path: Path) -> None:
    """The held owner's Service becomes dual stack during the hold: its IPv4 address stays the owner's (a real
    arping answered by the stand-in with the owner's MAC, nobody announcing it), only the new IPv6 address goes to
    the next node (a real ndisc6 answered with that node's MAC); the owner back, it announces both."""
    vip6 = "fd00:1::f0"
    start_http_servers(lan)
    c = Cluster(lan, tmp_path)
    c.extra_args = ("--restart-hold", str(HOLD))
    start_services(c, AD)
    (c.state / "service.yaml").write_text(DUAL_SERVICE % {"ips": VIP, "policy": "SingleStack", "families": "IPv4"})
    owner = settle(c, VIP)
    successor = sort_candidates(c.node_names, VIP)[1]
    owner_mac, successor_mac = lan.node(owner).mac.lower(), lan.node(successor).mac.lower()
    try:
        t_term = stop(c, owner)
        stand_in_of(c, owner)
        (c.state / "service.yaml").write_text(
            DUAL_SERVICE % {"ips": f"{VIP}, {vip6}", "policy": "RequireDualStack", "families": "IPv4, IPv6"}
        )
        wait_until(lambda: c.announcers(vip6) == [successor], 20, f"{successor} announcing {vip6}", interval=0.02)
        assert c.announcers(VIP) == [], "the IPv4 address stays held"
        assert wait_until(lambda: c.ndisc_mac(vip6), 20, f"an NDP answer for {vip6}") == successor_mac
        with c.probe(VIP) as probe:  # the ARP answers' sender MAC (arping shows the stand-in's Ethernet source)
            assert probe.wait_ready()
            answers = arp_answers(c, probe)
        assert set(answers) == {owner_mac}, answers
        assert time.monotonic() - t_term < HOLD - 1, "all of it during the hold"
        assert f"HoldEnded(name='{owner}'" not in "".join(c.log(n) for n in c.node_names)

        c.start(owner)
        wait_until(lambda: c.converged() and c.announcers(vip6) == [owner] and c.announcers(VIP) == [owner], 60,
                   f"{owner} announcing both again")  # fmt: skip
    finally:
        c.close()


def test_a_member_that_starts_during_the_hold_leaves_the_held_ip_where_it_is(lan: Lan, tmp_path: Path) -> None:
    """The member that would take the owner's IP over (its next candidate) has its speaker down as the owner
    restarts, so the owner's hold names the third node the stand-in; that member then starts during the hold. It
    never got the hold LEAVE: it learns the hold from the third node (HOLDS), announces nothing of the IP (it took
    it over, gratuitous ARP and all, as after a crash before), and a real client's ARP request is answered with the
    owner's MAC (by the stand-in); a Service created during the hold before it started, that the owner would win,
    is announced by it, as the third node expects."""
    c, owner = started(lan, tmp_path, hold=HOLD)
    successor = sort_candidates(c.node_names, VIP)[1]
    third = next(n for n in c.node_names if n not in (owner, successor))
    owner_mac, successor_mac = lan.node(owner).mac.lower(), lan.node(successor).mac.lower()
    try:
        with c.probe(VIP) as probe:
            assert probe.wait_ready()
            c.procs[successor].send_signal(signal.SIGKILL)  # its speaker only: the node stays up
            c.procs[successor].wait(timeout=10)
            wait_until(
                lambda: all((c.status(n) or {}).get("members", {}).get("alive") == sorted([owner, third])
                            for n in (owner, third)), 20, f"{successor} counted down",
            )  # fmt: skip
            t_term = stop(c, owner)
            assert stand_in_of(c, owner) == third
            # A Service created during the hold that the owner would win (the third node, alone with the held owner,
            # has no quorum: nobody announces it yet).
            pool = [f"192.168.1.{i}" for i in range(241, 251)]  # the seed pool, less the VIP
            new_ip = next(ip for ip in pool if sort_candidates(c.node_names, ip)[:2] == [owner, successor])
            c.write_manifest("new-service.yaml", pinned_service("new", new_ip))
            wait_until(lambda: "default/new" in ((c.status(third) or {}).get("services") or {}), 20,
                       f"{third} reading the new Service", interval=0.02)  # fmt: skip
            t_start = time.monotonic()
            c.start(successor)
            wait_until(lambda: (c.status(successor) or {}).get("members", {}).get("quorum") is True, 20,
                       f"{successor} deciding with quorum", interval=0.02)  # fmt: skip
            time.sleep(1.0)  # it would have taken the IP by now (before HOLDS it did, within its settle bound)
            assert c.announcers(VIP) == [], [c.log(n) for n in c.node_names]
            assert f"HoldBegun(name='{owner}'" in c.log(successor), c.log(successor)
            assert (c.status(successor) or {}).get("members", {}).get("alive") == sorted(c.node_names)
            answers = arp_answers(c, probe)
            events = probe.snapshot()
        assert set(answers) == {owner_mac}, answers
        assert [e for e in arp_about_vip(events, t_start) if e["mac"] == successor_mac] == [], "no claim of the IP"
        # The Service created during the hold, before the successor started, goes to it now on the third node and
        # on the successor alike (the stand-in's relayed share says which IPs the owner keeps; without it the
        # successor kept the Service with the owner, and nobody answered it).
        wait_until(lambda: c.announcers(new_ip) == [successor], 20, f"{successor} announcing {new_ip}", interval=0.02)
        macs = wait_until(lambda: {mac for mac, _ in c.arping(new_ip)} or None, 20, f"an ARP answer for {new_ip}")
        assert macs == {successor_mac}, (macs, successor)
        assert c.announcers(VIP) == [], "the held IP stays held"
        assert time.monotonic() - t_term < HOLD - 1, "all of it during the hold"
        assert f"HoldEnded(name='{owner}'" not in "".join(c.log(n) for n in c.node_names)
    finally:
        c.close()
