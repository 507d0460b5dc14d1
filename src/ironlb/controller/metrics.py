"""The controller's Prometheus metrics under MetalLB's exact names.

A custom collector reads the allocator at scrape time, so the per-pool gauges are always current and vanish with
their pool (MetalLB deletes them on pool removal). The ``metallb_k8s_client_*`` families come from
:mod:`ironlb.metrics.client`, shared with the speaker.
Gauges are clamped to int64 like MetalLB's (ironlb counts an IPv6 /64 exactly; the metric cannot).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ironlb.ipam.allocator import Allocator
from ironlb.ipam.capacity import clamp_int64
from ironlb.metrics.client import ClientCollector, ClientCounters

_POOL_GAUGES = (
    ("metallb_allocator_addresses_total", "Number of usable IP addresses, per pool"),
    ("metallb_allocator_ipv4_addresses_total", "Number of usable IPV4 addresses, per pool"),
    ("metallb_allocator_ipv6_addresses_total", "Number of usable IPV6 addresses, per pool"),
    ("metallb_allocator_addresses_in_use_total", "Number of IP addresses in use, per pool"),
    ("metallb_allocator_ipv4_addresses_in_use_total", "Number of IPV4 addresses in use, per pool"),
    ("metallb_allocator_ipv6_addresses_in_use_total", "Number of IPV6 addresses in use, per pool"),
)


class ControllerCollector(Collector):
    def __init__(
        self,
        allocator: Callable[[], Allocator | None],
        counters: ClientCounters,
        requests: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self._allocator = allocator
        self.counters = counters
        self._client = ClientCollector(counters, requests)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # unchecked collector: nothing to describe up front

    def collect(self) -> Iterator[Metric]:
        yield from self._client.collect()
        families = [GaugeMetricFamily(name, doc, labels=["pool"]) for name, doc in _POOL_GAUGES]
        allocator = self._allocator()
        if allocator is not None:
            for pool in allocator.config.pools:
                cap4, cap6 = allocator.capacity(pool.name)
                cnt = allocator.counters(pool.name)
                values = (
                    cap4 + cap6, cap4, cap6,
                    cnt.assigned_ipv4 + cnt.assigned_ipv6, cnt.assigned_ipv4, cnt.assigned_ipv6,
                )
                for family, value in zip(families, values, strict=True):
                    family.add_metric([pool.name], float(clamp_int64(value)))
        yield from families


def registry_for(collector: ControllerCollector, *, process: bool = True) -> CollectorRegistry:
    """A registry of the controller's metrics, plus process metrics (RSS, CPU, fds) unless ``process`` is false."""
    from prometheus_client import PlatformCollector, ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry


__all__ = ["ClientCounters", "ControllerCollector", "registry_for"]
