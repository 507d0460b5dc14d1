"""Standing in for a restarting node: answers carry its MAC (our Ethernet source), probes decide when it is gone."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv6Address

from ironlb.layer2.responder import Kind
from ironlb.layer2.standin import HeldLink
from ironlb.layer2.standin_metrics import STANDIN_ANSWERS, STANDIN_IPS
from ironlb.layer2.wire.arp import (
    ARP_REPLY,
    ARP_REQUEST,
    ArpPacket,
    build_arp,
    build_gratuitous,
    build_request,
    parse_arp,
)
from ironlb.layer2.wire.ethernet import mac_from_str
from ironlb.layer2.wire.ndp import (
    NeighborAdvertisement,
    NeighborSolicitation,
    build_ndp,
    build_solicitation,
    parse_ndp,
    solicited_node_address,
)
from tests.layer2.test_responder_unit import CLIENT, LL, MAC0, running_harness
from tests.support.clock import virtual_clock

HELD_MAC = mac_from_str("02:00:00:00:00:0d")
HELD_IP = IPv4Address("10.99.0.13")
VIP = IPv4Address("10.99.0.240")
LINK = HeldLink(HELD_MAC, HELD_IP)


def probe_answer(our_mac: bytes) -> bytes:
    return build_arp(ArpPacket(our_mac, HELD_MAC, ARP_REPLY, HELD_MAC, HELD_IP, our_mac, IPv4Address(0)))


@virtual_clock
async def test_answers_with_the_held_mac_only_where_it_answers_and_reports_it_when_it_stops() -> None:
    gone: list[str] = []
    async with running_harness() as h:
        h.responder.on_unreachable = gone.append
        eth0, eth1 = h.link("eth0"), h.link("eth1")
        for rounds in range(2):  # twice: a second restart of the same node after the first one returned
            h.responder.stand_in("node3", [LINK], [VIP], dead_after=0.35)
            probes = [parse_arp(f) for k, f in eth0.sent if k is Kind.ARP]
            assert probes and probes[-1].eth_dst == HELD_MAC and probes[-1].target_ip == HELD_IP
            ask = build_request(CLIENT, IPv4Address("10.99.0.1"), VIP)
            eth0.sent.clear()
            eth0.deliver(Kind.ARP, ask)
            assert eth0.sent == [], "not before the held node answered a probe here"
            eth0.deliver(Kind.ARP, probe_answer(MAC0))
            eth0.deliver(Kind.ARP, ask)
            reply = parse_arp(eth0.sent[-1][1])
            assert reply.op == ARP_REPLY and reply.sender_mac == HELD_MAC and reply.eth_src == MAC0
            assert reply.sender_ip == VIP and reply.eth_dst == CLIENT
            eth1.sent.clear()
            eth1.deliver(Kind.ARP, ask)
            assert [f for k, f in eth1.sent if parse_arp(f).op == ARP_REPLY] == []  # not heard on eth1
            assert not any(parse_arp(f).sender_ip == VIP for k, f in eth0.sent if parse_arp(f).op == ARP_REQUEST)
            if rounds == 0:
                # it returns: its own gratuitous ARP ends the stand-in
                h.responder.stand_in_returned("node3")
                eth0.deliver(Kind.ARP, build_gratuitous(VIP, HELD_MAC)[0])
                await asyncio.sleep(0.3)
                assert h.responder.standing_in == {}
                assert gone == []
            else:
                # its node stops answering: reported once, after the dead time and a few unanswered probes
                for _ in range(3):
                    await asyncio.sleep(0.1)
                    eth0.deliver(Kind.ARP, probe_answer(MAC0))
                assert gone == []
                await asyncio.sleep(0.6)
                assert gone == ["node3"]
                await asyncio.sleep(0.5)
                assert gone == ["node3"]


@virtual_clock
async def test_ipv6_stand_in_answers_a_solicitation_with_the_held_mac() -> None:
    vip6 = IPv6Address("fd00:99::240")
    held_ll = IPv6Address("fe80::d")
    held6 = HeldLink(HELD_MAC, held_ll)
    async with running_harness() as h:
        eth0 = h.link("eth0")
        h.responder.stand_in("node3", [held6], [vip6], dead_after=0.35)
        probes = [parse_ndp(f) for k, f in eth0.sent if k is Kind.NDP]
        assert probes and isinstance(probes[-1], NeighborSolicitation) and probes[-1].target == held6.address
        assert solicited_node_address(vip6) in eth0.groups  # it hears the clients' solicitations
        answer = NeighborAdvertisement(MAC0, HELD_MAC, held_ll, LL, held_ll, HELD_MAC, solicited=True)
        eth0.deliver(Kind.NDP, build_ndp(answer))
        eth0.sent.clear()
        eth0.deliver(Kind.NDP, build_solicitation(CLIENT, IPv6Address("fd00:99::1"), vip6))
        (reply,) = [parse_ndp(f) for k, f in eth0.sent if k is Kind.NDP]
        assert isinstance(reply, NeighborAdvertisement)
        assert reply.target == vip6 and reply.target_lladdr == HELD_MAC and reply.eth_src == MAC0
        assert not reply.override  # an answer, not a takeover


@virtual_clock
async def test_stand_in_metrics_count_the_answers_and_the_ips_per_held_node() -> None:
    """``ironlb_layer2_standin_answers_total`` counts the answers sent with the held MAC (ARP and NDP),
    ``ironlb_layer2_standin_ips`` the IPs still stood in for, per held node (what the fast process reports)."""
    vip6, held_ll = IPv6Address("fd00:99::240"), IPv6Address("fe80::d")
    async with running_harness() as h:
        eth0 = h.link("eth0")
        metrics = h.responder.standin_metrics
        h.responder.stand_in("node3", [LINK, HeldLink(HELD_MAC, held_ll)], [VIP, vip6], dead_after=0.35)
        h.responder.count_stand_ins()
        assert metrics.value(STANDIN_IPS, "node3") == 2
        ask = build_request(CLIENT, IPv4Address("10.99.0.1"), VIP)
        eth0.deliver(Kind.ARP, ask)
        assert metrics.value(STANDIN_ANSWERS, "node3") == 0, "no answer before the held node answered a probe"
        eth0.deliver(Kind.ARP, probe_answer(MAC0))
        eth0.deliver(Kind.NDP, build_ndp(NeighborAdvertisement(MAC0, HELD_MAC, held_ll, LL, held_ll, HELD_MAC,
                                                               solicited=True)))  # fmt: skip
        eth0.deliver(Kind.ARP, ask)
        eth0.deliver(Kind.ARP, ask)
        eth0.deliver(Kind.NDP, build_solicitation(CLIENT, IPv6Address("fd00:99::1"), vip6))
        assert metrics.value(STANDIN_ANSWERS, "node3") == 3
        eth0.deliver(Kind.ARP, build_gratuitous(VIP, HELD_MAC)[0])  # the returned node claims its IPv4 IP
        h.responder.count_stand_ins()
        assert metrics.value(STANDIN_IPS, "node3") == 1
        h.responder.stand_down("node3")
        h.responder.count_stand_ins()
        assert metrics.value(STANDIN_IPS, "node3") == 0
        assert metrics.value(STANDIN_ANSWERS, "node3") == 3, "a counter stays"


@virtual_clock
async def test_the_stand_in_gauge_follows_a_claim_within_a_probe_round() -> None:
    """The responder counts its stand-in IPs at every probe round (100 ms) and once it stands in for nobody, so the
    gauge follows a claim or an expiry wherever the fast path runs (a thread has no once-a-second report)."""
    async with running_harness() as h:
        eth0 = h.link("eth0")
        metrics = h.responder.standin_metrics
        h.responder.stand_in("node3", [LINK], [VIP], dead_after=5.0)
        eth0.deliver(Kind.ARP, probe_answer(MAC0))
        await asyncio.sleep(0.25)
        assert metrics.value(STANDIN_IPS, "node3") == 1
        eth0.deliver(Kind.ARP, build_gratuitous(VIP, HELD_MAC)[0])  # the returned node claims it
        await asyncio.sleep(0.25)
        assert not metrics.value(STANDIN_IPS, "node3")
