"""Codec tests against byte vectors written out by hand from the RFCs."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

import pytest

from ironlb.bgp.attributes import Attributes, format_community, parse_community, parse_large_community
from ironlb.bgp.errors import BGPError, describe
from ironlb.bgp.updates import PathContext, pack_announcements, pack_withdrawals
from ironlb.bgp.wire import (
    AS_SEQUENCE,
    AS_TRANS,
    IPV4_UNICAST,
    IPV6_UNICAST,
    MARKER,
    Capabilities,
    GracefulRestart,
    KeepaliveMessage,
    MPReach,
    MPUnreach,
    NotificationMessage,
    OpenMessage,
    RouteRefreshMessage,
    UpdateMessage,
    decode_message,
    encode_end_of_rib,
    encode_keepalive,
    encode_notification,
    encode_open,
    encode_prefix,
    encode_route_refresh,
    encode_update,
    shutdown_communication,
    split_messages,
)

H = bytes.fromhex


def hdr(length: int, msg_type: int) -> bytes:
    return MARKER + struct.pack("!HB", length, msg_type)


def raises(data: bytes, code: int, subcode: int, *, four: bool = True) -> BGPError:
    with pytest.raises(BGPError) as info:
        decode_message(data, four_octet_as=four)
    assert (info.value.code, info.value.subcode) == (code, subcode), info.value
    return info.value


# --------------------------------------------------------------------------- known vectors


def test_keepalive_vector() -> None:
    assert encode_keepalive() == H("ff" * 16 + "0013" + "04")
    assert decode_message(encode_keepalive()) == KeepaliveMessage()


def test_open_vector_two_byte_asn() -> None:
    caps = Capabilities(multiprotocol=frozenset({IPV4_UNICAST, IPV6_UNICAST}), route_refresh=True, four_octet_asn=65001)
    msg = OpenMessage.for_asn(65001, 90, IPv4Address("10.0.0.1"), caps)
    expected = H(
        "ff" * 16
        + "0033"
        + "01"  # OPEN
        + "04"  # version
        + "fde9"  # my AS 65001
        + "005a"  # hold 90
        + "0a000001"  # BGP id
        + "16"  # opt params len 22
        + "0214"  # param type 2 (capabilities), len 20
        + "010400010001"  # MP IPv4 unicast
        + "010400020001"  # MP IPv6 unicast
        + "0200"  # route refresh
        + "41040000fde9"  # 4-octet AS 65001
    )
    assert encode_open(msg) == expected
    back = decode_message(expected)
    assert back == msg
    assert isinstance(back, OpenMessage)
    assert back.asn == 65001


def test_open_four_byte_asn_uses_as_trans() -> None:
    caps = Capabilities(four_octet_asn=4200000001)
    raw = encode_open(OpenMessage.for_asn(4200000001, 30, IPv4Address("1.2.3.4"), caps))
    assert raw[20:22] == struct.pack("!H", AS_TRANS)
    assert raw.endswith(H("4104") + struct.pack("!I", 4200000001))
    back = decode_message(raw)
    assert isinstance(back, OpenMessage)
    assert back.my_as == AS_TRANS and back.asn == 4200000001


def test_open_graceful_restart_roundtrip() -> None:
    gr = GracefulRestart(restart_time=120, restart_state=True, families=((1, 1, True), (2, 1, False)))
    caps = Capabilities(graceful_restart=gr, enhanced_route_refresh=True, other=((73, b"host"),))
    raw = encode_open(OpenMessage(65000, 90, IPv4Address("1.1.1.1"), caps))
    # R bit + 120 = 0x8078, then (1,1,F) (2,1,0)
    assert H("400a" + "8078" + "00010180" + "00020100") in raw
    assert decode_message(raw) == OpenMessage(65000, 90, IPv4Address("1.1.1.1"), caps)


def test_open_rfc9072_extended_optional_parameters() -> None:
    cap = H("0200")
    params = H("ff") + struct.pack("!H", 3 + len(cap)) + H("02") + struct.pack("!H", len(cap)) + cap
    body = H("04") + struct.pack("!HH", 65000, 90) + H("01010101") + H("ff") + params
    msg = decode_message(hdr(19 + len(body), 1) + body)
    assert isinstance(msg, OpenMessage) and msg.capabilities.route_refresh


def test_update_vector_ebgp_ipv4_with_community() -> None:
    msg = UpdateMessage(
        nlri=(IPv4Network("192.0.2.10/32"),),
        origin=0,
        as_path=((AS_SEQUENCE, (65001,)),),
        next_hop=IPv4Address("10.0.0.1"),
        communities=(parse_community("65001:100"),),
    )
    expected = H(
        "ff" * 16
        + "0037"
        + "02"
        + "0000"  # no withdrawn routes
        + "001b"  # 27 bytes of attributes
        + "40010100"  # ORIGIN IGP
        + "400206"
        + "0201"
        + "0000fde9"  # AS_PATH: AS_SEQUENCE of one 4-byte ASN
        + "400304"
        + "0a000001"  # NEXT_HOP
        + "c00804"
        + "fde90064"  # COMMUNITIES 65001:100
        + "20c000020a"  # 192.0.2.10/32
    )
    assert encode_update(msg) == expected
    assert decode_message(expected) == msg


def test_update_vector_two_byte_as_path() -> None:
    msg = UpdateMessage(
        nlri=(IPv4Network("192.0.2.0/24"),),
        origin=0,
        as_path=((AS_SEQUENCE, (65001,)),),
        next_hop=IPv4Address("10.0.0.1"),
    )
    raw = encode_update(msg, four_octet_as=False)
    assert H("400204" + "0201" + "fde9") in raw
    assert decode_message(raw, four_octet_as=False) == msg


def test_two_byte_session_large_asn_gets_as_trans_and_as4_path() -> None:
    msg = UpdateMessage(
        nlri=(IPv4Network("192.0.2.0/24"),),
        origin=0,
        as_path=((AS_SEQUENCE, (4200000001,)),),
        next_hop=IPv4Address("10.0.0.1"),
    )
    raw = encode_update(msg, four_octet_as=False)
    assert H("400204" + "0201" + "5ba0") in raw  # AS_TRANS
    back = decode_message(raw, four_octet_as=False)
    assert isinstance(back, UpdateMessage)
    assert back.as4_path == ((AS_SEQUENCE, (4200000001,)),)


def test_update_vector_ibgp_ipv6_mp_reach_large_community() -> None:
    msg = UpdateMessage(
        origin=0,
        as_path=(),
        local_pref=100,
        large_communities=((65001, 1, 2),),
        mp_reach=MPReach(2, 1, (IPv6Address("2001:db8::a"),), (IPv6Network("2001:db8::1/128"),)),
    )
    expected = H(
        "ff" * 16
        + "005d"
        + "02"
        + "0000"
        + "0046"  # 70 bytes of attributes
        + "40010100"
        + "400200"  # empty AS_PATH (iBGP)
        + "400504"
        + "00000064"  # LOCAL_PREF 100
        + "800e26"
        + "0002"
        + "01"
        + "10"
        + "20010db80000000000000000"
        + "0000000a"
        + "00"
        + "80"
        + "20010db8000000000000000000000001"
        + "c0200c"
        + "0000fde9"
        + "00000001"
        + "00000002"
    )
    assert encode_update(msg) == expected
    assert decode_message(expected) == msg


def test_end_of_rib_vectors() -> None:
    v4 = encode_end_of_rib(IPV4_UNICAST)
    assert v4 == H("ff" * 16 + "0017" + "02" + "0000" + "0000")
    v6 = encode_end_of_rib(IPV6_UNICAST)
    assert v6 == H("ff" * 16 + "001d" + "02" + "0000" + "0006" + "800f03" + "000201")
    for raw, fam in ((v4, IPV4_UNICAST), (v6, IPV6_UNICAST)):
        msg = decode_message(raw)
        assert isinstance(msg, UpdateMessage)
        assert msg.end_of_rib() == fam


def test_withdraw_ipv6_via_mp_unreach() -> None:
    msg = UpdateMessage(mp_unreach=MPUnreach(2, 1, (IPv6Network("2001:db8::/64"),)))
    raw = encode_update(msg)
    assert H("800f0c" + "000201" + "40" + "20010db800000000") in raw
    back = decode_message(raw)
    assert back == msg
    assert isinstance(back, UpdateMessage) and back.end_of_rib() is None


def test_prefix_encoding() -> None:
    assert encode_prefix(ip_network("10.0.0.0/8")) == H("080a")
    assert encode_prefix(ip_network("0.0.0.0/0")) == H("00")
    assert encode_prefix(ip_network("192.0.2.128/25")) == H("19c00002" + "80")
    assert encode_prefix(ip_network("2001:db8::/32")) == H("2020010db8")


def test_extended_length_attribute_for_many_communities() -> None:
    comms = tuple(range(1, 101))
    msg = UpdateMessage(
        nlri=(IPv4Network("192.0.2.1/32"),),
        origin=0,
        as_path=(),
        next_hop=IPv4Address("10.0.0.1"),
        communities=comms,
    )
    raw = encode_update(msg)
    assert H("d0080190") in raw  # optional|transitive|extended, type 8, length 400
    assert decode_message(raw) == msg


def test_notification_and_shutdown_communication() -> None:
    data = shutdown_communication("maintenance")
    raw = encode_notification(6, 2, data)
    assert raw == H("ff" * 16 + "0021" + "03" + "0602" + "0b") + b"maintenance"
    assert decode_message(raw) == NotificationMessage(6, 2, data)
    assert describe(4, 0) == "hold timer expired (4/0)"
    assert "bad peer as" in describe(2, 2)


def test_route_refresh_vector() -> None:
    raw = encode_route_refresh(2, 1)
    assert raw == H("ff" * 16 + "0017" + "05" + "0002" + "00" + "01")
    assert decode_message(raw) == RouteRefreshMessage(2, 1, 0)


def test_split_messages_handles_partial_and_multiple() -> None:
    stream = encode_keepalive() + encode_route_refresh(1, 1) + encode_keepalive()
    buf = bytearray(stream[:30])
    assert split_messages(buf) == [encode_keepalive()]
    buf += stream[30:]
    assert split_messages(buf) == [encode_route_refresh(1, 1), encode_keepalive()]
    assert buf == bytearray()


# --------------------------------------------------------------------------- error codes


def test_header_errors() -> None:
    raises(b"\x00" * 16 + H("001304"), 1, 1)
    err = raises(hdr(18, 4)[:18] + H("04"), 1, 2)
    assert err.data == H("0012")
    err = raises(hdr(20, 4) + b"\x00", 1, 2)
    assert err.data == H("0014")
    err = raises(hdr(19, 9), 1, 3)
    assert err.data == H("09")
    raises(hdr(5000, 2), 1, 2)


def test_open_errors() -> None:
    body = H("03") + struct.pack("!HH", 65000, 90) + H("01010101") + H("00")
    err = raises(hdr(19 + len(body), 1) + body, 2, 1)
    assert err.data == H("0004")
    body = H("04") + struct.pack("!HH", 65000, 90) + H("01010101") + H("03") + H("0101ff")
    raises(hdr(19 + len(body), 1) + body, 2, 4)
    body = H("04") + struct.pack("!HH", 65000, 90) + H("01010101") + H("05") + H("0203") + H("4104")
    raises(hdr(19 + len(body), 1) + body, 2, 0)


def _update(attrs: bytes, nlri: bytes = H("18c00002"), withdrawn: bytes = b"") -> bytes:
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs + nlri
    return hdr(19 + len(body), 2) + body


ORIGIN = H("40010100")
AS_PATH = H("400200")
NEXT_HOP = H("4003040a000001")


def test_update_missing_well_known_attribute() -> None:
    err = raises(_update(AS_PATH + NEXT_HOP), 3, 3)
    assert err.data == H("01")
    err = raises(_update(ORIGIN + NEXT_HOP), 3, 3)
    assert err.data == H("02")
    err = raises(_update(ORIGIN + AS_PATH), 3, 3)
    assert err.data == H("03")
    # Withdraw-only UPDATEs need no attributes.
    assert isinstance(decode_message(_update(b"", b"", H("18c00002"))), UpdateMessage)


def test_update_attribute_errors() -> None:
    err = raises(_update(H("40010103") + AS_PATH + NEXT_HOP), 3, 6)
    assert err.data == H("40010103")
    err = raises(_update(H("80010100") + AS_PATH + NEXT_HOP), 3, 4)
    assert err.data == H("80010100")
    raises(_update(H("4001020000") + AS_PATH + NEXT_HOP), 3, 5)
    raises(_update(ORIGIN + H("4002020201") + NEXT_HOP), 3, 11)
    raises(_update(ORIGIN + H("400206070100000001") + NEXT_HOP), 3, 11)
    raises(_update(ORIGIN + AS_PATH + H("40030400000000")), 3, 8)
    raises(_update(ORIGIN + ORIGIN + AS_PATH + NEXT_HOP), 3, 1)
    err = raises(_update(ORIGIN + AS_PATH + NEXT_HOP + H("406301ff")), 3, 2)
    assert err.data == H("406301ff")
    raises(_update(ORIGIN + AS_PATH + NEXT_HOP + H("c0080300ff00")), 3, 9)
    raises(_update(ORIGIN + AS_PATH + NEXT_HOP + H("c0ff")), 3, 1)
    raises(_update(ORIGIN + AS_PATH + NEXT_HOP, H("21c0000201")), 3, 10)
    raises(_update(ORIGIN + AS_PATH + NEXT_HOP, H("18c000")), 3, 10)
    raises(_update(ORIGIN + AS_PATH + NEXT_HOP + H("800e03000201")), 3, 9)
    body = H("0005") + H("18") + H("0000")
    raises(hdr(19 + len(body), 2) + body, 3, 1)


def test_update_unknown_optional_attribute_is_kept() -> None:
    msg = decode_message(_update(ORIGIN + AS_PATH + NEXT_HOP + H("e0630201ff")))
    assert isinstance(msg, UpdateMessage)
    assert [(a.type_code, a.value) for a in msg.other] == [(0x63, H("01ff"))]


def test_route_refresh_bad_length() -> None:
    raises(hdr(24, 5) + H("0001000100"), 7, 1)


# --------------------------------------------------------------------------- attributes


def test_community_parsing() -> None:
    assert parse_community("65535:65281") == parse_community("no-export") == 0xFFFFFF01
    assert format_community(parse_community("64512:7")) == "64512:7"
    assert parse_large_community("large:1:2:3") == (1, 2, 3)
    for bad in ("1:2:3", "65536:1", "x", "1:"):
        with pytest.raises(ValueError):
            parse_community(bad)
    with pytest.raises(ValueError):
        parse_large_community("1:2")


def test_attributes_normalise_and_merge() -> None:
    a = Attributes.parse(communities=["2:2", "1:1", "2:2", "large:3:3:3"])
    b = Attributes(None, (parse_community("1:1"),), ((3, 3, 3),))
    assert a.communities == (parse_community("1:1"), parse_community("2:2"))
    assert hash(Attributes(communities=(2, 1))) == hash(Attributes(communities=(1, 2)))
    merged = b.merge(Attributes(200, (5,), ()))
    assert merged.local_pref == 200 and 5 in merged.communities and merged.large_communities == ((3, 3, 3),)


# --------------------------------------------------------------------------- packing


def _ctx(ibgp: bool = False) -> PathContext:
    return PathContext(64512, ibgp, True, IPv4Address("10.0.0.1"), IPv6Address("2001:db8::1"))


def test_pack_announcements_mixed_prefix_lengths_fit() -> None:
    prefixes = [IPv4Network(f"10.{i // 256}.{i % 256}.0/24") for i in range(3000)]
    out = pack_announcements(IPV4_UNICAST, Attributes(), prefixes, _ctx())
    assert all(len(m) <= 4096 for m in out)
    got = [p for m in out for p in decode_message(m).nlri]  # type: ignore[union-attr]
    assert sorted(got) == sorted(prefixes)


def test_pack_withdrawals_splits_v4_and_v6() -> None:
    v4 = [IPv4Network(f"10.0.{i // 256}.{i % 256}/32") for i in range(2000)]
    v6 = [IPv6Network(f"2001:db8::{i:x}/128") for i in range(1000)]
    out = pack_withdrawals(v4 + v6)
    msgs = [decode_message(m) for m in out]
    assert all(len(m) <= 4096 for m in out)
    got4 = [p for m in msgs if isinstance(m, UpdateMessage) for p in m.withdrawn]
    got6 = [p for m in msgs if isinstance(m, UpdateMessage) and m.mp_unreach for p in m.mp_unreach.withdrawn]
    assert sorted(got4) == sorted(v4) and sorted(got6) == sorted(v6)
    # 4073 bytes per IPv4 message / 5 = 814 per message; 4066 / 17 = 239 per IPv6 message.
    assert len(out) == -(-2000 // 814) + -(-1000 // 239)
