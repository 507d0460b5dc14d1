"""Hypothesis: decoders only ever raise BGPError, and encode/decode round-trips."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ironlb.bgp.attributes import Attributes
from ironlb.bgp.errors import BGPError
from ironlb.bgp.fsm import BGPState, SessionDown
from ironlb.bgp.updates import PathContext, build_announcements
from ironlb.bgp.wire import (
    AS_SEQUENCE,
    MARKER,
    Capabilities,
    GracefulRestart,
    MPReach,
    OpenMessage,
    UpdateMessage,
    decode_message,
    encode_open,
    encode_update,
    split_messages,
)
from tests.bgp.bgp_harness import Pair, config

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def framed(msg_type: int, body: bytes) -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(body), msg_type) + body


@FUZZ
@given(st.binary(max_size=200), st.booleans())
def test_arbitrary_bytes_only_raise_bgp_error(data: bytes, four: bool) -> None:
    try:
        decode_message(data, four_octet_as=four)
    except BGPError:
        pass


@FUZZ
@given(st.integers(min_value=1, max_value=5), st.binary(max_size=600), st.booleans())
def test_valid_header_random_body(msg_type: int, body: bytes, four: bool) -> None:
    try:
        decode_message(framed(msg_type, body), four_octet_as=four)
    except BGPError:
        pass


@st.composite
def attribute_soup(draw: st.DrawFn) -> bytes:
    """Plausible attribute TLVs with random flags, types and (mostly consistent) lengths."""
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        flags = draw(st.sampled_from([0x40, 0x80, 0xC0, 0xD0, 0x50, 0x90, 0xE0, draw(st.integers(0, 255))]))
        t = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 16, 17, 32, draw(st.integers(0, 255))]))
        value = draw(st.binary(max_size=40))
        length = len(value) if draw(st.booleans()) else draw(st.integers(0, 300))
        if flags & 0x10:
            out += struct.pack("!BBH", flags, t, length) + value
        else:
            out += struct.pack("!BBB", flags, t, min(length, 255)) + value
    return out


@FUZZ
@given(attribute_soup(), st.binary(max_size=30), st.binary(max_size=30), st.booleans())
def test_structured_update_fuzz(attrs: bytes, withdrawn: bytes, nlri: bytes, four: bool) -> None:
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs + nlri
    if len(body) + 19 > 4096:
        return
    try:
        msg = decode_message(framed(2, body), four_octet_as=four)
    except BGPError:
        return
    assert isinstance(msg, UpdateMessage)


@FUZZ
@given(st.binary(max_size=300))
def test_structured_open_fuzz(params: bytes) -> None:
    body = bytes((4,)) + struct.pack("!HH", 65000, 90) + b"\x01\x01\x01\x01" + bytes((min(len(params), 255),)) + params
    try:
        decode_message(framed(1, body))
    except BGPError:
        pass


@FUZZ
@given(st.binary(max_size=500))
def test_split_messages_only_raises_bgp_error(data: bytes) -> None:
    buf = bytearray(MARKER + data)
    try:
        for raw in split_messages(buf):
            assert raw[:16] == MARKER
    except BGPError:
        pass


v4net = st.builds(lambda a, n: IPv4Network((a, n), strict=False), st.integers(0, 2**32 - 1), st.integers(0, 32))
v6net = st.builds(lambda a, n: IPv6Network((a, n), strict=False), st.integers(0, 2**128 - 1), st.integers(0, 128))
u32 = st.integers(0, 2**32 - 1)


@FUZZ
@given(
    st.lists(v4net, max_size=40, unique=True),
    st.lists(v4net, max_size=40, unique=True),
    st.lists(u32, max_size=80),
    st.lists(st.tuples(u32, u32, u32), max_size=20),
    st.lists(v6net, max_size=20, unique=True),
    st.booleans(),
    st.integers(1, 2**32 - 1),
)
def test_update_roundtrip(
    nlri: list[IPv4Network],
    withdrawn: list[IPv4Network],
    comms: list[int],
    large: list[tuple[int, int, int]],
    v6: list[IPv6Network],
    four: bool,
    asn: int,
) -> None:
    if not four and asn > 0xFFFF:
        asn = asn & 0xFFFF or 1
    msg = UpdateMessage(
        withdrawn=tuple(withdrawn),
        nlri=tuple(nlri),
        origin=0,
        as_path=((AS_SEQUENCE, (asn,)),),
        next_hop=IPv4Address("192.0.2.1"),
        communities=tuple(comms),
        large_communities=tuple(large),
        mp_reach=MPReach(2, 1, (IPv6Address("2001:db8::1"),), tuple(v6)) if v6 else None,
    )
    assert decode_message(encode_update(msg, four_octet_as=four), four_octet_as=four) == msg


@FUZZ
@given(
    st.integers(1, 2**32 - 1),
    st.integers(0, 0xFFFF),
    st.booleans(),
    st.booleans(),
    st.integers(0, 4095),
)
def test_open_roundtrip(asn: int, hold: int, rr: bool, gr: bool, restart: int) -> None:
    caps = Capabilities(
        multiprotocol=frozenset({(1, 1), (2, 1)}),
        route_refresh=rr,
        four_octet_asn=asn,
        graceful_restart=GracefulRestart(restart, families=((1, 1, True),)) if gr else None,
    )
    msg = OpenMessage.for_asn(asn, hold, IPv4Address("10.1.2.3"), caps)
    back = decode_message(encode_open(msg))
    assert back == msg
    assert isinstance(back, OpenMessage) and back.asn == asn


@FUZZ
@given(st.lists(st.tuples(v4net, st.lists(u32, max_size=5)), max_size=200))
def test_packing_roundtrip(routes: list[tuple[IPv4Network, list[int]]]) -> None:
    table = {p: Attributes(communities=tuple(c)) for p, c in routes}
    ctx = PathContext(64512, False, True, IPv4Address("10.0.0.1"), None)
    out, failed = build_announcements(table, ctx)
    assert not failed
    got: dict[IPv4Network | IPv6Network, tuple[int, ...]] = {}
    for raw in out:
        assert len(raw) <= 4096
        msg = decode_message(raw)
        assert isinstance(msg, UpdateMessage)
        for p in msg.nlri:
            got[p] = msg.communities
    assert got == {p: a.communities for p, a in table.items()}


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_fsm_survives_garbage_after_established(data: bytes) -> None:
    pair = Pair(config(), config(64513, 64512, router_id=IPv4Address("2.2.2.2")))
    pair.connect()
    assert pair.a.fsm.state is BGPState.ESTABLISHED
    events = pair.a.fsm.data_received(data, pair.now)
    if pair.a.fsm.state is BGPState.IDLE:
        assert isinstance(events[-1], SessionDown)
        assert events[-1].notification_sent is not None
