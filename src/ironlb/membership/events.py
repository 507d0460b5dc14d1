"""What the membership core gives out: events for the caller and datagrams to send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from ironlb.membership.config import Address

__all__ = ["Datagram", "DownReason", "Event", "MemberDown", "MemberUp", "QuorumChanged", "TickResult"]

DownReason = Literal["timeout", "left", "removed", "restarted", "unreachable"]


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
