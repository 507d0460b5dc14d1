"""Exporting metric stores of ironlb's own through a prometheus_client registry, imported only when it is needed.

ironlb's counters and gauges are plain classes with ``describe``/``collect`` (:class:`Source`). Registered with a
registry of the caller's (tests, the controller) they are registered at once. Registered with the global one
(``DEFAULT_REGISTRY``) they wait until a metrics server asks for that registry (:func:`default_registry`, at its
first scrape), which imports prometheus_client and registers them all, in order. prometheus_client's package
``__init__`` brings its exposition (an HTTP server, ``urllib``, ``email``, ``wsgiref``: ~15-30 ms of CPU), so no
process imports it on its way to its first announcement, and the fast process, which never exports, not at all
(issue 16, fast start). A scrape sees exactly what it saw when each store registered itself at once.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector


class Source(Protocol):
    """What a registry calls on a collector: a static description and the current families."""

    def describe(self) -> Iterable[Metric]: ...

    def collect(self) -> Iterable[Metric]: ...


class DefaultRegistry(enum.Enum):
    REGISTRY = "prometheus_client's global registry"


DEFAULT_REGISTRY: Final = DefaultRegistry.REGISTRY
"""prometheus_client's global ``REGISTRY``, named without importing it."""

_lock = threading.Lock()
_pending: list[Source] = []  # registered with DEFAULT_REGISTRY before default_registry() was called
_flushed = False
_exported: dict[tuple[int, int], Collector] = {}  # (id(source), id(registry)) -> what the registry holds


def register(source: Source, registry: CollectorRegistry | DefaultRegistry | None) -> None:
    """Register ``source`` with ``registry`` (``DEFAULT_REGISTRY``: the global one, when it is first asked for;
    ``None``: not at all)."""
    if registry is None:
        return
    if registry is DEFAULT_REGISTRY:
        with _lock:
            if not _flushed:
                _pending.append(source)
                return
        registry = default_registry()
    _register_now(source, registry)


def unregister(source: Source, registry: CollectorRegistry | DefaultRegistry = DEFAULT_REGISTRY) -> None:
    """Undo :func:`register` (a source never registered, or already unregistered, is left alone)."""
    if registry is DEFAULT_REGISTRY:
        with _lock:
            if not _flushed:
                if source in _pending:
                    _pending.remove(source)
                return
        registry = default_registry()
    exported = _exported.pop((id(source), id(registry)), None)
    if exported is not None:
        registry.unregister(exported)


def default_registry() -> CollectorRegistry:
    """prometheus_client's global registry, with every source registered with ``DEFAULT_REGISTRY`` so far."""
    global _flushed
    from prometheus_client import REGISTRY

    with _lock:
        pending = list(_pending)
        _pending.clear()
        _flushed = True
    for source in pending:
        _register_now(source, REGISTRY)
    return REGISTRY


def _register_now(source: Source, registry: CollectorRegistry) -> None:
    from prometheus_client.registry import Collector

    class Exported(Collector):
        def describe(self) -> Iterable[Metric]:
            return source.describe()

        def collect(self) -> Iterable[Metric]:
            return source.collect()

    exported = Exported()
    registry.register(exported)
    _exported[(id(source), id(registry))] = exported
