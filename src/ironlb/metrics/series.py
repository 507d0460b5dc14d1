"""Metric families of one label each, kept as plain floats and exported under MetalLB's exact names.

prometheus_client's ``Counter`` always exposes ``<name>_total`` (plus ``_created``), but MetalLB (Go client)
exposes ``metallb_layer2_requests_received``, ``metallb_bfd_control_packet_input``... without a suffix, and
dashboards query those names. So a store keeps the values itself and exposes them through a custom collector;
counter families are declared ``untyped`` (``unknown``) because prometheus_client cannot print a ``counter`` TYPE
line without ``_total``. The fast process hands its values to the heavy side with :meth:`snapshot` / :meth:`load`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ironlb.metrics.export import DEFAULT_REGISTRY, DefaultRegistry, register

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric


class LabelledSeries:
    """One family per name of ``families`` (its help text), one sample per value of ``label``; ``types`` gives a
    family's type when not ``unknown``. Pass a ``CollectorRegistry`` (tests use their own); ``None`` means do not
    register."""

    def __init__(
        self,
        families: Mapping[str, str],
        label: str,
        registry: CollectorRegistry | DefaultRegistry | None = DEFAULT_REGISTRY,
        *,
        types: Mapping[str, str] | None = None,
    ) -> None:
        self._help = dict(families)
        self._label = label
        self._types = {name: (types or {}).get(name, "unknown") for name in families}
        self._lock = threading.Lock()  # scrapes may come from the HTTP server thread
        self._series: dict[str, dict[str, float]] = {name: {} for name in families}
        register(self, registry)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Every series, by metric name then label value: what the fast process hands to the heavy side."""
        with self._lock:
            return {name: dict(series) for name, series in self._series.items()}

    def load(self, snapshot: dict[str, dict[str, float]]) -> None:
        """Replace every series with ``snapshot`` (from :meth:`snapshot` in the fast process); unknown names ignored."""
        with self._lock:
            for name in self._series:
                self._series[name] = {str(k): float(v) for k, v in snapshot.get(name, {}).items()}

    def describe(self) -> Iterator[Metric]:
        """Static description so registration does not need a collect() pass."""
        from prometheus_client.metrics_core import Metric

        for name, doc in self._help.items():
            yield Metric(name, doc, self._types[name])

    def collect(self) -> Iterator[Metric]:
        """One family per metric name, one sample per label value."""
        from prometheus_client.metrics_core import Metric

        snapshot = self.snapshot()
        for name, doc in self._help.items():
            family = Metric(name, doc, self._types[name])
            for value_of_label, value in sorted(snapshot[name].items()):
                family.add_sample(name, {self._label: value_of_label}, value)
            yield family
