"""Responder logic with fake links: announcements, bursts, memberships, rescans (no root)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ironlb.layer2.interfaces import IFF_BROADCAST, IFF_UP, InterfaceRecord, SelectedInterface
from ironlb.layer2.metrics import GRATUITOUS_SENT, REQUESTS_RECEIVED, RESPONSES_SENT, Layer2Metrics
from ironlb.layer2.responder import ALL, MAX_HEARD_CLAIMS, FrameHandler, Kind, Responder
from ironlb.layer2.wire.arp import ARP_REPLY, build_gratuitous, build_request, parse_arp
from ironlb.layer2.wire.ethernet import mac_from_str
from ironlb.layer2.wire.ndp import (
    ALL_NODES,
    NeighborAdvertisement,
    build_ndp,
    build_solicitation,
    parse_ndp,
    solicited_node_address,
)
from tests.support.clock import virtual_clock
from tests.support.waits import wait_until_async

MAC0 = mac_from_str("02:00:00:00:00:a0")
MAC1 = mac_from_str("02:00:00:00:00:a1")
CLIENT = mac_from_str("02:00:00:00:00:01")
LL = IPv6Address("fe80::a0")
VIP4 = IPv4Address("10.99.0.100")
VIP6 = IPv6Address("fd00:99::100")
VIP6_SAME_GROUP = IPv6Address("fd00:1234::100")  # same low 24 bits: same solicited-node group
INTERVAL = 0.05


class FakeLink:
    def __init__(self, iface: SelectedInterface, handler: FrameHandler) -> None:
        self.iface = iface
        self.handler = handler
        self.sent: list[tuple[Kind, bytes]] = []
        self.groups: list[IPv6Address] = []
        self.events: list[tuple[str, IPv6Address]] = []
        self.closed = False

    def send(self, kind: Kind, frame: bytes) -> bool:
        self.sent.append((kind, frame))
        return True

    def join(self, group: IPv6Address) -> None:
        assert group not in self.groups, "joined twice"
        self.groups.append(group)
        self.events.append(("join", group))

    def leave(self, group: IPv6Address) -> None:
        self.groups.remove(group)
        self.events.append(("leave", group))

    def close(self) -> None:
        self.closed = True

    def deliver(self, kind: Kind, frame: bytes) -> None:
        self.handler(self, kind, frame)


def record(name: str, mac: bytes, index: int) -> InterfaceRecord:
    return InterfaceRecord(name, index, IFF_UP | IFF_BROADCAST, mac, addresses=(LL,))


class Harness:
    def __init__(self, records: list[InterfaceRecord], duration: float = 0.225) -> None:
        self.records = records
        self.links: dict[str, list[FakeLink]] = {}
        self.metrics = Layer2Metrics(CollectorRegistry())
        self.responder = Responder(
            gratuitous_interval=INTERVAL,
            gratuitous_duration=duration,
            rescan_interval=3600,
            metrics=self.metrics,
            interface_reader=lambda: list(self.records),
            link_factory=self.make_link,
        )

    def make_link(self, iface: SelectedInterface, handler: FrameHandler) -> FakeLink:
        link = FakeLink(iface, handler)
        self.links.setdefault(iface.name, []).append(link)
        return link

    def link(self, name: str) -> FakeLink:
        return self.links[name][-1]


@contextlib.asynccontextmanager
async def running_harness() -> AsyncIterator[Harness]:
    """Two links, eth0 and eth1, with the responder started on the test's loop (the virtual clock's)."""
    h = Harness([record("eth0", MAC0, 2), record("eth1", MAC1, 3)])
    await h.responder.start()
    try:
        yield h
    finally:
        await h.responder.close()


@virtual_clock
async def test_gratuitous_arp_burst_schedule() -> None:
    async with running_harness() as harness:
        harness.responder.set_announced({VIP4: ALL})
        assert len(harness.link("eth0").sent) == 2, "first round must be sent at once"
        await asyncio.sleep(0.5)
        request, reply = build_gratuitous(VIP4, MAC0)
        # Rounds at t = 0, .05, .10, .15, .20 (< 0.225), none after the deadline.
        assert harness.link("eth0").sent == [(Kind.ARP, request), (Kind.ARP, reply)] * 5
        assert len(harness.link("eth1").sent) == 10
        assert harness.metrics.value(GRATUITOUS_SENT, "10.99.0.100") == 20


@virtual_clock
async def test_unchanged_announcement_does_not_retrigger_but_refresh_does() -> None:
    async with running_harness() as harness:
        harness.responder.set_announced({VIP4: ALL})
        await asyncio.sleep(0.4)
        harness.responder.set_announced({VIP4: ALL})
        await asyncio.sleep(0.1)
        assert len(harness.link("eth0").sent) == 10
        harness.responder.refresh(VIP4)
        assert len(harness.link("eth0").sent) == 12


@virtual_clock
async def test_retrigger_extends_the_burst() -> None:
    async with running_harness() as harness:
        harness.responder.set_announced({VIP4: ["eth0"]})
        await asyncio.sleep(0.125)  # rounds at 0, .05, .10
        harness.responder.refresh("10.99.0.100")  # deadline moves to .125 + .225 = .35
        assert len(harness.link("eth0").sent) == 6, "a running burst is extended, not doubled"
        await asyncio.sleep(0.5)
        rounds = len(harness.link("eth0").sent) // 2
        assert rounds == 7  # .15, .20, .25, .30 more
        assert harness.link("eth1").sent == []


@virtual_clock
async def test_withdraw_stops_the_burst() -> None:
    async with running_harness() as harness:
        harness.responder.announce(VIP4)
        await asyncio.sleep(0.075)
        harness.responder.withdraw(VIP4)
        sent = len(harness.link("eth0").sent)
        await asyncio.sleep(0.3)
        assert len(harness.link("eth0").sent) == sent == 4


@virtual_clock
async def test_unsolicited_na_and_memberships() -> None:
    async with running_harness() as harness:
        harness.responder.set_announced({VIP6: ALL, VIP6_SAME_GROUP: ["eth0"]})
        group = solicited_node_address(VIP6)
        assert solicited_node_address(VIP6_SAME_GROUP) == group
        assert harness.link("eth0").events == [("join", group)]
        kind, frame = harness.link("eth0").sent[0]
        na = parse_ndp(frame)
        assert kind is Kind.NDP and isinstance(na, NeighborAdvertisement)
        assert (na.dst, na.target, na.override, na.solicited, na.target_lladdr, na.hop_limit) == (
            ALL_NODES,
            VIP6,
            True,
            False,
            MAC0,
            255,
        )
        harness.responder.withdraw(VIP6)
        assert harness.link("eth0").events == [("join", group)], "group still used by the other VIP"
        assert harness.link("eth1").events == [("join", group), ("leave", group)]
        harness.responder.set_announced({})
        assert harness.link("eth0").groups == []


@virtual_clock
async def test_answers_only_on_the_announced_interface() -> None:
    async with running_harness() as harness:
        harness.responder.set_announced({VIP4: ["eth1"], VIP6: ["eth1"]})
        await asyncio.sleep(0.3)
        for name in ("eth0", "eth1"):
            harness.link(name).sent.clear()
            harness.link(name).deliver(Kind.ARP, build_request(CLIENT, IPv4Address("10.99.0.1"), VIP4))
            harness.link(name).deliver(Kind.NDP, build_solicitation(CLIENT, IPv6Address("fd00:99::1"), VIP6))
        assert harness.link("eth0").sent == []
        (arp_kind, arp_frame), (ndp_kind, ndp_frame) = harness.link("eth1").sent
        arp_reply = parse_arp(arp_frame)
        assert arp_kind is Kind.ARP and arp_reply.op == ARP_REPLY and arp_reply.sender_mac == MAC1
        na = parse_ndp(ndp_frame)
        assert ndp_kind is Kind.NDP and isinstance(na, NeighborAdvertisement) and na.solicited
        for ip in ("10.99.0.100", "fd00:99::100"):
            assert harness.metrics.value(REQUESTS_RECEIVED, ip) == 1
            assert harness.metrics.value(RESPONSES_SENT, ip) == 1
        assert harness.responder.interfaces_for(VIP4) == ["eth1"]


@virtual_clock
async def test_junk_frames_are_dropped() -> None:
    async with running_harness() as harness:
        harness.responder.set_announced({VIP4: ALL})
        harness.link("eth0").sent.clear()
        harness.link("eth0").deliver(Kind.ARP, b"\x00" * 7)
        harness.link("eth0").deliver(Kind.NDP, b"\xff" * 90)
        assert harness.link("eth0").sent == []


@virtual_clock
async def test_rescan_opens_closes_and_announces_on_new_links() -> None:
    async with running_harness() as harness:
        harness.responder.set_announced({VIP4: ALL, VIP6: ["eth2"]})
        await asyncio.sleep(0.3)
        eth0 = harness.link("eth0")
        harness.records = [record("eth0", MAC0, 2), record("eth2", MAC1, 4)]
        harness.responder.rescan()
        assert harness.link("eth1").closed and not eth0.closed
        assert [i.name for i in harness.responder.interfaces] == ["eth0", "eth2"]
        eth2 = harness.link("eth2")
        assert eth2.events == [("join", solicited_node_address(VIP6))]
        assert {kind for kind, _ in eth2.sent} == {Kind.ARP, Kind.NDP}, "takeover burst on the new link"
        # A changed MAC means new sockets and a new burst.
        harness.records = [record("eth0", MAC1, 2)]
        harness.responder.rescan()
        assert eth0.closed and harness.link("eth0") is not eth0
        assert parse_arp(harness.link("eth0").sent[0][1]).sender_mac == MAC1


@virtual_clock
async def test_periodic_rescan() -> None:
    h = Harness([record("eth0", MAC0, 2)])
    h.responder = Responder(
        rescan_interval=0.05,
        metrics=h.metrics,
        interface_reader=lambda: list(h.records),
        link_factory=h.make_link,
    )
    async with h.responder:
        h.records.append(record("eth1", MAC1, 3))
        await wait_until_async(lambda: "eth1" in h.links, 2.0, "a link on eth1", interval=0.005)
    assert all(link.closed for links in h.links.values() for link in links)


@virtual_clock
async def test_close_cancels_bursts_and_closes_links() -> None:
    async with running_harness() as harness:
        harness.responder.set_announced({VIP4: ALL})
        await harness.responder.close()
        sent = len(harness.link("eth0").sent)
        await asyncio.sleep(0.15)
        assert len(harness.link("eth0").sent) == sent
        assert harness.link("eth0").closed and harness.link("eth1").closed
        assert harness.responder.interfaces == []


def test_metrics_exposition_uses_metallb_names() -> None:
    registry = CollectorRegistry()
    metrics = Layer2Metrics(registry)
    metrics.request_received("10.0.0.1")
    metrics.response_sent("10.0.0.1")
    metrics.gratuitous_sent("fd00::1", 2)
    text = generate_latest(registry).decode()
    assert 'metallb_layer2_requests_received{ip="10.0.0.1"} 1.0' in text
    assert 'metallb_layer2_responses_sent{ip="10.0.0.1"} 1.0' in text
    assert 'metallb_layer2_gratuitous_sent{ip="fd00::1"} 2.0' in text
    assert "_total" not in text and "_created" not in text
    assert registry.get_sample_value("metallb_layer2_gratuitous_sent", {"ip": "fd00::1"}) == 2.0


def test_invalid_intervals_are_rejected() -> None:
    with pytest.raises(ValueError):
        Responder(gratuitous_interval=0, metrics=Layer2Metrics(None))


@virtual_clock
async def test_zero_duration_disables_takeover_announcements() -> None:
    h = Harness([record("eth0", MAC0, 2)], duration=0)
    async with h.responder:
        h.responder.set_announced({VIP4: ALL, VIP6: ALL})
        await asyncio.sleep(0.1)
        assert h.link("eth0").sent == []
        h.link("eth0").deliver(Kind.ARP, build_request(CLIENT, IPv4Address("10.99.0.1"), VIP4))
        assert len(h.link("eth0").sent) == 1, "still answers requests"


# --------------------------------------------------------------------------------------------- hand-over
OTHER = mac_from_str("02:00:00:00:00:b0")  # the next owner's MAC


def arp_replies(link: FakeLink) -> int:
    return sum(1 for kind, frame in link.sent if kind is Kind.ARP and parse_arp(frame).op == ARP_REPLY
               and parse_arp(frame).target_mac == CLIENT)


def ask(link: FakeLink) -> None:
    link.deliver(Kind.ARP, build_request(CLIENT, IPv4Address("10.99.0.1"), VIP4))


def handover_harness(timeout: float = 2.0) -> Harness:
    h = Harness([record("eth0", MAC0, 2), record("eth1", MAC1, 3)])
    h.responder = Responder(
        gratuitous_interval=INTERVAL, gratuitous_duration=0.225, rescan_interval=3600, handover_timeout=timeout,
        metrics=h.metrics, interface_reader=lambda: list(h.records), link_factory=h.make_link,
    )  # fmt: skip
    return h


@virtual_clock
async def test_release_answers_until_the_successor_claims_and_sends_no_more_announcements() -> None:
    h = handover_harness()
    async with h.responder:
        h.responder.set_announced({VIP4: ALL, VIP6: ALL})
        h.responder.release([VIP4, VIP6])
        eth0 = h.link("eth0")
        sent = len(eth0.sent)
        await asyncio.sleep(0.5)  # the burst was running: it stops at once
        assert len(eth0.sent) == sent
        ask(eth0)
        assert arp_replies(eth0) == 1, "still answered while nobody else has claimed it"
        # Our own announcement heard on our other link is not the successor's.
        h.link("eth1").deliver(Kind.ARP, build_gratuitous(VIP4, MAC0)[0])
        ask(eth0)
        assert arp_replies(eth0) == 2
        waiter = asyncio.ensure_future(h.responder.released())
        eth0.deliver(Kind.ARP, build_gratuitous(VIP4, OTHER)[0])
        ask(eth0)
        assert arp_replies(eth0) == 2, "claimed by the successor: no longer ours to answer"
        await asyncio.sleep(0)
        assert not waiter.done(), "the IPv6 address is still being handed over"
        na = NeighborAdvertisement(
            eth_dst=mac_from_str("33:33:00:00:00:01"), eth_src=OTHER, src=VIP6, dst=ALL_NODES, target=VIP6,
            target_lladdr=OTHER, override=True,
        )  # fmt: skip
        eth0.deliver(Kind.NDP, build_ndp(na))
        await asyncio.wait_for(waiter, 0.01)
        assert h.responder.releasing == frozenset()


@virtual_clock
async def test_release_gives_up_after_the_timeout_and_drops_the_rest_at_once() -> None:
    h = handover_harness(timeout=0.3)
    async with h.responder:
        h.responder.set_announced({VIP4: ALL, VIP6: ALL})
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        h.responder.release([VIP4])  # VIP6 has no successor
        assert h.responder.releasing == {VIP4}
        await h.responder.released()
        assert 0.3 <= loop.time() - t0 < 0.31
        ask(h.link("eth0"))
        assert arp_replies(h.link("eth0")) == 0


@virtual_clock
async def test_an_ip_moved_to_another_node_is_answered_until_that_node_claims_it() -> None:
    h = handover_harness()
    async with h.responder:
        eth0 = h.link("eth0")
        h.responder.set_announced({VIP4: ALL})
        h.responder.set_announced({}, hand_over=[VIP4])
        ask(eth0)
        assert arp_replies(eth0) == 1
        eth0.deliver(Kind.ARP, build_gratuitous(VIP4, OTHER)[1])
        ask(eth0)
        assert arp_replies(eth0) == 1
        # Not handed over (a Service deleted, quorum lost): silent at once.
        h.responder.set_announced({VIP4: ALL})
        h.responder.set_announced({})
        ask(eth0)
        assert arp_replies(eth0) == 1


@virtual_clock
async def test_a_claim_before_our_decision_ends_the_burst_and_the_hand_over_is_immediate() -> None:
    """The restarted owner announces before this node has seen it alive: no fight, no lingering."""
    h = handover_harness()
    async with h.responder:
        eth0 = h.link("eth0")
        h.responder.set_announced({VIP4: ALL})
        eth0.deliver(Kind.ARP, build_gratuitous(VIP4, OTHER)[0])
        sent = len(eth0.sent)
        await asyncio.sleep(0.5)
        assert len(eth0.sent) == sent, "no more announcements against the claimant"
        ask(eth0)
        assert arp_replies(eth0) == 1, "still answers while the election gives it to this node"
        h.responder.set_announced({}, hand_over=[VIP4])
        assert h.responder.releasing == frozenset()
        ask(eth0)
        assert arp_replies(eth0) == 1


@virtual_clock
async def test_an_ip_announced_briefly_after_another_host_claimed_it_is_given_back_at_once() -> None:
    """A joining node decides on a view one member short (it announces), then on the full one (it gives the IP
    back to the node that claimed it a moment before): no hand-over wait, so no two nodes answering meanwhile."""
    h = handover_harness()
    async with h.responder:
        eth0 = h.link("eth0")
        eth0.deliver(Kind.ARP, build_gratuitous(VIP4, OTHER)[0])  # the owner claimed it before we announced
        await asyncio.sleep(0.1)
        h.responder.set_announced({VIP4: ALL})
        sent = len(eth0.sent)
        h.responder.set_announced({}, hand_over=[VIP4])
        assert h.responder.releasing == frozenset()
        # Our brief announcement moved clients' caches to us: one gratuitous ARP puts them back on the owner's MAC,
        # sent from ours.
        assert eth0.sent[sent:] == [(Kind.ARP, f) for f in build_gratuitous(VIP4, MAC0, OTHER)]
        assert all(parse_arp(f).sender_mac == OTHER and parse_arp(f).eth_src == MAC0 for _, f in eth0.sent[sent:])
        ask(eth0)
        assert arp_replies(eth0) == 0
        # A claim older than a hand-over's length does not count: the hand-over waits for a new one.
        eth0.deliver(Kind.ARP, build_gratuitous(VIP4, OTHER)[0])
        await asyncio.sleep(2.5)
        h.responder.set_announced({VIP4: ALL})
        h.responder.set_announced({}, hand_over=[VIP4])
        assert h.responder.releasing == {VIP4}


@virtual_clock
async def test_claims_heard_for_ips_we_do_not_announce_are_bounded() -> None:
    """A flood of claims for made-up IPs: at most MAX_HEARD_CLAIMS remembered; a real one then still counts once
    the flood's have aged past a hand-over's length."""
    h = handover_harness()
    async with h.responder:
        eth0 = h.link("eth0")
        base = int(ip_address("10.200.0.0"))
        for n in range(MAX_HEARD_CLAIMS + 100):
            eth0.deliver(Kind.ARP, build_gratuitous(ip_address(base + n), OTHER)[0])
        assert len(h.responder._heard) == MAX_HEARD_CLAIMS
        await asyncio.sleep(2.5)
        eth0.deliver(Kind.ARP, build_gratuitous(VIP4, OTHER)[0])
        assert VIP4 in h.responder._heard and len(h.responder._heard) == 1


@virtual_clock
async def test_taking_an_ip_back_while_handing_it_over_announces_it_again() -> None:
    h = handover_harness()
    async with h.responder:
        eth0 = h.link("eth0")
        h.responder.set_announced({VIP4: ALL})
        h.responder.set_announced({}, hand_over=[VIP4])
        sent = len(eth0.sent)
        h.responder.set_announced({VIP4: ALL})
        assert h.responder.releasing == frozenset()
        assert len(eth0.sent) == sent + 2, "a gratuitous ARP (request and reply) at once"


@virtual_clock
async def test_a_large_hand_over_nobody_claims_ends_at_its_deadline_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = handover_harness(timeout=0.5)
    ips = [IPv4Address("10.99.1.0") + i for i in range(300)]
    async with h.responder:
        h.responder.set_announced(dict.fromkeys(ips, ALL))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with caplog.at_level("INFO", logger="ironlb.layer2.responder"):
            h.responder.release(ips)
            await h.responder.released()
        assert 0.5 <= loop.time() - t0 < 0.51
        assert h.responder.releasing == frozenset()
        lines = [r.getMessage() for r in caplog.records if "hand-over" in r.getMessage()]
        assert len(lines) == 1 and "nobody claimed 300 IPs" in lines[0] and "and 295 more" in lines[0], lines
