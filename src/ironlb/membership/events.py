"""What the membership core gives out: events for the caller and datagrams to send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from ironlb.membership.config import Address
from ironlb.membership.hold import HeldLink, IPAddress

__all__ = [
    "Datagram",
    "DownReason",
    "Event",
    "HoldBegun",
    "HoldEndReason",
    "HoldEnded",
    "MemberDown",
    "MemberHeld",
    "MemberUp",
    "QuorumChanged",
    "TickResult",
]

DownReason = Literal["timeout", "left", "removed", "restarted", "unreachable"]
HoldEndReason = Literal["returned", "expired", "unreachable", "left", "removed", "standin_down"]


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
    every watcher that could vouch for it is down: see ``graph``).
    """

    name: str
    reason: DownReason


@dataclass(frozen=True, slots=True)
class QuorumChanged:
    """``has_quorum()`` flipped; ``alive`` of ``members`` configured ones are alive."""

    has_quorum: bool
    alive: int
    members: int


@dataclass(frozen=True, slots=True)
class HoldBegun:
    """A hold of ``name`` (its incarnation ``incarnation``) begins: once a hold, whatever number of datagrams carry
    it (a ``MemberHeld`` follows at once, and again as further datagrams add IPs). Counted in
    ``ironlb_membership_holds_begun_total``."""

    name: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class MemberHeld:
    """``name`` is restarting (a hold LEAVE): it stays alive for the election until ``until`` (core time) at most.

    ``links``: its MACs and own addresses; ``ips``: the IPs this node stands in for (answers with its MAC), all
    received so far (several datagrams may carry them); ``complete``: every datagram of them has come. It does not
    count towards the quorum meanwhile.
    """

    name: str
    incarnation: int
    until: float
    links: tuple[HeldLink, ...]
    ips: frozenset[IPAddress]
    complete: bool = True


@dataclass(frozen=True, slots=True)
class HoldEnded:
    """The hold of ``name`` is over: ``returned`` (its new incarnation is heard), ``expired`` (H passed),
    ``unreachable`` (its node stopped answering, :meth:`Membership.end_hold`), ``left`` (a plain LEAVE),
    ``removed`` (dropped from the member list) or ``standin_down`` (a stand-in it named went down, restarted, left
    or is held: nobody answers for that share). Except when it returned, a ``MemberDown`` comes with it."""

    name: str
    reason: HoldEndReason


Event = MemberUp | MemberDown | QuorumChanged | HoldBegun | MemberHeld | HoldEnded


class Datagram(NamedTuple):
    """A datagram to send: ``data`` to ``addr`` (member ``dest``)."""

    data: bytes
    addr: Address
    dest: str


class TickResult(NamedTuple):
    """What ``tick`` produced: datagrams to send and events (timeouts, quorum)."""

    datagrams: list[Datagram]
    events: list[Event]
