"""Layer 2 mode: answer ARP/NDP for announced VIPs and announce takeovers.

The protocol package layout: sans-I/O codecs (:mod:`.wire`: Ethernet, ARP, NDP), the sans-I/O core that answers
them (:mod:`.fsm`) and one shell, the asyncio :class:`Responder` (:mod:`.responder`); beside them the pure
per-IP election (:mod:`.election`), interface selection (:mod:`.interfaces`) and the metrics (:mod:`.metrics`).
"""

from ironlb.layer2.fsm import Verdict
from ironlb.layer2.interfaces import DEFAULT_EXCLUDE_PATTERNS, InterfaceRecord, SelectedInterface, select_interfaces
from ironlb.layer2.metrics import Layer2Metrics
from ironlb.layer2.responder import ALL, AllInterfaces, Responder
from ironlb.layer2.wire.ethernet import FrameError

__all__ = [
    "ALL",
    "DEFAULT_EXCLUDE_PATTERNS",
    "AllInterfaces",
    "FrameError",
    "InterfaceRecord",
    "Layer2Metrics",
    "Responder",
    "SelectedInterface",
    "Verdict",
    "select_interfaces",
]
