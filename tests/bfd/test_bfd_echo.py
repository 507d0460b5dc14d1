"""The echo function of the BFD state machine (RFC 5880 §6.4, §6.8.9) with simulated time, and its codec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironlb.bfd.fsm import MAX_ECHO_OUTSTANDING, BFDStateMachine, Event, SessionConfig, SessionDown
from ironlb.bfd.wire import (
    BFDPacketError,
    BFDState,
    ControlPacket,
    Diag,
    EchoPacket,
    decode,
    decode_echo,
    echo_ipv4_datagram,
    parse_echo_ipv4,
)

ECHO = SessionConfig(
    transmit_interval=300,
    receive_interval=300,
    detect_multiplier=3,
    echo_mode=True,
    echo_interval=50,
    echo_receive_interval=50,
)
PLAIN = SessionConfig(transmit_interval=300, receive_interval=300, detect_multiplier=3)
ADDR = bytes([10, 97, 0, 1])


class Pair:
    """Two sessions on a zero-delay link; ``a``'s echo packets come back to it unless ``echo_lost``."""

    def __init__(self, a: SessionConfig = ECHO, b: SessionConfig = PLAIN) -> None:
        self.a = BFDStateMachine(a, 0x1111, jitter=lambda: 0.0)
        self.b = BFDStateMachine(b, 0x2222, jitter=lambda: 0.0)
        self.now = 0.0
        self.echo_lost = False
        self.echo_sent: list[tuple[float, EchoPacket]] = []
        self.events: list[Event] = []
        self.sent_by_a: list[ControlPacket] = []

    def deliver(self) -> None:
        for _ in range(100):
            moved = False
            for src, dst in ((self.a, self.b), (self.b, self.a)):
                for pkt in src.outgoing():
                    moved = True
                    if src is self.a:
                        self.sent_by_a.append(pkt)
                    evs = dst.packet_received(decode(pkt.encode()), self.now, ttl=255)
                    if dst is self.a:
                        self.events += evs
            for echo in self.a.outgoing_echo():
                moved = True
                self.echo_sent.append((self.now, echo))
                if not self.echo_lost:
                    self.events += self.a.echo_received(decode_echo(echo.encode()), self.now)
            if not moved:
                return
        raise AssertionError("packet storm")

    def run(self, until: float) -> None:
        self.deliver()
        while True:
            deadlines = [d for d in (self.a.next_deadline(), self.b.next_deadline()) if d is not None]
            if not deadlines or min(deadlines) > until:
                break
            self.now = max(self.now, min(deadlines))
            for s in (self.a, self.b):
                d = s.next_deadline()
                if d is not None and d <= self.now:
                    evs = s.timer(self.now)
                    if s is self.a:
                        self.events += evs
            self.deliver()
        self.now = until


def test_echo_runs_only_while_up_and_asked_for() -> None:
    # The peer advertises Required Min Echo RX 0: no echo packet ever leaves, even Up.
    p = Pair(b=PLAIN)
    p.run(5.0)
    assert p.a.is_up and not p.a.echo_active and p.echo_sent == []
    # Our packets advertise our echo receive interval (50 ms) and the peer's say 0.
    assert p.a.remote.min_echo_rx_us == 0 and p.b.remote.min_echo_rx_us == 50_000


def test_echo_interval_is_the_slower_of_ours_and_the_peers() -> None:
    peer = SessionConfig(transmit_interval=300, receive_interval=300, detect_multiplier=3, echo_receive_interval=80)
    p = Pair(b=peer)
    p.run(5.0)
    assert p.a.echo_active and p.a.echo_interval_us() == 80_000
    times = [t for t, _ in p.echo_sent]
    gaps = {round(b - a, 6) for a, b in zip(times, times[1:], strict=False)}
    assert gaps == {0.08}  # jitter 0 here: exactly the interval
    assert p.a.counters.echo_out == len(times) and p.a.counters.echo_in == len(times)
    assert p.a.is_up and p.a.echo_detection_time() == pytest.approx(0.24)


def test_lost_echo_takes_the_session_down_with_diag_2() -> None:
    peer = SessionConfig(transmit_interval=300, receive_interval=300, detect_multiplier=3, echo_receive_interval=50)
    p = Pair(b=peer)
    p.run(5.0)
    assert p.a.is_up
    p.echo_lost = True  # the forwarding path is broken, control packets still flow
    t0, mark = p.now, len(p.events)
    # On this zero-delay link the control handshake brings the session back Up within the same instant, so
    # watch the events rather than the state.
    while not any(isinstance(e, SessionDown) for e in p.events[mark:]):
        assert p.now - t0 < 1.0, "no Down in a second"
        p.run(p.now + 0.005)
    # Down within detect mult x echo interval (150 ms) of the last returned echo, well before the 900 ms
    # control detection time (control packets still arrive: only echo can tell).
    assert 0.15 - 1e-9 <= p.now - t0 <= 0.2, p.now - t0
    downs = [e for e in p.events[mark:] if isinstance(e, SessionDown)]
    assert [d.diag for d in downs] == [Diag.ECHO_FUNCTION_FAILED]
    # The peer was told why: a Down packet with diag 2 went out.
    assert any(d.state is BFDState.DOWN and d.diag == Diag.ECHO_FUNCTION_FAILED for d in p.sent_by_a)
    # While echo stays broken it keeps failing (Up through the control handshake, Down on echo again)...
    p.run(p.now + 1.0)
    assert p.a.counters.down_events >= 3
    # ... and once the path works again it stays Up.
    p.echo_lost = False
    p.run(p.now + 0.5)
    downs_before = p.a.counters.down_events
    p.run(p.now + 2.0)
    assert p.a.is_up and p.a.echo_active and p.a.counters.down_events == downs_before


def test_only_outstanding_sequence_numbers_count() -> None:
    peer = SessionConfig(transmit_interval=300, receive_interval=300, detect_multiplier=3, echo_receive_interval=50)
    p = Pair(b=peer)
    p.run(3.0)
    seen = p.echo_sent[-1][1]
    before = p.a.counters.echo_dropped
    # A replay of an echo that already came back, a made-up sequence number, another session's discriminator.
    for fake in (seen, EchoPacket(0x1111, seen.sequence + 1000), EchoPacket(0x9999, seen.sequence)):
        assert p.a.echo_received(fake, p.now) == []
    assert p.a.counters.echo_dropped == before + 3
    # Replays keep nothing alive: with only replayed echoes, the session still fails.
    p.echo_lost = True
    deadline, mark = p.now + 1.0, len(p.events)
    while p.now < deadline and not any(isinstance(e, SessionDown) for e in p.events[mark:]):
        p.a.echo_received(seen, p.now)
        p.run(p.now + 0.01)
    downs = [e.diag for e in p.events[mark:] if isinstance(e, SessionDown)]
    assert downs == [Diag.ECHO_FUNCTION_FAILED]


def test_outstanding_echoes_are_bounded() -> None:
    s = BFDStateMachine(ECHO, 7, jitter=lambda: 0.0)
    s.packet_received(
        ControlPacket(state=BFDState.INIT, my_discriminator=9, your_discriminator=7, required_min_echo_rx=10_000), 0.0
    )
    assert s.echo_active
    now = 0.0
    for _ in range(5 * MAX_ECHO_OUTSTANDING):
        now += 0.001
        s.timer(now)
        s.packet_received(
            ControlPacket(state=BFDState.UP, my_discriminator=9, your_discriminator=7, required_min_echo_rx=10_000), now
        )
        for e in s.outgoing_echo():
            if e.sequence % 50 == 0:
                s.echo_received(e, now)
    assert len(s._echo_pending) <= MAX_ECHO_OUTSTANDING


def test_no_echo_before_up() -> None:
    s = BFDStateMachine(ECHO, 7, jitter=lambda: 0.0)
    s.packet_received(ControlPacket(state=BFDState.DOWN, my_discriminator=9, required_min_echo_rx=10_000), 0.0)
    assert s.state is BFDState.INIT and not s.echo_active
    s.timer(1.0)
    assert s.outgoing_echo() == [] and s.next_deadline() is not None
    s.packet_received(
        ControlPacket(state=BFDState.UP, my_discriminator=9, your_discriminator=7, required_min_echo_rx=10_000), 1.5
    )
    # Up: the first echo packet is due at once (the shell's timer runs it).
    assert s.is_up and s.echo_active and s.next_deadline() == 1.5
    s.timer(1.5)
    assert [e.sequence for e in s.outgoing_echo()] == [1]


def test_no_echo_without_echo_mode_nor_on_down() -> None:
    p = Pair(a=PLAIN, b=ECHO)
    p.run(3.0)
    assert p.a.is_up and p.echo_sent == [] and not p.a.echo_active
    # b would send echo (we advertise 0 by default): it does not either.
    assert not p.b.echo_active and p.b.outgoing_echo() == []


def test_echo_datagram_known_bytes_and_round_trip() -> None:
    raw = echo_ipv4_datagram(ADDR, EchoPacket(5, 7).encode(), ident=3)
    assert raw[:4] == bytes.fromhex("45c00028")  # IPv4, CS6, total 40
    assert raw[8] == 255 and raw[9] == 17 and raw[12:16] == ADDR and raw[16:20] == ADDR
    assert raw[20:24] == bytes.fromhex("0ec90ec9")  # UDP 3785 -> 3785
    got = parse_echo_ipv4(raw)
    assert (got.source, got.destination, got.ttl) == (ADDR, ADDR, 255)
    assert decode_echo(got.payload) == EchoPacket(5, 7)
    # The peer lowers the TTL and fixes the header checksum: still valid.
    hop = bytearray(raw)
    hop[8] = 254
    hop[10:12] = b"\0\0"
    from ironlb.bfd import wire

    hop[10:12] = wire._checksum(bytes(hop[:20])).to_bytes(2, "big")
    assert parse_echo_ipv4(bytes(hop)).ttl == 254


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda b: b[:20], "too short"),
        (lambda b: b"\x65" + b[1:], "not an IPv4 header"),
        (lambda b: b[:6] + b"\x20\x00" + b[8:], "fragment"),
        (lambda b: b[:9] + b"\x06" + b[10:], "not UDP"),
        (lambda b: b[:11] + bytes([b[11] ^ 1]) + b[12:], "header checksum"),
        (lambda b: b[:22] + b"\x0e\xc8" + b[24:], "not the echo port"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "UDP checksum"),
        (lambda b: b[:2] + b"\x00\xff" + b[4:], "total length"),
    ],
)
def test_echo_datagram_rejections(mutate, why: str) -> None:  # type: ignore[no-untyped-def]
    raw = echo_ipv4_datagram(ADDR, EchoPacket(5, 7).encode())
    with pytest.raises(BFDPacketError, match=why):
        parse_echo_ipv4(mutate(raw))


def test_echo_payload_rejections() -> None:
    with pytest.raises(BFDPacketError):
        decode_echo(b"\x01\x0c\x00")
    with pytest.raises(BFDPacketError, match="not an ironlb echo"):
        decode_echo(b"\x02" + EchoPacket(1, 1).encode()[1:])
    with pytest.raises(BFDPacketError, match="zero"):
        decode_echo(bytes.fromhex("010c00000000000000000001"))
    with pytest.raises(BFDPacketError):
        EchoPacket(0, 1).encode()


@given(st.binary(max_size=80))
def test_fuzz_echo_parsers_raise_only_packet_error(data: bytes) -> None:
    for parse in (parse_echo_ipv4, decode_echo):
        try:
            parse(data)
        except BFDPacketError:
            pass


@given(st.integers(1, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 59), st.integers(0, 255))
def test_fuzz_mutated_echo_datagrams(discr: int, seq: int, index: int, value: int) -> None:
    raw = bytearray(echo_ipv4_datagram(ADDR, EchoPacket(discr, seq).encode()))
    if index < len(raw):
        raw[index] = value
    try:
        got = parse_echo_ipv4(bytes(raw))
        decode_echo(got.payload)
    except BFDPacketError:
        pass


def test_arp_table_lookup() -> None:
    from ipaddress import IPv4Address

    from ironlb.bfd.echo import Neighbour, echo_filter, parse_arp_table

    table = (
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "10.97.0.2        0x1         0x2         a6:99:c9:44:9b:7a     *        eth0\n"
        "10.97.0.3        0x1         0x0         00:00:00:00:00:00     *        eth0\n"
        "10.97.0.4        0x1         0x2         zz:99:c9:44:9b:7a     *        eth1\n"
        "garbage\n"
    )
    assert parse_arp_table(table, IPv4Address("10.97.0.2")) == Neighbour("eth0", bytes.fromhex("a699c9449b7a"))
    for absent in ("10.97.0.3", "10.97.0.4", "10.97.0.9"):  # incomplete, unparsable, unknown
        assert parse_arp_table(table, IPv4Address(absent)) is None
    assert len(echo_filter()) % 8 == 0
