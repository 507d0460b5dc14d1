"""Who watches whom, and which members count as alive from what this node believes.

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

The alive set (large clusters)
    ``alive()`` is not simply "not declared dead": it is the connected
    component of this node in the watch graph restricted to members it
    believes alive (neighbours by direct heartbeats, others by the table). This
    is what keeps the quorum guarantee without a full mesh: in a partition,
    every watch edge that crosses it ends at a watcher on this side that
    declares the other end dead within ``dead_timeout``, so no path leaves this
    side and the count falls to the side's own size, whatever members on the
    other side nobody here watches.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

__all__ = ["reachable", "watch_graph"]

Graph = tuple[tuple[int, ...], ...]


@functools.lru_cache(maxsize=8)
def watch_graph(order: tuple[str, ...], rings: int, full_mesh_max: int) -> Graph:
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


def reachable(adj: Graph, believed: bytearray, starts: Sequence[int]) -> bytearray:
    """Members reachable from ``starts`` over watch edges through believed-alive members (1 = reached).

    The ``starts`` count as reached whatever ``believed`` says of them.
    """
    seen = bytearray(len(adj))
    for i in starts:
        seen[i] = 1
    stack = list(starts)
    while stack:
        i = stack.pop()
        for j in adj[i]:
            if believed[j] and not seen[j]:
                seen[j] = 1
                stack.append(j)
    return seen
