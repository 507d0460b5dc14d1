"""Unnumbered BGP, sans-I/O parts: the RS/RA codec (RFC 4861), the link-peer state, the RFC 8950 capability and
IPv4 prefixes in MP_REACH_NLRI with IPv6 next hops."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironlb.bgp.attributes import Attributes
from ironlb.bgp.errors import BGPError
from ironlb.bgp.linkpeer import INITIAL_RAS, MAX_ROUTERS, STALE_AFTER, LinkPeerState, routers_in_neighbour_table
from ironlb.bgp.unnumbered import icmp6_filter
from ironlb.bgp.updates import PathContext, pack_announcements
from ironlb.bgp.wire import (
    AFI_IPV4,
    HEADER_LEN,
    IPV4_OVER_IPV6,
    IPV4_UNICAST,
    Capabilities,
    OpenMessage,
    decode_open,
    decode_update,
    encode_open,
)
from ironlb.bgp.wire.ra import (
    RouterAdvertisement,
    RouterMessageError,
    RouterSolicitation,
    check_router_message,
    decode_router_message,
    encode_router_message,
)

MAC = bytes.fromhex("020000000001")
LL = IPv6Address("fe80::1")
LL2 = IPv6Address("fe80::2")


def ra(mac: bytes | None = MAC, lifetime: int = 1800) -> bytes:
    return encode_router_message(RouterAdvertisement(router_lifetime=lifetime, source_lladdr=mac))


def test_router_messages_known_bytes_and_round_trip() -> None:
    assert encode_router_message(RouterSolicitation(MAC)) == bytes.fromhex("85000000000000000101020000000001")
    ours = encode_router_message(RouterAdvertisement(source_lladdr=MAC))
    assert ours == bytes.fromhex("860000000000000000000000000000000101020000000001")  # lifetime 0
    assert decode_router_message(ra()) == RouterAdvertisement(1800, source_lladdr=MAC)
    assert decode_router_message(encode_router_message(RouterSolicitation())) == RouterSolicitation()


@pytest.mark.parametrize(
    ("source", "hop", "data", "why"),
    [
        (LL, 254, ra(), "not from this link"),
        (IPv6Address("2001:db8::1"), 255, ra(), "not a link-local"),
        (LL, 255, b"\x86\x01" + ra()[2:], "code 1"),
        (LL, 255, b"\x87" + ra()[1:], "neither RS nor RA"),
        (LL, 255, ra()[:10], "too short for an RA"),
        (LL, 255, ra()[:-8] + b"\x01\x00" + bytes(6), "length 0"),
        (LL, 255, ra()[:-8] + b"\x01\x02" + bytes(6), "overruns"),
        (LL, 255, ra(None) + b"\x05\x01" + bytes(6) * 0 + b"\x00" * 6 + b"\x01", "truncated"),
        (LL, 255, ra(None) + b"\x05\x01\x00\x00\x00\x00\x00\x00" * 65, "more than 64 options"),
    ],
)
def test_router_message_rejections(source: IPv6Address, hop: int, data: bytes, why: str) -> None:
    with pytest.raises(RouterMessageError, match=why):
        check_router_message(source, hop, data)


@given(st.binary(max_size=600))
def test_fuzz_router_messages_raise_only_their_error(data: bytes) -> None:
    try:
        check_router_message(LL, 255, data)
    except RouterMessageError:
        pass


def test_icmp6_filter_passes_only_rs_and_ra() -> None:
    words = [int.from_bytes(icmp6_filter()[i : i + 4], "little") for i in range(0, 32, 4)]
    passed = [t for t in range(256) if not words[t >> 5] & (1 << (t & 31))]
    assert passed == [133, 134]


def test_link_peer_schedule_and_answers() -> None:
    s = LinkPeerState(mac=MAC, interval=10.0)
    first = s.start(0.0)
    assert [decode_router_message(m) for m in first] == [
        RouterSolicitation(MAC),
        RouterAdvertisement(0, source_lladdr=MAC),
    ]
    # INITIAL_RAS one second apart, then every interval.
    times = []
    now = 0.0
    while len(times) < INITIAL_RAS + 1:
        deadline = s.next_deadline()
        assert deadline is not None
        now = deadline
        if s.timer(now):
            times.append(now)
    assert times == [1.0, 2.0, 12.0, 22.0][: len(times)]
    # An RS is answered, but not twice within a second (a flood of RSs cannot make us flood RAs).
    rs = encode_router_message(RouterSolicitation())
    assert len(s.received(LL, 255, rs, now + 3.0)) == 1
    assert s.received(LL, 255, rs, now + 3.5) == []
    # Garbage is counted, never raised.
    assert s.received(LL, 255, b"\x86", now) == [] and s.rejected == 1


def test_link_peer_keeps_the_first_router_and_forgets_silent_ones() -> None:
    s = LinkPeerState()
    s.start(0.0)
    assert s.peer() is None
    s.received(LL, 255, ra(), 1.0)
    s.received(LL2, 255, ra(), 2.0)
    assert s.peer() == LL
    s.received(LL, 254, ra(), 3.0)  # off-link: rejected, no refresh
    s.received(LL2, 255, ra(), STALE_AFTER + 1.5)
    s.timer(STALE_AFTER + 2.0)
    assert s.peer() == LL2  # LL went silent and was forgotten; the other router takes over


def test_routers_from_the_neighbour_table() -> None:
    entries = [
        {"dst": "fe80::a", "lladdr": "02:00:00:00:00:0a", "router": None, "state": ["STALE"]},
        {"dst": "fe80::b", "state": ["REACHABLE"]},  # not a router
        {"dst": "fe80::c", "router": None, "state": ["FAILED"]},
        {"dst": "2001:db8::1", "router": None, "state": ["REACHABLE"]},  # not link-local
        {"dst": "not an address", "router": None},
        "junk",
        {"dst": "fe80::a", "router": None, "state": ["REACHABLE"]},  # duplicate
    ]
    assert routers_in_neighbour_table(entries) == [IPv6Address("fe80::a")]  # type: ignore[arg-type]
    s = LinkPeerState()
    s.neighbour_table(entries, 0.0)  # type: ignore[arg-type]
    assert s.peer() == IPv6Address("fe80::a")


def test_extended_next_hop_capability_round_trip() -> None:
    caps = Capabilities(multiprotocol=frozenset({IPV4_UNICAST}), extended_next_hop=frozenset({IPV4_OVER_IPV6}))
    raw = encode_open(OpenMessage(64512, 90, IPv4Address("10.0.0.1"), caps))
    assert bytes.fromhex("0506000100010002") in raw  # code 5, length 6: IPv4 unicast over IPv6
    assert decode_open(raw[HEADER_LEN:]).capabilities.extended_next_hop == {IPV4_OVER_IPV6}
    bad = raw.replace(bytes.fromhex("0506000100010002"), bytes.fromhex("0505000100010002"))
    with pytest.raises(BGPError):
        decode_open(bad[HEADER_LEN:])


def test_ipv4_prefixes_with_ipv6_next_hops() -> None:
    glob, ll = IPv6Address("2001:db8::5"), IPv6Address("fe80::5")
    nets = [ip_network("10.60.0.10/32"), ip_network("10.60.0.11/32")]
    for hops in ((glob, ll), (None, ll)):
        ctx = PathContext(
            local_asn=64512,
            ibgp=False,
            four_octet_as=True,
            next_hop_ipv4=None,
            next_hop_ipv6=hops[0],
            next_hop_ipv6_link_local=hops[1],
            ipv4_over_ipv6=True,
        )
        assert ctx.can_announce(IPV4_UNICAST)
        (raw,) = pack_announcements(IPV4_UNICAST, Attributes(), nets, ctx)
        msg = decode_update(raw[HEADER_LEN:])
        assert msg.nlri == () and msg.next_hop is None
        assert msg.mp_reach is not None and msg.mp_reach.afi == AFI_IPV4
        assert msg.mp_reach.next_hops == tuple(h for h in hops if h is not None)
        assert set(msg.mp_reach.nlri) == set(nets)
    # Without RFC 8950 negotiated an IPv4 prefix needs an IPv4 next hop.
    plain = PathContext(local_asn=1, ibgp=False, four_octet_as=True, next_hop_ipv4=None, next_hop_ipv6=glob)
    assert not plain.can_announce(IPV4_UNICAST)


def test_routers_remembered_are_bounded() -> None:
    s = LinkPeerState()
    s.start(0.0)
    for i in range(1, 10 * MAX_ROUTERS):
        s.received(IPv6Address(f"fe80::{i:x}"), 255, ra(), float(i))
    assert len(s._heard) == MAX_ROUTERS and s.peer() == IPv6Address("fe80::1")
