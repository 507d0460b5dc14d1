"""MetalLB's ``metallb_k8s_client_*`` metrics, shared by the controller and the speaker.

Counters are built by hand as ``counter`` families: prometheus_client's ``Counter`` would add a ``_created``
series next to ``metallb_k8s_client_updates_total``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric


@dataclass
class ClientCounters:
    """MetalLB's ``metallb_k8s_client_*`` values, written by the component's reconcilers."""

    updates: int = 0
    update_errors: int = 0
    config_loaded: bool = False
    config_stale: bool = False


class ClientCollector:
    """The client families, read at scrape time; ``requests`` adds ironlb's per-verb request counts."""

    def __init__(self, counters: ClientCounters, requests: Callable[[], Mapping[str, int]] | None = None) -> None:
        self.counters = counters
        self._requests = requests

    def describe(self) -> Iterator[Metric]:
        return iter(())  # unchecked collector: nothing to describe up front

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

        c = self.counters
        updates = CounterMetricFamily(
            "metallb_k8s_client_updates_total", "Number of k8s object updates that have been processed."
        )
        updates.add_metric([], c.updates)
        errors = CounterMetricFamily(
            "metallb_k8s_client_update_errors_total", "Number of k8s object updates that failed for some reason."
        )
        errors.add_metric([], c.update_errors)
        loaded = GaugeMetricFamily(
            "metallb_k8s_client_config_loaded_bool",
            "1 if the MetalLB configuration was successfully loaded at least once.",
        )
        loaded.add_metric([], 1.0 if c.config_loaded else 0.0)
        stale = GaugeMetricFamily(
            "metallb_k8s_client_config_stale_bool",
            "1 if running on a stale configuration, because the latest config failed to load.",
        )
        stale.add_metric([], 1.0 if c.config_stale else 0.0)
        yield from (updates, errors, loaded, stale)
        if self._requests is not None:
            sent = CounterMetricFamily(
                "ironlb_k8s_client_requests_total", "Requests sent to the Kubernetes API, per verb.", labels=["verb"]
            )
            for verb, n in sorted(self._requests().items()):
                sent.add_metric([verb], n)
            yield sent
