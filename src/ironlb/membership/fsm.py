"""Sans-I/O core of the speaker membership protocol.

Speakers learn which speakers are alive from each other. ``Membership`` is a
pure state machine: the caller feeds it datagrams and the current time (a
monotonic clock, in seconds) and sends the datagrams it returns. It never reads
a clock, never touches a socket and never raises on network input, so it can be
tested with simulated time and driven by any event loop (``service`` is the
asyncio shell).

Direct liveness (watchers)
    A node exchanges a HEARTBEAT with each of its *neighbours* every
    ``interval`` (default 100 ms). A neighbour is alive while a *verified*
    heartbeat from it arrived less than ``dead_timeout`` ago (default 350 ms,
    so two lost heartbeats in a row are tolerated and a death is noticed
    250-350 ms later). A node that stops cleanly sends a signed LEAVE to every
    member and is down at once.

    Up to ``full_mesh_max`` members (default 12) every member is a neighbour of
    every other one: a full mesh, where each node decides everything from its
    own heartbeats. Above that, the neighbours are the predecessor and the
    successor on ``rings`` (default 4) rings, each a different hash ordering of
    the member names, so each node is watched by at most ``2 * rings`` others
    whatever the cluster size, and the union of the rings is a random regular
    graph (an expander), not one long chain.

Everyone else (large clusters)
    Each node keeps a *table*: for every member its incarnation, a generation
    number and whether it was declared dead (or left). A watcher that sees a
    neighbour die marks its entry dead and sends a signed NOTICE with that entry
    to every member at once. Entries are ordered (same incarnation: higher
    generation wins, and at equal generation dead beats alive), so notices are
    idempotent and a replayed one carries information that is already beaten. A
    starting node announces its own entry to everyone; a node that receives an
    entry declaring *itself* dead at its current generation refutes it by
    raising its generation and announcing that. Heartbeats carry the sender's
    generation and a hash of the sender's table; neighbours whose hashes stay
    different for ``dead_timeout`` send each other their table (at most once
    per ``sync_interval``), so a lost notice is repaired.

    ``alive()`` is not simply "not declared dead": it is the connected
    component of this node in the watch graph restricted to members it
    believes alive (neighbours by direct heartbeats, others by the table). This
    is what keeps the quorum guarantee without a full mesh: in a partition,
    every watch edge that crosses it ends at a watcher on this side that
    declares the other end dead within ``dead_timeout``, so no path leaves this
    side and the count falls to the side's own size, whatever members on the
    other side nobody here watches.

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
    * Freshness without clocks: each heartbeat echoes the receiver's
      incarnation and the highest sequence number the sender has seen from it.
      The receiver accepts a packet as proof of life only if the echo names its
      *current* incarnation and a sequence number it sent within the last
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
    * NOTICEs cannot carry a fresh echo (the sender has usually never talked to
      the receiver). They are protected by sequence numbers per sender
      incarnation and, beyond that, by the entry order above: replaying one
      can only repeat facts that newer entries already beat.

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

import functools
import hashlib
import ipaddress
import itertools
import math
import secrets
import struct
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
    "watch_graph",
]

DEFAULT_PORT = 7946

Address = tuple[str, int]
QuorumMode = Literal["auto", "on", "off"]
DownReason = Literal["timeout", "left", "removed", "restarted", "unreachable"]

_VIEW_DIGEST_LEN = 8
_RETIRED_KEEP = 8
_NOTICE_INCS_KEEP = 4
_NOTICE_WINDOW = 4096
_WINDOW_MASK = (1 << _NOTICE_WINDOW) - 1
# HEARTBEAT payload: member-list digest, sender generation, sender table hash, then the view bitmap.
_HB_HEAD = struct.Struct("!8sIQ")
# One table entry: name key, incarnation, generation, flags.
_ENTRY = struct.Struct("!8sQIB")
_DEAD = 1
_LEFT = 2
# Entries per NOTICE datagram: about 1.4 kB, so a table sync is not IP-fragmented.
_ENTRIES_PER_DATAGRAM = 64
_U32_MAX = (1 << 32) - 1


@dataclass(frozen=True, slots=True)
class MembershipConfig:
    """Timings and policy. The defaults aim at failover p50 < 500 ms including GARP.

    ``interval``: heartbeat period. ``dead_timeout``: silence after which a
    member is down; also the freshness window of the echo (see module doc).
    ``quorum``: ``"auto"`` (on for 3+ members), ``"on"`` or ``"off"``.
    ``leave_copies``: LEAVE datagrams per member on a clean stop (UDP may drop
    one). ``carry_views``: put the sender's alive set in each heartbeat.
    ``full_mesh_max``: up to this many members, everybody watches everybody.
    ``rings``: above it, each node is watched by its two ring neighbours on
    this many hash rings. ``sync_interval``: least time between two table
    syncs with the same neighbour.
    """

    interval: float = 0.1
    dead_timeout: float = 0.35
    quorum: QuorumMode = "auto"
    leave_copies: int = 2
    carry_views: bool = True
    full_mesh_max: int = 12
    rings: int = 4
    sync_interval: float = 1.0

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
        if self.full_mesh_max < 1:
            raise ValueError("full_mesh_max must be at least 1")
        if not 2 <= self.rings <= 16:
            raise ValueError(f"rings must be 2..16 (one ring is a chain that any two failures cut), got {self.rings}")
        if not (self.sync_interval >= self.interval and math.isfinite(self.sync_interval)):
            raise ValueError(f"sync_interval ({self.sync_interval}) must be at least interval ({self.interval})")


@dataclass(frozen=True, slots=True)
class MemberUp:
    """``name`` became alive (first verified heartbeat, or again after a restart)."""

    name: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class MemberDown:
    """``name`` is no longer alive.

    ``reason``: ``timeout`` (silent for ``dead_timeout``, seen by us or by its
    watchers), ``left`` (signed LEAVE), ``removed`` (dropped from the member
    list), ``restarted`` (a new incarnation replaced the old one; a
    ``MemberUp`` follows at once) or ``unreachable`` (not declared dead, but
    every watcher that could vouch for it is down: see the module doc).
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
    view: frozenset[str] | None = None  # unused: see view_bits (kept for introspection)
    view_bits: bytes | None = None  # its alive set as last reported, decoded on demand
    reply_due: bool = True  # new neighbours get a hello at once, not after an interval
    last_sent: float = -math.inf
    last_addr: object = None
    retired: deque[int] = field(default_factory=lambda: deque(maxlen=_RETIRED_KEEP))
    watch: bool = True  # a neighbour: we heartbeat it and decide its liveness ourselves
    hb_gen: int = 0  # generation in its last verified heartbeat
    notice_seqs: dict[int, tuple[int, int]] = field(default_factory=dict)  # incarnation -> replay window
    mismatch_since: float | None = None
    last_sync: float = -math.inf
    sync_due: bool = False


@dataclass(slots=True, eq=False)
class _Entry:
    """What this node believes about one member (the table, see module doc)."""

    key: bytes
    inc: int = 0
    gen: int = 0
    flags: int = 0
    retired: deque[int] = field(default_factory=lambda: deque(maxlen=_RETIRED_KEEP))
    hash: int = 0
    packed: bytes = b""

    def __post_init__(self) -> None:
        self.packed = _ENTRY.pack(self.key, 0, 0, 0)


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


def _name_key(name: str) -> bytes:
    return hashlib.blake2b(name.encode(), digest_size=8, person=b"ironlb-member").digest()


def _entry_hash(packed: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(), "big")


@functools.lru_cache(maxsize=8)
def watch_graph(order: tuple[str, ...], rings: int, full_mesh_max: int) -> tuple[tuple[int, ...], ...]:
    """Neighbours (indices into ``order``) of each member: who watches whom.

    Symmetric by construction. Full mesh up to ``full_mesh_max`` members,
    else the predecessor and successor on ``rings`` hash orderings. Pure and
    cached, because every node of a cluster computes the same graph.
    """
    n = len(order)
    if n <= full_mesh_max:
        return tuple(tuple(j for j in range(n) if j != i) for i in range(n))
    adj: list[set[int]] = [set() for _ in range(n)]
    for r in range(rings):
        salt = f"ring-{r}:".encode()
        ranked = sorted(range(n), key=lambda i: hashlib.blake2b(salt + order[i].encode(), digest_size=8).digest())
        for pos, a in enumerate(ranked):
            b = ranked[(pos + 1) % n]
            adj[a].add(b)
            adj[b].add(a)
    return tuple(tuple(sorted(s)) for s in adj)


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
        self._gen = 0
        self._seq = 0
        # (first seq of a burst, time sent): proves freshness of echoed seqs.
        self._sent: deque[tuple[int, float]] = deque()
        self._peers: dict[str, _Peer] = {}
        self._own_addr: Address | None = None
        self._order: list[str] = []
        self._index: dict[str, int] = {}
        self._adj: tuple[tuple[int, ...], ...] = ()
        self._mesh = True
        self._watched: list[str] = []  # our neighbours, sorted
        self._extra: set[str] = set()  # non-neighbours that heartbeat us (member lists differ)
        self._table: dict[str, _Entry] = {}
        self._slots: list[tuple[_Peer | None, _Entry]] = []  # by index in _order; no peer for ourselves
        self._changed: set[str] = set()  # entries changed since the last recompute (restarts)
        self._by_key: dict[bytes, str] = {}
        self._thash = 0
        self._digest = b""
        self._left = False
        self._started: float | None = None
        self._settled = False
        self._last_tick: float | None = None
        self._next_hb = -math.inf
        self._no_grace_before = -math.inf
        self._alive: set[str] = {self._node}
        self._alive_frozen: frozenset[str] | None = None
        self._view_cache: tuple[frozenset[str], bytes] | None = None
        self._reported_inc: dict[str, int] = {}  # non-neighbours in alive(): the incarnation reported
        self._dirty = False
        self._last_recompute = -math.inf
        self._announce: dict[str, None] = {}  # names whose entry we owe everyone (ordered set)
        self._tell: dict[str, None] = {}  # neighbours to tell that our table has them dead
        self._announced_self = False
        self.rejected: Counter[str] = Counter()
        """Dropped datagrams by reason (for metrics)."""
        self.stalls = 0
        """Late ticks treated as local stalls (see module doc)."""
        self.refutations = 0
        """Times this node was declared dead while alive and said so (see module doc)."""
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
    def generation(self) -> int:
        """Raised each time this node refutes a death notice about itself."""
        return self._gen

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

    def neighbours(self) -> list[str]:
        """The members this node watches directly (and that watch it), sorted."""
        return list(self._watched)

    def alive(self) -> frozenset[str]:
        """Alive members, this node included (empty once it has left)."""
        if self._left:
            return frozenset()
        if self._alive_frozen is None:
            self._alive_frozen = frozenset(self._alive)
        return self._alive_frozen

    def table_hash(self) -> int:
        """Hash of the member table; equal on every node once views have converged."""
        return self._thash

    def declared_dead(self) -> frozenset[str]:
        """Members whose table entry says dead or left (the notices received)."""
        return frozenset(n for n, e in self._table.items() if e.flags & _DEAD)

    def has_quorum(self) -> bool:
        """Whether this node may announce: sees a strict majority, or quorum is off."""
        return self._quorum

    def settled(self) -> bool:
        """True once every neighbour was heard or ``dead_timeout`` passed since the first tick.

        Before that, ``alive()`` is incomplete only because heartbeats have not
        arrived yet; announcing then would cause a needless takeover.
        """
        return self._settled

    def views(self) -> dict[str, frozenset[str]]:
        """The alive set each alive neighbour last reported (ours included), when known."""
        out: dict[str, frozenset[str]] = {}
        for n, p in self._peers.items():
            if p.alive and p.view_bits is not None:
                view = self._decode_view(p.view_bits)
                if view is not None:
                    out[n] = view
        if not self._left:
            out[self._node] = self.alive()
        return out

    def next_deadline(self) -> float:
        """When ``tick`` must next be called (monotonic seconds; may be in the past)."""
        if self._left:
            return math.inf
        deadline = self._next_hb
        if self._announce or self._tell or (not self._announced_self and not self._mesh):
            return -math.inf
        if self._dirty and not self._mesh:
            deadline = min(deadline, self._last_recompute + self._cfg.interval / 4)
        gap = self._cfg.interval / 4
        for name in self._active():
            p = self._peers[name]
            if p.alive:
                deadline = min(deadline, p.expires)
            if p.reply_due:
                deadline = min(deadline, p.last_sent + gap)
            if p.sync_due:
                deadline = min(deadline, p.last_sync + self._cfg.sync_interval)
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
        if pkt.type is MsgType.NOTICE:
            return self._notice_received(pkt, peer, now)
        same_inc = pkt.incarnation == peer.inc
        if same_inc and pkt.seq <= peer.seq:
            if pkt.type is MsgType.LEAVE and not peer.watch:
                return self._notice_received(pkt, peer, now)
            self.rejected["replay"] += 1
            return []
        if not self._fresh(pkt, now):
            if pkt.type is MsgType.LEAVE and not peer.watch:
                # A non-neighbour never has a fresh echo: its LEAVE is a notice.
                return self._notice_received(pkt, peer, now)
            # Authentic but not provably recent: it may only tell us what to echo,
            # and only in ways a replay cannot use against a live member.
            if same_inc or not peer.alive:
                peer.inc, peer.seq, peer.last_addr = pkt.incarnation, pkt.seq, addr
                if pkt.type is MsgType.HEARTBEAT:
                    peer.reply_due = True  # let it prove freshness within one round trip
                    if not peer.watch:
                        self._extra.add(pkt.sender)
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
            self._merge(pkt.sender, pkt.incarnation, peer.hb_gen, _DEAD | _LEFT, now)
            if peer.alive:
                self._direct_down(pkt.sender, peer, "left", events)
        else:
            peer.expires = now + self._cfg.dead_timeout
            their_hash = self._heartbeat_payload(pkt.sender, peer, pkt.payload)
            self._merge(pkt.sender, pkt.incarnation, peer.hb_gen, 0, now)
            entry = self._table[pkt.sender]
            if not self._mesh and entry.flags & _DEAD and entry.inc == pkt.incarnation:
                self._tell[pkt.sender] = None  # alive but declared dead: let it refute
            self._check_tables(peer, their_hash, now)
            if restarted:
                self._direct_down(pkt.sender, peer, "restarted", events)
            if not peer.alive:
                peer.alive = True
                peer.reply_due = True  # so that it can verify us within one round trip too
                if peer.watch:
                    events.append(MemberUp(pkt.sender, pkt.incarnation))
                    self._alive.add(pkt.sender)
                    self._alive_frozen = None
                    if not self._mesh and now - peer.last_sync >= self._cfg.sync_interval:
                        peer.sync_due = True  # a neighbour (re)appeared: give it our table
                    self._check_settled()
                else:
                    self._extra.add(pkt.sender)
                self._dirty = True
        self._update_quorum(events)
        return events

    def tick(self, now: float) -> TickResult:
        """Expire silent members and emit the heartbeats (and replies, notices) that are due."""
        if self._left:
            return TickResult([], [])
        events: list[Event] = []
        cfg = self._cfg
        if self._started is None:
            self._started = now
        late = self._last_tick is not None and now - self._last_tick > 2 * cfg.interval
        self._last_tick = now
        active = self._active()
        if late and now >= self._no_grace_before:
            self.stalls += 1
            self._no_grace_before = now + 2 * cfg.dead_timeout
            for name in active:
                p = self._peers[name]
                if p.alive:
                    p.expires = max(p.expires, now + cfg.dead_timeout)
        for name in active:
            p = self._peers[name]
            if p.alive and p.expires <= now:
                self._direct_down(name, p, "timeout", events)

        peers = self._peers
        if now >= self._next_hb:
            targets = [(n, p) for n in active if (p := peers[n]).watch or p.alive or p.reply_due]
            nxt = self._next_hb + cfg.interval
            self._next_hb = nxt if nxt > now else now + cfg.interval
        else:
            gap = cfg.interval / 4
            targets = [(n, p) for n in active if (p := peers[n]).reply_due and now - p.last_sent >= gap]
        datagrams = self._emit(MsgType.HEARTBEAT, targets, self._heartbeat_body() if targets else b"", now)
        for name in [n for n in self._extra if not peers[n].alive and not peers[n].reply_due]:
            self._extra.discard(name)

        if not self._mesh:
            if not self._announced_self:
                self._announced_self = True
                self._announce[self._node] = None
            if self._dirty and now >= self._last_recompute + cfg.interval / 4:
                self._recompute(now, events)
            datagrams += self._notices(now)

        if not self._settled and now >= self._started + cfg.dead_timeout:
            self._settled = True
        self._update_quorum(events)
        return TickResult(datagrams, events)

    def leave(self, now: float) -> list[Datagram]:
        """Say goodbye: signed LEAVE datagrams for every member. The node is then inert."""
        if self._left:
            return []
        targets = list(self._peers.items())
        payload = _ENTRY.pack(_name_key(self._node), self._inc, self._gen, _DEAD | _LEFT)
        datagrams: list[Datagram] = []
        for _ in range(self._cfg.leave_copies):
            datagrams += self._emit(MsgType.LEAVE, targets, payload, now)
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
        old_alive = set(self._alive)
        was_alone = not self._peers
        self._apply_members(members)
        if was_alone and self._peers and self._settled:
            # Alone, a node had nobody to wait for and counted as settled at once. Now that it knows others (a
            # speaker's first discovery), it settles again: until they are heard from or ``dead_timeout`` has
            # passed, its alive set is incomplete, and announcing from it would answer beside the real owner.
            self._settled = False
            self._started = self._last_tick
            self._check_settled()
        for name in sorted(old_alive - {self._node} - set(self._peers)):
            events.append(MemberDown(name, "removed"))
        self._recompute(self._last_tick if self._last_tick is not None else 0.0, events)
        self._update_quorum(events)
        return events

    # --------------------------------------------------------------- internals

    def _active(self) -> list[str]:
        """Peers we exchange heartbeats with: the neighbours and any extra ones."""
        if not self._extra:
            return self._watched
        return self._watched + sorted(self._extra)

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
                peer.view_bits = None  # it was relative to the old member list
            peers[name] = peer
        self._peers = peers
        self._own_addr = own
        self._order = sorted([self._node, *peers])
        self._index = {n: i for i, n in enumerate(self._order)}
        self._digest = hashlib.sha256("\n".join(self._order).encode()).digest()[:_VIEW_DIGEST_LEN]
        self._adj = watch_graph(tuple(self._order), self._cfg.rings, self._cfg.full_mesh_max)
        self._mesh = len(self._order) <= self._cfg.full_mesh_max
        mine = self._adj[self._index[self._node]]
        watched = {self._order[i] for i in mine}
        self._watched = sorted(watched)
        for name, p in peers.items():
            was = p.watch
            p.watch = name in watched
            if p.watch and not was:
                p.reply_due = True
            elif not p.watch and p.reply_due and not p.alive and p.last_sent == -math.inf:
                p.reply_due = False  # no hello to members we do not watch
            if not p.watch and (p.alive or p.reply_due):
                self._extra.add(name)
        self._extra &= set(peers) - watched
        for name in [n for n, p in peers.items() if not p.watch and p.alive]:
            # Direct liveness of a peer we no longer watch now only counts through the table.
            self._alive.discard(name)
        table: dict[str, _Entry] = {}
        for name in self._order:
            entry = self._table.get(name)
            table[name] = entry if entry is not None else _Entry(_name_key(name))
        self._table = table
        self._by_key = {e.key: n for n, e in table.items()}
        self._slots = [(peers.get(n), table[n]) for n in self._order]
        me = table[self._node]
        self._set_entry(me, self._inc, self._gen, 0)
        self._thash = 0
        for e in table.values():
            self._thash ^= e.hash
        if self._mesh:
            self._alive = {self._node, *(n for n, p in peers.items() if p.alive)}
        else:
            self._alive = {n for n in self._alive if n == self._node or n in peers}
        self._alive_frozen = None
        self._reported_inc = {n: i for n, i in self._reported_inc.items() if n in peers and n not in watched}
        self._dirty = True
        self._check_settled()

    def _set_entry(self, entry: _Entry, inc: int, gen: int, flags: int) -> None:
        self._thash ^= entry.hash
        entry.inc, entry.gen, entry.flags = inc, gen, flags
        entry.packed = _ENTRY.pack(entry.key, inc, gen, flags)
        entry.hash = _entry_hash(entry.packed) if inc else 0
        self._thash ^= entry.hash

    def _merge(self, name: str, inc: int, gen: int, flags: int, now: float) -> bool:
        """Fold one entry into the table (the order in the module doc); True if it changed."""
        entry = self._table.get(name)
        if entry is None:
            return False
        if name == self._node:
            if inc == self._inc and flags & _DEAD and gen >= self._gen and not self._left:
                # Declared dead while alive: refute with a higher generation, to everyone.
                self._gen = min(gen + 1, _U32_MAX)
                self._set_entry(entry, self._inc, self._gen, 0)
                self.refutations += 1
                if not self._mesh:
                    self._announce[self._node] = None
            return False
        if inc in entry.retired or inc == 0:
            return False
        if entry.inc == inc:
            if (gen, flags & _DEAD) <= (entry.gen, entry.flags & _DEAD):
                return False
        elif entry.inc:
            entry.retired.append(entry.inc)
        self._set_entry(entry, inc, gen, flags)
        self._dirty = True
        self._changed.add(name)
        return True

    def _notice_received(self, pkt: Packet, peer: _Peer, now: float) -> list[Event]:
        # Anti-replay window per sender incarnation (as IPsec does): the highest seq
        # seen and a bitmask of the _NOTICE_WINDOW below it, since UDP may reorder.
        top, mask = peer.notice_seqs.get(pkt.incarnation, (0, 0))
        back = top - pkt.seq
        if back >= _NOTICE_WINDOW or (back >= 0 and (top == pkt.seq or mask >> back & 1)):
            self.rejected["replay"] += 1
            return []
        body = pkt.payload
        if len(body) % _ENTRY.size:
            self.rejected["malformed_payload"] += 1
            return []
        if pkt.incarnation not in peer.notice_seqs and len(peer.notice_seqs) >= _NOTICE_INCS_KEEP:
            del peer.notice_seqs[next(iter(peer.notice_seqs))]
        if back < 0:
            mask = ((mask << -back) | 1) & _WINDOW_MASK if -back < _NOTICE_WINDOW else 1
            top = pkt.seq
        else:
            mask |= 1 << back
        peer.notice_seqs[pkt.incarnation] = (top, mask)
        size, by_key, table = _ENTRY.size, self._by_key, self._table
        for off in range(0, len(body), size):
            raw = body[off : off + size]
            name = by_key.get(raw[:8])
            if name is None:
                continue  # a member we do not have (member lists differ for a while)
            if raw == table[name].packed:
                continue  # nothing new (most of a table sync)
            if pkt.type is MsgType.LEAVE and name != pkt.sender:
                continue  # a LEAVE speaks only for its sender
            _key, inc, gen, flags = _ENTRY.unpack(raw)
            self._merge(name, inc, gen, flags & (_DEAD | _LEFT), now)
        if pkt.type is MsgType.LEAVE:
            peer.retired.append(pkt.incarnation)
        events: list[Event] = []
        if self._mesh:
            return events
        if self._dirty and now >= self._last_recompute + self._cfg.interval / 4:
            self._recompute(now, events)
            self._update_quorum(events)
        return events

    def _heartbeat_body(self) -> bytes:
        head = _HB_HEAD.pack(self._digest, self._gen, self._thash)
        return head + self._encode_view() if self._cfg.carry_views else head

    def _heartbeat_payload(self, name: str, peer: _Peer, payload: bytes) -> int | None:
        """Read a verified heartbeat's payload; returns the sender's table hash if comparable."""
        peer.view_bits = None
        if len(payload) < _HB_HEAD.size:
            return None
        digest, gen, thash = _HB_HEAD.unpack_from(payload)
        peer.hb_gen = gen
        if digest != self._digest:
            return None
        if len(payload) > _HB_HEAD.size:
            peer.view_bits = payload[_HB_HEAD.size :]
        return int(thash)

    def _check_tables(self, peer: _Peer, their_hash: int | None, now: float) -> None:
        if self._mesh or their_hash is None:
            return
        if their_hash == self._thash:
            peer.mismatch_since = None
        elif peer.mismatch_since is None:
            peer.mismatch_since = now
        elif now - peer.mismatch_since >= self._cfg.dead_timeout:
            peer.sync_due = True

    def _notices(self, now: float) -> list[Datagram]:
        """NOTICEs due: announced entries to everyone, full tables to out-of-sync neighbours."""
        out: list[Datagram] = []
        if self._announce:
            entries = [self._pack_entry(n) for n in self._announce]
            self._announce.clear()
            targets = list(self._peers.items())
            for i in range(0, len(entries), _ENTRIES_PER_DATAGRAM):
                out += self._emit(MsgType.NOTICE, targets, b"".join(entries[i : i + _ENTRIES_PER_DATAGRAM]), now)
        for name in self._tell:
            if name in self._peers:
                out += self._emit(MsgType.NOTICE, [(name, self._peers[name])], self._pack_entry(name), now)
        self._tell.clear()
        syncs = [(n, self._peers[n]) for n in self._active() if self._peers[n].sync_due]
        syncs = [(n, p) for n, p in syncs if now - p.last_sync >= self._cfg.sync_interval]
        if syncs:
            entries = [self._pack_entry(n) for n, e in self._table.items() if e.inc]
            for name, p in syncs:
                p.sync_due = False
                p.last_sync = now
                p.mismatch_since = None
                for i in range(0, len(entries), _ENTRIES_PER_DATAGRAM):
                    out += self._emit(
                        MsgType.NOTICE, [(name, p)], b"".join(entries[i : i + _ENTRIES_PER_DATAGRAM]), now
                    )
        return out

    def _pack_entry(self, name: str) -> bytes:
        return self._table[name].packed

    def _recompute(self, now: float, events: list[Event]) -> None:
        """``alive()`` := our component of the watch graph over believed-alive members."""
        self._dirty = False
        self._last_recompute = now
        if self._mesh:
            return
        order, adj, peers, table = self._order, self._adj, self._peers, self._table
        believed = bytearray(len(order))
        for i, (p, e) in enumerate(self._slots):
            if p is None:
                believed[i] = 1
            elif p.watch:
                believed[i] = p.alive
            else:
                believed[i] = p.alive or (e.inc != 0 and not e.flags & _DEAD)
        start = self._index[self._node]
        seen = bytearray(len(order))
        seen[start] = 1
        stack = [start]
        stack += [self._index[n] for n in self._extra if peers[n].alive]
        for i in stack[1:]:
            seen[i] = 1
        while stack:
            i = stack.pop()
            for j in adj[i]:
                if believed[j] and not seen[j]:
                    seen[j] = 1
                    stack.append(j)
        new = set(itertools.compress(order, seen))
        for name in self._watched:  # neighbours follow their own heartbeats, events included
            if peers[name].alive:
                new.add(name)
            else:
                new.discard(name)
        old = self._alive
        changed, self._changed = self._changed, set()
        if new == old and not changed:
            return
        for name in sorted(old - new):
            if name == self._node or peers[name].watch:
                continue
            e = table[name]
            reason: DownReason = "left" if e.flags & _LEFT else "timeout" if e.flags & _DEAD else "unreachable"
            events.append(MemberDown(name, reason))
            self._reported_inc.pop(name, None)
        for name in sorted((new - old) | (changed & new)):
            p = peers.get(name)
            if p is None or p.watch:
                continue
            inc = p.inc if p.alive else table[name].inc
            if name not in old:
                events.append(MemberUp(name, inc))
            elif self._reported_inc.get(name, inc) != inc:
                events += [MemberDown(name, "restarted"), MemberUp(name, inc)]
            self._reported_inc[name] = inc
        if new != old:
            self._alive = new
            self._alive_frozen = None

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
        key = self._keys[0]
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
            out.append(Datagram(encode(pkt, key), p.addr, name))
            if mtype is not MsgType.NOTICE:  # a NOTICE proves nothing, so it is no reply
                p.reply_due = False
                p.last_sent = now
        if out:
            self._sent.append((first, now))
            self._prune_sent(now)  # bounded even if nothing is ever received
        return out

    def _direct_down(self, name: str, peer: _Peer, reason: DownReason, events: list[Event]) -> None:
        peer.alive = False
        peer.view_bits = None
        self._dirty = True
        if not peer.watch:
            return
        events.append(MemberDown(name, reason))
        self._alive.discard(name)
        self._alive_frozen = None
        if reason == "timeout" and not self._mesh:
            entry = self._table[name]
            gen = max(peer.hb_gen, entry.gen if entry.inc == peer.inc else 0)
            if peer.inc and self._merge(name, peer.inc, gen, _DEAD, 0.0):
                self._announce[name] = None  # tell everyone at once

    def _check_settled(self) -> None:
        if not self._settled and all(self._peers[n].alive for n in self._watched):
            self._settled = True

    def _compute_quorum(self) -> bool:
        if self._left:
            return False
        n = len(self._peers) + 1
        mode = self._cfg.quorum
        if mode == "off" or (mode == "auto" and n <= 2):
            return True
        return 2 * len(self._alive) > n

    def _update_quorum(self, events: list[Event]) -> None:
        quorum = self._compute_quorum()
        if quorum != self._quorum:
            self._quorum = quorum
            events.append(QuorumChanged(quorum, len(self.alive()), len(self._peers) + 1))

    def _encode_view(self) -> bytes:
        alive = self.alive()
        if self._view_cache is not None and self._view_cache[0] is alive:
            return self._view_cache[1]
        bits = bytearray((len(self._order) + 7) // 8)
        for i, name in enumerate(self._order):
            if name in alive:
                bits[i // 8] |= 0x80 >> (i % 8)
        self._view_cache = (alive, bytes(bits))
        return self._view_cache[1]

    def _decode_view(self, bits: bytes) -> frozenset[str] | None:
        # Only meaningful if the sender has the same member list as we do (digest checked).
        if len(bits) != (len(self._order) + 7) // 8:
            return None
        return frozenset(n for i, n in enumerate(self._order) if bits[i // 8] & (0x80 >> (i % 8)))
