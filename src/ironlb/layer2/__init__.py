"""Layer 2 mode: answer ARP/NDP for announced VIPs and announce takeovers.

The protocol package layout: sans-I/O codecs (:mod:`.wire`: Ethernet, ARP, NDP), the sans-I/O core that answers
them (:mod:`.fsm`) and one shell, the asyncio :class:`Responder` (:mod:`.responder`); beside them the pure
per-IP election (:mod:`.election`), interface selection (:mod:`.interfaces`) and the metrics (:mod:`.metrics`).

The names below are imported on first use (PEP 562): the main process needs the election, the interface
selection and the metrics, not the responder, which runs in the fast process (issue 16, fast start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironlb import lazy

if TYPE_CHECKING:
    from ironlb.layer2.fsm import Verdict
    from ironlb.layer2.interfaces import (
        ALL,
        DEFAULT_EXCLUDE_PATTERNS,
        AllInterfaces,
        InterfaceRecord,
        SelectedInterface,
        select_interfaces,
    )
    from ironlb.layer2.metrics import Layer2Metrics
    from ironlb.layer2.responder import Responder
    from ironlb.layer2.wire.ethernet import FrameError

__getattr__ = lazy.attributes(__name__, {
    "ALL": "interfaces",
    "DEFAULT_EXCLUDE_PATTERNS": "interfaces",
    "AllInterfaces": "interfaces",
    "FrameError": "wire.ethernet",
    "InterfaceRecord": "interfaces",
    "Layer2Metrics": "metrics",
    "Responder": "responder",
    "SelectedInterface": "interfaces",
    "Verdict": "fsm",
    "select_interfaces": "interfaces",
})  # fmt: skip

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
