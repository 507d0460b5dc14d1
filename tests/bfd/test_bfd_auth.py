"""BFD Keyed SHA1 / Meticulous Keyed SHA1 authentication (RFC 5880 §4.4, §6.7.4): codec and session rules."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironlb.bfd.fsm import BFDAuth, BFDConfigError, BFDStateMachine, SessionConfig
from ironlb.bfd.wire import (
    AuthSection,
    AuthType,
    BFDPacketError,
    BFDState,
    ControlPacket,
    decode,
    sha1_digest_ok,
    sign_sha1,
)

KEY = secrets.token_bytes(16)  # made up per run
MET = BFDAuth(AuthType.METICULOUS_KEYED_SHA1, 3, KEY)
KEYED = BFDAuth(AuthType.KEYED_SHA1, 3, KEY)


def signed(seq: int, auth: BFDAuth = MET, *, state: BFDState = BFDState.DOWN, mult: int = 3) -> ControlPacket:
    pkt = ControlPacket(
        state=state, my_discriminator=9, detect_mult=mult, auth=AuthSection(auth.auth_type, auth.key_id, seq)
    )
    return decode(sign_sha1(pkt, auth.key).encode())


def test_codec_round_trip_and_digest() -> None:
    raw = signed(0xFFFFFFFF).encode()
    assert len(raw) == 52 and raw[1] & 0x04 and raw[3] == 52  # A bit, Length 24 + 28
    assert raw[24:28] == bytes((5, 28, 3, 0)) and raw[28:32] == b"\xff\xff\xff\xff"
    pkt = decode(raw)
    assert sha1_digest_ok(pkt, KEY) and not sha1_digest_ok(pkt, KEY[:-1] + bytes([KEY[-1] ^ 1]))
    tampered = bytearray(raw)
    tampered[8] ^= 1  # Your Discriminator
    assert not sha1_digest_ok(decode(bytes(tampered)), KEY)
    assert not sha1_digest_ok(ControlPacket(state=BFDState.DOWN, my_discriminator=1), KEY)
    assert "key" not in repr(MET).replace("key_id", "")  # the key is never printed


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda b: b[:3] + b"\x18" + b[4:24], "without an authentication section"),
        (lambda b: b[:24] + b"\x02" + b[25:], "type 2 is not supported"),
        (lambda b: b[:25] + b"\x18" + b[26:], "section of 24 bytes"),
        (lambda b: b[:3] + b"\x40" + b[4:] + bytes(12), "packet of length 64"),
    ],
)
def test_codec_rejections(mutate, why: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BFDPacketError, match=why):
        decode(mutate(signed(1).encode()))


@given(st.binary(min_size=24, max_size=80))
def test_fuzz_authenticated_decode_raises_only_packet_error(data: bytes) -> None:
    data = data[:1] + bytes([data[1] | 0x04]) + data[2:]
    try:
        decode(data)
    except BFDPacketError:
        pass


def session(auth: BFDAuth | None, seq: int = 100) -> BFDStateMachine:
    return BFDStateMachine(SessionConfig(auth=auth), 1, jitter=lambda: 0.0, auth_seq=seq)


SENT: list[ControlPacket] = []


def pair(a_auth: BFDAuth | None, b_auth: BFDAuth | None) -> tuple[BFDStateMachine, BFDStateMachine]:
    a, b = session(a_auth, 10), BFDStateMachine(SessionConfig(auth=b_auth), 2, jitter=lambda: 0.0, auth_seq=0xFFFFFFF0)
    now = 0.0
    SENT.clear()
    for _ in range(40):  # wraps b's sequence numbers past 2^32
        for src, dst in ((a, b), (b, a)):
            for pkt in src.outgoing():
                if src is b:
                    SENT.append(pkt)
                dst.packet_received(decode(pkt.encode()), now, ttl=255)
        now += 0.25
        a.timer(now)
        b.timer(now)
    return a, b


@pytest.mark.parametrize("auth", [MET, KEYED])
def test_same_key_comes_up_and_every_packet_is_signed(auth: BFDAuth) -> None:
    a, b = pair(auth, auth)
    assert a.is_up and b.is_up and a.counters.auth_failed == b.counters.auth_failed == 0
    seqs = [p.auth.sequence for p in SENT if p.auth is not None]
    assert len(seqs) == len(SENT) > 10  # every packet signed, one more each time, across 2^32
    assert all((y - x) & 0xFFFFFFFF == 1 for x, y in zip(seqs, seqs[1:], strict=False)) and seqs[-1] < seqs[0]


@pytest.mark.parametrize(
    ("a_auth", "b_auth"),
    [
        (MET, BFDAuth(AuthType.METICULOUS_KEYED_SHA1, 3, secrets.token_bytes(16))),  # wrong key
        (MET, BFDAuth(AuthType.METICULOUS_KEYED_SHA1, 4, KEY)),  # other key id
        (MET, KEYED),  # other type
        (MET, None),  # one side without authentication (A bit clear / set)
    ],
)
def test_mismatch_never_comes_up(a_auth: BFDAuth, b_auth: BFDAuth | None) -> None:
    a, b = pair(a_auth, b_auth)
    assert not a.is_up and not b.is_up
    assert a.counters.auth_failed > 0 and b.counters.auth_failed > 0 and a.counters.control_in == 0


def test_meticulous_sequence_window_and_replay() -> None:
    s = session(MET)
    assert s.packet_received(signed(1000), 0.0) is not None and s.counters.control_in == 1
    for bad in (1000, 999, 1000 + 3 * 3 + 1):  # replay, older, beyond 3 x Detect Mult
        s.packet_received(signed(bad), 0.1)
    assert s.counters.auth_failed == 3
    s.packet_received(signed(1000 + 9), 0.2)  # the far end of the window
    assert s.counters.control_in == 2
    # Silence for two detection times: bfd.AuthSeqKnown is forgotten, any sequence number is taken again.
    s.packet_received(signed(5), 0.2 + 2 * s.detection_time() + 0.01)
    assert s.counters.control_in == 3 and s.counters.auth_failed == 3


def test_keyed_sha1_accepts_a_repeated_sequence_number() -> None:
    s = session(KEYED)
    s.packet_received(signed(7, KEYED), 0.0)
    s.packet_received(signed(7, KEYED), 0.1)  # Keyed (not Meticulous): the last number itself is in the window
    s.packet_received(signed(6, KEYED), 0.2)
    assert (s.counters.control_in, s.counters.auth_failed) == (2, 1)


def test_auth_config_checks() -> None:
    with pytest.raises(BFDConfigError, match="1-20 bytes"):
        BFDAuth(AuthType.KEYED_SHA1, 1, b"")
    with pytest.raises(BFDConfigError, match="1-20 bytes"):
        BFDAuth(AuthType.KEYED_SHA1, 1, bytes(21))
    with pytest.raises(BFDConfigError, match="key id"):
        BFDAuth(AuthType.KEYED_SHA1, 256, b"k")
    assert replace(SessionConfig(), auth=MET).auth == MET
