"""BFD (RFC 5880, single hop RFC 5881, multi-hop RFC 5883): sans-I/O core plus an asyncio shell.

- :mod:`ironlb.bfd.wire`: control packet codec (no authentication).
- :mod:`ironlb.bfd.fsm`: the per-peer state machine, time passed in.
- :mod:`ironlb.bfd.service`: :class:`BFDManager`, sockets and timers; the BGP speaker's entry point.
- :mod:`ironlb.bfd.metrics`: MetalLB's FRR-mode ``metallb_bfd_*`` metrics.

The echo function is not implemented: a BFDProfile with ``echoMode: true`` is refused
with :class:`BFDConfigError`.
"""

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
