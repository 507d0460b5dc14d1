"""Layer 2 Prometheus metrics under MetalLB's exact names.

The counts are kept as :class:`ironlb.metrics.series.LabelledSeries` (label ``ip``): the
sample names are MetalLB's exactly, without the ``_total`` suffix of prometheus_client's
``Counter``, and the text format declares them ``untyped``. Values only ever increase,
so ``rate()`` works as with MetalLB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironlb.metrics.export import DEFAULT_REGISTRY, DefaultRegistry
from ironlb.metrics.series import LabelledSeries

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

REQUESTS_RECEIVED = "metallb_layer2_requests_received"
RESPONSES_SENT = "metallb_layer2_responses_sent"
GRATUITOUS_SENT = "metallb_layer2_gratuitous_sent"

_HELP = {
    REQUESTS_RECEIVED: "Number of layer2 requests received for owned IPs",
    RESPONSES_SENT: "Number of layer2 responses sent for owned IPs",
    GRATUITOUS_SENT: "Number of gratuitous layer2 packets sent for owned IPs",
}


class Layer2Metrics(LabelledSeries):
    """Per-IP counters for the ARP/NDP responders.

    Pass a ``CollectorRegistry`` (tests use their own); ``None`` means do not register.
    """

    def __init__(self, registry: CollectorRegistry | DefaultRegistry | None = DEFAULT_REGISTRY) -> None:
        self._changed: set[tuple[str, str]] = set()  # (name, ip) since the last take_changes()
        super().__init__(_HELP, "ip", registry)

    def _inc(self, name: str, ip: str, amount: float) -> None:
        with self._lock:
            per_ip = self._series[name]
            per_ip[ip] = per_ip.get(ip, 0.0) + amount
            self._changed.add((name, ip))

    def request_received(self, ip: str) -> None:
        """A request (ARP who-has / NS) arrived for an announced IP."""
        self._inc(REQUESTS_RECEIVED, ip, 1.0)

    def response_sent(self, ip: str) -> None:
        """A reply for an announced IP went out."""
        self._inc(RESPONSES_SENT, ip, 1.0)

    def gratuitous_sent(self, ip: str, frames: int = 1) -> None:
        """Gratuitous ARP / unsolicited NA frames went out (counted per frame, as MetalLB)."""
        self._inc(GRATUITOUS_SENT, ip, float(frames))

    def value(self, name: str, ip: str) -> float:
        """Current value of one series (0 when never incremented); for tests and debugging."""
        with self._lock:
            return self._series[name].get(ip, 0.0)

    def take_changes(self) -> dict[str, dict[str, float]]:
        """The series changed since the last call (same shape as :meth:`snapshot`): what the fast process sends,
        so that an idle node with 10,000 announced IPs sends nothing but what moved."""
        with self._lock:
            changed, self._changed = self._changed, set()
            out: dict[str, dict[str, float]] = {}
            for name, ip in changed:
                out.setdefault(name, {})[ip] = self._series[name][ip]
            return out

    def update(self, changes: dict[str, dict[str, float]]) -> None:
        """Set the series in ``changes`` (from :meth:`take_changes` in the fast process), keeping the others."""
        with self._lock:
            for name, series in changes.items():
                if name in self._series:
                    self._series[name].update((str(k), float(v)) for k, v in series.items())
