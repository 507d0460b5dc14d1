"""The BGP finite-state machine of one session, sans-I/O (in the style of h11/h2).

The caller owns sockets and clocks: it feeds bytes, connection events and the
current time in, and takes bytes (:meth:`BGPStateMachine.data_to_send`), events and the
next timer deadline (:meth:`BGPStateMachine.next_deadline`) out.  Nothing here blocks,
sleeps or reads a clock, so every timing rule is testable with fake time.

ironlb only announces: received routes are validated (a malformed UPDATE
must still reset the session, RFC 4271 section 6.3) and then dropped.

One machine runs one TCP connection. When the peer connects to us while we connect to it (RFC 4271 section 6.8),
the shell runs a machine per connection and asks :func:`resolve_collision` which one to close each time one of them
reports :class:`OpenReceived`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from .attributes import Attributes
from .config import DynamicASN, PeerConfig, router_id_from_node_name
from .errors import (
    BGPError,
    CeaseSubcode,
    ErrorCode,
    FSMSubcode,
    OpenSubcode,
    describe,
)
from .updates import PathContext, build_announcements, pack_withdrawals
from .wire import (
    HEADER_LEN,
    IPV4_OVER_IPV6,
    IPV4_UNICAST,
    Address,
    Capabilities,
    CapabilityCode,
    Family,
    GracefulRestart,
    MessageType,
    Network,
    NotificationMessage,
    OpenMessage,
    RouteRefreshMessage,
    UpdateMessage,
    decode_message,
    encode_capabilities,
    encode_end_of_rib,
    encode_keepalive,
    encode_notification,
    encode_open,
    family_of,
    shutdown_communication,
    split_messages,
)

PEER_KEEPALIVE_WAIT = 1.0
"""Seconds at most that our KEEPALIVE on a connection we opened to a peer with a lower identifier waits for the
peer's (see :meth:`BGPStateMachine.confirm_open`)."""

RouteTable = Mapping[Network, Attributes] | Mapping[IPv4Network, Attributes] | Mapping[IPv6Network, Attributes]
"""What :meth:`BGPStateMachine.set_routes` takes; the union because Mapping keys are invariant."""


class BGPState(Enum):
    """RFC 4271 section 8 states."""

    IDLE = "Idle"
    CONNECT = "Connect"
    ACTIVE = "Active"
    OPEN_SENT = "OpenSent"
    OPEN_CONFIRM = "OpenConfirm"
    ESTABLISHED = "Established"


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Established:
    """The session reached Established; the negotiated parameters."""

    peer_asn: int
    peer_router_id: IPv4Address
    hold_time: int
    keepalive_time: float
    families: frozenset[Family]
    graceful_restart: bool
    four_octet_as: bool
    route_refresh: bool


@dataclass(frozen=True)
class OpenReceived:
    """The peer's OPEN was accepted (-> OpenConfirm): the moment RFC 4271 section 6.8 checks for a collision."""

    peer_router_id: IPv4Address
    peer_asn: int


@dataclass(frozen=True)
class KeepaliveAwaited:
    """With :attr:`BGPStateMachine.hold_open`: the peer's KEEPALIVE that ours waited for (see
    :meth:`BGPStateMachine.confirm_open`) came; it is read, and ours goes out, at the next :meth:`confirm_open`."""


@dataclass(frozen=True)
class SessionDown:
    """The session left OpenSent/OpenConfirm/Established; the shell must close TCP.

    ``notification_sent``/``notification_received`` tell who ended it and why.
    """

    reason: str
    was_established: bool
    notification_sent: NotificationMessage | None = None
    notification_received: NotificationMessage | None = None


@dataclass(frozen=True)
class NotificationReceived:
    """The peer sent a NOTIFICATION (always followed by SessionDown)."""

    code: int
    subcode: int
    data: bytes

    @property
    def description(self) -> str:
        """Code table text for logs."""
        return describe(self.code, self.subcode)


@dataclass(frozen=True)
class RouteRefreshReceived:
    """The peer asked for our routes of ``family`` again; they have been re-queued."""

    family: Family


@dataclass(frozen=True)
class EndOfRibReceived:
    """The peer finished its initial UPDATEs for ``family`` (informational)."""

    family: Family


@dataclass(frozen=True)
class RoutesUnsendable:
    """Prefixes whose path attributes fit no UPDATE: held back until the next :meth:`BGPStateMachine.set_routes`."""

    prefixes: tuple[Network, ...]


Event = (
    Established
    | OpenReceived
    | KeepaliveAwaited
    | SessionDown
    | NotificationReceived
    | RouteRefreshReceived
    | EndOfRibReceived
    | RoutesUnsendable
)


@dataclass
class Counters:
    """Monotonic message counters for metrics (FRR sidecar metric names map onto them)."""

    opens_sent: int = 0
    opens_received: int = 0
    updates_sent: int = 0
    updates_received: int = 0
    keepalives_sent: int = 0
    keepalives_received: int = 0
    notifications_sent: int = 0
    notifications_received: int = 0
    route_refresh_received: int = 0
    established_transitions: int = 0


@dataclass(frozen=True)
class Negotiated:
    """What the OPEN exchange settled for the current connection."""

    peer_asn: int
    peer_router_id: IPv4Address
    hold_time: int
    keepalive_time: float
    families: frozenset[Family]
    four_octet_as: bool
    graceful_restart: bool
    route_refresh: bool
    ibgp: bool
    peer_capabilities: Capabilities
    ipv4_over_ipv6: bool = False
    """RFC 8950 extended next hop negotiated for IPv4 unicast (unnumbered sessions offer it)."""


class BGPStateMachine:
    """One BGP session's protocol state; see the module docstring for the contract.

    Inputs: :meth:`connection_made`, :meth:`data_received`, :meth:`connection_lost`,
    :meth:`timer`, :meth:`set_routes`, :meth:`close`.  Outputs: returned events,
    :meth:`data_to_send`, :meth:`next_deadline`, :attr:`counters`.
    """

    def __init__(self, config: PeerConfig) -> None:
        self.config = config
        self.state = BGPState.IDLE
        self.counters = Counters()
        self.negotiated: Negotiated | None = None
        self.local_address: Address | None = None
        self.peer_address: Address | None = None
        self.router_id: IPv4Address | None = None
        self.inbound = False
        """Whether the peer opened the current TCP connection (we accepted it) rather than us."""
        self.hold_open = False
        """When True, an accepted OPEN waits for :meth:`confirm_open` before our KEEPALIVE goes out and anything
        received after it is read: the shell settles a connection collision in between, so a connection it closes
        never looked confirmed to the peer."""
        self._confirm_pending = False
        self._keepalive_wait: float | None = None
        self._peer_confirmed = False
        self._beside: Address | None = None
        self._desired: dict[Network, Attributes] = {}
        self._sent: dict[Network, Attributes] = {}
        self._unsendable: set[Network] = set()
        self._out = bytearray()
        self._in = bytearray()
        self._hold_deadline: float | None = None
        self._keepalive_deadline: float | None = None
        self._ctx: PathContext | None = None

    # ------------------------------------------------------------------ outputs

    def data_to_send(self) -> bytes:
        """Bytes to write to the TCP connection, in order; clears the buffer."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`timer` must next be called, or None if no timer runs."""
        deadlines = [d for d in (self._hold_deadline, self._keepalive_deadline, self._keepalive_wait) if d is not None]
        return min(deadlines) if deadlines else None

    @property
    def prefixes_announced(self) -> int:
        """Prefixes currently advertised to the peer (MetalLB ``announced_prefixes_total``)."""
        return len(self._sent)

    @property
    def prefixes_pending(self) -> int:
        """Desired prefixes not (yet, or not at all) advertised with their current attributes."""
        return sum(1 for p, a in self._desired.items() if self._sent.get(p) != a)

    @property
    def desired(self) -> Mapping[Network, Attributes]:
        """The routes last given to :meth:`set_routes` (read-only view); a second connection starts from them."""
        return dict(self._desired)

    @property
    def advertised(self) -> Mapping[Network, Attributes]:
        """The Adj-RIB-Out as sent on this connection (read-only view)."""
        return dict(self._sent)

    @property
    def is_established(self) -> bool:
        """Shortcut for ``state is BGPState.ESTABLISHED``."""
        return self.state is BGPState.ESTABLISHED

    @property
    def confirmed(self) -> bool:
        """Established, or in OpenConfirm with our KEEPALIVE sent: the peer may already have it Established."""
        if self.state is BGPState.ESTABLISHED:
            return True
        return self.state is BGPState.OPEN_CONFIRM and not self._confirm_pending and self._keepalive_wait is None

    @property
    def awaiting_confirm(self) -> bool:
        """With :attr:`hold_open`: the peer's OPEN was accepted and waits for :meth:`confirm_open`."""
        return self._confirm_pending

    # ------------------------------------------------------------------ connection lifecycle

    def connection_started(self) -> None:
        """The shell is dialling (Idle/Active -> Connect)."""
        if self.state in (BGPState.IDLE, BGPState.ACTIVE):
            self.state = BGPState.CONNECT

    def connection_failed(self) -> None:
        """The dial failed; the shell will retry after its backoff (Connect -> Active)."""
        if self.state in (BGPState.IDLE, BGPState.CONNECT):
            self.state = BGPState.ACTIVE

    def passive_open(self) -> None:
        """A passive peer: wait for the peer to connect, never dial (Idle -> Active, RFC 4271 event 5)."""
        if self.state is BGPState.IDLE:
            self.state = BGPState.ACTIVE

    def connection_made(
        self,
        local_addr: Address,
        peer_addr: Address,
        now: float,
        *,
        beside: Address | None = None,
        inbound: bool = False,
    ) -> None:
        """TCP is up: send OPEN and wait for the peer's (-> OpenSent).

        ``beside``: an address of the other family on the interface holding ``local_addr``, the next hop for that
        family's prefixes on a dual-stack session (``dualStackAddressFamily``); looking it up is the shell's I/O.
        ``inbound``: the peer connected to us; its OPEN must then come within ``config.inbound_open_time``, not the
        4 minutes a connection we dialled gets, so a silent inbound connection does not sit on a slot.
        """
        if self.state in (BGPState.OPEN_SENT, BGPState.OPEN_CONFIRM, BGPState.ESTABLISHED):
            raise RuntimeError(f"connection_made in state {self.state.value}")
        self._reset_connection()
        self.local_address = _unmap(local_addr)
        self.peer_address = _unmap(peer_addr)
        self._beside = beside
        self.inbound = inbound
        self.router_id = self._pick_router_id()
        self._send(encode_open(self._our_open()))
        self.counters.opens_sent += 1
        self.state = BGPState.OPEN_SENT
        # RFC 4271 8.2.2: a large hold timer (4 min suggested) until the OPEN arrives.
        wait = self.config.open_hold_time
        if inbound:
            wait = min(wait, self.config.inbound_open_time)
        self._hold_deadline = now + wait

    def connection_lost(self, reason: str = "connection closed by peer") -> list[Event]:
        """TCP closed or failed under us."""
        if self.state in (BGPState.OPEN_SENT, BGPState.OPEN_CONFIRM, BGPState.ESTABLISHED):
            return [self._down(reason)]
        self.state = BGPState.IDLE
        return []

    def close(
        self,
        reason: str = "",
        *,
        subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
        graceful_restart: bool = False,
    ) -> list[Event]:
        """Stop the session on our initiative.

        Normally sends NOTIFICATION cease (6/2 with an RFC 9003 shutdown message by
        default).  With ``graceful_restart`` and GR negotiated it sends nothing, so
        the shell just drops TCP and the peer keeps our routes for the restart time.
        """
        if self.state not in (BGPState.OPEN_SENT, BGPState.OPEN_CONFIRM, BGPState.ESTABLISHED):
            self.state = BGPState.IDLE
            return []
        neg = self.negotiated
        if graceful_restart and neg is not None and neg.graceful_restart and self.is_established:
            return [self._down(reason or "closed for graceful restart")]
        data = b""
        if subcode in (CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, CeaseSubcode.ADMINISTRATIVE_RESET) and reason:
            data = shutdown_communication(reason)
        return [self._notify_and_down(BGPError(ErrorCode.CEASE, subcode, data, reason or describe(6, subcode)))]

    # ------------------------------------------------------------------ input

    def data_received(self, data: bytes, now: float) -> list[Event]:
        """Bytes from the peer; returns what happened.  Stops at the first error."""
        if self.state not in (BGPState.OPEN_SENT, BGPState.OPEN_CONFIRM, BGPState.ESTABLISHED):
            return []
        self._in += data
        if self._confirm_pending:
            return []
        events: list[Event] = []
        try:
            msgs = split_messages(self._in)
            for k, raw in enumerate(msgs):
                if self._awaited_keepalive(raw):  # held again: the shell settles, then confirm_open reads it
                    self._in[:0] = b"".join(msgs[k:])
                    events.append(KeepaliveAwaited())
                    break
                events.extend(self._handle_message(raw, now))
                if not self._connected():
                    break
                if self._confirm_pending:  # the rest waits for confirm_open, in front of what comes next
                    self._in[:0] = b"".join(msgs[k + 1 :])
                    break
        except BGPError as err:
            events.append(self._notify_and_down(err))
        return events

    def confirm_open(self, now: float) -> list[Event]:
        """With :attr:`hold_open`: the peer's OPEN stands (no collision closed this connection). Our KEEPALIVE
        goes out and what arrived after the OPEN is processed; a no-op when no OPEN waits.

        On a connection we opened to a peer whose identifier is lower than ours, our KEEPALIVE waits for the
        peer's (at most :data:`PEER_KEEPALIVE_WAIT`): if the peer dialled us at the same time, it closes its own
        connection (ours wins, RFC 4271 section 6.8), and the peer's KEEPALIVE here says it has read our OPEN and
        made that decision. FRR 8.4 queues the stop of its losing connection; a KEEPALIVE of ours read before that
        stop ran established our connection first, and the stop then reset it. The lower identifier never waits,
        so two speakers doing this never wait for each other. With :attr:`hold_open` the peer's KEEPALIVE is held
        too (:class:`KeepaliveAwaited`), so that the shell can first see the peer's own connection closed, if it
        has one, and then call this again.
        """
        if not self._confirm_pending:
            return []
        self._confirm_pending = False
        self._confirm(now)
        return self.data_received(b"", now)

    def timer(self, now: float) -> list[Event]:
        """Fire every timer whose deadline is <= ``now``."""
        events: list[Event] = []
        if self._hold_deadline is not None and now >= self._hold_deadline:
            err = BGPError(ErrorCode.HOLD_TIMER_EXPIRED, 0, b"", "hold timer expired")
            events.append(self._notify_and_down(err))
            return events
        if self._keepalive_wait is not None and now >= self._keepalive_wait:
            self._keepalive_wait = None
            self._send_keepalive(now)
        if self._keepalive_deadline is not None and now >= self._keepalive_deadline:
            self._send_keepalive(now)
        return events

    def set_routes(self, desired: RouteTable) -> list[Event]:
        """Replace the whole desired Adj-RIB-Out; UPDATEs for the difference go out if Established."""
        self._desired = dict(desired.items())
        self._unsendable.clear()
        if self.state is BGPState.ESTABLISHED:
            return self._sync()
        return []

    # ------------------------------------------------------------------ internals

    def _connected(self) -> bool:
        return self.state in (BGPState.OPEN_SENT, BGPState.OPEN_CONFIRM, BGPState.ESTABLISHED)

    def _reset_connection(self) -> None:
        self._confirm_pending = False
        self._keepalive_wait = None
        self._peer_confirmed = False
        self._in.clear()
        self._out.clear()
        self._sent.clear()
        self._unsendable.clear()
        self.negotiated = None
        self._ctx = None
        self._hold_deadline = None
        self._keepalive_deadline = None

    def _pick_router_id(self) -> IPv4Address:
        """Configured, else the session's local IPv4, else crc32 of the node name.

        MetalLB (IPv4-only) tries the first IPv4 of the interface holding a local IPv6 before the crc32. ironlb
        skips that step on purpose: with IPv4 and IPv6 sessions to the same iBGP router it gives both the same
        identifier, and FRR then did not install the IPv6 routes (tests/bgp/test_interop_frr.py).
        """
        if self.config.router_id is not None:
            return self.config.router_id
        if isinstance(self.local_address, IPv4Address):
            return self.local_address
        return router_id_from_node_name(self.config.node_name)

    def _our_capabilities(self) -> Capabilities:
        cfg = self.config
        gr = None
        if cfg.graceful_restart:
            gr = GracefulRestart(
                restart_time=cfg.restart_time,
                families=tuple((afi, safi, True) for afi, safi in sorted(cfg.families)),
            )
        return Capabilities(
            multiprotocol=cfg.families,
            route_refresh=True,
            four_octet_asn=cfg.session_asn,
            graceful_restart=gr,
            extended_next_hop=frozenset({IPV4_OVER_IPV6} if cfg.interface and IPV4_UNICAST in cfg.families else ()),
        )

    def _our_open(self) -> OpenMessage:
        assert self.router_id is not None
        cfg = self.config
        return OpenMessage.for_asn(cfg.session_asn, cfg.hold_time, self.router_id, self._our_capabilities())

    def _send(self, data: bytes) -> None:
        self._out += data

    def _awaited_keepalive(self, raw: bytes) -> bool:
        """The peer's KEEPALIVE that ours waits for, to hold for the shell (with :attr:`hold_open`)."""
        if not (self.hold_open and self._keepalive_wait is not None and raw[18] == MessageType.KEEPALIVE):
            return False
        self._keepalive_wait = None
        self._peer_confirmed = True
        self._confirm_pending = True
        return True

    def _confirm(self, now: float) -> None:
        """The peer's OPEN stands: our KEEPALIVE goes out, or waits for the peer's (see :meth:`confirm_open`)."""
        neg = self.negotiated
        assert neg is not None and self.router_id is not None
        if not self.inbound and not self._peer_confirmed and collision_keeps_ours(
            self.router_id, neg.peer_router_id, self.config.session_asn, neg.peer_asn
        ):
            self._keepalive_wait = now + PEER_KEEPALIVE_WAIT
        else:
            self._send_keepalive(now)

    def _send_keepalive(self, now: float) -> None:
        self._send(encode_keepalive())
        self.counters.keepalives_sent += 1
        neg = self.negotiated
        if neg is not None and neg.hold_time > 0:
            self._keepalive_deadline = now + neg.keepalive_time
        else:
            self._keepalive_deadline = None

    def _down(
        self, reason: str, *, sent: NotificationMessage | None = None, received: NotificationMessage | None = None
    ) -> SessionDown:
        was = self.state is BGPState.ESTABLISHED
        self.state = BGPState.IDLE
        self._hold_deadline = None
        self._keepalive_deadline = None
        self._keepalive_wait = None
        self._sent.clear()
        self._in.clear()
        return SessionDown(reason, was, sent, received)

    def _notify_and_down(self, err: BGPError) -> SessionDown:
        self._send(encode_notification(err.code, err.subcode, err.data))
        self.counters.notifications_sent += 1
        note = NotificationMessage(err.code, err.subcode, err.data)
        return self._down(f"{err.message} [sent {describe(err.code, err.subcode)}]", sent=note)

    def _unexpected(self, msg_type: int) -> BGPError:
        sub = {
            BGPState.OPEN_SENT: FSMSubcode.UNEXPECTED_IN_OPENSENT,
            BGPState.OPEN_CONFIRM: FSMSubcode.UNEXPECTED_IN_OPENCONFIRM,
            BGPState.ESTABLISHED: FSMSubcode.UNEXPECTED_IN_ESTABLISHED,
        }.get(self.state, FSMSubcode.UNSPECIFIED)
        name = MessageType(msg_type).name
        return BGPError(ErrorCode.FSM, sub, bytes((msg_type,)), f"unexpected {name} in state {self.state.value}")

    def _handle_message(self, raw: bytes, now: float) -> list[Event]:
        msg_type = raw[18]
        if msg_type == MessageType.NOTIFICATION:
            note = NotificationMessage(raw[HEADER_LEN], raw[HEADER_LEN + 1], raw[HEADER_LEN + 2 :])
            self.counters.notifications_received += 1
            text = describe(note.code, note.subcode)
            extra = _shutdown_text(note)
            reason = f"received NOTIFICATION {text}{': ' + extra if extra else ''}"
            return [
                NotificationReceived(note.code, note.subcode, note.data),
                self._down(reason, received=note),
            ]
        if self.state is BGPState.OPEN_SENT:
            if msg_type != MessageType.OPEN:
                raise self._unexpected(msg_type)
            msg = decode_message(raw)
            assert isinstance(msg, OpenMessage)
            self.counters.opens_received += 1
            self._handle_open(msg, now)
            return [OpenReceived(msg.bgp_id, msg.asn)]
        if msg_type == MessageType.OPEN:
            raise self._unexpected(msg_type)
        neg = self.negotiated
        assert neg is not None
        if neg.hold_time > 0:
            self._hold_deadline = now + neg.hold_time
        if self.state is BGPState.OPEN_CONFIRM:
            if msg_type != MessageType.KEEPALIVE:
                raise self._unexpected(msg_type)
            self.counters.keepalives_received += 1
            if self._keepalive_wait is not None:
                self._keepalive_wait = None
                self._send_keepalive(now)
            return self._become_established()
        # Established.
        msg = decode_message(raw, four_octet_as=neg.four_octet_as)
        if isinstance(msg, UpdateMessage):
            self.counters.updates_received += 1
            eor = msg.end_of_rib()
            return [EndOfRibReceived(eor)] if eor is not None else []
        if isinstance(msg, RouteRefreshMessage):
            self.counters.route_refresh_received += 1
            return self._handle_route_refresh(msg)
        self.counters.keepalives_received += 1
        return []

    def _handle_open(self, msg: OpenMessage, now: float) -> None:
        cfg = self.config
        caps = msg.capabilities
        peer_asn = msg.asn
        mine = cfg.session_asn
        want = cfg.peer_asn
        ok = peer_asn != 0
        if isinstance(want, DynamicASN):
            if want == DynamicASN.INTERNAL:
                ok = ok and peer_asn == mine
            elif want == DynamicASN.EXTERNAL:
                ok = ok and peer_asn != mine
        else:
            ok = ok and peer_asn == want
        if not ok:
            raise BGPError(
                ErrorCode.OPEN_MESSAGE, OpenSubcode.BAD_PEER_AS, b"", f"unexpected peer ASN {peer_asn}, want {want}"
            )
        if msg.hold_time in (1, 2):
            raise BGPError(
                ErrorCode.OPEN_MESSAGE,
                OpenSubcode.UNACCEPTABLE_HOLD_TIME,
                b"",
                f"unacceptable hold time {msg.hold_time}",
            )
        ibgp = peer_asn == mine
        if int(msg.bgp_id) == 0 or (ibgp and msg.bgp_id == self.router_id):
            raise BGPError(
                ErrorCode.OPEN_MESSAGE, OpenSubcode.BAD_BGP_IDENTIFIER, b"", f"bad BGP identifier {msg.bgp_id}"
            )
        four = caps.four_octet_asn is not None
        if not four and mine > 0xFFFF:
            tlv = struct.pack("!BBI", CapabilityCode.FOUR_OCTET_AS, 4, mine)
            raise BGPError(
                ErrorCode.OPEN_MESSAGE, OpenSubcode.UNSUPPORTED_CAPABILITY, tlv, "peer does not support 4-byte ASNs"
            )
        theirs = caps.multiprotocol or frozenset({IPV4_UNICAST})
        families = cfg.families & theirs
        if not families:
            ours = b"".join(encode_capabilities(Capabilities(multiprotocol=cfg.families)))
            raise BGPError(ErrorCode.OPEN_MESSAGE, OpenSubcode.UNSUPPORTED_CAPABILITY, ours, "no common address family")
        enhe = IPV4_OVER_IPV6 in (self._our_capabilities().extended_next_hop & caps.extended_next_hop)
        hold = min(cfg.hold_time, msg.hold_time)
        keepalive = 0.0
        if hold > 0:
            keepalive = min(cfg.keepalive_time or hold / 3, hold / 3)
        self.negotiated = Negotiated(
            peer_asn=peer_asn,
            peer_router_id=msg.bgp_id,
            hold_time=hold,
            keepalive_time=keepalive,
            families=frozenset(families),
            four_octet_as=four,
            graceful_restart=cfg.graceful_restart and caps.graceful_restart is not None,
            route_refresh=caps.route_refresh,
            ibgp=ibgp,
            peer_capabilities=caps,
            ipv4_over_ipv6=enhe,
        )
        self._ctx = PathContext(
            local_asn=mine,
            ibgp=ibgp,
            four_octet_as=four,
            next_hop_ipv4=cfg.next_hop_ipv4 or _v4(self.local_address) or _v4(self._beside),
            next_hop_ipv6=cfg.next_hop_ipv6 or _global_v6(self.local_address) or _global_v6(self._beside),
            next_hop_ipv6_link_local=_link_local(self.local_address),
            ipv4_over_ipv6=enhe,
        )
        self.state = BGPState.OPEN_CONFIRM
        self._hold_deadline = now + hold if hold > 0 else None
        if self.hold_open:
            self._confirm_pending = True
        else:
            self._confirm(now)

    def _become_established(self) -> list[Event]:
        neg = self.negotiated
        assert neg is not None
        self.state = BGPState.ESTABLISHED
        self.counters.established_transitions += 1
        event = Established(
            peer_asn=neg.peer_asn,
            peer_router_id=neg.peer_router_id,
            hold_time=neg.hold_time,
            keepalive_time=neg.keepalive_time,
            families=neg.families,
            graceful_restart=neg.graceful_restart,
            four_octet_as=neg.four_octet_as,
            route_refresh=neg.route_refresh,
        )
        events: list[Event] = [event, *self._sync()]
        if neg.graceful_restart:
            for family in sorted(neg.families):
                self._send(encode_end_of_rib(family))
                self.counters.updates_sent += 1
        return events

    def _announceable(self) -> dict[Network, Attributes]:
        neg, ctx = self.negotiated, self._ctx
        assert neg is not None and ctx is not None
        out: dict[Network, Attributes] = {}
        for prefix, attrs in self._desired.items():
            fam = family_of(prefix)
            if fam in neg.families and ctx.can_announce(fam) and prefix not in self._unsendable:
                out[prefix] = attrs
        return out

    def _sync(self) -> list[Event]:
        ctx = self._ctx
        assert ctx is not None
        target = self._announceable()
        gone = [p for p in self._sent if p not in target]
        changed = {p: a for p, a in target.items() if self._sent.get(p) != a}
        for data in pack_withdrawals(gone):
            self._send(data)
            self.counters.updates_sent += 1
        for p in gone:
            del self._sent[p]
        return self._announce(changed, ctx)

    def _announce(self, routes: Mapping[Network, Attributes], ctx: PathContext) -> list[Event]:
        messages, failed = build_announcements(routes, ctx)
        for data in messages:
            self._send(data)
            self.counters.updates_sent += 1
        bad = set(failed)
        self._unsendable |= bad
        for p, a in routes.items():
            if p not in bad:
                self._sent[p] = a
        return [RoutesUnsendable(tuple(failed))] if bad else []

    def _handle_route_refresh(self, msg: RouteRefreshMessage) -> list[Event]:
        neg, ctx = self.negotiated, self._ctx
        assert neg is not None and ctx is not None
        family = (msg.afi, msg.safi)
        # Subtypes 1/2 are the peer's own BoRR/EoRR (RFC 7313): nothing to do.
        if msg.subtype != 0 or family not in neg.families:
            return []
        events = self._announce({p: a for p, a in self._sent.items() if family_of(p) == family}, ctx)
        if neg.graceful_restart:
            self._send(encode_end_of_rib(family))
            self.counters.updates_sent += 1
        return [*events, RouteRefreshReceived(family)]


def collision_keeps_ours(local_id: IPv4Address, remote_id: IPv4Address, local_asn: int, remote_asn: int) -> bool:
    """RFC 4271 section 6.8: True when the connection we initiated survives a collision, False for the peer's.

    The connection initiated by the higher BGP identifier (compared as unsigned integers) is kept; with equal
    identifiers (possible between ASes, RFC 6286 section 2.3) the one initiated by the higher AS number.
    """
    if local_id != remote_id:
        return int(local_id) > int(remote_id)
    return local_asn > remote_asn


def resolve_collision(
    new: BGPStateMachine, other: BGPStateMachine, *, other_pending: bool = False
) -> BGPStateMachine | None:
    """Which of two connections to one peer to close, now that ``new`` has reported :class:`OpenReceived`.

    None while there is no collision to settle: ``other`` has no TCP connection (or is gone), or both were
    initiated by the same side. An Established ``other`` keeps its place and ``new`` is closed (section 6.8: the
    established connection wins); so does one in OpenConfirm that already sent its KEEPALIVE while ``new`` waits
    for :meth:`~BGPStateMachine.confirm_open` (it was confirmed before the second connection was known): the
    peer may have it Established, and then it closes ``new``, as FRR does. Otherwise ``other`` is in
    OpenConfirm, or in OpenSent, where section 6.8 allows the check when the peer's identifier is known: it is,
    from the OPEN ``new`` just got from that same peer. ``other_pending``: ``other`` has its TCP connection but
    has not sent its OPEN yet (the shell is still setting it up; :attr:`BGPStateMachine.inbound` says who opened
    it): it is settled as if in OpenSent, since the peer may already be comparing identifiers on its side.
    Deciding at the first OPEN means both speakers compare the same two identifiers before either sends a
    KEEPALIVE, so they close the same connection. :func:`collision_keeps_ours` decides by who initiated each;
    the caller closes the loser with :meth:`BGPStateMachine.close` and subcode 7.
    """
    neg = new.negotiated
    if new.state is not BGPState.OPEN_CONFIRM or neg is None or new.router_id is None:
        return None
    if other.is_established or (other.confirmed and new.awaiting_confirm):
        return new
    opening = other.state in (BGPState.OPEN_SENT, BGPState.OPEN_CONFIRM)
    if not (opening or other_pending) or new.inbound == other.inbound:
        return None
    keep_ours = collision_keeps_ours(new.router_id, neg.peer_router_id, new.config.session_asn, neg.peer_asn)
    ours, theirs = (other, new) if new.inbound else (new, other)
    return theirs if keep_ours else ours


class Sibling(Enum):
    """The other connection to the same peer, as the shell sees it when one connection has the peer's OPEN."""

    NONE = "none"
    """There is none (or it is gone: its TCP connection is closed)."""
    PENDING = "pending"
    """Its TCP connection is up but the shell has not sent its OPEN yet."""
    OPEN = "open"
    """It sent its OPEN (OpenSent, OpenConfirm or Established)."""
    CLOSING = "closing"
    """It lost (or failed) and is being closed: its TCP connection is not gone yet."""


@dataclass(frozen=True)
class Settlement:
    """What the shell does when ``new`` reports :class:`OpenReceived`; see :func:`settle_collision`."""

    close: BGPStateMachine | None
    """The connection to close now with cease 7 (``new`` or the other one), or None."""
    confirm_now: bool
    """``new`` may send its KEEPALIVE now (:meth:`BGPStateMachine.confirm_open`); False: only once the other
    connection is gone, if ``new`` still stands."""


def settle_collision(new: BGPStateMachine, other: BGPStateMachine | None, sibling: Sibling) -> Settlement:
    """RFC 4271 section 6.8 as the shell applies it: :func:`resolve_collision` picks the loser, and a connection
    sends its KEEPALIVE only once no other connection to the peer is left.

    Waiting for the loser to be gone (the peer closed its end too) before confirming the winner means the peer
    has finished closing its side of the collision before our KEEPALIVE can bring the winner up: FRR 8.4, when
    its own connection loses, queues that connection's stop behind the packets it is processing, and a KEEPALIVE
    read before the stop ran made it stop the session it had just established instead (its
    ``connectionsEstablished`` then counts 2 for one start-up). It costs the winner one round trip.
    """
    if other is None or sibling is Sibling.NONE:
        return Settlement(None, True)
    if sibling is Sibling.CLOSING:
        return Settlement(None, False)
    loser = resolve_collision(new, other, other_pending=sibling is Sibling.PENDING)
    if loser is None:
        return Settlement(None, True)
    return Settlement(loser, False)


def _unmap(addr: Address) -> Address:
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _v4(addr: Address | None) -> IPv4Address | None:
    return addr if isinstance(addr, IPv4Address) else None


def _global_v6(addr: Address | None) -> IPv6Address | None:
    if isinstance(addr, IPv6Address) and not addr.is_link_local:
        return addr
    return None


def _link_local(addr: Address | None) -> IPv6Address | None:
    """A link-local session address without its scope: the second next hop of RFC 2545."""
    if isinstance(addr, IPv6Address) and addr.is_link_local:
        return IPv6Address(addr.packed)
    return None


def _shutdown_text(note: NotificationMessage) -> str:
    """RFC 9003 shutdown communication of a received cease 6/2 or 6/4, if well-formed."""
    if note.code != ErrorCode.CEASE or note.subcode not in (2, 4) or not note.data:
        return ""
    n = note.data[0]
    raw = note.data[1 : 1 + n]
    if len(raw) != n:
        return ""
    return raw.decode("utf-8", "replace")


__all__ = [
    "BGPState",
    "BGPStateMachine",
    "Counters",
    "EndOfRibReceived",
    "Established",
    "Event",
    "KeepaliveAwaited",
    "Negotiated",
    "NotificationReceived",
    "OpenReceived",
    "RouteRefreshReceived",
    "RouteTable",
    "SessionDown",
    "Settlement",
    "Sibling",
    "collision_keeps_ours",
    "resolve_collision",
    "settle_collision",
]
