"""Speaker membership: which speakers are alive, learned from each other over UDP.

``fsm`` is the sans-I/O core (``Membership``), ``wire`` the authenticated
datagram codec and ``service`` the asyncio shell. ``fsm``'s docstring names the
modules of the core, each documenting its part of the design; ``docs/membership.md``
has the timings and partition behaviour.
"""

from ironlb.membership.fsm import (
    DEFAULT_PORT,
    Address,
    Datagram,
    DownReason,
    Event,
    HoldEnded,
    HoldOffer,
    MemberDown,
    MemberHeld,
    Membership,
    MembershipConfig,
    MemberUp,
    QuorumChanged,
    QuorumMode,
    TickResult,
    new_incarnation,
    parse_members,
)
from ironlb.membership.service import MembershipService
from ironlb.membership.wire import WireError

__all__ = [
    "DEFAULT_PORT",
    "Address",
    "Datagram",
    "DownReason",
    "Event",
    "HoldEnded",
    "HoldOffer",
    "MemberDown",
    "MemberHeld",
    "MemberUp",
    "Membership",
    "MembershipConfig",
    "MembershipService",
    "QuorumChanged",
    "QuorumMode",
    "TickResult",
    "WireError",
    "new_incarnation",
    "parse_members",
]
