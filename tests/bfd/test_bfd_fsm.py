"""The BFD state machine with simulated time: two sessions back to back through the codec."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ironlb.bfd.fsm import (
    BFDConfigError,
    BFDStateMachine,
    Event,
    SessionConfig,
    SessionDown,
    SessionUp,
    StateChanged,
)
from ironlb.bfd.wire import BFDState, ControlPacket, Diag, decode
from ironlb.config.types import BFDProfile

FAST = SessionConfig(transmit_interval=300, receive_interval=300, detect_multiplier=3)


@dataclass
class Side:
    session: BFDStateMachine
    events: list[tuple[float, Event]] = field(default_factory=list)
    sent: list[tuple[float, ControlPacket]] = field(default_factory=list)
    silent: bool = False  # packets it sends are lost

    def kinds(self) -> list[type]:
        return [type(e) for _, e in self.events if not isinstance(e, StateChanged)]


class Wire:
    """Two sessions joined by a lossless zero-delay link (unless a side is silenced); time only moves in run()."""

    def __init__(self, a: SessionConfig = FAST, b: SessionConfig = FAST, jitter: float = 0.0) -> None:
        self.a = Side(BFDStateMachine(a, 0x1111, jitter=lambda: jitter))
        self.b = Side(BFDStateMachine(b, 0x2222, jitter=lambda: jitter))
        self.now = 0.0

    def other(self, side: Side) -> Side:
        return self.b if side is self.a else self.a

    def deliver(self) -> None:
        for _ in range(100):
            moved = False
            for side in (self.a, self.b):
                for pkt in side.session.outgoing():
                    moved = True
                    side.sent.append((self.now, pkt))
                    if not side.silent:
                        peer = self.other(side)
                        evs = peer.session.packet_received(decode(pkt.encode()), self.now, ttl=255)
                        peer.events += [(self.now, e) for e in evs]
            if not moved:
                return
        raise AssertionError("packet storm")

    def record(self, side: Side, events: list[Event]) -> None:
        side.events += [(self.now, e) for e in events]
        self.deliver()

    def run(self, until: float) -> None:
        self.deliver()
        while True:
            deadlines = [d for d in (self.a.session.next_deadline(), self.b.session.next_deadline()) if d is not None]
            if not deadlines or min(deadlines) > until:
                break
            self.now = max(self.now, min(deadlines))
            for side in (self.a, self.b):
                d = side.session.next_deadline()
                if d is not None and d <= self.now:
                    self.record(side, side.session.timer(self.now))
        self.now = until


def test_three_way_handshake_back_to_back() -> None:
    w = Wire()
    w.run(0.0)
    assert w.a.session.state is BFDState.UP and w.b.session.state is BFDState.UP
    assert w.a.kinds() == [SessionUp] and w.b.kinds() == [SessionUp]
    # a hears b's Init while Down and goes straight Up; b went Down -> Init -> Up.
    assert [e.new for _, e in w.a.events if isinstance(e, StateChanged)] == [BFDState.UP]
    assert [e.new for _, e in w.b.events if isinstance(e, StateChanged)] == [BFDState.INIT, BFDState.UP]
    assert w.a.session.remote.discr == 0x2222 and w.b.session.remote.discr == 0x1111
    w.run(10.0)
    assert w.a.session.is_up and w.b.session.is_up
    assert w.a.kinds() == [SessionUp]


def test_handshake_when_one_side_starts_later() -> None:
    w = Wire()
    w.b.silent = True
    w.run(2.5)
    assert w.a.session.state is BFDState.DOWN  # b's packets are lost: no handshake
    w.b.silent = False
    w.run(4.0)
    assert w.a.session.is_up and w.b.session.is_up


def test_slow_start_then_configured_interval_with_poll() -> None:
    w = Wire()
    w.b.silent = True
    w.run(3.5)
    times = [t for t, _ in w.a.sent]
    assert times == [0.0, 1.0, 2.0, 3.0]  # 1 s while not Up (jitter 0)
    assert all(p.desired_min_tx == 1_000_000 and p.required_min_rx == 300_000 for _, p in w.a.sent)
    w.b.silent = False
    w.run(6.0)
    assert w.a.session.is_up
    after_up = [(t, p) for t, p in w.a.sent if p.state is BFDState.UP]
    assert after_up[0][1].desired_min_tx == 300_000
    assert after_up[0][1].poll  # the end of slow start is a parameter change: Poll sequence
    assert any(p.final for _, p in w.b.sent)
    assert not w.a.session.poll_active
    steady = [t for t, p in after_up if t > 5.0]
    gaps = {round(b - a, 6) for a, b in zip(steady, steady[1:], strict=False)}
    assert gaps == {0.3}


def test_detection_after_multiplier_times_interval_of_silence() -> None:
    w = Wire()
    w.run(5.0)
    last_rx = max(t for t, _ in w.b.sent)
    w.b.silent = True
    w.run(10.0)
    downs = [(t, e) for t, e in w.a.events if isinstance(e, SessionDown)]
    assert len(downs) == 1
    t_down, ev = downs[0]
    assert ev.diag == Diag.CONTROL_DETECTION_EXPIRED and not ev.remote_admin_down
    assert t_down == pytest.approx(last_rx + 0.9)
    assert w.a.session.state is BFDState.DOWN and w.a.session.remote.discr == 0
    # a keeps talking: b hears Down (diag 1) and goes Down with "neighbor signaled down".
    b_downs = [e for _, e in w.b.events if isinstance(e, SessionDown)]
    assert b_downs == [SessionDown(Diag.NEIGHBOR_SIGNALED_DOWN)]
    assert w.a.session.counters.down_events == 1


def test_detection_time_uses_remote_multiplier_and_slowest_interval() -> None:
    w = Wire(
        a=SessionConfig(transmit_interval=100, receive_interval=200, detect_multiplier=3),
        b=SessionConfig(transmit_interval=500, receive_interval=100, detect_multiplier=5),
    )
    w.run(5.0)
    # a's detection time: b's mult 5 x max(a rx 200, b tx 500); b's: 3 x max(b rx 100, a tx 100).
    assert w.a.session.detection_time() == pytest.approx(2.5)
    assert w.b.session.detection_time() == pytest.approx(0.3)
    # a sends at max(a tx 100, b rx 100); b at max(b tx 500, a rx 200).
    assert w.a.session.transmit_interval_us() == 100_000
    assert w.b.session.transmit_interval_us() == 500_000


def test_recovery_after_silence() -> None:
    w = Wire()
    w.run(3.0)
    w.b.silent = True
    w.run(5.0)
    assert not w.a.session.is_up
    w.b.silent = False
    w.run(9.0)
    assert w.a.session.is_up and w.b.session.is_up
    assert w.a.kinds() == [SessionUp, SessionDown, SessionUp]


def test_poll_final_on_parameter_change() -> None:
    w = Wire()
    w.run(3.0)
    w.b.silent = True  # no Final can come back
    w.a.session.reconfigure(SessionConfig(transmit_interval=600, receive_interval=300, detect_multiplier=3), w.now)
    w.run(3.5)
    assert w.a.session.poll_active
    assert w.a.sent[-1][1].poll and w.a.sent[-1][1].desired_min_tx == 600_000
    # A slower TX must not be used before the Final.
    assert w.a.session.transmit_interval_us() == 300_000
    w.b.silent = False
    w.run(4.0)
    assert not w.a.session.poll_active
    assert w.a.session.transmit_interval_us() == 600_000
    assert w.b.session.detection_time() == pytest.approx(1.8)
    assert not w.a.sent[-1][1].poll
    assert w.a.session.is_up and w.b.session.is_up


def test_poll_rx_decrease_waits_for_final() -> None:
    w = Wire()
    w.run(3.0)
    w.b.silent = True
    w.a.session.reconfigure(SessionConfig(transmit_interval=300, receive_interval=50, detect_multiplier=3), w.now)
    assert w.a.session.detection_time() == pytest.approx(0.9)  # old RX until the Final
    w.b.silent = False
    w.run(4.0)
    assert w.a.session.required_min_rx_us == 50_000
    assert w.b.session.transmit_interval_us() == 300_000  # b's own TX is 300 ms anyway


def test_poll_is_answered_with_final_at_once() -> None:
    s = BFDStateMachine(FAST, 5, jitter=lambda: 0.0)
    s.timer(0.0)
    s.outgoing()
    s.packet_received(ControlPacket(state=BFDState.DOWN, my_discriminator=9, poll=True), 0.1)
    out = s.outgoing()
    finals = [p for p in out if p.final]
    assert len(finals) == 1 and not finals[0].poll and finals[0].your_discriminator == 9


def test_passive_sends_nothing_until_it_hears_the_peer() -> None:
    passive = SessionConfig(transmit_interval=300, receive_interval=300, detect_multiplier=3, passive=True)
    w = Wire(a=passive, b=passive)
    w.run(5.0)
    assert w.a.sent == [] and w.b.sent == []
    w2 = Wire(a=passive)
    w2.b.silent = True
    w2.run(5.0)
    assert w2.a.sent == []
    w2.b.silent = False
    w2.run(8.0)
    assert w2.a.session.is_up and w2.b.session.is_up
    # When the peer falls silent, the passive side goes Down and stops once the detection time has passed.
    w2.b.silent = True
    w2.run(12.0)
    assert not w2.a.session.is_up
    last = max(t for t, _ in w2.a.sent)
    w2.run(20.0)
    assert max(t for t, _ in w2.a.sent) == last


def test_admin_down_both_ways() -> None:
    w = Wire()
    w.run(3.0)
    w.record(w.a, w.a.session.admin_down(w.now))
    assert w.a.session.state is BFDState.ADMIN_DOWN
    assert w.a.kinds()[-1] is SessionDown
    assert w.b.session.state is BFDState.DOWN
    b_down = [e for _, e in w.b.events if isinstance(e, SessionDown)]
    assert b_down == [SessionDown(Diag.NEIGHBOR_SIGNALED_DOWN, remote_admin_down=True)]
    assert w.a.sent[-1][1].state is BFDState.ADMIN_DOWN and w.a.sent[-1][1].diag == Diag.ADMINISTRATIVELY_DOWN
    w.run(10.0)
    # AdminDown packets for about one detection time, then silence; b does not come up meanwhile.
    admin_times = [t for t, p in w.a.sent if p.state is BFDState.ADMIN_DOWN]
    assert admin_times == [3.0, 4.0, 5.0]
    assert not w.b.session.is_up
    w.record(w.a, w.a.session.admin_up(w.now))
    w.run(14.0)
    assert w.a.session.is_up and w.b.session.is_up


def test_peer_restart_with_new_discriminator() -> None:
    w = Wire()
    w.run(2.0)
    w.b.session = BFDStateMachine(FAST, 0x3333, jitter=lambda: 0.0)  # b restarted: Down, your discriminator 0
    w.run(6.0)
    downs = [e for _, e in w.a.events if isinstance(e, SessionDown)]
    assert downs == [SessionDown(Diag.NEIGHBOR_SIGNALED_DOWN, remote_reset=True)]
    assert w.a.session.is_up and w.a.session.remote.discr == 0x3333


def test_jitter_reduces_interval_by_up_to_25_percent() -> None:
    w = Wire(jitter=0.999)
    w.run(5.0)
    times = [t for t, p in w.a.sent if t > 2.0]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(0.3 * 0.75 - 1e-9 <= g < 0.3 * 0.76 for g in gaps)
    s = BFDStateMachine(SessionConfig(detect_multiplier=1), 1, jitter=lambda: 0.0)
    assert s._jittered(1_000_000) == pytest.approx(0.9)
    s2 = BFDStateMachine(SessionConfig(detect_multiplier=1), 1, jitter=lambda: 0.99999)
    assert s2._jittered(1_000_000) == pytest.approx(0.75, abs=1e-4)


def test_ttl_checks() -> None:
    single = BFDStateMachine(FAST, 1)
    down = ControlPacket(state=BFDState.DOWN, my_discriminator=9)
    assert single.packet_received(down, 0.0, ttl=254) == []
    assert single.counters.dropped == 1 and single.remote.discr == 0
    single.packet_received(down, 0.0, ttl=255)
    assert single.state is BFDState.INIT
    multi = BFDStateMachine(SessionConfig(multihop=True, minimum_ttl=250), 1)
    multi.packet_received(down, 0.0, ttl=249)
    assert multi.state is BFDState.DOWN and multi.counters.dropped == 1
    multi.packet_received(down, 0.0, ttl=250)
    assert multi.state is BFDState.INIT


def test_wrong_your_discriminator_is_dropped() -> None:
    s = BFDStateMachine(FAST, 1)
    s.packet_received(ControlPacket(state=BFDState.UP, my_discriminator=9, your_discriminator=2), 0.0)
    assert s.state is BFDState.DOWN and s.counters.dropped == 1


def test_no_periodic_tx_when_remote_min_rx_is_zero_or_demand() -> None:
    s = BFDStateMachine(FAST, 1, jitter=lambda: 0.0)
    s.packet_received(ControlPacket(state=BFDState.DOWN, my_discriminator=9, required_min_rx=0), 0.0)
    s.outgoing()
    assert s.next_deadline() != 0.0
    s.timer(0.5)
    assert s.outgoing() == []
    # Demand mode on the remote, both Up: periodic transmission stops.
    t = BFDStateMachine(FAST, 1, jitter=lambda: 0.0)
    t.packet_received(ControlPacket(state=BFDState.INIT, my_discriminator=9, your_discriminator=1), 0.0)
    assert t.is_up
    t.packet_received(
        ControlPacket(state=BFDState.UP, my_discriminator=9, your_discriminator=1, demand=True, final=True), 0.1
    )
    t.outgoing()
    t.timer(0.5)
    assert t.outgoing() == []


def test_profile_conversion() -> None:
    cfg = SessionConfig.from_profile(
        BFDProfile(
            name="p",
            receive_interval=200,
            transmit_interval=150,
            detect_multiplier=5,
            passive_mode=True,
            minimum_ttl=250,
        ),
        multihop=True,
    )
    assert cfg == SessionConfig(
        transmit_interval=150, receive_interval=200, detect_multiplier=5, passive=True, multihop=True, minimum_ttl=250
    )
    echo = SessionConfig.from_profile(BFDProfile(name="e", echo_mode=True, echo_interval=40), multihop=False)
    assert (echo.echo_mode, echo.echo_interval, echo.echo_receive_interval) == (True, 40, 40)
    # Multi-hop: no echo either way (RFC 5883 section 3); the shell can turn either direction off.
    multi = SessionConfig.from_profile(BFDProfile(name="e", echo_mode=True), multihop=True)
    assert (multi.echo_mode, multi.echo_receive_interval) == (False, 0)
    only_rx = SessionConfig.from_profile(BFDProfile(name="e", echo_mode=True), multihop=False, echo_transmit=False)
    assert (only_rx.echo_mode, only_rx.echo_receive_interval) == (False, 50)
    with pytest.raises(BFDConfigError, match="single hop only"):
        SessionConfig(echo_mode=True, multihop=True)
    with pytest.raises(BFDConfigError):
        SessionConfig(detect_multiplier=0)
    with pytest.raises(ValueError):
        BFDStateMachine(FAST, 0)


def test_next_deadline_and_time_is_never_read() -> None:
    s = BFDStateMachine(FAST, 1, jitter=lambda: 0.0)
    assert s.next_deadline() == 0.0
    s.timer(100.0)
    assert [p.state for p in s.outgoing()] == [BFDState.DOWN]
    assert s.next_deadline() == pytest.approx(101.0)


def test_remote_reset_is_flagged_but_path_failures_are_not() -> None:
    def up_session() -> BFDStateMachine:
        s = BFDStateMachine(FAST, 1, jitter=lambda: 0.0)
        s.packet_received(ControlPacket(state=BFDState.INIT, my_discriminator=9, your_discriminator=1), 0.0)
        assert s.is_up
        return s

    def down_event(pkt: ControlPacket) -> SessionDown:
        evs = [e for e in up_session().packet_received(pkt, 0.1) if isinstance(e, SessionDown)]
        assert len(evs) == 1
        return evs[0]

    # FRR deleting its session: Down, diag 3, our discriminator.
    assert down_event(ControlPacket(state=BFDState.DOWN, my_discriminator=9, your_discriminator=1, diag=3)).remote_reset
    # A new remote session: Down, your discriminator 0, new my discriminator.
    assert down_event(ControlPacket(state=BFDState.DOWN, my_discriminator=10)).remote_reset
    # The peer's detection time expired (one-way failure): a real path failure.
    ev = down_event(ControlPacket(state=BFDState.DOWN, my_discriminator=9, your_discriminator=1, diag=1))
    assert not ev.remote_reset and not ev.remote_admin_down and ev.diag == Diag.NEIGHBOR_SIGNALED_DOWN
    assert down_event(ControlPacket(state=BFDState.ADMIN_DOWN, my_discriminator=9, diag=7)).remote_admin_down
