"""BFD (RFC 5880, single hop RFC 5881, multi-hop RFC 5883): sans-I/O core plus an asyncio shell.

- :mod:`ironlb.bfd.wire`: control packet codec (no authentication).
- :mod:`ironlb.bfd.fsm`: the per-peer state machine, time passed in.
- :mod:`ironlb.bfd.service`: :class:`BFDManager`, sockets and timers; the BGP speaker's entry point.
- :mod:`ironlb.bfd.metrics`: MetalLB's FRR-mode ``metallb_bfd_*`` metrics.

The echo function is not implemented: a BFDProfile with ``echoMode: true`` is refused
with :class:`BFDConfigError`.

The names below are imported on first use (PEP 562): the main process needs :mod:`.metrics` only (BFD runs in
the fast process), not the state machine, codec and sockets (issue 16, fast start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironlb import lazy

if TYPE_CHECKING:
    from .fsm import BFDConfigError, BFDStateMachine, SessionConfig, SessionDown, SessionUp, StateChanged
    from .metrics import BFDMetrics
    from .service import (
        BFD_DOWN_CEASE_SUBCODE,
        MULTI_HOP_PORT,
        SINGLE_HOP_PORT,
        BFDManager,
        BFDPeerHandle,
        SessionInfo,
    )
    from .wire import BFDPacketError, BFDState, ControlPacket, Diag, decode

__getattr__ = lazy.attributes(__name__, {
    **dict.fromkeys(("BFDConfigError", "BFDStateMachine", "SessionConfig", "SessionDown", "SessionUp",
                     "StateChanged"), "fsm"),
    "BFDMetrics": "metrics",
    **dict.fromkeys(("BFD_DOWN_CEASE_SUBCODE", "MULTI_HOP_PORT", "SINGLE_HOP_PORT", "BFDManager", "BFDPeerHandle",
                     "SessionInfo"), "service"),
    **dict.fromkeys(("BFDPacketError", "BFDState", "ControlPacket", "Diag", "decode"), "wire"),
})  # fmt: skip

__all__ = [
    "BFD_DOWN_CEASE_SUBCODE",
    "MULTI_HOP_PORT",
    "SINGLE_HOP_PORT",
    "BFDConfigError",
    "BFDManager",
    "BFDMetrics",
    "BFDPacketError",
    "BFDPeerHandle",
    "BFDState",
    "BFDStateMachine",
    "ControlPacket",
    "Diag",
    "SessionConfig",
    "SessionDown",
    "SessionInfo",
    "SessionUp",
    "StateChanged",
    "decode",
]
