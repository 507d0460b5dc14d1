"""ARP codec and responder decision (pure, no privileges)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironlb.layer2.fsm import (
    REASON_ETHERNET_NOT_OURS,
    REASON_FROM_SELF,
    REASON_GRATUITOUS,
    REASON_NOT_ANNOUNCED,
    REASON_NOT_REQUEST,
    REASON_REPLY,
    claimed,
    decide_arp,
)
from ironlb.layer2.wire.arp import (
    ARP_REPLY,
    ARP_REQUEST,
    ArpError,
    ArpPacket,
    build_arp,
    build_gratuitous,
    build_reply,
    build_request,
    parse_arp,
)
from ironlb.layer2.wire.ethernet import BROADCAST_MAC, ZERO_MAC, FrameError, mac_from_str

OUR_MAC = mac_from_str("02:00:00:00:00:aa")
CLIENT_MAC = mac_from_str("02:00:00:00:00:01")
VIP = IPv4Address("10.99.0.100")
CLIENT_IP = IPv4Address("10.99.0.1")

# Captured from the Linux kernel resolving 10.99.0.100 from 10.99.0.1 (02:00:00:00:00:01).
KERNEL_REQUEST = bytes.fromhex("ffffffffffff020000000001080600010800060400010200000000010a6300010000000000000a630064")


def test_parse_kernel_request() -> None:
    pkt = parse_arp(KERNEL_REQUEST)
    assert pkt == ArpPacket(BROADCAST_MAC, CLIENT_MAC, ARP_REQUEST, CLIENT_MAC, CLIENT_IP, ZERO_MAC, VIP)
    assert build_arp(pkt) == KERNEL_REQUEST
    assert build_request(CLIENT_MAC, CLIENT_IP, VIP) == KERNEL_REQUEST


def test_parse_ignores_ethernet_padding() -> None:
    assert parse_arp(KERNEL_REQUEST + b"\x00" * 18).target_ip == VIP


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (KERNEL_REQUEST[:13], "too short for Ethernet"),
        (KERNEL_REQUEST[:41], "payload too short"),
        (KERNEL_REQUEST[:12] + b"\x08\x00" + KERNEL_REQUEST[14:], "not an ARP frame"),
        (KERNEL_REQUEST[:14] + b"\x00\x06" + KERNEL_REQUEST[16:], "unsupported ARP htype"),
        (KERNEL_REQUEST[:18] + b"\x05" + KERNEL_REQUEST[19:], "unsupported ARP htype"),
        (KERNEL_REQUEST[:20] + b"\x00\x03" + KERNEL_REQUEST[22:], "unsupported ARP operation"),
    ],
    ids=["short-ethernet", "short-arp", "ipv4-ethertype", "htype", "hlen", "op"],
)
def test_parse_rejects_malformed(frame: bytes, message: str) -> None:
    with pytest.raises(ArpError, match=message):
        parse_arp(frame)


def test_build_rejects_bad_mac() -> None:
    with pytest.raises(FrameError):
        build_arp(ArpPacket(BROADCAST_MAC, b"\x01", ARP_REQUEST, CLIENT_MAC, CLIENT_IP, ZERO_MAC, VIP))


def test_reply_answers_the_requester() -> None:
    reply = parse_arp(build_reply(parse_arp(KERNEL_REQUEST), OUR_MAC))
    assert reply == ArpPacket(CLIENT_MAC, OUR_MAC, ARP_REPLY, OUR_MAC, VIP, CLIENT_MAC, CLIENT_IP)


def test_gratuitous_request_and_reply() -> None:
    request, reply = (parse_arp(f) for f in build_gratuitous(VIP, OUR_MAC))
    for pkt in (request, reply):
        assert pkt.eth_dst == BROADCAST_MAC
        assert pkt.eth_src == OUR_MAC == pkt.sender_mac
        assert pkt.sender_ip == pkt.target_ip == VIP
        assert pkt.is_gratuitous
    assert request.op == ARP_REQUEST and request.target_mac == ZERO_MAC
    # Linux treats a reply as gratuitous only if target MAC == sender MAC.
    assert reply.op == ARP_REPLY and reply.target_mac == OUR_MAC


class TestDecide:
    def test_replies_for_announced_vip(self) -> None:
        decision = decide_arp(parse_arp(KERNEL_REQUEST), OUR_MAC, {VIP})
        assert decision.reason == REASON_REPLY and decision.ip == "10.99.0.100"
        assert decision.reply == build_reply(parse_arp(KERNEL_REQUEST), OUR_MAC)

    def test_unicast_request_to_our_mac_is_answered(self) -> None:
        pkt = parse_arp(OUR_MAC + KERNEL_REQUEST[6:])  # unicast refresh, as Linux sends
        assert decide_arp(pkt, OUR_MAC, {VIP}).reason == REASON_REPLY

    def test_unicast_request_to_other_mac_is_ignored(self) -> None:
        pkt = parse_arp(mac_from_str("02:00:00:00:00:bb") + KERNEL_REQUEST[6:])
        decision = decide_arp(pkt, OUR_MAC, {VIP})
        assert decision.reply is None and decision.reason == REASON_ETHERNET_NOT_OURS

    def test_unannounced_ip_is_ignored(self) -> None:
        decision = decide_arp(parse_arp(KERNEL_REQUEST), OUR_MAC, {IPv4Address("10.99.0.101")})
        assert decision.reply is None and decision.reason == REASON_NOT_ANNOUNCED and decision.ip is None

    def test_replies_are_ignored(self) -> None:
        reply = parse_arp(build_reply(parse_arp(KERNEL_REQUEST), mac_from_str("02:00:00:00:00:bb")))
        assert decide_arp(reply, OUR_MAC, {VIP, CLIENT_IP}).reason == REASON_NOT_REQUEST

    def test_own_frames_are_ignored(self) -> None:
        request, _ = build_gratuitous(VIP, OUR_MAC)
        assert decide_arp(parse_arp(request), OUR_MAC, {VIP}).reason == REASON_FROM_SELF

    def test_gratuitous_from_another_node_is_not_answered(self) -> None:
        request, _ = build_gratuitous(VIP, mac_from_str("02:00:00:00:00:bb"))
        decision = decide_arp(parse_arp(request), OUR_MAC, {VIP})
        assert decision.reply is None and decision.reason == REASON_GRATUITOUS and decision.ip == str(VIP)

    def test_arp_probe_is_answered(self) -> None:
        # RFC 5227 probe (sender IP 0.0.0.0): answering reveals the conflict to the prober.
        probe = build_arp(ArpPacket(BROADCAST_MAC, CLIENT_MAC, ARP_REQUEST, CLIENT_MAC, IPv4Address(0), ZERO_MAC, VIP))
        decision = decide_arp(parse_arp(probe), OUR_MAC, {VIP})
        assert decision.reply is not None
        assert parse_arp(decision.reply).target_ip == IPv4Address(0)


macs = st.binary(min_size=6, max_size=6)
ipv4 = st.builds(IPv4Address, st.integers(min_value=0, max_value=2**32 - 1))
packets = st.builds(ArpPacket, macs, macs, st.sampled_from([ARP_REQUEST, ARP_REPLY]), macs, ipv4, macs, ipv4)


@given(st.binary(max_size=128))
def test_fuzz_parser_only_raises_arp_error(data: bytes) -> None:
    try:
        parse_arp(data)
    except ArpError:
        pass


@given(packets, st.binary(max_size=32))
def test_fuzz_round_trip(packet: ArpPacket, padding: bytes) -> None:
    assert parse_arp(build_arp(packet) + padding) == packet


@given(packets, macs, st.frozensets(ipv4, max_size=3))
def test_fuzz_decision_reply_is_well_formed(
    packet: ArpPacket, our_mac: bytes, announced: frozenset[IPv4Address]
) -> None:
    decision = decide_arp(packet, our_mac, announced)
    if decision.reply is not None:
        reply = parse_arp(decision.reply)
        assert reply.op == ARP_REPLY and reply.sender_mac == our_mac and reply.sender_ip in announced
        assert reply.eth_dst == packet.sender_mac


def test_claimed_is_the_address_another_host_speaks_for() -> None:
    from ironlb.layer2.wire.ndp import NeighborAdvertisement, NeighborSolicitation

    ours, other = mac_from_str("02:00:00:00:00:01"), mac_from_str("02:00:00:00:00:02")
    vip = IPv4Address("10.0.0.1")
    request, reply = build_gratuitous(vip, other)
    assert claimed(parse_arp(request), ours) == vip
    assert claimed(parse_arp(reply), ours) == vip
    assert claimed(parse_arp(request), other) is None  # our own
    probe = ArpPacket(BROADCAST_MAC, other, ARP_REQUEST, other, IPv4Address("0.0.0.0"), ZERO_MAC, vip)
    # an ARP probe (RFC 5227) claims nothing yet
    assert claimed(probe, ours) is None
    v6 = IPv6Address("fd00::1")
    na = NeighborAdvertisement(BROADCAST_MAC, other, v6, v6, v6, target_lladdr=other, override=True)
    assert claimed(na, ours) == v6
    assert claimed(na, other) is None
    ns = NeighborSolicitation(BROADCAST_MAC, other, v6, v6, v6, other)
    assert claimed(ns, ours) is None
