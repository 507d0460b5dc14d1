"""Layer 2 mode: answer ARP/NDP for announced VIPs and announce takeovers.

Sans-I/O codecs (:mod:`.arp`, :mod:`.ndp`), interface selection (:mod:`.interfaces`),
the asyncio :class:`Responder` (:mod:`.responder`) and its metrics (:mod:`.metrics`).
"""

from ironlb.layer2.ethernet import Decision, FrameError
from ironlb.layer2.interfaces import DEFAULT_EXCLUDE_PATTERNS, InterfaceRecord, SelectedInterface, select_interfaces
from ironlb.layer2.metrics import Layer2Metrics
from ironlb.layer2.responder import ALL, AllInterfaces, Responder

__all__ = [
    "ALL",
    "DEFAULT_EXCLUDE_PATTERNS",
    "AllInterfaces",
    "Decision",
    "FrameError",
    "InterfaceRecord",
    "Layer2Metrics",
    "Responder",
    "SelectedInterface",
    "select_interfaces",
]
