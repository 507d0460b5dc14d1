"""Settling: when a starting node's alive set is complete enough to act on (issue 9).

A node that starts (or restarts, or first learns its member list) knows nobody alive until heartbeats arrive.
If it announced from that view, it would win the IPs of members it simply has not heard yet and answer beside
their owners, until their heartbeats arrive a moment later. So a node is *settling* until its view is complete,
and the caller must not announce before ``settled()``.

Complete means no member that others see alive is missing from this node's view:

* every heard peer that reports its alive set (the heartbeat's view, same member list) reports only members
  this node also counts alive, and this node among them (``covered``); a peer's view is evidence that the
  members in it are alive, even when that peer is itself still settling. A peer that does not count this node
  yet still gives this node's IPs to others: a member that starts after the others announced would otherwise
  claim its IPs while they hold them, for the round trip that proves it to them (a hand-over, not a wait for
  anybody: its own heartbeat is what they count);
* no member is on its way: a heartbeat that is authentic but cannot prove its sender alive yet (its echo is not
  ours: a member that has just started, before the round trip that proves it) came less than ``dead_timeout``
  ago. Two nodes that start moments apart would otherwise settle on each other's absence; waiting costs a round
  trip, and a replayed capture can delay a joiner by the bound at most; and
* every neighbour is heard, or a peer that has itself settled (the heartbeat's flag, ``heartbeat``) vouches for
  the rest: its complete view lists none of them, so they are down, not merely unheard (``witness``). A
  settling peer's view is no such evidence: it may be missing the same members (a whole cluster restarting).

Without any evidence (nobody heard, or no views: ``carry_views`` off, member lists that differ), a node settles
``dead_timeout`` after it started, as a live member would have been heard by then (the same silence that declares
a member dead). With evidence of a member it has not heard (a peer's view lists it), it waits for it up to
``SETTLE_BOUND`` dead timeouts, and settles then whatever it heard, so nothing waits forever: a member seen by
others but not by us (a broken link) does not keep us out. A node alone (no other member) is settled at once.

In a full mesh, hearing every member (and being counted by them) is enough (the view then holds every
member). Above ``full_mesh_max`` the
neighbours are only the ring neighbours, and the other members come from the table (NOTICEs, table syncs): the
neighbours' views are what says the table is not filled yet, so ``covered`` is what a joiner waits for there.
Its settled neighbours send it their table at once and, while its heartbeats say it is settling and its table
hash differs, again every two heartbeat intervals (``Gossip._sync_gap``): a lost sync is repaired well within
the bound, not after ``sync_interval``.
"""

from __future__ import annotations

from collections.abc import Iterable

from ironlb.membership.heartbeat import FLAG_SETTLED
from ironlb.membership.peer import Peer

__all__ = ["SETTLE_BOUND", "evidence", "may_settle"]

SETTLE_BOUND = 2
"""Dead timeouts after start by which a node settles whatever it heard (it waits that long for a member that
others report alive and it has not heard)."""


def evidence(ours: bytes, me: int, peers: Iterable[Peer], since: float) -> tuple[bool, bool]:
    """``(covered, witness)`` over ``peers``: every view lists ``me`` (our bit, ``view_bit``) and no member outside
    ``ours`` (our alive set's bitmap over the same member list), and no member that said hello after ``since`` is
    unheard; some peer with a view has settled."""
    mine = int.from_bytes(ours, "big")
    covered, witness = True, False
    for p in peers:
        if not p.alive:
            covered = covered and p.hello <= since
            continue
        if p.view_bits is None:
            continue
        view = int.from_bytes(p.view_bits, "big")
        if view & ~mine or not view & me:
            covered = False
        if p.flags is not None and p.flags & FLAG_SETTLED:
            witness = True
    return covered, witness


def may_settle(*, heard_all: bool, covered: bool, witness: bool, elapsed: float, dead_timeout: float) -> bool:
    """Whether a settling node settles now (the rule in the module doc); ``elapsed``: seconds since it started."""
    if elapsed >= SETTLE_BOUND * dead_timeout:
        return True
    return covered and (heard_all or witness or elapsed >= dead_timeout)
