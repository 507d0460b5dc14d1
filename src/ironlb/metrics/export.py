"""Exporting a metric store of ironlb's own through a prometheus_client registry, imported only when one is.

The Layer 2 and BFD counters are kept by plain classes that the fast process fills without exporting them (it sends
their changes to the main process, which exports them). Importing prometheus_client only here, at registration,
keeps the package (its ``__init__`` brings the exposition: an HTTP server, ``urllib``, ``email``; ~35 ms of CPU)
out of the fast process's start (issue 16, fast start).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric


class Source(Protocol):
    """What a registry calls on a collector: a static description and the current families."""

    def describe(self) -> Iterable[Metric]: ...

    def collect(self) -> Iterable[Metric]: ...


class DefaultRegistry(enum.Enum):
    REGISTRY = "prometheus_client's global registry"


DEFAULT_REGISTRY: Final = DefaultRegistry.REGISTRY
"""Register with ``prometheus_client.REGISTRY`` (a default argument cannot name it without importing it)."""


def register(source: Source, registry: CollectorRegistry | DefaultRegistry | None) -> None:
    """Register ``source`` with ``registry`` (``DEFAULT_REGISTRY``: the global one; ``None``: not at all)."""
    if registry is None:
        return
    from prometheus_client import REGISTRY
    from prometheus_client.registry import Collector

    class Exported(Collector):
        def describe(self) -> Iterable[Metric]:
            return source.describe()

        def collect(self) -> Iterable[Metric]:
            return source.collect()

    (REGISTRY if registry is DEFAULT_REGISTRY else registry).register(Exported())
