"""Sans-I/O core of the speaker membership protocol: ``Membership``.

Speakers learn which speakers are alive from each other. ``Membership`` is a
pure state machine: the caller feeds it datagrams and the current time (a
monotonic clock, in seconds) and sends the datagrams it returns. It never reads
a clock, never touches a socket and never raises on network input, so it can be
tested with simulated time and driven by any event loop (``service`` is the
asyncio shell).

The design is documented beside the code that does each part:

* ``graph``: direct liveness (heartbeats between watchers), the watch graph
  (full mesh, or hash rings above ``full_mesh_max`` members), and ``alive()``
  as this node's component of it;
* ``table``: the member table and its NOTICEs (death notices, refutation,
  table syncs) that tell members nobody here watches; ``gossip`` is the part
  of ``Membership`` that keeps it and computes the alive component;
* ``replay``: authentication, freshness by echo, anti-replay;
* ``quorum``: the partition safeguard (metallb#589, #2838);
* ``heartbeat``: the heartbeat payload; ``config`` and ``events``: what goes in
  and out;
* ``hold``: the restart hold (a LEAVE that keeps the sender's IPs in place while
  its speaker restarts; its successors stand in);
* ``settle``: when a starting node's view is complete enough to announce from
  (``settled()``).

Restart holds
    A hold LEAVE from a live member keeps it in ``alive()`` (so the election
    keeps it as owner and nothing moves) until its new incarnation is heard
    (``returned``), the hold's H passes (``expired``, then it counts as left),
    the caller says its node stopped answering (``end_hold``: ``unreachable``,
    then it counts as dead), a plain LEAVE comes, or one of the stand-ins it
    named goes down, restarts, leaves or is held itself (``standin_down``: its
    share of the IPs would go unanswered, so they fail over as after a death;
    every member sees that member go and concludes the same). A held member is no proof of
    a live majority: it does not count towards the quorum, which is made of the
    members whose heartbeats (or table entries) say they are alive.

Local stalls
    If ``tick`` is called much later than due (the event loop was blocked),
    packets from live peers may be sitting unread in the socket; declaring them
    dead would make this node grab their IPs. So a late tick grants alive
    members one extra ``dead_timeout`` instead of expiring them, at most once
    every two ``dead_timeout`` periods so a persistently slow loop still
    detects deaths. A stall of the whole machine is thus forgiven by every
    node, however the nodes' stalls start and end; what no observer can
    forgive is a stall it did not share: a member silent past the dead
    timeout while the observer ran on time, or a network that delivered
    nothing for that long (``tests/membership/test_machine_stalls.py``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from ironlb.histogram import DETECTION_BUCKETS, Histogram
from ironlb.membership.config import (
    Address,
    MembershipConfig,
    check_address,
    check_name,
    new_incarnation,
)
from ironlb.membership.events import (
    Datagram,
    DownReason,
    Event,
    HoldBegun,
    HoldEnded,
    HoldEndReason,
    MemberDown,
    MemberHeld,
    MemberUp,
    QuorumChanged,
    TickResult,
)
from ironlb.membership.gossip import Gossip
from ironlb.membership.graph import watch_graph
from ironlb.membership.heartbeat import (
    FLAG_SETTLED,
    decode_view,
    encode_view,
    heartbeat_head,
    member_digest,
    parse_heartbeat,
    split_view,
    view_bit,
)
from ironlb.membership.hold import (
    MAX_HELD_IPS,
    MAX_STANDINS,
    MAX_UNLISTED_HOLDS,
    HeldMember,
    HoldError,
    HoldOffer,
    HoldPayload,
    decode_hold,
    decode_relay,
    encode_hold,
    hold_chunks,
    relay_payloads,
)
from ironlb.membership.peer import Peer
from ironlb.membership.quorum import has_quorum
from ironlb.membership.replay import SentLog, notice_record, notice_replayed
from ironlb.membership.settle import SETTLE_BOUND, evidence, may_settle
from ironlb.membership.table import DEAD, ENTRY, LEFT, Entry, Table, name_key
from ironlb.membership.wire import MIN_SECRET_LEN, MsgType, Packet, WireError, decode, encode

__all__ = ["Membership"]


class Membership(Gossip):
    """Membership state of one node. See the module docstring (and the modules it names) for the protocol.

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
        self._node = check_name(node)
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
        self._sent = SentLog()
        self._peers: dict[str, Peer] = {}
        self._own_addr: Address | None = None
        self._order: list[str] = []
        self._index: dict[str, int] = {}
        self._adj: tuple[tuple[int, ...], ...] = ()
        self._mesh = True
        self._watched: list[str] = []  # our neighbours, sorted
        self._extra: set[str] = set()  # non-neighbours that heartbeat us (member lists differ)
        self._table = Table()
        self._slots: list[tuple[Peer | None, Entry]] = []  # by index in _order; no peer for ourselves
        self._changed: set[str] = set()  # entries changed since the last recompute (restarts)
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
        self._held: dict[str, HeldMember] = {}  # restarting members kept alive (see "Restart holds")
        self._unlisted: dict[str, Address] = {}  # held members not in our list, from HOLDS while settling
        self.rejected: Counter[str] = Counter()
        """Dropped datagrams by reason (for metrics)."""
        self.stalls = 0
        """Late ticks treated as local stalls (see module doc)."""
        self.refutations = 0
        """Times this node was declared dead while alive and said so (see module doc)."""
        self.detections = Histogram(DETECTION_BUCKETS)
        """Seconds from a neighbour's last heartbeat to its declared death by timeout, one per death we detected."""
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
        return self._table.hash

    def declared_dead(self) -> frozenset[str]:
        """Members whose table entry says dead or left (the notices received)."""
        return self._table.declared_dead()

    def held(self) -> dict[str, HeldMember]:
        """Members held for a restart (see the module doc), by name."""
        return dict(self._held)

    def has_quorum(self) -> bool:
        """Whether this node may announce: sees a strict majority, or quorum is off."""
        return self._quorum

    def settled(self) -> bool:
        """True once this node's view is complete (``settle``): no member that heard peers report alive is
        missing from it, and every neighbour is heard or vouched dead by a settled peer; without such evidence
        ``dead_timeout`` after the first tick, and in any case ``SETTLE_BOUND * dead_timeout`` after it.

        Before that, ``alive()`` may lack members only because their heartbeats have not arrived yet; announcing
        then would answer for their IPs beside them.
        """
        return self._settled

    def views(self) -> dict[str, frozenset[str]]:
        """The alive set each alive neighbour last reported (ours included), when known."""
        out: dict[str, frozenset[str]] = {}
        for n, p in self._peers.items():
            if p.alive and p.view_bits is not None:
                view = decode_view(self._order, p.view_bits)
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
        for held in self._held.values():
            deadline = min(deadline, held.until)
        if self._announce or self._tell or (not self._announced_self and not self._mesh):
            return -math.inf
        if self._dirty and not self._mesh:
            deadline = min(deadline, self._last_recompute + self._cfg.interval / 4)
        gap = self._cfg.interval / 4
        for name in self._active():
            p = self._peers[name]
            if p.alive and name not in self._held:  # a held member's silence is no deadline (see tick)
                deadline = min(deadline, p.expires)
            if p.reply_due:
                deadline = min(deadline, p.last_sent + gap)
            if p.sync_due:
                deadline = min(deadline, p.last_sync + self._sync_gap(p))
            if self._held and self._settled and self._relay_due(name, p, self._last_tick or 0.0):
                deadline = min(deadline, p.relayed + 2 * self._cfg.interval)
        if not self._settled and self._started is not None:
            first = self._started + self._cfg.dead_timeout  # then the bound: see ``settle``
            last_tick = self._last_tick if self._last_tick is not None else self._started
            bound = self._started + SETTLE_BOUND * self._cfg.dead_timeout
            # A shell reads its neighbours' heartbeats at the ticks: while settling, tick every quarter interval so
            # the one that completes the view counts within that, not at the next heartbeat (at most
            # 4 * SETTLE_BOUND * dead_timeout / interval ticks more per start).
            deadline = min(deadline, first if last_tick < first else bound, last_tick + self._cfg.interval / 4)
        return deadline

    # ----------------------------------------------------------------- inputs

    def datagram_received(self, data: bytes, addr: object, now: float) -> list[Event]:
        """Process one datagram from ``addr`` (kept only for diagnostics).

        Never raises for bad input: rejected datagrams are counted in
        ``rejected`` and change nothing.
        """
        events = self._received(data, addr, now)
        if not self._settled:
            self._check_settled(now)  # a heartbeat's view or a table sync may complete ours
        self._check_standins(now, events)
        return events

    def _received(self, data: bytes, addr: object, now: float) -> list[Event]:
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
        if pkt.type is MsgType.HOLDS:
            return self._relay_received(pkt, peer, now)
        hold: HoldPayload | None = None
        if pkt.type is MsgType.LEAVE and len(pkt.payload) > ENTRY.size:
            try:
                hold = decode_hold(pkt.payload[ENTRY.size :])
            except HoldError as exc:
                self.rejected[exc.reason] += 1
                return []
            if hold.seconds > self._cfg.hold_max:
                self.rejected["hold_refused"] += 1  # longer than we grant: a plain LEAVE
                hold = None
        same_inc = pkt.incarnation == peer.inc
        if same_inc and pkt.seq <= peer.seq:
            if pkt.type is MsgType.LEAVE and not peer.watch:
                return self._notice_received(pkt, peer, now, hold)
            self.rejected["replay"] += 1
            return []
        if not self._fresh(pkt, now):
            if pkt.type is MsgType.LEAVE and not peer.watch:
                # A non-neighbour never has a fresh echo: its LEAVE is a notice.
                return self._notice_received(pkt, peer, now, hold)
            # Authentic but not provably recent: it may only tell us what to echo,
            # and only in ways a replay cannot use against a live member.
            if same_inc or not peer.alive:
                peer.inc, peer.seq, peer.last_addr = pkt.incarnation, pkt.seq, addr
                if pkt.type is MsgType.HEARTBEAT:
                    peer.reply_due = True  # let it prove freshness within one round trip
                    peer.hello = now  # while settling, wait for that round trip (``settle``)
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
            self._end_hold(pkt.sender, "returned", now, events)
        peer.inc, peer.seq, peer.last_addr = pkt.incarnation, pkt.seq, addr
        if pkt.type is MsgType.LEAVE and hold is not None and same_inc and peer.alive:
            self._hold(pkt.sender, pkt.incarnation, hold, now, events)
        elif pkt.type is MsgType.LEAVE:
            self._end_hold(pkt.sender, "left", now, events)
            if pkt.incarnation not in peer.retired:
                peer.retired.append(pkt.incarnation)
            self._merge(pkt.sender, pkt.incarnation, peer.hb_gen, DEAD | LEFT, now)
            if peer.alive:
                self._direct_down(pkt.sender, peer, "left", events)
        else:
            peer.expires = now + self._cfg.dead_timeout
            peer.heard = now
            their_hash = self._heartbeat_payload(pkt.sender, peer, pkt.payload)
            self._merge(pkt.sender, pkt.incarnation, peer.hb_gen, 0, now)
            entry = self._table.entries[pkt.sender]
            if not self._mesh and entry.flags & DEAD and entry.inc == pkt.incarnation:
                self._tell[pkt.sender] = None  # alive but declared dead: let it refute
            self._check_tables(peer, their_hash, now)
            if restarted:
                self._direct_down(pkt.sender, peer, "restarted", events)
            if not peer.alive:
                peer.alive = True
                peer.up_since = now
                peer.reply_due = True  # so that it can verify us within one round trip too
                if peer.watch:
                    events.append(MemberUp(pkt.sender, pkt.incarnation))
                    self._alive.add(pkt.sender)
                    self._alive_frozen = None
                    if not self._mesh and now - peer.last_sync >= self._sync_gap(peer):
                        peer.sync_due = True  # a neighbour (re)appeared: give it our table
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
        for name, held in list(self._held.items()):
            if held.until <= now:
                self._end_hold(name, "expired", now, events)
        for name in active:
            p = self._peers[name]
            if p.alive and p.expires <= now and name not in self._held:
                if p.watch:
                    self.detections.observe(now - p.heard)
                self._direct_down(name, p, "timeout", events)

        peers = self._peers
        if now >= self._next_hb:
            targets = [(n, p) for n in active if (p := peers[n]).watch or p.alive or p.reply_due]
            nxt = self._next_hb + cfg.interval
            self._next_hb = nxt if nxt > now else now + cfg.interval
        else:
            gap = cfg.interval / 4
            targets = [(n, p) for n in active if (p := peers[n]).reply_due and now - p.last_sent >= gap]
        datagrams = self._relays(now) if self._held and self._settled else []  # before a heartbeat completes a view
        datagrams += self._emit(MsgType.HEARTBEAT, targets, self._heartbeat_body() if targets else b"", now)
        for name in [n for n in self._extra if not peers[n].alive and not peers[n].reply_due]:
            self._extra.discard(name)

        if not self._mesh:
            if not self._announced_self:
                self._announced_self = True
                self._announce[self._node] = None
            if self._dirty and now >= self._last_recompute + cfg.interval / 4:
                self._recompute(now, events)
            datagrams += self._notices(now)

        if not self._settled:
            self._check_settled(now)
        self._check_standins(now, events)
        self._update_quorum(events)
        return TickResult(datagrams, events)

    def leave(self, now: float, hold: HoldOffer | None = None) -> list[Datagram]:
        """Say goodbye: signed LEAVE datagrams for every member. The node is then inert.

        ``hold``: a restart (see ``hold``): the others keep this node's IPs in place for up to ``hold.seconds``
        and each named in ``hold.stand_in`` answers for its share with this node's MACs.
        """
        if self._left:
            return []
        targets = list(self._peers.items())
        payload = ENTRY.pack(name_key(self._node), self._inc, self._gen, DEAD | LEFT)
        datagrams: list[Datagram] = []
        for _ in range(self._cfg.leave_copies):
            if hold is None:
                datagrams += self._emit(MsgType.LEAVE, targets, payload, now)
                continue
            standins = [name_key(n) for n in sorted(hold.stand_in) if n in self._peers and hold.stand_in[n]]
            for name, p in targets:
                share = list(dict.fromkeys(hold.stand_in.get(name, ())))
                parts = list(hold_chunks(share, standins))
                total = len(share) if len(parts) > 1 else None  # several datagrams: say how many IPs in all
                for chunk, keys in parts:
                    ext = encode_hold(hold.seconds, hold.links, chunk, keys, total)
                    datagrams += self._emit(MsgType.LEAVE, [(name, p)], payload + ext, now)
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
            self._check_settled(self._last_tick)
        for name in [n for n in self._held if n not in self._peers]:
            del self._held[name]
            events.append(HoldEnded(name, "removed"))
        for name in sorted(old_alive - {self._node} - set(self._peers)):
            events.append(MemberDown(name, "removed"))
        self._recompute(self._last_tick if self._last_tick is not None else 0.0, events)
        self._check_standins(self._last_tick if self._last_tick is not None else 0.0, events)
        self._update_quorum(events)
        return events

    # --------------------------------------------------------------- internals

    def _active(self) -> list[str]:
        """Peers we exchange heartbeats with: the neighbours and any extra ones."""
        if not self._extra:
            return self._watched
        return self._watched + sorted(self._extra)

    def _apply_members(self, members: Mapping[str, tuple[str, int]]) -> None:
        peers: dict[str, Peer] = {}
        own: Address | None = None
        for name, addr in members.items():
            checked = check_address(addr)
            if check_name(name) == self._node:
                own = checked
                continue
            peer = self._peers.get(name)
            if peer is None:
                peer = Peer(checked)
            else:
                peer.addr = checked
                peer.view_bits = peer.flags = None  # it was relative to the old member list
            peers[name] = peer
        self._peers = peers
        self._own_addr = own
        self._order = sorted([self._node, *peers])
        self._index = {n: i for i, n in enumerate(self._order)}
        self._digest = member_digest(self._order)
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
        self._table.rebuild(self._order)
        entries = self._table.entries
        self._slots = [(peers.get(n), entries[n]) for n in self._order]
        self._table.set(entries[self._node], self._inc, self._gen, 0)
        if self._mesh:
            self._alive = {self._node, *(n for n, p in peers.items() if p.alive)}
        else:
            self._alive = {n for n in self._alive if n == self._node or n in peers}
        self._alive_frozen = None
        self._reported_inc = {n: i for n, i in self._reported_inc.items() if n in peers and n not in watched}
        self._dirty = True
        self._check_settled(self._last_tick)

    def _heartbeat_body(self) -> bytes:
        head = heartbeat_head(self._digest, self._gen, self._table.hash)
        if not self._cfg.carry_views:
            return head
        return head + self._encode_view() + bytes((FLAG_SETTLED if self._settled else 0,))

    def _heartbeat_payload(self, name: str, peer: Peer, payload: bytes) -> int | None:
        """Read a verified heartbeat's payload; returns the sender's table hash if comparable."""
        peer.view_bits = peer.flags = None
        heartbeat = parse_heartbeat(payload)
        if heartbeat is None:
            return None
        peer.hb_gen = heartbeat.generation
        if heartbeat.digest != self._digest:
            return None
        peer.view_bits, peer.flags = split_view(len(self._order), heartbeat.view_bits)
        return heartbeat.table_hash

    def _fresh(self, pkt: Packet, now: float) -> bool:
        """Does the echo name a packet we sent within the last ``dead_timeout``?"""
        if pkt.echo_incarnation != self._inc:
            return False
        return self._sent.covers(pkt.echo_seq, self._seq, now - self._cfg.dead_timeout)

    def _emit(self, mtype: MsgType, targets: Iterable[tuple[str, Peer]], payload: bytes, now: float) -> list[Datagram]:
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
            if mtype is MsgType.HEARTBEAT or mtype is MsgType.LEAVE:  # a NOTICE or HOLDS proves nothing: no reply
                p.reply_due = False
                p.last_sent = now
        if out:
            self._sent.record(first, now, now - self._cfg.dead_timeout)  # bounded even if nothing is ever received
        return out

    def _direct_down(self, name: str, peer: Peer, reason: DownReason, events: list[Event]) -> None:
        peer.alive = False
        peer.view_bits = peer.flags = None
        self._dirty = True
        if not peer.watch:
            return
        events.append(MemberDown(name, reason))
        self._alive.discard(name)
        self._alive_frozen = None
        if reason == "timeout" and not self._mesh:
            entry = self._table.entries[name]
            gen = max(peer.hb_gen, entry.gen if entry.inc == peer.inc else 0)
            if peer.inc and self._merge(name, peer.inc, gen, DEAD, 0.0):
                self._announce[name] = None  # tell everyone at once

    def _check_settled(self, now: float | None) -> None:
        """Settle if the view is complete (``settle``); ``now`` None: before the first tick."""
        if self._settled:
            return
        heard_all = all(self._peers[n].alive for n in self._watched)
        if heard_all and self._mesh and not self._cfg.carry_views:
            self._settled = True  # every member heard: nobody can be missing (with views: and they count us)
            return
        elapsed = 0.0 if now is None or self._started is None else now - self._started
        if self._cfg.carry_views:
            since = now - self._cfg.dead_timeout if now is not None else math.inf
            me = view_bit(len(self._order), self._index[self._node])
            covered, witness = evidence(self._encode_view(), me, (self._peers[n] for n in self._active()), since)
        else:
            covered, witness = True, False
            hello = now - self._cfg.dead_timeout if now is not None else math.inf
            covered = not any(not p.alive and p.hello > hello for p in (self._peers[n] for n in self._active()))
        if any(name not in self._held and name not in self._alive for name in self._unlisted):
            covered = False  # a held member peers named, not held here yet (our list lacked it): wait (the bound)
        self._settled = may_settle(
            heard_all=heard_all, covered=covered, witness=witness, elapsed=elapsed, dead_timeout=self._cfg.dead_timeout
        )
        if self._settled:
            self._unlisted.clear()

    def _compute_quorum(self) -> bool:
        if self._left:
            return False
        live = len(self._alive) - sum(1 for name in self._held if name in self._alive)  # a held member proves nothing
        return has_quorum(self._cfg.quorum, live, len(self._peers) + 1)

    # ------------------------------------------------------------ restart holds

    def end_hold(self, name: str, now: float) -> list[Event]:
        """The held member's node stopped answering (the caller's probe): it is dead now, as after a timeout."""
        events: list[Event] = []
        if self._end_hold(name, "unreachable", now, events):
            if not self._mesh:
                self._recompute(now, events)
            self._check_standins(now, events)
            self._update_quorum(events)
        return events

    def _hold(self, name: str, inc: int, hold: HoldPayload, now: float, events: list[Event]) -> None:
        """Keep ``name`` alive for up to ``hold.seconds``; add the IPs of this datagram to ours to stand in for."""
        held = self._held.get(name)
        if held is None or held.inc != inc:
            held = self._held[name] = HeldMember(inc, now + hold.seconds, hold.links, set())
            fresh = True
            events.append(HoldBegun(name, inc))
        else:
            fresh = False
        by_key = self._table.by_key
        held.standins.update(
            n for key in hold.standins[: MAX_STANDINS - len(held.standins)] if (n := by_key.get(key)) is not None
        )
        if hold.share is not None:  # a share in several datagrams: complete once that many IPs came
            held.share = min(max(held.share or 0, hold.share), MAX_HELD_IPS)
        new = [ip for ip in hold.ips if ip not in held.ips]
        room = MAX_HELD_IPS - len(held.ips)
        if len(new) > room:
            self.rejected["hold_oversized"] += 1
            new = new[:room]
        if not (fresh or new):
            return  # a copy of a datagram already applied
        held.ips.update(new)
        self._dirty = True
        events.append(MemberHeld(name, inc, held.until, held.links, frozenset(held.ips), held.complete))
        self._update_quorum(events)

    def _end_hold(self, name: str, reason: HoldEndReason, now: float, events: list[Event]) -> bool:
        """End the hold of ``name`` if there is one; unless it ``returned``, its held incarnation is gone."""
        held = self._held.pop(name, None)
        if held is None:
            return False
        events.append(HoldEnded(name, reason))
        self._dirty = True
        peer = self._peers.get(name)
        if reason == "returned" or peer is None:
            return True
        if held.inc not in peer.retired:
            peer.retired.append(held.inc)
        self._merge(name, held.inc, peer.hb_gen, DEAD | LEFT, now)
        if peer.alive:
            self._direct_down(name, peer, "timeout" if reason == "unreachable" else "left", events)
        return True

    def _check_standins(self, now: float, events: list[Event]) -> None:
        """End every hold whose stand-in is gone (see the module doc): it went down or restarted (a
        ``MemberDown`` among ``events``), is not alive here (a settled view; also a hold that named a member
        already dead here), or is held itself. Ending one hold may end another (the held node stood in for it)."""
        if not self._held:
            return
        seen = 0
        while True:
            gone = {e.name for e in events[seen:] if isinstance(e, MemberDown)}
            seen = len(events)
            ended = False
            for name, held in list(self._held.items()):
                if name not in self._held:
                    continue
                for standin in held.standins:
                    if standin in (name, self._node):
                        continue
                    if standin in gone or standin in self._held or (self._settled and standin not in self._alive):
                        ended = self._end_hold(name, "standin_down", now, events) or ended
                        break
            if not ended:
                return
            if not self._mesh:
                self._recompute(now, events)
            self._update_quorum(events)

    def _relay_due(self, name: str, peer: Peer, now: float) -> bool:
        """Does ``peer`` (not held itself) need the holds? It has just said hello (a new incarnation: the holds go
        with our first reply, before it can settle on hearing us); or it is alive and its heartbeats say it
        settles, or cannot say (its member list differs from ours, maybe for lack of a held member: a Kubernetes
        speaker's Pod listing) and it came up within the settle bound."""
        if name in self._held or not peer.inc:
            return False
        if not peer.alive:
            return now - peer.hello < self._cfg.dead_timeout
        if peer.flags is not None:
            return not peer.flags & FLAG_SETTLED
        return now - peer.up_since < SETTLE_BOUND * self._cfg.dead_timeout

    def _relays(self, now: float) -> list[Datagram]:
        """HOLDS for every settling neighbour not sent them within two intervals (``hold``: a member that starts
        after a hold LEAVE was sent learns the holds in force from us, not only from the LEAVE it never got)."""
        gap = 2 * self._cfg.interval
        targets = [
            (n, p) for n in self._active() if self._relay_due(n, p := self._peers[n], now) and now - p.relayed >= gap
        ]
        if not targets:
            return []
        records = [
            (name, held.inc, self._peers[name].addr, held.until - now, held.links,
             [name_key(s) for s in sorted(held.standins)], sorted(held.ips, key=str) if held.complete else None)
            for name, held in sorted(self._held.items())
            if held.until - now >= 0.001 and name in self._peers
        ]  # fmt: skip
        out: list[Datagram] = []
        for payload in relay_payloads(records) if records else []:
            out += self._emit(MsgType.HOLDS, targets, payload, now)
        for _name, p in targets:
            p.relayed = now
        return out

    def _relay_received(self, pkt: Packet, peer: Peer, now: float) -> list[Event]:
        """The holds in force at a peer, while we settle: hold each member as the others do (``hold``)."""
        if not self._fresh(pkt, now):  # what makes a heartbeat proof of life: it echoes our recent datagram
            self.rejected["stale"] += 1
            return []
        if notice_replayed(peer.notice_seqs, pkt.incarnation, pkt.seq):
            self.rejected["replay"] += 1
            return []
        if self._settled:
            self.rejected["relay_late"] += 1  # we announce from what we decided without it: too late to change
            return []
        try:
            records = [(r.name, r.inc, r.address, decode_hold(r.ext)) for r in decode_relay(pkt.payload)]
        except HoldError as exc:
            self.rejected[exc.reason] += 1
            return []
        notice_record(peer.notice_seqs, pkt.incarnation, pkt.seq)
        events: list[Event] = []
        for name, inc, address, hold in records:
            if name == pkt.sender:
                continue  # a member speaks for itself by its own LEAVE
            held = self._peers.get(name)
            if held is None and name != self._node:
                self._unlisted_hold(name, address)
                continue
            if held is None or inc in held.retired:
                continue  # ourselves, or an incarnation gone
            if (held.alive and held.inc != inc) or (name in self._held and self._held[name].inc != inc):
                continue  # we know it in another incarnation: that one's own word counts
            if hold.seconds > self._cfg.hold_max:
                self.rejected["hold_refused"] += 1
                continue
            if not held.alive and held.watch:
                held.inc, held.seq = inc, 0
                held.alive = True
                events.append(MemberUp(name, inc))
                self._alive.add(name)
                self._alive_frozen = None
            self._hold(name, inc, HoldPayload(hold.seconds, hold.links, (), hold.standins), now, events)
            self._relayed_share(name, pkt.sender, hold)
        if not self._mesh and events:
            self._recompute(now, events)
        self._update_quorum(events)
        return events

    def _relayed_share(self, name: str, standin: str, hold: HoldPayload) -> None:
        """Add what ``standin`` relayed of its share of ``name``'s IPs (``HeldMember.kept``), bounded in all."""
        held = self._held.get(name)
        if held is None or hold.share is None:
            return
        ips, _size = held.relayed.get(standin, (set(), 0))
        room = MAX_HELD_IPS - sum(len(known) for known, _ in held.relayed.values())
        new = [ip for ip in hold.ips if ip not in ips][: max(room, 0)]
        ips.update(new)
        held.relayed[standin] = (ips, min(hold.share, MAX_HELD_IPS))

    def _unlisted_hold(self, name: str, address: tuple[str, int]) -> None:
        """A held member our member list lacks: remember it (bounded) for the caller, who may add it (``hold``)."""
        if name not in self._unlisted and len(self._unlisted) >= MAX_UNLISTED_HOLDS:
            self.rejected["hold_oversized"] += 1
            return
        try:
            self._unlisted[check_name(name)] = check_address(address)
        except ValueError:
            self.rejected["bad_hold"] += 1

    def unlisted_holds(self) -> dict[str, Address]:
        """Held members that our member list lacks, as peers' HOLDS named them while we settle (empty once settled):
        a caller whose member list may lack a restarting member (a Kubernetes speaker's Pod listing while its Pod is
        replaced) adds them, and we hold them from the next HOLDS. Until then they keep us settling (the bound)."""
        return dict(self._unlisted)

    def _update_quorum(self, events: list[Event]) -> None:
        quorum = self._compute_quorum()
        if quorum != self._quorum:
            self._quorum = quorum
            events.append(QuorumChanged(quorum, len(self.alive()), len(self._peers) + 1))

    def _encode_view(self) -> bytes:
        alive = self.alive()
        if self._view_cache is not None and self._view_cache[0] is alive:
            return self._view_cache[1]
        self._view_cache = (alive, encode_view(self._order, alive))
        return self._view_cache[1]
