"""BGP Prometheus metrics under MetalLB's native-mode names, label ``peer`` = ``addr:port``.

The values live in the sessions (FSM counters and Adj-RIB-Out sizes), so the collector reads them at scrape time
instead of mirroring them: nothing can drift, and a closed session's series disappear with it (MetalLB deletes
them when the session is closed). A custom collector is used, as for Layer 2, so that the names are MetalLB's
exactly: ``metallb_bgp_updates_total`` is exposed as a counter family ``metallb_bgp_updates`` whose sample is
``metallb_bgp_updates_total``; the two prefix gauges keep their ``_total`` suffix as gauges, as in MetalLB.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ironlb.metrics.export import DEFAULT_REGISTRY, DefaultRegistry, register

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

SESSION_UP = "metallb_bgp_session_up"
UPDATES_TOTAL = "metallb_bgp_updates_total"
ANNOUNCED = "metallb_bgp_announced_prefixes_total"
PENDING = "metallb_bgp_pending_prefixes_total"

_HELP = {
    SESSION_UP: "BGP session state (1 is up, 0 is down)",
    UPDATES_TOTAL: "Number of BGP UPDATE messages sent",
    ANNOUNCED: "Number of prefixes currently being advertised on the BGP session",
    PENDING: "Number of prefixes that should be advertised on the BGP session but are not yet",
}


@dataclass(frozen=True)
class PeerSample:
    """One session's values at scrape time."""

    peer: str  # addr:port
    up: bool
    updates: int
    announced: int
    pending: int


class SampleSource(Protocol):
    """Anything that can list its sessions' values (the speaker manager)."""

    def metric_samples(self) -> Iterable[PeerSample]: ...


class BGPMetrics:
    """Collects from every registered source; sources are held weakly so a dropped speaker unregisters itself."""

    def __init__(self, registry: CollectorRegistry | DefaultRegistry | None = DEFAULT_REGISTRY) -> None:
        self._lock = threading.Lock()
        self._sources: weakref.WeakSet[SampleSource] = weakref.WeakSet()
        register(self, registry)

    def add_source(self, source: SampleSource) -> None:
        with self._lock:
            self._sources.add(source)

    def remove_source(self, source: SampleSource) -> None:
        with self._lock:
            self._sources.discard(source)

    def samples(self) -> list[PeerSample]:
        """Current samples of all sources (scrapes run on another thread: retry if a table changed under us)."""
        with self._lock:
            sources = list(self._sources)
        out: list[PeerSample] = []
        for src in sources:
            for _ in range(3):
                try:
                    out.extend(list(src.metric_samples()))
                    break
                except RuntimeError:  # "dictionary changed size during iteration"
                    continue
        return out

    def describe(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import Metric

        yield Metric(SESSION_UP, _HELP[SESSION_UP], "gauge")
        yield Metric(UPDATES_TOTAL.removesuffix("_total"), _HELP[UPDATES_TOTAL], "counter")
        yield Metric(ANNOUNCED, _HELP[ANNOUNCED], "gauge")
        yield Metric(PENDING, _HELP[PENDING], "gauge")

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import Metric

        samples = sorted(self.samples(), key=lambda s: s.peer)
        up = Metric(SESSION_UP, _HELP[SESSION_UP], "gauge")
        updates = Metric(UPDATES_TOTAL.removesuffix("_total"), _HELP[UPDATES_TOTAL], "counter")
        announced = Metric(ANNOUNCED, _HELP[ANNOUNCED], "gauge")
        pending = Metric(PENDING, _HELP[PENDING], "gauge")
        for s in samples:
            labels = {"peer": s.peer}
            up.add_sample(SESSION_UP, labels, 1.0 if s.up else 0.0)
            updates.add_sample(UPDATES_TOTAL, labels, float(s.updates))
            announced.add_sample(ANNOUNCED, labels, float(s.announced))
            pending.add_sample(PENDING, labels, float(s.pending))
        yield from (up, updates, announced, pending)


__all__ = ["ANNOUNCED", "PENDING", "SESSION_UP", "UPDATES_TOTAL", "BGPMetrics", "PeerSample"]
