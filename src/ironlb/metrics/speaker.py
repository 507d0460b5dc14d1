"""``metallb_speaker_announced``: one series per announced (service, protocol, node, ip), removed on withdraw."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Gauge

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


_default: AnnouncedMetric | None = None


def announced_metric() -> AnnouncedMetric:
    """The process's metric on the default registry (created once: a registry refuses duplicate names)."""
    global _default
    if _default is None:
        _default = AnnouncedMetric()
    return _default
