"""What this node keeps about each other member: the echo state and its direct liveness."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from ironlb.membership.config import Address
from ironlb.membership.replay import NoticeWindows
from ironlb.membership.table import RETIRED_KEEP

__all__ = ["Peer"]


@dataclass(slots=True, eq=False)
class Peer:
    """One other member, as the ``Membership`` core tracks it."""

    addr: Address
    # Latest authentic (incarnation, seq) seen from the peer: what we echo back.
    inc: int = 0
    seq: int = 0
    alive: bool = False
    expires: float = 0.0
    heard: float = -math.inf  # when its last heartbeat proved it alive (detection times are measured from it)
    hello: float = -math.inf  # when its last authentic heartbeat that could not prove it alive yet came
    view: frozenset[str] | None = None  # unused: see view_bits (kept for introspection)
    view_bits: bytes | None = None  # its alive set as last reported, decoded on demand
    flags: int | None = None  # the flags of its last heartbeat with a view (None: it sends none)
    reply_due: bool = True  # new neighbours get a hello at once, not after an interval
    last_sent: float = -math.inf
    last_addr: object = None
    retired: deque[int] = field(default_factory=lambda: deque(maxlen=RETIRED_KEEP))
    watch: bool = True  # a neighbour: we heartbeat it and decide its liveness ourselves
    hb_gen: int = 0  # generation in its last verified heartbeat
    notice_seqs: NoticeWindows = field(default_factory=dict)  # incarnation -> replay window
    mismatch_since: float | None = None
    last_sync: float = -math.inf
    synced_inc: int = 0  # the incarnation our last table sync went to (a sync to an earlier one tells this one nothing)
    sync_due: bool = False
    relayed: float = -math.inf  # when we last sent it the holds in force (a HOLDS message, while it settles)
    up_since: float = -math.inf  # when it last became alive (verified)
