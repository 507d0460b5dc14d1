"""The quorum safeguard: whether this node may announce what it sees.

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
"""

from __future__ import annotations

from collections.abc import Collection

from ironlb.membership.config import QuorumMode

__all__ = ["has_quorum", "successors_have_quorum"]


def has_quorum(mode: QuorumMode, alive: int, members: int) -> bool:
    """Whether ``alive`` of ``members`` configured members (this node included) may announce."""
    if mode == "off" or (mode == "auto" and members <= 2):
        return True
    return 2 * alive > members


def successors_have_quorum(mode: QuorumMode, alive: Collection[str], peers: int, node: str) -> bool:
    """Whether the members still alive once ``node`` has left keep the quorum, so that they take its IPs over.

    ``alive``: the live members as ``node`` sees them (itself included); ``peers``: how many members it has besides
    itself. Without that quorum nobody announces what ``node`` gives up, so a planned stop has nothing to hand over.
    """
    return has_quorum(mode, len(set(alive) - {node}), peers + 1)
