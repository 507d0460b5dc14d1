"""Sans-I/O core of the speaker membership protocol.

Speakers learn which speakers are alive from each other. ``Membership`` is a
pure state machine: the caller feeds it datagrams and the current time (a
monotonic clock, in seconds) and sends the datagrams it returns. It never reads
a clock, never touches a socket and never raises on network input, so it can be
tested with simulated time and driven by any event loop (``service`` is the
asyncio shell).

Liveness
    Full mesh: every node sends a HEARTBEAT to every configured member each
    ``interval`` (default 100 ms). A member is alive while a *verified*
    heartbeat from it arrived less than ``dead_timeout`` ago (default 350 ms, so
    two lost heartbeats in a row are tolerated and a node that dies is noticed
    250-350 ms later). A node that stops cleanly sends a signed
    LEAVE and is down at once. Speaker clusters are small (tens to hundreds), so
    full mesh costs ``n - 1`` datagrams of ~100 bytes per interval per node and
    needs no gossip, suspicion or indirect probes, whose extra rounds are what
    make memberlist take seconds.

Authentication and replay (why each field exists)
    * HMAC-SHA256 with a shared secret over the whole datagram (``wire``):
      forged or corrupted packets are dropped before parsing.
    * Sender and destination names are in the MAC: a packet for one member can
      not be replayed to another, and identity never comes from the source
      address (which is ignored; replies go to the configured address only, so
      nobody can use us as a reflector).
    * Incarnation: a random 64-bit id per process start. Sequence numbers are
      strictly increasing within an incarnation; anything not newer than the
      last accepted packet is a replay. Incarnations we have moved away from
      are retired and never accepted again.
    * Freshness without clocks: each datagram echoes the receiver's incarnation
      and the highest sequence number the sender has seen from it. The receiver
      accepts a packet as proof of life only if the echo names its *current*
      incarnation and a sequence number it sent within the last
      ``dead_timeout``. This is a nonce exchange: a captured packet is useless
      once that window has passed, and after the receiver restarts (new
      incarnation, state lost) every old capture is useless at once, with no
      dependence on synchronised wall clocks. A restarted *sender* is accepted
      as soon as its packet echoes us correctly (one round trip). An on-path
      attacker holding back a genuine packet can use it only within that
      window, so a dead node stays alive at most ~``2 * dead_timeout``.
    * Authentic packets without a fresh echo may only teach us which
      (incarnation, seq) to echo back, under rules that a replay cannot use to
      go backwards while the member is alive; they never change membership.

    A side effect worth knowing: liveness is bidirectional. If packets get
    through in one direction only, neither side can prove freshness and both
    see each other as dead, so the two views stay symmetric.

Partitions and the quorum safeguard (metallb#589, #2838)
    Each side of a partition sees the other side die after ``dead_timeout`` and
    would take over its IPs, so both sides answer ARP/NDP for the same IP. To
    bound that, a node that sees fewer than a strict majority of the configured
    members (itself included) has no quorum: ``has_quorum()`` turns false and a
    ``QuorumChanged`` event is emitted, and the caller must stop announcing.
    The majority side keeps quorum and takes over; the minority side withdraws
    within the same ``dead_timeout``. The cost is availability: if a majority
    *crashes*, the survivors withdraw too, and an even split (2/2) leaves
    nobody announcing. ``quorum="auto"`` (the default) enables the safeguard
    for three or more members only: with two members a majority means both, so
    any single failure would take every IP down; a 2-node cluster therefore
    keeps MetalLB's behaviour (both announce while split). ``"on"`` and
    ``"off"`` force it. Non-transitive partitions (A sees B, B sees C, A does
    not see C) still give nodes different views; heartbeats carry each
    sender's alive set so ``views()`` can show the disagreement.

Local stalls
    If ``tick`` is called much later than due (the event loop was blocked),
    packets from live peers may be sitting unread in the socket; declaring them
    dead would make this node grab their IPs. So a late tick grants alive
    members one extra ``dead_timeout`` instead of expiring them, at most once
    every two ``dead_timeout`` periods so a persistently slow loop still
    detects deaths.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import secrets
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from ironlb.membership.wire import MIN_SECRET_LEN, MsgType, Packet, WireError, decode, encode

__all__ = [
    "DEFAULT_PORT",
    "Address",
    "Datagram",
    "DownReason",
    "Event",
    "MemberDown",
    "MemberUp",
    "Membership",
    "MembershipConfig",
    "QuorumChanged",
    "QuorumMode",
    "TickResult",
    "new_incarnation",
    "parse_members",
]

DEFAULT_PORT = 7946

Address = tuple[str, int]
QuorumMode = Literal["auto", "on", "off"]
DownReason = Literal["timeout", "left", "removed", "restarted"]

_VIEW_DIGEST_LEN = 8
_RETIRED_KEEP = 8


@dataclass(frozen=True, slots=True)
class MembershipConfig:
    """Timings and policy. The defaults aim at failover p50 < 500 ms including GARP.

    ``interval``: heartbeat period. ``dead_timeout``: silence after which a
    member is down; also the freshness window of the echo (see module doc).
    ``quorum``: ``"auto"`` (on for 3+ members), ``"on"`` or ``"off"``.
    ``leave_copies``: LEAVE datagrams per member on a clean stop (UDP may drop
    one). ``carry_views``: put the sender's alive set in each heartbeat.
    """

    interval: float = 0.1
    dead_timeout: float = 0.35
    quorum: QuorumMode = "auto"
    leave_copies: int = 2
    carry_views: bool = True

    def __post_init__(self) -> None:
        if not (self.interval > 0 and math.isfinite(self.interval)):
            raise ValueError(f"interval must be a positive number of seconds, got {self.interval}")
        if not (self.dead_timeout >= 2 * self.interval and math.isfinite(self.dead_timeout)):
            raise ValueError(
                f"dead_timeout ({self.dead_timeout}) must be at least 2 * interval ({self.interval}) "
                "so that a single lost heartbeat is not a failure"
            )
        if self.quorum not in ("auto", "on", "off"):
            raise ValueError(f"quorum must be 'auto', 'on' or 'off', got {self.quorum!r}")
        if self.leave_copies < 1:
            raise ValueError("leave_copies must be at least 1")


@dataclass(frozen=True, slots=True)
class MemberUp:
    """``name`` became alive (first verified heartbeat, or again after a restart)."""

    name: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class MemberDown:
    """``name`` is no longer alive.

    ``reason``: ``timeout`` (silent for ``dead_timeout``), ``left`` (signed
    LEAVE), ``removed`` (dropped from the member list) or ``restarted`` (a new
    incarnation replaced the old one; a ``MemberUp`` follows at once).
    """

    name: str
    reason: DownReason


@dataclass(frozen=True, slots=True)
class QuorumChanged:
    """``has_quorum()`` flipped; ``alive`` of ``members`` configured ones are alive."""

    has_quorum: bool
    alive: int
    members: int


Event = MemberUp | MemberDown | QuorumChanged


class Datagram(NamedTuple):
    """A datagram to send: ``data`` to ``addr`` (member ``dest``)."""

    data: bytes
    addr: Address
    dest: str


class TickResult(NamedTuple):
    """What ``tick`` produced: datagrams to send and events (timeouts, quorum)."""

    datagrams: list[Datagram]
    events: list[Event]


@dataclass(slots=True, eq=False)
class _Peer:
    addr: Address
    # Latest authentic (incarnation, seq) seen from the peer: what we echo back.
    inc: int = 0
    seq: int = 0
    alive: bool = False
    expires: float = 0.0
    view: frozenset[str] | None = None
    reply_due: bool = True  # new peers get a hello at once, not after an interval
    last_sent: float = -math.inf
    last_addr: object = None
    retired: deque[int] = field(default_factory=lambda: deque(maxlen=_RETIRED_KEEP))


def new_incarnation() -> int:
    """A random non-zero 64-bit boot id (randomness, not time: the core reads no clock)."""
    return secrets.randbits(64) or 1


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"member name must be a str, got {type(name).__name__}")
    size = len(name.encode("utf-8"))
    if not 1 <= size <= 253:
        raise ValueError(f"member name must be 1..253 bytes of UTF-8: {name!r}")
    return name


def _check_address(addr: tuple[str, int]) -> Address:
    host, port = addr
    # Literal IPs only: resolving a name would be blocking I/O in the send path.
    ip = ipaddress.ip_address(host)
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port out of range: {port}")
    return (str(ip), int(port))


def parse_members(spec: str, default_port: int = DEFAULT_PORT) -> dict[str, Address]:
    """Parse ``NAME=ADDR[:PORT],...`` (IPv6 as ``[ADDR]:PORT`` or bare ``ADDR``).

    This is the static form used by ``ironlb run --members``.
    """
    members: dict[str, Address] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, where = item.partition("=")
        name, where = name.strip(), where.strip()
        if not sep or not name or not where:
            raise ValueError(f"member must be NAME=ADDR[:PORT], got {item!r}")
        if where.startswith("["):
            host, bracket, rest = where[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError(f"bad bracketed address in {item!r}")
            port = int(rest[1:]) if rest else default_port
        elif where.count(":") == 1:
            host, _, port_s = where.partition(":")
            port = int(port_s)
        else:  # IPv4 without port, or bare IPv6
            host, port = where, default_port
        if name in members:
            raise ValueError(f"duplicate member {name!r}")
        members[_check_name(name)] = _check_address((host, port))
    return members


class Membership:
    """Membership state of one node. See the module docstring for the protocol.

    ``members`` maps every configured speaker name to its UDP address and may
    include ``node`` itself (its entry is only informational). ``secret`` is
    the shared key, or a sequence of keys to accept during a key change (the
    first one signs). ``incarnation`` is for tests; by default a random one.
    """

    def __init__(
        self,
        node: str,
        secret: bytes | Sequence[bytes],
        members: Mapping[str, tuple[str, int]],
        config: MembershipConfig | None = None,
        *,
        incarnation: int | None = None,
    ) -> None:
        self._node = _check_name(node)
        keys = [secret] if isinstance(secret, bytes | bytearray) else list(secret)
        if not keys:
            raise ValueError("at least one secret is required")
        for key in keys:
            if len(key) < MIN_SECRET_LEN:
                raise ValueError(f"secret must be at least {MIN_SECRET_LEN} bytes")
        self._keys = [bytes(k) for k in keys]
        self._cfg = config or MembershipConfig()
        if incarnation is not None and not 1 <= incarnation < 1 << 64:
            raise ValueError("incarnation must be a non-zero u64")
        self._inc = incarnation if incarnation is not None else new_incarnation()
        self._seq = 0
        # (first seq of a burst, time sent): proves freshness of echoed seqs.
        self._sent: deque[tuple[int, float]] = deque()
        self._peers: dict[str, _Peer] = {}
        self._own_addr: Address | None = None
        self._order: list[str] = []
        self._digest = b""
        self._left = False
        self._started: float | None = None
        self._settled = False
        self._last_tick: float | None = None
        self._next_hb = -math.inf
        self._no_grace_before = -math.inf
        self.rejected: Counter[str] = Counter()
        """Dropped datagrams by reason (for metrics)."""
        self.stalls = 0
        """Late ticks treated as local stalls (see module doc)."""
        self._apply_members(members)
        self._quorum = self._compute_quorum()

    # ------------------------------------------------------------------ queries

    @property
    def node(self) -> str:
        return self._node

    @property
    def incarnation(self) -> int:
        return self._inc

    @property
    def config(self) -> MembershipConfig:
        return self._cfg

    @property
    def left(self) -> bool:
        """True after ``leave``: the node sends and accepts nothing any more."""
        return self._left

    @property
    def own_address(self) -> Address | None:
        """Our own entry in the member list, if it has one (the shell binds to it)."""
        return self._own_addr

    def members(self) -> dict[str, Address]:
        """Configured peers (not including this node) and their addresses."""
        return {name: p.addr for name, p in self._peers.items()}

    def alive(self) -> frozenset[str]:
        """Alive members, this node included (empty once it has left)."""
        if self._left:
            return frozenset()
        return frozenset([self._node, *(n for n, p in self._peers.items() if p.alive)])

    def has_quorum(self) -> bool:
        """Whether this node may announce: sees a strict majority, or quorum is off."""
        return self._quorum

    def settled(self) -> bool:
        """True once every member was heard or ``dead_timeout`` passed since the first tick.

        Before that, ``alive()`` is incomplete only because heartbeats have not
        arrived yet; announcing then would cause a needless takeover.
        """
        return self._settled

    def views(self) -> dict[str, frozenset[str]]:
        """The alive set each alive member last reported (ours included), when known."""
        out = {n: p.view for n, p in self._peers.items() if p.alive and p.view is not None}
        if not self._left:
            out[self._node] = self.alive()
        return out

    def next_deadline(self) -> float:
        """When ``tick`` must next be called (monotonic seconds; may be in the past)."""
        if self._left:
            return math.inf
        deadline = self._next_hb
        gap = self._cfg.interval / 4
        for p in self._peers.values():
            if p.alive:
                deadline = min(deadline, p.expires)
            if p.reply_due:
                deadline = min(deadline, p.last_sent + gap)
        if not self._settled and self._started is not None:
            deadline = min(deadline, self._started + self._cfg.dead_timeout)
        return deadline

    # ----------------------------------------------------------------- inputs

    def datagram_received(self, data: bytes, addr: object, now: float) -> list[Event]:
        """Process one datagram from ``addr`` (kept only for diagnostics).

        Never raises for bad input: rejected datagrams are counted in
        ``rejected`` and change nothing.
        """
        if self._left:
            self.rejected["left"] += 1
            return []
        try:
            pkt = decode(data, self._keys)
        except WireError as exc:
            self.rejected[exc.reason] += 1
            return []
        if pkt.dest != self._node:
            self.rejected["wrong_dest"] += 1
            return []
        peer = self._peers.get(pkt.sender)
        if peer is None:  # includes packets claiming to be from ourselves
            self.rejected["unknown_sender"] += 1
            return []
        if pkt.incarnation in peer.retired:
            self.rejected["retired"] += 1
            return []
        same_inc = pkt.incarnation == peer.inc
        if same_inc and pkt.seq <= peer.seq:
            self.rejected["replay"] += 1
            return []
        if not self._fresh(pkt, now):
            # Authentic but not provably recent: it may only tell us what to echo,
            # and only in ways a replay cannot use against a live member.
            if same_inc or not peer.alive:
                peer.inc, peer.seq, peer.last_addr = pkt.incarnation, pkt.seq, addr
                if pkt.type is MsgType.HEARTBEAT:
                    peer.reply_due = True  # let it prove freshness within one round trip
            self.rejected["stale"] += 1
            return []

        events: list[Event] = []
        restarted = False
        if not same_inc:
            if peer.inc:
                peer.retired.append(peer.inc)
            restarted = peer.alive
        peer.inc, peer.seq, peer.last_addr = pkt.incarnation, pkt.seq, addr
        if pkt.type is MsgType.LEAVE:
            peer.retired.append(pkt.incarnation)
            if peer.alive:
                self._down(pkt.sender, peer, "left", events)
        else:
            peer.expires = now + self._cfg.dead_timeout
            peer.view = self._decode_view(pkt.payload)
            if restarted:
                self._down(pkt.sender, peer, "restarted", events)
            if not peer.alive:
                peer.alive = True
                peer.reply_due = True  # so that it can verify us within one round trip too
                events.append(MemberUp(pkt.sender, pkt.incarnation))
                self._check_settled()
        self._update_quorum(events)
        return events

    def tick(self, now: float) -> TickResult:
        """Expire silent members and emit the heartbeats (and replies) that are due."""
        if self._left:
            return TickResult([], [])
        events: list[Event] = []
        cfg = self._cfg
        if self._started is None:
            self._started = now
        late = self._last_tick is not None and now - self._last_tick > 2 * cfg.interval
        self._last_tick = now
        if late and now >= self._no_grace_before:
            self.stalls += 1
            self._no_grace_before = now + 2 * cfg.dead_timeout
            for p in self._peers.values():
                if p.alive:
                    p.expires = max(p.expires, now + cfg.dead_timeout)
        for name in sorted(self._peers):
            p = self._peers[name]
            if p.alive and p.expires <= now:
                self._down(name, p, "timeout", events)

        if now >= self._next_hb:
            targets = list(self._peers.items())
            nxt = self._next_hb + cfg.interval
            self._next_hb = nxt if nxt > now else now + cfg.interval
        else:
            gap = cfg.interval / 4
            targets = [(n, p) for n, p in self._peers.items() if p.reply_due and now - p.last_sent >= gap]
        payload = self._encode_view() if targets and cfg.carry_views else b""
        datagrams = self._emit(MsgType.HEARTBEAT, targets, payload, now)

        if not self._settled and now >= self._started + cfg.dead_timeout:
            self._settled = True
        self._update_quorum(events)
        return TickResult(datagrams, events)

    def leave(self, now: float) -> list[Datagram]:
        """Say goodbye: signed LEAVE datagrams for every member. The node is then inert."""
        if self._left:
            return []
        targets = list(self._peers.items())
        datagrams: list[Datagram] = []
        for _ in range(self._cfg.leave_copies):
            datagrams += self._emit(MsgType.LEAVE, targets, b"", now)
        self._left = True
        self._quorum = False
        return datagrams

    def set_members(self, members: Mapping[str, tuple[str, int]]) -> list[Event]:
        """Replace the member list at run time (e.g. from Kubernetes discovery).

        Removed members that were alive produce ``MemberDown(reason="removed")``;
        new members are greeted at the next tick. The quorum denominator changes
        with the list, so shrink it only from an authoritative source.
        """
        events: list[Event] = []
        old = self._peers
        self._apply_members(members)
        for name in sorted(set(old) - set(self._peers)):
            if old[name].alive:
                events.append(MemberDown(name, "removed"))
        self._update_quorum(events)
        return events

    # --------------------------------------------------------------- internals

    def _apply_members(self, members: Mapping[str, tuple[str, int]]) -> None:
        peers: dict[str, _Peer] = {}
        own: Address | None = None
        for name, addr in members.items():
            checked = _check_address(addr)
            if _check_name(name) == self._node:
                own = checked
                continue
            peer = self._peers.get(name)
            if peer is None:
                peer = _Peer(checked)
            else:
                peer.addr = checked
                peer.view = None  # it was relative to the old member list
            peers[name] = peer
        self._peers = peers
        self._own_addr = own
        self._order = sorted([self._node, *peers])
        self._digest = hashlib.sha256("\n".join(self._order).encode()).digest()[:_VIEW_DIGEST_LEN]
        self._check_settled()

    def _prune_sent(self, now: float) -> None:
        horizon = now - self._cfg.dead_timeout
        while self._sent and self._sent[0][1] < horizon:
            self._sent.popleft()

    def _fresh(self, pkt: Packet, now: float) -> bool:
        """Does the echo name a packet we sent within the last ``dead_timeout``?"""
        if pkt.echo_incarnation != self._inc:
            return False
        self._prune_sent(now)
        if not self._sent:
            return False
        return self._sent[0][0] <= pkt.echo_seq <= self._seq

    def _emit(self, mtype: MsgType, targets: Iterable[tuple[str, _Peer]], payload: bytes, now: float) -> list[Datagram]:
        out: list[Datagram] = []
        first = self._seq + 1
        for name, p in targets:
            self._seq += 1
            pkt = Packet(
                type=mtype,
                sender=self._node,
                dest=name,
                incarnation=self._inc,
                seq=self._seq,
                echo_incarnation=p.inc,
                echo_seq=p.seq,
                payload=payload,
            )
            out.append(Datagram(encode(pkt, self._keys[0]), p.addr, name))
            p.reply_due = False
            p.last_sent = now
        if out:
            self._sent.append((first, now))
            self._prune_sent(now)  # bounded even if nothing is ever received
        return out

    def _down(self, name: str, peer: _Peer, reason: DownReason, events: list[Event]) -> None:
        peer.alive = False
        peer.view = None
        events.append(MemberDown(name, reason))

    def _check_settled(self) -> None:
        if not self._settled and all(p.alive for p in self._peers.values()):
            self._settled = True

    def _compute_quorum(self) -> bool:
        if self._left:
            return False
        n = len(self._peers) + 1
        mode = self._cfg.quorum
        if mode == "off" or (mode == "auto" and n <= 2):
            return True
        return 2 * len(self.alive()) > n

    def _update_quorum(self, events: list[Event]) -> None:
        quorum = self._compute_quorum()
        if quorum != self._quorum:
            self._quorum = quorum
            events.append(QuorumChanged(quorum, len(self.alive()), len(self._peers) + 1))

    def _encode_view(self) -> bytes:
        alive = self.alive()
        bits = bytearray((len(self._order) + 7) // 8)
        for i, name in enumerate(self._order):
            if name in alive:
                bits[i // 8] |= 0x80 >> (i % 8)
        return self._digest + bytes(bits)

    def _decode_view(self, payload: bytes) -> frozenset[str] | None:
        # Only meaningful if the sender has the same member list as we do.
        if payload[:_VIEW_DIGEST_LEN] != self._digest:
            return None
        bits = payload[_VIEW_DIGEST_LEN:]
        if len(bits) != (len(self._order) + 7) // 8:
            return None
        return frozenset(n for i, n in enumerate(self._order) if bits[i // 8] & (0x80 >> (i % 8)))
