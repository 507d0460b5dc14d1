"""The large-cluster half of ``Membership``: the member table spread by NOTICEs, and ``alive()`` as this node's
component of the watch graph (the design is in ``table`` and ``graph``).

A base class of ``Membership`` rather than a module of functions because it works on the same state; the state
is created by ``Membership.__init__`` and declared here for the type checker. With up to ``full_mesh_max``
members (a full mesh) none of this runs: every member is a neighbour and decides from its own heartbeats.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ironlb.membership.config import MembershipConfig
from ironlb.membership.events import Datagram, DownReason, Event, MemberDown, MemberUp
from ironlb.membership.graph import Graph, reachable
from ironlb.membership.heartbeat import FLAG_SETTLED
from ironlb.membership.hold import HeldMember, HoldPayload
from ironlb.membership.peer import Peer
from ironlb.membership.replay import notice_record, notice_replayed
from ironlb.membership.table import DEAD, ENTRY, LEFT, U32_MAX, Entry, Table, chunks
from ironlb.membership.wire import MsgType, Packet

__all__ = ["Gossip"]


class Gossip:
    """Merging table entries (and refuting our own death), NOTICEs in and out, table syncs, the alive component."""

    _node: str
    _inc: int
    _gen: int
    _left: bool
    _mesh: bool
    _settled: bool
    _cfg: MembershipConfig
    _peers: dict[str, Peer]
    _table: Table
    _order: list[str]
    _index: dict[str, int]
    _adj: Graph
    _slots: list[tuple[Peer | None, Entry]]
    _watched: list[str]
    _extra: set[str]
    _alive: set[str]
    _alive_frozen: frozenset[str] | None
    _changed: set[str]
    _reported_inc: dict[str, int]
    _dirty: bool
    _last_recompute: float
    _announce: dict[str, None]
    _tell: dict[str, None]
    _held: dict[str, HeldMember]
    rejected: Counter[str]
    refutations: int

    if TYPE_CHECKING:  # the direct-liveness half, in Membership

        def _emit(
            self, mtype: MsgType, targets: Iterable[tuple[str, Peer]], payload: bytes, now: float
        ) -> list[Datagram]: ...

        def _active(self) -> list[str]: ...

        def _update_quorum(self, events: list[Event]) -> None: ...

        def _hold(self, name: str, inc: int, hold: HoldPayload, now: float, events: list[Event]) -> None: ...

    def _merge(self, name: str, inc: int, gen: int, flags: int, now: float) -> bool:
        """Fold one entry into the table (the order in ``table``); True if it changed."""
        entry = self._table.entries.get(name)
        if entry is None:
            return False
        if name == self._node:
            if inc == self._inc and flags & DEAD and gen >= self._gen and not self._left:
                # Declared dead while alive: refute with a higher generation, to everyone.
                self._gen = min(gen + 1, U32_MAX)
                self._table.set(entry, self._inc, self._gen, 0)
                self.refutations += 1
                if not self._mesh:
                    self._announce[self._node] = None
            return False
        if not self._table.merge(entry, inc, gen, flags):
            return False
        self._dirty = True
        self._changed.add(name)
        return True

    def _notice_received(self, pkt: Packet, peer: Peer, now: float, hold: HoldPayload | None = None) -> list[Event]:
        if notice_replayed(peer.notice_seqs, pkt.incarnation, pkt.seq):
            self.rejected["replay"] += 1
            return []
        body = pkt.payload
        if pkt.type is MsgType.LEAVE:
            body = body[: ENTRY.size]  # the hold extension after it was checked by the caller
            entry = self._table.entries.get(pkt.sender)
            if hold is not None and entry is not None and entry.inc == pkt.incarnation and not entry.flags & DEAD:
                # A restart hold from the incarnation our table knows alive (a replay of an older one is not).
                notice_record(peer.notice_seqs, pkt.incarnation, pkt.seq)
                held_events: list[Event] = []
                self._hold(pkt.sender, pkt.incarnation, hold, now, held_events)
                return held_events
        if len(body) % ENTRY.size:
            self.rejected["malformed_payload"] += 1
            return []
        notice_record(peer.notice_seqs, pkt.incarnation, pkt.seq)
        size, by_key, table = ENTRY.size, self._table.by_key, self._table.entries
        for off in range(0, len(body), size):
            raw = body[off : off + size]
            name = by_key.get(raw[:8])
            if name is None:
                continue  # a member we do not have (member lists differ for a while)
            if raw == table[name].packed:
                continue  # nothing new (most of a table sync)
            if pkt.type is MsgType.LEAVE and name != pkt.sender:
                continue  # a LEAVE speaks only for its sender
            _key, inc, gen, flags = ENTRY.unpack(raw)
            self._merge(name, inc, gen, flags & (DEAD | LEFT), now)
        if pkt.type is MsgType.LEAVE:
            peer.retired.append(pkt.incarnation)
        events: list[Event] = []
        if self._mesh:
            return events
        if self._dirty and now >= self._last_recompute + self._cfg.interval / 4:
            self._recompute(now, events)
            self._update_quorum(events)
        return events

    def _check_tables(self, peer: Peer, their_hash: int | None, now: float) -> None:
        """Compare a neighbour's table hash with ours: a sync is due after ``dead_timeout`` of difference (notices
        in flight make tables differ for a moment), at once for a joiner (``_joiner``); none while they agree."""
        if self._mesh or their_hash is None:
            return
        if their_hash == self._table.hash:
            peer.mismatch_since = None
            peer.sync_due = False  # our table would tell it nothing
        elif self._joiner(peer):
            peer.sync_due = True
        elif peer.mismatch_since is None:
            peer.mismatch_since = now
        elif now - peer.mismatch_since >= self._cfg.dead_timeout:
            peer.sync_due = True

    def _joiner(self, peer: Peer) -> bool:
        """Is ``peer`` settling (its last heartbeat says so) while we have settled? Its table lacks what ours has
        (its ring neighbours answer first, the others it learns from our table) and it may announce only once its
        view is complete, within ``SETTLE_BOUND`` dead timeouts of its start (``settle``)."""
        return self._settled and peer.flags is not None and not peer.flags & FLAG_SETTLED

    def _sync_gap(self, peer: Peer) -> float:
        """Least time between two table syncs to ``peer``: ``sync_interval``; none for its first (a new
        incarnation); two heartbeat intervals for a joiner (``_joiner``), so a lost sync is sent again well within
        its settle bound. Two intervals leave its next heartbeat the time to say whether the last one arrived,
        and bound the syncs to a joiner: it settles by ``SETTLE_BOUND * dead_timeout`` (7 intervals with the
        defaults), so each neighbour sends it at most five (one datagram per 64 members each)."""
        if peer.synced_inc != peer.inc:
            return 0.0
        if self._joiner(peer):
            return min(2 * self._cfg.interval, self._cfg.sync_interval)
        return self._cfg.sync_interval

    def _notices(self, now: float) -> list[Datagram]:
        """NOTICEs due: announced entries to everyone, full tables to out-of-sync neighbours."""
        out: list[Datagram] = []
        if self._announce:
            entries = [self._pack_entry(n) for n in self._announce]
            self._announce.clear()
            targets = list(self._peers.items())
            for payload in chunks(entries):
                out += self._emit(MsgType.NOTICE, targets, payload, now)
        for name in self._tell:
            if name in self._peers:
                out += self._emit(MsgType.NOTICE, [(name, self._peers[name])], self._pack_entry(name), now)
        self._tell.clear()
        syncs = [(n, self._peers[n]) for n in self._active() if self._peers[n].sync_due]
        syncs = [(n, p) for n, p in syncs if now - p.last_sync >= self._sync_gap(p)]
        if syncs:
            entries = self._table.known()
            for name, p in syncs:
                p.sync_due = False
                p.last_sync = now
                p.synced_inc = p.inc
                p.mismatch_since = None
                for payload in chunks(entries):
                    out += self._emit(MsgType.NOTICE, [(name, p)], payload, now)
        return out

    def _pack_entry(self, name: str) -> bytes:
        return self._table.entries[name].packed

    def _recompute(self, now: float, events: list[Event]) -> None:
        """``alive()`` := our component of the watch graph over believed-alive members."""
        self._dirty = False
        self._last_recompute = now
        if self._mesh:
            return
        order, peers, table = self._order, self._peers, self._table.entries
        believed = bytearray(len(order))
        for i, (p, e) in enumerate(self._slots):
            if p is None:
                believed[i] = 1
            elif p.watch:
                believed[i] = p.alive
            else:
                believed[i] = p.alive or (e.inc != 0 and not e.flags & DEAD) or order[i] in self._held
        # Heartbeating non-neighbours (member lists differ for a while) vouch for themselves.
        starts = [self._index[self._node], *(self._index[n] for n in self._extra if peers[n].alive)]
        new = set(itertools.compress(order, reachable(self._adj, believed, starts)))
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
            reason: DownReason = "left" if e.flags & LEFT else "timeout" if e.flags & DEAD else "unreachable"
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
