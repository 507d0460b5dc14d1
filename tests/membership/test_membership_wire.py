"""Codec tests: round trips, authentication, and fuzzing of the decoder."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ironlb.membership.wire import (
    MAC_LEN,
    MAX_DATAGRAM,
    MIN_DATAGRAM,
    MsgType,
    Packet,
    WireError,
    decode,
    encode,
)

KEY = b"k" * 32
OTHER = b"o" * 32

names = st.text(min_size=1, max_size=40).filter(lambda s: 1 <= len(s.encode()) <= 253)
u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
nz64 = st.integers(min_value=1, max_value=(1 << 64) - 1)
packets = st.builds(
    Packet,
    type=st.sampled_from(list(MsgType)),
    sender=names,
    dest=names,
    incarnation=nz64,
    seq=nz64,
    echo_incarnation=u64,
    echo_seq=u64,
    payload=st.binary(max_size=300),
)


def sign(body: bytes, key: bytes = KEY) -> bytes:
    return body + hmac.digest(key, body, hashlib.sha256)


def sample() -> Packet:
    return Packet(MsgType.HEARTBEAT, "node-a", "node-b", 7, 42, 9, 3, b"\x01\x02")


def test_roundtrip() -> None:
    pkt = sample()
    data = encode(pkt, KEY)
    assert decode(data, [KEY]) == pkt
    assert data[:2] == b"IL" and data[2] == 1


def test_key_rotation_accepts_any_listed_key() -> None:
    data = encode(sample(), OTHER)
    assert decode(data, [KEY, OTHER]) == sample()
    with pytest.raises(WireError) as exc:
        decode(data, [KEY])
    assert exc.value.reason == "bad_mac"


@pytest.mark.parametrize("index", [0, 3, 4, 20, 36, 40, -1])
def test_any_flipped_bit_is_rejected(index: int) -> None:
    data = bytearray(encode(sample(), KEY))
    data[index] ^= 0x01
    with pytest.raises(WireError):
        decode(bytes(data), [KEY])


def test_truncation_is_rejected_at_every_length() -> None:
    data = encode(sample(), KEY)
    for n in range(len(data)):
        with pytest.raises(WireError):
            decode(data[:n], [KEY])


def test_wrong_version_and_oversize() -> None:
    data = bytearray(encode(sample(), KEY))
    data[2] = 2
    with pytest.raises(WireError) as exc:
        decode(bytes(data), [KEY])
    assert exc.value.reason == "version"
    with pytest.raises(WireError):
        decode(b"IL\x01" + b"\0" * MAX_DATAGRAM, [KEY])


def test_authentic_but_malformed_bodies() -> None:
    good = encode(sample(), KEY)[:-MAC_LEN]
    # unknown message type
    bad_type = bytearray(good)
    bad_type[3] = 9
    # zero incarnation
    zero_inc = bytearray(good)
    zero_inc[4:12] = b"\0" * 8
    # payload length that disagrees with the datagram size
    bad_len = good + b"x"
    # sender name that is not UTF-8
    bad_utf8 = bytearray(good)
    bad_utf8[37] = 0xFF
    for body in (bad_type, zero_inc, bad_len, bad_utf8):
        with pytest.raises(WireError) as exc:
            decode(sign(bytes(body)), [KEY])
        assert exc.value.reason == "malformed"


def test_encode_validates() -> None:
    with pytest.raises(ValueError):
        encode(Packet(MsgType.LEAVE, "", "b", 1, 1), KEY)
    with pytest.raises(ValueError):
        encode(Packet(MsgType.LEAVE, "a", "b" * 254, 1, 1), KEY)
    with pytest.raises(ValueError):
        encode(Packet(MsgType.LEAVE, "a", "b", 0, 1), KEY)
    with pytest.raises(ValueError):
        encode(Packet(MsgType.LEAVE, "a", "b", 1, 1 << 64), KEY)
    with pytest.raises(ValueError):
        encode(Packet(MsgType.LEAVE, "a", "b", 1, 1, echo_seq=-1), KEY)
    with pytest.raises(ValueError):
        encode(Packet(MsgType.HEARTBEAT, "a", "b", 1, 1, payload=b"x" * MAX_DATAGRAM), KEY)


@given(packets)
def test_roundtrip_property(pkt: Packet) -> None:
    assert decode(encode(pkt, KEY), [KEY]) == pkt


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=MAX_DATAGRAM + 10))
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    try:
        decode(data, [KEY])
    except WireError:
        pass


@settings(max_examples=500)
@given(st.binary(min_size=MIN_DATAGRAM - MAC_LEN - 2, max_size=400))
def test_authentic_garbage_raises_only_wire_error(body: bytes) -> None:
    """Bodies that pass the MAC exercise the parser itself, not just the MAC check."""
    try:
        decode(sign(b"IL\x01" + body), [KEY])
    except WireError:
        pass


@settings(max_examples=300)
@given(packets, st.data())
def test_mutated_valid_packets_raise_only_wire_error(pkt: Packet, data: st.DataObject) -> None:
    raw = bytearray(encode(pkt, KEY)[:-MAC_LEN])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        out = decode(sign(bytes(raw[:cut] if data.draw(st.booleans()) else raw)), [KEY])
    except WireError:
        return
    assert isinstance(out, Packet)
