"""BFD Prometheus metrics under the names of MetalLB's FRR mode (frr-tools/metrics), label ``peer``.

``metallb_bfd_session_up`` is a gauge (1 Up, 0 otherwise). The others are counters
exposed under their exact MetalLB names, without the ``_total`` suffix that
prometheus_client's ``Counter`` would add (:class:`ironlb.metrics.series.LabelledSeries`):
the counter families are declared ``untyped`` in the text format; their values only ever
increase, so ``rate()`` works as with MetalLB.

``metallb_bfd_echo_packet_input`` / ``_output`` stay 0: ironlb does not implement the
echo function. ``metallb_bfd_zebra_notifications`` counts the notifications delivered to
the BFD client (the BGP speaker's ``on_change`` callback), the role zebra plays in FRR.

The series of a peer are removed with :meth:`BFDMetrics.remove` when its session is
removed, as MetalLB drops the metrics of closed sessions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironlb.metrics.export import DEFAULT_REGISTRY, DefaultRegistry
from ironlb.metrics.series import LabelledSeries

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

SESSION_UP = "metallb_bfd_session_up"
CONTROL_PACKET_INPUT = "metallb_bfd_control_packet_input"
CONTROL_PACKET_OUTPUT = "metallb_bfd_control_packet_output"
ECHO_PACKET_INPUT = "metallb_bfd_echo_packet_input"
ECHO_PACKET_OUTPUT = "metallb_bfd_echo_packet_output"
SESSION_UP_EVENTS = "metallb_bfd_session_up_events"
SESSION_DOWN_EVENTS = "metallb_bfd_session_down_events"
ZEBRA_NOTIFICATIONS = "metallb_bfd_zebra_notifications"

_HELP = {
    SESSION_UP: "BFD session state (1 is up, 0 is down)",
    CONTROL_PACKET_INPUT: "Number of received BFD control packets",
    CONTROL_PACKET_OUTPUT: "Number of sent BFD control packets",
    ECHO_PACKET_INPUT: "Number of received BFD echo packets",
    ECHO_PACKET_OUTPUT: "Number of sent BFD echo packets",
    SESSION_UP_EVENTS: "Number of BFD session up events",
    SESSION_DOWN_EVENTS: "Number of BFD session down events",
    ZEBRA_NOTIFICATIONS: "Number of BFD zebra notifications",
}


class BFDMetrics(LabelledSeries):
    """Per-peer BFD series. Pass a ``CollectorRegistry`` (tests use their own); ``None`` means do not register."""

    def __init__(self, registry: CollectorRegistry | DefaultRegistry | None = DEFAULT_REGISTRY) -> None:
        super().__init__(_HELP, "peer", registry, types={SESSION_UP: "gauge"})

    def add_peer(self, peer: str) -> None:
        """Create the peer's series at 0 (so dashboards see a down session, not a missing one)."""
        with self._lock:
            for per_peer in self._series.values():
                per_peer.setdefault(peer, 0.0)

    def remove(self, peer: str) -> None:
        """Drop every series of ``peer``."""
        with self._lock:
            for per_peer in self._series.values():
                per_peer.pop(peer, None)

    def inc(self, name: str, peer: str, amount: float = 1.0) -> None:
        """Add to a counter."""
        if amount:
            self._add(name, peer, amount)

    def set_up(self, peer: str, up: bool) -> None:
        """Set ``metallb_bfd_session_up``."""
        with self._lock:
            self._series[SESSION_UP][peer] = 1.0 if up else 0.0

    def value(self, name: str, peer: str) -> float | None:
        """Current value of one series (None when absent); for tests and debugging."""
        with self._lock:
            return self._series[name].get(peer)


__all__ = [
    "CONTROL_PACKET_INPUT",
    "CONTROL_PACKET_OUTPUT",
    "ECHO_PACKET_INPUT",
    "ECHO_PACKET_OUTPUT",
    "SESSION_DOWN_EVENTS",
    "SESSION_UP",
    "SESSION_UP_EVENTS",
    "ZEBRA_NOTIFICATIONS",
    "BFDMetrics",
]
