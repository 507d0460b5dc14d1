"""Metric families of one label each, kept as plain floats and exported under exact names.

prometheus_client's ``Counter`` always exposes ``<name>_total`` (plus ``_created``), but MetalLB (Go client)
exposes ``metallb_layer2_requests_received``, ``metallb_bfd_control_packet_input``... without a suffix, and
dashboards query those names. So a store keeps the values itself and exposes them through a custom collector;
MetalLB's counter families are declared ``untyped`` (``unknown``) because prometheus_client cannot print a
``counter`` TYPE line without ``_total``. ironlb's own counters (``ironlb_..._total``) are typed ``counter``. The
fast process hands its values to the heavy side with :meth:`LabelledSeries.snapshot` / :meth:`LabelledSeries.load`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ironlb.metrics.export import DEFAULT_REGISTRY, DefaultRegistry, register

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

__all__ = ["LabelledSeries"]


class LabelledSeries:
    """One family per name of ``families`` (its help text), one sample per value of its label: ``labels`` gives a
    family's label when not ``label``, ``types`` its type when not ``unknown`` (a ``counter`` is named
    ``..._total``, the name of its samples). Pass a ``CollectorRegistry`` (tests use their own); ``None`` means do
    not register."""

    def __init__(
        self,
        families: Mapping[str, str],
        label: str,
        registry: CollectorRegistry | DefaultRegistry | None = DEFAULT_REGISTRY,
        *,
        types: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._help = dict(families)
        self._labels = {name: (labels or {}).get(name, label) for name in families}
        self._types = {name: (types or {}).get(name, "unknown") for name in families}
        for name, kind in self._types.items():
            if kind == "counter" and not name.endswith("_total"):
                raise ValueError(f"counter {name!r}: a counter's samples are named ..._total")
        self._lock = threading.Lock()  # scrapes may come from the HTTP server thread
        self._series: dict[str, dict[str, float]] = {name: {} for name in families}
        register(self, registry)

    def _add(self, name: str, label_value: str, amount: float = 1.0) -> None:
        """Add ``amount`` to one series (created at 0)."""
        with self._lock:
            series = self._series[name]
            series[label_value] = series.get(label_value, 0.0) + amount

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Every series, by metric name then label value: what the fast process hands to the heavy side."""
        with self._lock:
            return {name: dict(series) for name, series in self._series.items()}

    def load(self, snapshot: Mapping[str, Any]) -> None:
        """Replace every family with its series in ``snapshot`` (from :meth:`snapshot` in the fast process); unknown
        names are ignored, and a family absent or malformed keeps its values."""
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
        """Static description so registration does not need a collect() pass."""
        yield from self._families({name: {} for name in self._help})

    def collect(self) -> Iterator[Metric]:
        """One family per metric name, one sample per label value."""
        yield from self._families(self.snapshot())

    def _families(self, snapshot: Mapping[str, Mapping[str, float]]) -> Iterator[Metric]:
        from prometheus_client.metrics_core import Metric

        for name, doc in self._help.items():
            kind, label = self._types[name], self._labels[name]
            # prometheus_client names a counter family without ``_total`` and prints it with it.
            family = Metric(name.removesuffix("_total") if kind == "counter" else name, doc, kind)
            for value_of_label, value in sorted(snapshot[name].items()):
                family.add_sample(name, {label: value_of_label}, value)
            yield family
