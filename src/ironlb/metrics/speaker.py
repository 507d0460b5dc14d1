"""The speaker's metrics, in one place: ``metallb_speaker_announced`` (one series per announced (service, protocol,
node, ip), removed on withdraw) here, and the layer 2, BGP and BFD collectors of the protocol packages."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from ironlb.bfd.metrics import BFDMetrics
from ironlb.bgp.metrics import BGPMetrics
from ironlb.layer2.metrics import Layer2Metrics

Key = tuple[str, str, str, str]  # service ("ns/name"), protocol, node, ip


class AnnouncedMetric:
    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        self._gauge = Gauge(
            "metallb_speaker_announced",
            "Services being announced from this node. This is desired state, it does not guarantee that the routing"
            " protocols have converged.",
            ["service", "protocol", "node", "ip"],
            registry=registry,
        )
        self._current: set[Key] = set()

    def set(self, announced: Iterable[Key]) -> None:
        wanted = set(announced)
        for key in self._current - wanted:
            self._gauge.remove(*key)
        for key in wanted - self._current:
            self._gauge.labels(*key).set(1)
        self._current = wanted

    @property
    def current(self) -> frozenset[Key]:
        return frozenset(self._current)


@dataclass(frozen=True)
class SpeakerMetrics:
    """Every metric a speaker process exports (``ironlb speaker`` and ``ironlb run``), on one registry."""

    announced: AnnouncedMetric
    layer2: Layer2Metrics
    bgp: BGPMetrics
    bfd: BFDMetrics

    @classmethod
    def on(cls, registry: CollectorRegistry | None) -> SpeakerMetrics:
        """New collectors registered on ``registry`` (None: kept but not exported, for tests)."""
        return cls(AnnouncedMetric(registry), Layer2Metrics(registry), BGPMetrics(registry), BFDMetrics(registry))


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, SpeakerMetrics] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def speaker_metrics(registry: CollectorRegistry = REGISTRY) -> SpeakerMetrics:
    """The speaker metrics of ``registry``, created on first use: a registry refuses a name twice, and a process
    (or a test) may start several announcers that must all count into the one set it serves."""
    with _lock:
        metrics = _by_registry.get(registry)
        if metrics is None:
            metrics = _by_registry[registry] = SpeakerMetrics.on(registry)
        return metrics
