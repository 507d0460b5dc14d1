"""Speaker membership: which speakers are alive, learned from each other over UDP.

``fsm`` is the sans-I/O core (``Membership``), ``wire`` the authenticated
datagram codec and ``service`` the asyncio shell. ``fsm``'s docstring names the
modules of the core, each documenting its part of the design; ``docs/membership.md``
has the timings and partition behaviour.

The names below are imported on first use (PEP 562): a main process whose membership runs in the fast process
reads its configuration and views (``config``, ``view``), not the core (issue 16, fast start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironlb import lazy

if TYPE_CHECKING:
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
        HoldBegun,
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
    from ironlb.membership.view import MembershipView
    from ironlb.membership.wire import WireError

__getattr__ = lazy.attributes(__name__, {
    "Address": "config",
    "DEFAULT_PORT": "config",
    "Datagram": "events",
    "DownReason": "events",
    "Event": "events",
    "HoldBegun": "events",
    "HoldEnded": "events",
    "HoldOffer": "hold",
    "MemberDown": "events",
    "MemberHeld": "events",
    "MemberUp": "events",
    "Membership": "fsm",
    "MembershipConfig": "config",
    "MembershipService": "service",
    "MembershipView": "view",
    "QuorumChanged": "events",
    "QuorumMode": "config",
    "TickResult": "events",
    "WireError": "wire",
    "new_incarnation": "config",
    "parse_members": "config",
})  # fmt: skip

__all__ = [
    "DEFAULT_PORT",
    "Address",
    "Datagram",
    "DownReason",
    "Event",
    "HoldBegun",
    "HoldEnded",
    "HoldOffer",
    "MemberDown",
    "MemberHeld",
    "MemberUp",
    "Membership",
    "MembershipConfig",
    "MembershipService",
    "MembershipView",
    "QuorumChanged",
    "QuorumMode",
    "TickResult",
    "WireError",
    "new_incarnation",
    "parse_members",
]
