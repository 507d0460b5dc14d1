"""NDP (NS/NA) codec and responder decision (pure, no privileges)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironlb.layer2.fsm import (
    REASON_BAD_HOP_LIMIT,
    REASON_BAD_TARGET,
    REASON_DAD,
    REASON_DESTINATION_NOT_OURS,
    REASON_FROM_SELF,
    REASON_NOT_ANNOUNCED,
    REASON_NOT_SOLICITATION,
    REASON_REPLY,
    decide_ndp,
)
from ironlb.layer2.wire.ethernet import FrameError, mac_from_str
from ironlb.layer2.wire.ndp import (
    ALL_NODES,
    NdpError,
    NeighborAdvertisement,
    NeighborSolicitation,
    build_ndp,
    build_solicitation,
    build_unsolicited_advertisement,
    icmpv6_checksum,
    multicast_mac,
    parse_ndp,
    solicited_node_address,
)

OUR_MAC = mac_from_str("02:00:00:00:00:aa")
CLIENT_MAC = mac_from_str("02:00:00:00:00:01")
VIP = IPv6Address("fd00:99::100")
CLIENT_IP = IPv6Address("fd00:99::1")
CLIENT_LL = IPv6Address("fe80::1")

# Captured from the Linux kernel resolving fd00:99::100 from fd00:99::1 (02:00:00:00:00:01).
KERNEL_NS = bytes.fromhex(
    "3333ff00010002000000000186dd6000000000203afffd000099000000000000000000000001ff02000000000000"
    "00000001ff00010087007a6900000000fd0000990000000000000000000001000101020000000001"
)


def ns(**changes: object) -> NeighborSolicitation:
    """The kernel NS above, with changes."""
    base = parse_ndp(KERNEL_NS)
    assert isinstance(base, NeighborSolicitation)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_solicited_node_address_and_mac() -> None:
    assert solicited_node_address(IPv6Address("2001:db8::abcd:1234:5678")) == IPv6Address("ff02::1:ff34:5678")
    assert solicited_node_address(VIP) == IPv6Address("ff02::1:ff00:100")
    assert multicast_mac(IPv6Address("ff02::1:ff34:5678")) == mac_from_str("33:33:ff:34:56:78")
    assert multicast_mac(ALL_NODES) == mac_from_str("33:33:00:00:00:01")
    with pytest.raises(NdpError):
        multicast_mac(VIP)


def test_parse_kernel_solicitation() -> None:
    msg = parse_ndp(KERNEL_NS)
    assert msg == NeighborSolicitation(
        eth_dst=mac_from_str("33:33:ff:00:01:00"),
        eth_src=CLIENT_MAC,
        src=CLIENT_IP,
        dst=IPv6Address("ff02::1:ff00:100"),
        target=VIP,
        source_lladdr=CLIENT_MAC,
        hop_limit=255,
    )


def test_build_matches_kernel_bytes_and_checksum() -> None:
    # Byte-exact except the flow label, which the kernel sets and we leave 0.
    assert build_solicitation(CLIENT_MAC, CLIENT_IP, VIP) == KERNEL_NS
    icmp = KERNEL_NS[54:]
    assert icmpv6_checksum(CLIENT_IP, IPv6Address("ff02::1:ff00:100"), icmp) == 0
    zeroed = icmp[:2] + b"\x00\x00" + icmp[4:]
    assert icmpv6_checksum(CLIENT_IP, IPv6Address("ff02::1:ff00:100"), zeroed) == 0x7A69


def test_bad_checksum_is_rejected_unless_not_verified() -> None:
    corrupt = KERNEL_NS[:56] + b"\x00\x00" + KERNEL_NS[58:]
    with pytest.raises(NdpError, match="checksum"):
        parse_ndp(corrupt)
    assert parse_ndp(corrupt, verify_checksum=False).target == VIP


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (KERNEL_NS[:10], "too short"),
        (KERNEL_NS[:12] + b"\x08\x06" + KERNEL_NS[14:], "not an IPv6 frame"),
        (KERNEL_NS[:50], "IPv6 packet too short"),
        (KERNEL_NS[:14] + b"\x40" + KERNEL_NS[15:], "IP version 4"),
        (KERNEL_NS[:20] + b"\x00" + KERNEL_NS[21:], "next header 0"),
        (KERNEL_NS[:-1], "payload length exceeds"),
        (KERNEL_NS[:54] + b"\x80" + KERNEL_NS[55:], "type 128"),
        (KERNEL_NS[:55] + b"\x01" + KERNEL_NS[56:], "code 1"),
        (KERNEL_NS[:79] + b"\x00" + KERNEL_NS[80:], "length 0"),
        (KERNEL_NS[:79] + b"\x02" + KERNEL_NS[80:], "past the end"),
    ],
    ids=["short", "ethertype", "short-ip", "version", "next-header", "truncated", "type", "code", "opt0", "optlong"],
)
def test_parse_rejects_malformed(frame: bytes, message: str) -> None:
    with pytest.raises(NdpError, match=message):
        parse_ndp(frame, verify_checksum=False)


def test_unsolicited_advertisement() -> None:
    msg = parse_ndp(build_unsolicited_advertisement(VIP, OUR_MAC))
    assert msg == NeighborAdvertisement(
        eth_dst=mac_from_str("33:33:00:00:00:01"),
        eth_src=OUR_MAC,
        src=VIP,
        dst=ALL_NODES,
        target=VIP,
        target_lladdr=OUR_MAC,
        router=False,
        solicited=False,
        override=True,
        hop_limit=255,
    )


class TestDecide:
    def reply_of(
        self, msg: NeighborSolicitation, announced: frozenset[IPv6Address] = frozenset({VIP})
    ) -> NeighborAdvertisement:
        decision = decide_ndp(msg, OUR_MAC, announced)
        assert decision.reason == REASON_REPLY and decision.ip == str(VIP) and decision.reply is not None
        reply = parse_ndp(decision.reply)  # also checks our checksum
        assert isinstance(reply, NeighborAdvertisement)
        return reply

    def test_multicast_solicitation_is_answered(self) -> None:
        reply = self.reply_of(ns())
        assert reply == NeighborAdvertisement(
            eth_dst=CLIENT_MAC,
            eth_src=OUR_MAC,
            src=VIP,
            dst=CLIENT_IP,
            target=VIP,
            target_lladdr=OUR_MAC,
            solicited=True,
            override=False,
            hop_limit=255,
        )

    def test_source_ip_override(self) -> None:
        decision = decide_ndp(ns(), OUR_MAC, {VIP}, source_ip=IPv6Address("fe80::aa"))
        assert decision.reply is not None and parse_ndp(decision.reply).src == IPv6Address("fe80::aa")

    def test_reply_goes_to_source_lladdr_option(self) -> None:
        other = mac_from_str("02:00:00:00:00:02")
        assert self.reply_of(ns(source_lladdr=other)).eth_dst == other

    def test_unicast_nud_probe_without_lladdr_is_answered(self) -> None:
        probe = ns(eth_dst=OUR_MAC, dst=VIP, src=CLIENT_LL, source_lladdr=None)
        reply = self.reply_of(probe)
        assert reply.eth_dst == CLIENT_MAC and reply.dst == CLIENT_LL
        assert reply.solicited and not reply.override and reply.target_lladdr == OUR_MAC

    def test_unicast_probe_to_other_mac_is_ignored(self) -> None:
        probe = ns(eth_dst=mac_from_str("02:00:00:00:00:bb"), dst=VIP, source_lladdr=None)
        assert decide_ndp(probe, OUR_MAC, {VIP}).reason == REASON_DESTINATION_NOT_OURS

    def test_wrong_multicast_group_is_ignored(self) -> None:
        assert decide_ndp(ns(dst=ALL_NODES), OUR_MAC, {VIP}).reason == REASON_DESTINATION_NOT_OURS

    def test_dad_probe_is_never_answered(self) -> None:
        dad = ns(src=IPv6Address("::"), source_lladdr=None)
        assert decide_ndp(dad, OUR_MAC, {VIP}).reason == REASON_DAD

    def test_unannounced_target_is_ignored(self) -> None:
        decision = decide_ndp(ns(), OUR_MAC, {IPv6Address("fd00:99::101")})
        assert decision.reply is None and decision.reason == REASON_NOT_ANNOUNCED and decision.ip is None

    def test_hop_limit_must_be_255(self) -> None:
        assert decide_ndp(ns(hop_limit=64), OUR_MAC, {VIP}).reason == REASON_BAD_HOP_LIMIT

    def test_advertisements_and_own_frames_are_ignored(self) -> None:
        na = parse_ndp(build_unsolicited_advertisement(VIP, mac_from_str("02:00:00:00:00:bb")))
        assert decide_ndp(na, OUR_MAC, {VIP}).reason == REASON_NOT_SOLICITATION
        assert decide_ndp(ns(eth_src=OUR_MAC), OUR_MAC, {VIP}).reason == REASON_FROM_SELF

    def test_multicast_target_is_ignored(self) -> None:
        assert decide_ndp(ns(target=ALL_NODES), OUR_MAC, {ALL_NODES}).reason == REASON_BAD_TARGET


macs = st.binary(min_size=6, max_size=6)
ipv6 = st.builds(IPv6Address, st.integers(min_value=0, max_value=2**128 - 1))
solicitations = st.builds(
    NeighborSolicitation, macs, macs, ipv6, ipv6, ipv6, st.none() | macs, st.integers(min_value=0, max_value=255)
)
advertisements = st.builds(
    NeighborAdvertisement,
    macs,
    macs,
    ipv6,
    ipv6,
    ipv6,
    st.none() | macs,
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.integers(min_value=0, max_value=255),
)


@given(st.binary(max_size=160))
def test_fuzz_parser_only_raises_ndp_error(data: bytes) -> None:
    for verify in (True, False):
        try:
            parse_ndp(data, verify_checksum=verify)
        except NdpError:
            pass


@given(st.integers(min_value=0, max_value=len(KERNEL_NS) - 1), st.integers(min_value=0, max_value=255))
def test_fuzz_mutated_kernel_frame(position: int, value: int) -> None:
    frame = KERNEL_NS[:position] + bytes([value]) + KERNEL_NS[position + 1 :]
    try:
        msg = parse_ndp(frame)
    except FrameError:
        return
    assert isinstance(msg, NeighborSolicitation | NeighborAdvertisement)


@given(solicitations | advertisements, st.binary(max_size=16))
def test_fuzz_round_trip(msg: NeighborSolicitation | NeighborAdvertisement, padding: bytes) -> None:
    assert parse_ndp(build_ndp(msg) + padding) == msg


@st.composite
def addressed_solicitations(draw: st.DrawFn) -> NeighborSolicitation:
    """Solicitations a responder may answer: multicast resolution or unicast NUD."""
    target = draw(ipv6.filter(lambda a: not a.is_multicast))
    src = draw(ipv6.filter(lambda a: not a.is_multicast and a != IPv6Address("::")))
    if draw(st.booleans()):
        group = solicited_node_address(target)
        return NeighborSolicitation(multicast_mac(group), draw(macs), src, group, target, draw(st.none() | macs))
    return NeighborSolicitation(OUR_MAC, draw(macs), src, target, target, draw(st.none() | macs))


@given(addressed_solicitations())
def test_fuzz_decision_replies_are_valid_advertisements(msg: NeighborSolicitation) -> None:
    decision = decide_ndp(msg, OUR_MAC, {msg.target})
    if msg.eth_src == OUR_MAC or msg.source_lladdr == OUR_MAC:
        assert decision.reason == REASON_FROM_SELF
        return
    assert decision.reply is not None, decision.reason
    reply = parse_ndp(decision.reply)
    assert isinstance(reply, NeighborAdvertisement)
    assert reply.hop_limit == 255 and reply.solicited and not reply.override
    assert reply.target == msg.target and reply.target_lladdr == OUR_MAC and reply.dst == msg.src
    assert reply.eth_dst == (msg.source_lladdr or msg.eth_src)
