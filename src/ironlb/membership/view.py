"""The membership as the rest of a process sees it: one immutable value, in a module of its own so that a process
that only reads views (``ironlb run``'s and ``ironlb speaker``'s main process, whose membership runs in the fast
process) does not import the membership core (issue 16, fast start)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ironlb.membership.config import Address

__all__ = ["MembershipView"]


@dataclass(frozen=True)
class MembershipView:
    """What the rest of the process needs from the membership, as one immutable value (any thread may read it)."""

    alive: frozenset[str]
    has_quorum: bool
    settled: bool
    members: Mapping[str, Address]
    held: frozenset[str] = frozenset()  # alive members held for a restart (``Membership.held``)
    standing_in: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per held member, the IPs its hold asked this node to stand in for (``HeldMember.ips``, as text): what a
    node that just started knows of the IPs it held (``ironlb.decide.joined_holding``); only shares complete here.
    """
    unlisted: Mapping[str, Address] = field(default_factory=dict)
    """Held members this node's member list lacks, as its peers named them while it settles, with their addresses
    (``Membership.unlisted_holds``): a speaker whose Pod listing lacks a restarting member adds them."""
    kept: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per held member this node holds by a relay (HOLDS), its IPs with a stand-in once every stand-in has told
    us its share (``HeldMember.kept``): what the others keep it on (``ironlb.decide.holding``'s ``known``)."""
    pending: frozenset[str] = frozenset()
    """Held members whose share for this node came in part so far (in several datagrams): a node that just started
    waits for the rest before it tells their Services from new ones (``ironlb.decide.holding``)."""
