"""Native BGP speaker: a sans-I/O protocol core plus a thin asyncio shell.

- :mod:`.wire`: message codec; :mod:`.errors`: ``BGPError`` and code tables.
- :mod:`.attributes`: per-route intent (:class:`Attributes`) handed in by the planner.
- :mod:`.updates`: packing of routes into minimal UPDATE messages.
- :mod:`.fsm`: the per-session state machine (no I/O, no clock).
- :mod:`.session`: :class:`BGPSession`, which runs an FSM over TCP on asyncio.
- :mod:`.planner`: which node announces which prefix to which peer (pure, MetalLB's rules).
- :mod:`.speaker`: :class:`~ironlb.bgp.speaker.BGPSpeaker`, one session per BGPPeer of the node, plus the BFD hook.
- :mod:`.metrics`: MetalLB's ``metallb_bgp_*`` metrics, read from the live sessions.

The names below are imported on first use (PEP 562): the main processes need the planner, the codec and the
metrics at start; the sessions, their FSM and the listener only once a BGPPeer selects the node (issue 16, fast
start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironlb import lazy

if TYPE_CHECKING:
    from .attributes import Attributes, parse_community, parse_large_community
    from .config import DynamicASN, PeerConfig
    from .errors import BGPError
    from .fsm import (
        BGPState,
        BGPStateMachine,
        Counters,
        EndOfRibReceived,
        Established,
        Event,
        NotificationReceived,
        RouteRefreshReceived,
        RoutesUnsendable,
        RouteTable,
        SessionDown,
    )
    from .session import BGPSession
    from .wire import IPV4_UNICAST, IPV6_UNICAST, Family, Network

__getattr__ = lazy.attributes(__name__, {
    "Attributes": "attributes",
    "BGPError": "errors",
    "BGPSession": "session",
    "BGPState": "fsm",
    "BGPStateMachine": "fsm",
    "Counters": "fsm",
    "DynamicASN": "config",
    "EndOfRibReceived": "fsm",
    "Established": "fsm",
    "Event": "fsm",
    "Family": "wire",
    "IPV4_UNICAST": "wire",
    "IPV6_UNICAST": "wire",
    "Network": "wire",
    "NotificationReceived": "fsm",
    "PeerConfig": "config",
    "RouteRefreshReceived": "fsm",
    "RouteTable": "fsm",
    "RoutesUnsendable": "fsm",
    "SessionDown": "fsm",
    "parse_community": "attributes",
    "parse_large_community": "attributes",
})  # fmt: skip

__all__ = [
    "IPV4_UNICAST",
    "IPV6_UNICAST",
    "Attributes",
    "BGPError",
    "BGPSession",
    "BGPState",
    "BGPStateMachine",
    "Counters",
    "DynamicASN",
    "EndOfRibReceived",
    "Established",
    "Event",
    "Family",
    "Network",
    "NotificationReceived",
    "PeerConfig",
    "RouteRefreshReceived",
    "RouteTable",
    "RoutesUnsendable",
    "SessionDown",
    "parse_community",
    "parse_large_community",
]
