"""BFD session state machine (RFC 5880 §6.8), sans-I/O.

One :class:`BFDStateMachine` per peer. It never reads a clock, opens a socket or
sleeps: the caller passes the time in (seconds, any monotonic origin, e.g.
``loop.time()``) and drains the packets to send with :meth:`BFDStateMachine.outgoing`.

Inputs
    :meth:`BFDStateMachine.packet_received` (a decoded packet, plus the received TTL /
    hop limit when the caller knows it), :meth:`BFDStateMachine.timer` (call it at or
    after :meth:`BFDStateMachine.next_deadline`), :meth:`BFDStateMachine.admin_down`,
    :meth:`BFDStateMachine.admin_up`, :meth:`BFDStateMachine.reconfigure`.
Outputs
    a list of events (:class:`StateChanged`, :class:`SessionUp`,
    :class:`SessionDown`) from every input, and :meth:`BFDStateMachine.outgoing`.

What is implemented, by RFC 5880 section:

- §6.2 / §6.8.6: three-way handshake Down -> Init -> Up, Up -> Down on a
  remote Down (diag 3), remote AdminDown (diag 3, flagged
  ``remote_admin_down``: RFC 5882 §3.2 says it is not a path failure).
- §6.8.4: detection time = remote Detect Mult x max(our Required Min RX,
  remote Desired Min TX); on expiry in Init/Up the session goes Down with diag 1;
  on any expiry bfd.RemoteDiscr is reset to 0 (§6.8.1).
- §6.8.7: TX interval = max(our Desired Min TX, remote Required Min RX), each
  interval reduced by a random 0-25 % (75-90 % of it when Detect Mult is 1);
  the random source is injectable. No periodic TX when the remote Required
  Min RX is 0, when remote Demand mode is active (both Up, D bit set: we never
  ask for Demand mode ourselves), nor in the passive role while
  bfd.RemoteDiscr is 0. A packet also goes out at once on each state change
  (as FRR's bfdd does) so the handshake does not wait a full interval.
- §6.8.3 slow start: Desired Min TX is at least 1 s while not Up; the
  configured value is used once Up.
- §6.8.3 Poll sequence: any timing change while Up (including the end of slow
  start) sets P on our packets until a packet with F arrives. Until then a
  larger TX interval or a smaller RX interval is not used (the old, safe values
  are); a smaller TX interval / larger RX interval applies at once. A received
  P is answered at once with an F packet.
- §6.8.16: AdminDown (diag 7); packets carrying AdminDown are sent for about one
  detection time, then transmission stops; received packets are ignored.
- TTL: single hop (RFC 5881 §5, GTSM) accepts only TTL/hop limit 255;
  multi-hop (RFC 5883 §2) drops packets below ``minimum_ttl``.

- §6.4 / §6.8.9 Echo function (single hop only, RFC 5883 §3): with
  ``echo_mode`` the session sends echo packets (:meth:`BFDStateMachine.outgoing_echo`)
  while it is Up and the peer's last Required Min Echo RX is nonzero, every
  max(our echo interval, that value), jittered as control packets; each carries
  our discriminator and a sequence number, and only a return of a sequence
  number still outstanding is accepted (:meth:`BFDStateMachine.echo_received`:
  a stale or replayed echo does not prove the path works). No return for Detect
  Mult x the echo interval takes the session Down with diag 2 ("echo function
  failed", §6.8.5). ``echo_receive_interval`` is what we advertise as Required
  Min Echo RX (0: we do not loop the peer's echo packets back; looping is the
  kernel's forwarding, not this machine's). Control packets keep their
  configured rate: the §6.8.3 SHOULD (Required Min RX of 1 s while echo is
  active) is left to the profile, as FRR's bfdd and MetalLB's docs do.

- §6.7.4 Keyed SHA1 / Meticulous Keyed SHA1 authentication with ``auth``
  (:class:`BFDAuth`): every packet we send carries the next sequence number
  (bfd.XmitAuthSeq, random at start, one more per packet) and its digest; a
  received packet is discarded unless it carries the same type and key ID, the
  right digest and, once a sequence number was accepted, one within
  3 x its Detect Mult after the last (Keyed: the last itself included;
  Meticulous: strictly after). bfd.AuthSeqKnown is forgotten after 2 detection
  times without an accepted packet (§6.8.1). Without ``auth`` a packet with the
  A bit is discarded, and with ``auth`` one without it.

Not implemented: Demand mode on our side; simple password and MD5 authentication.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ironlb.config.bfdprofile import BFDProfile

from .wire import (
    MAX_SHA1_KEY_LEN,
    AuthSection,
    AuthType,
    BFDState,
    ControlPacket,
    Diag,
    EchoPacket,
    sha1_digest_ok,
    sign_sha1,
)

US_PER_S = 1_000_000
SLOW_START_TX_US = 1_000_000
SINGLE_HOP_TTL = 255
MAX_INTERVAL_MS = 3_600_000
MAX_ECHO_OUTSTANDING = 256
"""Echo sequence numbers remembered at most (older ones are forgotten: bounded memory whatever the rates)."""


class BFDConfigError(ValueError):
    """A BFD configuration ironlb refuses (a value out of range)."""


@dataclass(frozen=True)
class BFDAuth:
    """Keyed SHA1 authentication of a session: type, key ID and the secret key (never printed)."""

    auth_type: AuthType
    key_id: int
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.key_id <= 255:
            raise BFDConfigError(f"invalid authentication key id {self.key_id}, must be in 0-255")
        if not 1 <= len(self.key) <= MAX_SHA1_KEY_LEN:
            raise BFDConfigError(f"a SHA1 authentication key must be 1-{MAX_SHA1_KEY_LEN} bytes")


@dataclass(frozen=True)
class SessionConfig:
    """Local parameters of one session; intervals in milliseconds as in MetalLB's BFDProfile."""

    transmit_interval: int = 300
    receive_interval: int = 300
    detect_multiplier: int = 3
    passive: bool = False
    multihop: bool = False
    minimum_ttl: int = 254
    echo_mode: bool = False
    echo_interval: int = 50
    echo_receive_interval: int = 0
    auth: BFDAuth | None = None

    def __post_init__(self) -> None:
        if self.echo_mode and self.multihop:
            raise BFDConfigError("echo mode is single hop only (RFC 5883 section 3)")
        if not 0 <= self.echo_receive_interval <= MAX_INTERVAL_MS:
            raise BFDConfigError(f"invalid echo receive interval value {self.echo_receive_interval}")
        for name in ("transmit_interval", "receive_interval", "echo_interval"):
            value = getattr(self, name)
            if not 1 <= value <= MAX_INTERVAL_MS:
                raise BFDConfigError(f"invalid {name.replace('_', ' ')} value {value}, must be in 1-{MAX_INTERVAL_MS}")
        if not 1 <= self.detect_multiplier <= 255:
            raise BFDConfigError(f"invalid detect multiplier value {self.detect_multiplier}, must be in 1-255")
        if not 1 <= self.minimum_ttl <= 255:
            raise BFDConfigError(f"invalid minimum ttl value {self.minimum_ttl}, must be in 1-255")

    @classmethod
    def from_profile(
        cls,
        profile: BFDProfile,
        *,
        multihop: bool,
        echo_transmit: bool = True,
        echo_receive: bool = True,
        auth: BFDAuth | None = None,
    ) -> SessionConfig:
        """The session parameters of a BFDProfile.

        With ``echoMode`` the session sends echo packets every ``echoInterval`` and advertises that interval as
        its Required Min Echo RX; never on a multi-hop session (RFC 5883 §3). The shell clears
        ``echo_transmit`` when it cannot send echo packets on this path (IPv6, no packet socket) and
        ``echo_receive`` when this machine does not forward the peer's echo packets back (IP forwarding off).
        """
        echo = profile.echo_mode and not multihop
        return cls(
            transmit_interval=profile.transmit_interval,
            receive_interval=profile.receive_interval,
            detect_multiplier=profile.detect_multiplier,
            passive=profile.passive_mode,
            multihop=multihop,
            minimum_ttl=profile.minimum_ttl,
            echo_mode=echo and echo_transmit,
            echo_interval=profile.echo_interval,
            echo_receive_interval=profile.echo_interval if echo and echo_receive else 0,
            auth=auth,
        )


@dataclass(frozen=True)
class StateChanged:
    """Any change of bfd.SessionState."""

    old: BFDState
    new: BFDState
    diag: int


@dataclass(frozen=True)
class SessionUp:
    """The session reached Up."""


@dataclass(frozen=True)
class SessionDown:
    """The session left Up. ``diag`` is why (1: detection time expired, 3: neighbour said Down, 7: we went AdminDown).

    ``remote_admin_down`` is True when the peer announced AdminDown: per RFC 5882 §3.2 that is an
    administrative action on the peer, not a forwarding failure. ``remote_reset`` is True when the peer
    reset its session rather than reported a path failure: a Down from a *new* remote session (Your
    Discriminator 0 and a new My Discriminator), or a Down whose diagnostic is "neighbor signaled down"
    (3) or "administratively down" (7) although we were Up and never signalled anything. FRR's bfdd does
    the latter when it deletes a session (its bgpd re-registers the session when the BGP session comes up
    and it learns the source address), then starts a new one. Path failures seen by the peer carry
    another diagnostic (1 detection time expired, 5 path down, ...) and are not flagged.
    """

    diag: int
    remote_admin_down: bool = False
    remote_reset: bool = False


Event = StateChanged | SessionUp | SessionDown


@dataclass
class SessionCounters:
    """Per-session counts (for metrics and tests)."""

    control_in: int = 0
    control_out: int = 0
    dropped: int = 0
    up_events: int = 0
    down_events: int = 0
    echo_in: int = 0
    echo_out: int = 0
    echo_dropped: int = 0
    auth_failed: int = 0


def _ms(value: int) -> int:
    return value * 1000


@dataclass
class _Remote:
    discr: int = 0
    state: BFDState = BFDState.DOWN
    min_rx_us: int = 1  # bfd.RemoteMinRxInterval: initialised to 1 (§6.8.1)
    desired_min_tx_us: int = 0
    detect_mult: int = 0
    demand: bool = False
    diag: int = 0
    min_echo_rx_us: int = 0


class BFDStateMachine:
    """One BFD session (RFC 5880 §6.8). ``jitter()`` returns a float in [0, 1) (default :func:`random.random`);
    ``auth_seq`` is the first bfd.XmitAuthSeq (random by default, as §6.8.1 asks)."""

    def __init__(
        self,
        config: SessionConfig,
        local_discr: int,
        *,
        jitter: Callable[[], float] = random.random,
        auth_seq: int | None = None,
    ) -> None:
        if not 1 <= local_discr <= 0xFFFFFFFF:
            raise ValueError("local discriminator must be a nonzero 32-bit value")
        self.config = config
        self.local_discr = local_discr
        self._jitter = jitter
        self.state = BFDState.DOWN
        self.local_diag: int = Diag.NONE
        self.remote = _Remote()
        self.counters = SessionCounters()
        # Advertised values (what goes into our packets)...
        self.desired_min_tx_us = max(_ms(config.transmit_interval), SLOW_START_TX_US)
        self.required_min_rx_us = _ms(config.receive_interval)
        self.detect_mult = config.detect_multiplier
        # ... and the ones in force (differ only during a Poll sequence).
        self._eff_tx_us = self.desired_min_tx_us
        self._eff_rx_us = self.required_min_rx_us
        self.poll_active = False
        self._out: list[ControlPacket] = []
        self._next_tx: float | None = None if config.passive else 0.0
        self._detect_deadline: float | None = None
        self._admin_tx_until: float | None = None
        # Echo function (§6.8.9): next transmission, detection deadline, sequence numbers awaiting their return.
        self._echo_out: list[EchoPacket] = []
        self._next_echo: float | None = None
        self._echo_deadline: float | None = None
        self._echo_seq = 0
        self._echo_pending: dict[int, float] = {}
        self._echo_sched_us = 0
        # Authentication (§6.8.1): bfd.XmitAuthSeq, bfd.RcvAuthSeq, bfd.AuthSeqKnown, last accepted packet.
        self._xmit_seq = random.getrandbits(32) if auth_seq is None else auth_seq & 0xFFFFFFFF
        self._rcv_seq = 0
        self._auth_seq_known = False
        self._last_rx: float | None = None

    # ------------------------------------------------------------------ queries

    @property
    def is_up(self) -> bool:
        return self.state is BFDState.UP

    def transmit_interval_us(self) -> int:
        """The negotiated TX interval before jitter: max(our Desired Min TX, remote Required Min RX)."""
        return max(self._eff_tx_us, self.remote.min_rx_us)

    def detection_time(self) -> float:
        """Seconds of silence after which the session goes Down (0 before any packet was received)."""
        return self.remote.detect_mult * max(self._eff_rx_us, self.remote.desired_min_tx_us) / US_PER_S

    def next_deadline(self) -> float | None:
        """When :meth:`timer` must next be called (None: nothing pending)."""
        pending = (self._next_tx, self._detect_deadline, self._next_echo, self._echo_deadline)
        deadlines = [d for d in pending if d is not None]
        return min(deadlines) if deadlines else None

    def outgoing(self) -> list[ControlPacket]:
        """Packets to send now, in order; the queue is emptied."""
        out, self._out = self._out, []
        return out

    def outgoing_echo(self) -> list[EchoPacket]:
        """Echo packets to send now (their payloads; the shell addresses them); the queue is emptied."""
        out, self._echo_out = self._echo_out, []
        return out

    @property
    def echo_active(self) -> bool:
        """True while we send echo packets: echo mode, Up, and the peer asks for them (§6.8.9)."""
        return self.config.echo_mode and self.state is BFDState.UP and self.remote.min_echo_rx_us > 0

    def echo_interval_us(self) -> int:
        """Echo TX interval before jitter: max(our echo interval, the peer's Required Min Echo RX)."""
        return max(_ms(self.config.echo_interval), self.remote.min_echo_rx_us)

    def echo_detection_time(self) -> float:
        """Seconds without a returned echo packet after which the session goes Down (diag 2)."""
        return self.detect_mult * self.echo_interval_us() / US_PER_S

    # ------------------------------------------------------------------ inputs

    def packet_received(self, pkt: ControlPacket, now: float, *, ttl: int | None = None) -> list[Event]:
        """A decoded packet for this session (§6.8.6). ``ttl`` is the received TTL / hop limit, None if unknown."""
        if ttl is not None and not self._ttl_ok(ttl):
            self.counters.dropped += 1
            return []
        if pkt.your_discriminator not in (0, self.local_discr):
            self.counters.dropped += 1
            return []
        if not self._authentic(pkt, now):
            self.counters.dropped += 1
            self.counters.auth_failed += 1
            return []
        self.counters.control_in += 1
        old_interval = self.transmit_interval_us()
        r = self.remote
        new_remote = pkt.your_discriminator == 0 and r.discr not in (0, pkt.my_discriminator)
        r.discr = pkt.my_discriminator
        r.state = pkt.state
        r.demand = pkt.demand
        r.min_rx_us = pkt.required_min_rx
        r.desired_min_tx_us = pkt.desired_min_tx
        r.detect_mult = pkt.detect_mult
        r.diag = int(pkt.diag)
        r.min_echo_rx_us = pkt.required_min_echo_rx
        if pkt.final and self.poll_active:
            self.poll_active = False
            self._eff_tx_us = self.desired_min_tx_us
            self._eff_rx_us = self.required_min_rx_us
        if self.state is BFDState.ADMIN_DOWN:
            return []
        # The packet is accepted: restart the detection timer before acting (§6.8.6, last step).
        self._detect_deadline = now + self.detection_time()
        events: list[Event] = []
        if pkt.state is BFDState.ADMIN_DOWN:
            if self.state is not BFDState.DOWN:
                self._set_state(BFDState.DOWN, Diag.NEIGHBOR_SIGNALED_DOWN, now, events, remote_admin_down=True)
        elif self.state is BFDState.DOWN:
            if pkt.state is BFDState.DOWN:
                self._set_state(BFDState.INIT, None, now, events)
            elif pkt.state is BFDState.INIT:
                self._set_state(BFDState.UP, None, now, events)
        elif self.state is BFDState.INIT:
            if pkt.state in (BFDState.INIT, BFDState.UP):
                self._set_state(BFDState.UP, None, now, events)
        elif pkt.state is BFDState.DOWN:  # we are Up
            reset = new_remote or pkt.diag in (Diag.NEIGHBOR_SIGNALED_DOWN, Diag.ADMINISTRATIVELY_DOWN)
            self._set_state(BFDState.DOWN, Diag.NEIGHBOR_SIGNALED_DOWN, now, events, remote_reset=reset)
        if pkt.poll:
            self._send(now, final=True)
        self._tx_conditions_changed(now, old_interval)
        self._echo_conditions_changed(now)
        return events

    def echo_received(self, pkt: EchoPacket, now: float) -> list[Event]:
        """One of our echo packets came back. Only a sequence number still outstanding counts (§6.8.9)."""
        if pkt.discriminator != self.local_discr or self._echo_pending.pop(pkt.sequence, None) is None:
            self.counters.echo_dropped += 1
            return []
        self.counters.echo_in += 1
        if self.echo_active:
            self._echo_deadline = now + self.echo_detection_time()
        return []

    def timer(self, now: float) -> list[Event]:
        """Run what is due at ``now``: detection expiry, then periodic transmission."""
        events: list[Event] = []
        if self._detect_deadline is not None and now >= self._detect_deadline:
            self._detect_deadline = None
            old_interval = self.transmit_interval_us()
            self.remote = _Remote()  # bfd.RemoteDiscr MUST be reset when the detection time expires
            if self.state in (BFDState.INIT, BFDState.UP):
                self._set_state(BFDState.DOWN, Diag.CONTROL_DETECTION_EXPIRED, now, events)
            self._tx_conditions_changed(now, old_interval)
        if self._echo_deadline is not None and now >= self._echo_deadline:
            self._echo_deadline = None
            if self.state is BFDState.UP:
                self._set_state(BFDState.DOWN, Diag.ECHO_FUNCTION_FAILED, now, events)
        if self._next_tx is not None and now >= self._next_tx:
            if self._tx_allowed(now):
                self._send_periodic(now)
            else:
                self._next_tx = None
        if self._next_echo is not None and now >= self._next_echo:
            self._send_echo(now)
        self._echo_conditions_changed(now)
        return events

    def admin_down(self, now: float) -> list[Event]:
        """Put the session in AdminDown (diag 7); AdminDown packets go out for about one detection time."""
        if self.state is BFDState.ADMIN_DOWN:
            return []
        events: list[Event] = []
        self._detect_deadline = None
        # Not Up any more, so the slow-start interval applies: send for about detect_mult such intervals.
        interval = max(_ms(self.config.transmit_interval), SLOW_START_TX_US, self.remote.min_rx_us) / US_PER_S
        self._admin_tx_until = now + (max(self.detect_mult, 3) - 0.5) * interval
        self._set_state(BFDState.ADMIN_DOWN, Diag.ADMINISTRATIVELY_DOWN, now, events)
        self._echo_conditions_changed(now)
        return events

    def admin_up(self, now: float) -> list[Event]:
        """Leave AdminDown: back to Down, transmitting again (unless passive and the peer is unknown)."""
        if self.state is not BFDState.ADMIN_DOWN:
            return []
        events: list[Event] = []
        self._admin_tx_until = None
        self._set_state(BFDState.DOWN, None, now, events)
        self._next_tx = now if self._tx_allowed(now) else None
        return events

    def reconfigure(self, config: SessionConfig, now: float) -> list[Event]:
        """New local parameters (a changed BFDProfile); timing changes while Up start a Poll sequence."""
        old_interval = self.transmit_interval_us()
        self.config = config
        tx = _ms(config.transmit_interval)
        if self.state is not BFDState.UP:
            tx = max(tx, SLOW_START_TX_US)
        self._change_timers(tx, _ms(config.receive_interval), config.detect_multiplier)
        if self._detect_deadline is not None and not self.poll_active:
            self._detect_deadline = min(self._detect_deadline, now + self.detection_time())
        if self.state is not BFDState.ADMIN_DOWN:
            self._tx_conditions_changed(now, old_interval)
        self._echo_conditions_changed(now)
        return []

    # ------------------------------------------------------------------ internals

    def _authentic(self, pkt: ControlPacket, now: float) -> bool:
        """§6.7.4 receipt: type, key ID, sequence window and digest; updates bfd.RcvAuthSeq when it passes."""
        auth, section = self.config.auth, pkt.auth
        if auth is None or section is None:
            return auth is None and section is None
        if section.auth_type != auth.auth_type or section.key_id != auth.key_id:
            return False
        if self._auth_seq_known and self._last_rx is not None and now - self._last_rx >= 2 * self.detection_time():
            self._auth_seq_known = False  # §6.8.1: no packet for twice the detection time
        if self._auth_seq_known:
            ahead = (section.sequence - self._rcv_seq) & 0xFFFFFFFF
            lowest = 1 if auth.auth_type is AuthType.METICULOUS_KEYED_SHA1 else 0
            if not lowest <= ahead <= 3 * pkt.detect_mult:
                return False
        if not sha1_digest_ok(pkt, auth.key):
            return False
        self._rcv_seq, self._auth_seq_known, self._last_rx = section.sequence, True, now
        return True

    def _ttl_ok(self, ttl: int) -> bool:
        if self.config.multihop:
            return ttl >= self.config.minimum_ttl
        return ttl == SINGLE_HOP_TTL

    def _change_timers(self, tx_us: int, rx_us: int, detect_mult: int) -> None:
        changed = (tx_us, rx_us, detect_mult) != (self.desired_min_tx_us, self.required_min_rx_us, self.detect_mult)
        self.desired_min_tx_us, self.required_min_rx_us, self.detect_mult = tx_us, rx_us, detect_mult
        if not changed:
            return
        if self.state is BFDState.UP:
            # A faster TX or a slower RX is safe at once; the reverse waits for the Final (§6.8.3).
            self._eff_tx_us = min(self._eff_tx_us, tx_us)
            self._eff_rx_us = max(self._eff_rx_us, rx_us)
            self.poll_active = True
        else:
            self._eff_tx_us, self._eff_rx_us = tx_us, rx_us
            self.poll_active = False

    def _set_state(
        self,
        new: BFDState,
        diag: int | None,
        now: float,
        events: list[Event],
        *,
        remote_admin_down: bool = False,
        remote_reset: bool = False,
    ) -> None:
        old = self.state
        self.state = new
        if diag is not None:
            self.local_diag = diag
        elif new is BFDState.UP:
            self.local_diag = Diag.NONE
        events.append(StateChanged(old, new, self.local_diag))
        if new is BFDState.UP:
            self.counters.up_events += 1
            events.append(SessionUp())
            # End of slow start.
            self._change_timers(_ms(self.config.transmit_interval), self.required_min_rx_us, self.detect_mult)
        elif old is BFDState.UP:
            self.counters.down_events += 1
            events.append(SessionDown(self.local_diag, remote_admin_down, remote_reset))
            self._change_timers(
                max(_ms(self.config.transmit_interval), SLOW_START_TX_US), self.required_min_rx_us, self.detect_mult
            )
        # Tell the peer at once (§6.8.7 allows it; bfdd does the same).
        if self._tx_allowed(now):
            self._send_periodic(now)

    def _tx_allowed(self, now: float) -> bool:
        if self.state is BFDState.ADMIN_DOWN and (self._admin_tx_until is None or now >= self._admin_tx_until):
            return False
        if self.config.passive and self.remote.discr == 0:
            return False
        if self.remote.min_rx_us == 0:
            return False
        return not (self.remote.demand and self.state is BFDState.UP and self.remote.state is BFDState.UP)

    def _tx_conditions_changed(self, now: float, old_interval_us: int) -> None:
        """After the remote parameters or ours changed: start, stop or pull in periodic transmission."""
        if not self._tx_allowed(now):
            self._next_tx = None
            return
        new_interval = self.transmit_interval_us()
        if self._next_tx is None:
            self._next_tx = now
        elif new_interval < old_interval_us:
            self._next_tx = min(self._next_tx, now + self._jittered(new_interval))

    def _jittered(self, interval_us: int) -> float:
        r = min(max(self._jitter(), 0.0), 1.0)
        factor = 0.9 - 0.15 * r if self.detect_mult == 1 else 1.0 - 0.25 * r
        return interval_us * factor / US_PER_S

    def _send_periodic(self, now: float) -> None:
        self._send(now, final=False)
        self._next_tx = now + self._jittered(self.transmit_interval_us())

    def _send(self, now: float, *, final: bool) -> None:
        pkt = ControlPacket(
            state=self.state,
            diag=self.local_diag,
            detect_mult=self.detect_mult,
            my_discriminator=self.local_discr,
            your_discriminator=self.remote.discr,
            desired_min_tx=self.desired_min_tx_us,
            required_min_rx=self.required_min_rx_us,
            required_min_echo_rx=_ms(self.config.echo_receive_interval),
            poll=self.poll_active and not final,
            final=final,
        )
        auth = self.config.auth
        if auth is not None:
            self._xmit_seq = (self._xmit_seq + 1) & 0xFFFFFFFF
            pkt = sign_sha1(replace(pkt, auth=AuthSection(auth.auth_type, auth.key_id, self._xmit_seq)), auth.key)
        self._out.append(pkt)
        self.counters.control_out += 1

    def _echo_conditions_changed(self, now: float) -> None:
        """Start or stop the echo function after any input (§6.8.9: only while Up and asked for)."""
        if not self.echo_active:
            self._next_echo = self._echo_deadline = None
            self._echo_pending.clear()
            return
        interval = self.echo_interval_us()
        if self._next_echo is None:  # (re)starting: send at once, expect a return within the detection time
            self._next_echo = now
            self._echo_deadline = now + self.echo_detection_time()
        elif interval < self._echo_sched_us:  # the peer lowered its Required Min Echo RX: no need to wait
            self._next_echo = min(self._next_echo, now + self._jittered(interval))
        self._echo_sched_us = interval

    def _send_echo(self, now: float) -> None:
        self._echo_seq = (self._echo_seq + 1) & 0xFFFFFFFF
        self._echo_pending[self._echo_seq] = now
        horizon = now - 2 * self.echo_detection_time()
        while self._echo_pending and (
            len(self._echo_pending) > MAX_ECHO_OUTSTANDING or next(iter(self._echo_pending.values())) < horizon
        ):
            del self._echo_pending[next(iter(self._echo_pending))]
        self._echo_out.append(EchoPacket(self.local_discr, self._echo_seq))
        self.counters.echo_out += 1
        self._next_echo = now + self._jittered(self.echo_interval_us())


__all__ = [
    "SINGLE_HOP_TTL",
    "SLOW_START_TX_US",
    "BFDAuth",
    "BFDConfigError",
    "BFDStateMachine",
    "Event",
    "SessionConfig",
    "SessionCounters",
    "SessionDown",
    "SessionUp",
    "StateChanged",
]
