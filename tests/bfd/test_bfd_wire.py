"""BFD control packet codec: known bytes, round trips, §6.8.6 rejections, fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironlb.bfd.wire import HEADER_LEN, BFDPacketError, BFDState, ControlPacket, Diag, decode

# Version 1, diag 0 / state Up, no flags, mult 3, length 24, discriminators 1 and 2, 300 ms, 300 ms, echo 50 ms.
UP_PACKET = bytes.fromhex("20c003180000000100000002000493e0000493e00000c350")


def test_decode_known_bytes() -> None:
    pkt = decode(UP_PACKET)
    assert pkt == ControlPacket(
        state=BFDState.UP,
        my_discriminator=1,
        your_discriminator=2,
        diag=Diag.NONE,
        detect_mult=3,
        desired_min_tx=300_000,
        required_min_rx=300_000,
        required_min_echo_rx=50_000,
    )
    assert pkt.encode() == UP_PACKET


def test_flags_and_diag_encoding() -> None:
    pkt = ControlPacket(state=BFDState.DOWN, my_discriminator=7, diag=Diag.CONTROL_DETECTION_EXPIRED, poll=True)
    raw = pkt.encode()
    assert raw[0] == 0x21  # version 1, diag 1
    assert raw[1] == 0x40 | 0x20  # Down, P
    final = ControlPacket(state=BFDState.UP, my_discriminator=7, your_discriminator=9, final=True, demand=True)
    assert final.encode()[1] == 0xC0 | 0x10 | 0x02
    assert decode(final.encode()) == final
    cpi = ControlPacket(state=BFDState.INIT, my_discriminator=7, your_discriminator=9, control_plane_independent=True)
    assert decode(cpi.encode()).control_plane_independent


def _with(raw: bytes, **fields: int) -> bytes:
    b = bytearray(raw)
    for name, value in fields.items():
        if name == "vers_diag":
            b[0] = value
        elif name == "flags":
            b[1] = value
        elif name == "mult":
            b[2] = value
        elif name == "length":
            b[3] = value
        elif name == "my":
            b[4:8] = struct.pack("!I", value)
        elif name == "your":
            b[8:12] = struct.pack("!I", value)
    return bytes(b)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (UP_PACKET[:23], "shorter"),
        (_with(UP_PACKET, vers_diag=0x40), "version"),
        (_with(UP_PACKET, vers_diag=0x00), "version"),
        (_with(UP_PACKET, flags=0xC4), "authentication"),
        (_with(UP_PACKET, length=23), "below"),
        (_with(UP_PACKET, length=26), "exceeds"),
        (_with(UP_PACKET, mult=0), "detect mult"),
        (_with(UP_PACKET, flags=0xC1), "multipoint"),
        (_with(UP_PACKET, my=0), "my discriminator"),
        (_with(UP_PACKET, your=0), "your discriminator"),
        (_with(UP_PACKET, flags=0x80, your=0), "your discriminator"),  # Init
        (_with(UP_PACKET, flags=0xF0), "poll and final"),
    ],
)
def test_rejections(raw: bytes, why: str) -> None:
    with pytest.raises(BFDPacketError, match=why):
        decode(raw)


def test_your_discriminator_zero_allowed_when_down() -> None:
    assert decode(_with(UP_PACKET, flags=0x40, your=0)).state is BFDState.DOWN
    assert decode(_with(UP_PACKET, flags=0x00, your=0)).state is BFDState.ADMIN_DOWN


def test_trailing_bytes_ignored_and_unknown_diag_kept() -> None:
    pkt = decode(_with(UP_PACKET, vers_diag=0x20 | 20) + b"\0\0\0\0")
    assert pkt.diag == 20
    assert pkt.encode()[0] == 0x20 | 20


def test_encode_refuses_invalid() -> None:
    with pytest.raises(BFDPacketError):
        ControlPacket(state=BFDState.UP, my_discriminator=0).encode()
    with pytest.raises(BFDPacketError):
        ControlPacket(state=BFDState.UP, my_discriminator=1, poll=True, final=True).encode()
    with pytest.raises(BFDPacketError):
        ControlPacket(state=BFDState.UP, my_discriminator=1, detect_mult=0).encode()
    with pytest.raises(BFDPacketError):
        ControlPacket(state=BFDState.UP, my_discriminator=1, desired_min_tx=1 << 32).encode()


u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def packets(draw: st.DrawFn) -> ControlPacket:
    state = draw(st.sampled_from(BFDState))
    your = draw(u32) if state in (BFDState.DOWN, BFDState.ADMIN_DOWN) else draw(st.integers(1, 0xFFFFFFFF))
    poll = draw(st.booleans())
    return ControlPacket(
        state=state,
        my_discriminator=draw(st.integers(1, 0xFFFFFFFF)),
        your_discriminator=your,
        diag=draw(st.integers(0, 31)),
        detect_mult=draw(st.integers(1, 255)),
        desired_min_tx=draw(u32),
        required_min_rx=draw(u32),
        required_min_echo_rx=draw(u32),
        poll=poll,
        final=(not poll) and draw(st.booleans()),
        control_plane_independent=draw(st.booleans()),
        demand=draw(st.booleans()),
    )


@given(packets())
def test_round_trip(pkt: ControlPacket) -> None:
    raw = pkt.encode()
    assert len(raw) == HEADER_LEN
    assert decode(raw) == pkt
    assert decode(raw).encode() == raw


@given(st.binary(max_size=64))
def test_fuzz_decode_raises_only_packet_error(data: bytes) -> None:
    try:
        pkt = decode(data)
    except BFDPacketError:
        return
    assert pkt.encode() == data[:HEADER_LEN]


@given(packets(), st.integers(0, HEADER_LEN - 1), st.integers(0, 255))
def test_fuzz_mutated_packets(pkt: ControlPacket, index: int, value: int) -> None:
    raw = bytearray(pkt.encode())
    raw[index] = value
    try:
        decode(bytes(raw))
    except BFDPacketError:
        pass
