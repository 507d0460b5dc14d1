"""Restart-hold metrics (docs/membership.md "Restart holds"): what this node does while other members restart.

The holds and the stand-ins run in the fast process, which keeps these counts in a store registered nowhere (as
its Layer 2 and BFD counts) and sends :meth:`StandInMetrics.snapshot` to the main process with its other counts
every second; there :meth:`StandInMetrics.load` replaces the values of the store the main process exports. The
``node`` label is the held (restarting) member's name, so the series are bounded by the member list.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ironlb.metrics.export import DEFAULT_REGISTRY, DefaultRegistry, register

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

__all__ = ["HOLDS_BEGUN", "HOLDS_ENDED", "STANDIN_ANSWERS", "STANDIN_IPS", "StandInMetrics"]

STANDIN_IPS = "ironlb_layer2_standin_ips"
STANDIN_ANSWERS = "ironlb_layer2_standin_answers_total"
HOLDS_BEGUN = "ironlb_membership_holds_begun_total"
HOLDS_ENDED = "ironlb_membership_holds_ended_total"

_GAUGES = {
    STANDIN_IPS: ("node", "IPs this speaker stands in for (answers ARP/NDP with the restarting member's MAC), "
                          "by restarting member."),
}  # fmt: skip
_COUNTERS = {
    STANDIN_ANSWERS: ("node", "ARP replies and NDP advertisements sent as a stand-in (with the restarting member's "
                              "MAC), by restarting member."),
    HOLDS_BEGUN: ("node", "Restart holds accepted from a member (its IPs kept in place while its speaker restarts)."),
    HOLDS_ENDED: ("reason", "Restart holds ended, by reason: returned, expired, unreachable, left, removed, "
                            "standin_down."),
}  # fmt: skip


class StandInMetrics:
    """The counts of holds and stand-ins. Pass a ``CollectorRegistry`` (tests use their own); ``None``: keep the
    counts without exporting them (the fast process)."""

    def __init__(self, registry: CollectorRegistry | DefaultRegistry | None = DEFAULT_REGISTRY) -> None:
        self._lock = threading.Lock()  # scrapes come from the HTTP server's thread
        self._series: dict[str, dict[str, float]] = {name: {} for name in (*_GAUGES, *_COUNTERS)}
        register(self, registry)

    # ------------------------------------------------------------------ counting (the fast process)
    def answered(self, node: str) -> None:
        """An ARP reply / NDP advertisement went out with held member ``node``'s MAC."""
        self._add(STANDIN_ANSWERS, node)

    def hold_begun(self, node: str) -> None:
        self._add(HOLDS_BEGUN, node)

    def hold_ended(self, reason: str) -> None:
        self._add(HOLDS_ENDED, reason)

    def standing_in(self, ips: Mapping[str, int]) -> None:
        """The IPs stood in for now, per held member (the members not named: none)."""
        with self._lock:
            self._series[STANDIN_IPS] = {str(k): float(v) for k, v in ips.items()}

    def _add(self, name: str, label: str) -> None:
        with self._lock:
            series = self._series[name]
            series[label] = series.get(label, 0.0) + 1.0

    # ------------------------------------------------------------------ handing over and reading
    def value(self, name: str, label: str) -> float:
        """One series' value (0 when absent); for tests and debugging."""
        with self._lock:
            return self._series[name].get(label, 0.0)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Every series, by metric name then label value: what the fast process sends."""
        with self._lock:
            return {name: dict(series) for name, series in self._series.items()}

    def load(self, snapshot: Mapping[str, Any]) -> None:
        """Replace every series with ``snapshot`` (:meth:`snapshot` of the fast process's store); unknown or
        malformed families are ignored."""
        loaded: dict[str, dict[str, float]] = {}
        for name in self._series:
            series = snapshot.get(name)
            if isinstance(series, Mapping):
                try:
                    loaded[name] = {str(k): float(v) for k, v in series.items()}
                except (TypeError, ValueError):
                    continue
        with self._lock:
            self._series.update(loaded)

    def describe(self) -> Iterator[Metric]:
        yield from self._families({name: {} for name in self._series})

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self.snapshot())

    def _families(self, snapshot: Mapping[str, Mapping[str, float]]) -> Iterator[Metric]:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

        for name, (label, doc) in _GAUGES.items():
            gauge = GaugeMetricFamily(name, doc, labels=[label])
            for value_of_label, value in sorted(snapshot[name].items()):
                gauge.add_metric([value_of_label], value)
            yield gauge
        for name, (label, doc) in _COUNTERS.items():
            counter = CounterMetricFamily(name, doc, labels=[label])
            for value_of_label, value in sorted(snapshot[name].items()):
                counter.add_metric([value_of_label], value)
            yield counter
