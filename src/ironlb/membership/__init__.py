"""Speaker membership: which speakers are alive, learned from each other over UDP.

``fsm`` is the sans-I/O core (``Membership``), ``wire`` the authenticated
datagram codec and ``service`` the asyncio shell. ``fsm``'s docstring names the
modules of the core, each documenting its part of the design; ``docs/membership.md``
has the timings and partition behaviour.
"""

from ironlb.membership.config import (
    DEFAULT_PORT,
    Address,
    MembershipConfig,
    QuorumMode,
    new_incarnation,
    parse_members,
)
from ironlb.membership.events import (
    Datagram,
    DownReason,
    Event,
    HoldEnded,
    MemberDown,
    MemberHeld,
    MemberUp,
    QuorumChanged,
    TickResult,
)
from ironlb.membership.fsm import Membership
from ironlb.membership.hold import HoldOffer
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
