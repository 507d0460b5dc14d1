"""Layer 2 Prometheus metrics under MetalLB's exact names.

prometheus_client's ``Counter`` always exposes ``<name>_total`` (plus ``_created``),
but MetalLB (Go client) exposes ``metallb_layer2_requests_received`` etc. without a
suffix, and dashboards query those names. So this module keeps the counts itself and
exposes them through a custom collector: the sample names are MetalLB's exactly; the
text format declares them ``untyped`` because prometheus_client cannot print a
``counter`` TYPE line without ``_total``. Values only ever increase, so ``rate()``
works as with MetalLB.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ironlb.metrics.export import DEFAULT_REGISTRY, DefaultRegistry, register

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

REQUESTS_RECEIVED = "metallb_layer2_requests_received"
RESPONSES_SENT = "metallb_layer2_responses_sent"
GRATUITOUS_SENT = "metallb_layer2_gratuitous_sent"

_HELP = {
    REQUESTS_RECEIVED: "Number of layer2 requests received for owned IPs",
    RESPONSES_SENT: "Number of layer2 responses sent for owned IPs",
    GRATUITOUS_SENT: "Number of gratuitous layer2 packets sent for owned IPs",
}


class Layer2Metrics:
    """Per-IP counters for the ARP/NDP responders.

    Pass a ``CollectorRegistry`` (tests use their own); ``None`` means do not register.
    """

    def __init__(self, registry: CollectorRegistry | DefaultRegistry | None = DEFAULT_REGISTRY) -> None:
        self._lock = threading.Lock()  # scrapes may come from the HTTP server thread
        self._counts: dict[str, dict[str, float]] = {name: {} for name in _HELP}
        self._changed: set[tuple[str, str]] = set()  # (name, ip) since the last take_changes()
        register(self, registry)

    def _inc(self, name: str, ip: str, amount: float) -> None:
        with self._lock:
            per_ip = self._counts[name]
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
            return self._counts[name].get(ip, 0.0)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Every series, by metric name then label value: what the fast process hands to the heavy side."""
        with self._lock:
            return {name: dict(series) for name, series in self._counts.items()}

    def take_changes(self) -> dict[str, dict[str, float]]:
        """The series changed since the last call (same shape as :meth:`snapshot`): what the fast process sends,
        so that an idle node with 10,000 announced IPs sends nothing but what moved."""
        with self._lock:
            changed, self._changed = self._changed, set()
            out: dict[str, dict[str, float]] = {}
            for name, ip in changed:
                out.setdefault(name, {})[ip] = self._counts[name][ip]
            return out

    def update(self, changes: dict[str, dict[str, float]]) -> None:
        """Set the series in ``changes`` (from :meth:`take_changes` in the fast process), keeping the others."""
        with self._lock:
            for name, series in changes.items():
                if name in self._counts:
                    self._counts[name].update((str(k), float(v)) for k, v in series.items())

    def load(self, snapshot: dict[str, dict[str, float]]) -> None:
        """Replace every series with ``snapshot`` (from :meth:`snapshot` in the fast process); unknown names ignored."""
        with self._lock:
            for name in self._counts:
                self._counts[name] = {str(k): float(v) for k, v in snapshot.get(name, {}).items()}

    def describe(self) -> Iterator[Metric]:
        """Static description so registration does not need a collect() pass."""
        from prometheus_client.metrics_core import Metric

        for name, doc in _HELP.items():
            yield Metric(name, doc, "unknown")

    def collect(self) -> Iterator[Metric]:
        """One family per metric name, one sample per IP."""
        from prometheus_client.metrics_core import Metric

        with self._lock:
            snapshot = {name: dict(per_ip) for name, per_ip in self._counts.items()}
        for name, doc in _HELP.items():
            family = Metric(name, doc, "unknown")
            for ip, value in sorted(snapshot[name].items()):
                family.add_sample(name, {"ip": ip}, value)
            yield family
