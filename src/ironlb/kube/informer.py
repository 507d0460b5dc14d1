"""An asyncio reflector and cache (client-go's Reflector + Indexer, one resource per ``Informer``).

It lists (in pages), then watches from the list's resourceVersion with bookmarks, so a restarted watch resumes
where it stopped instead of relisting. The server ends each watch after ``timeoutSeconds``; a read timeout
catches a connection that went silent. On 410 Gone it relists and diffs the fresh list against the cache:
objects that vanished in the gap are reported as deletions, so no handler misses a delete. Errors back off
exponentially (0.8 s doubling to 30 s, with jitter). ``synced`` is set once the first list is in the cache.

Handlers are plain callables ``handler(event_type, old, new)`` with ``ADDED`` (old None), ``MODIFIED`` or
``DELETED`` (new None), called on the event loop; they should be quick (enqueue a key, typically).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ironlb.kube.client import ApiError, KubeError, Obj, Resource, object_key

log = logging.getLogger(__name__)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
MAX_TOMBSTONES = 4096
"""Deletions remembered per informer, so a late answer to our own write cannot resurrect the object."""

Handler = Callable[[str, Obj | None, Obj | None], None]
Transform = Callable[[Obj], Obj]


class WatchSource(Protocol):
    """What an Informer needs from a client (``KubeClient`` is one; tests use fakes that inject faults)."""

    def list_all(
        self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
        field_selector: str | None = None, page_size: int = 500, transform: Transform | None = None,
    ) -> Any: ...  # Awaitable[tuple[list[Obj], str]]

    def watch(
        self, res: Resource, namespace: str | None = None, *, resource_version: str | None = None,
        allow_bookmarks: bool = True, timeout_seconds: int = 60, read_timeout: float = 90.0,
        label_selector: str | None = None, field_selector: str | None = None,
    ) -> Any: ...  # AsyncIterator[Obj]


class Gone(KubeError):
    """The resourceVersion we watch from is no longer in the server's history: relist."""


def strip_managed_fields(obj: Obj) -> Obj:
    """The default transform: managedFields are large and nobody here reads them."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


def resource_version(obj: Mapping[str, Any] | None) -> str:
    if not obj:
        return ""
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def newer_or_equal(a: str, b: str) -> bool:
    """Whether RV ``a`` is at least ``b``. RVs are opaque, but the apiserver's are etcd revisions (integers);
    anything else counts as newer so the latest write wins."""
    if a.isdigit() and b.isdigit():
        return int(a) >= int(b)
    return True


class Store:
    """The cache: key -> object, read by the controller, written by the informer (and by ``put_local``)."""

    def __init__(self) -> None:
        self._items: dict[str, Obj] = {}

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[str]:
        return list(self._items)

    def values(self) -> list[Obj]:
        return list(self._items.values())

    def items(self) -> Iterator[tuple[str, Obj]]:
        return iter(list(self._items.items()))


@dataclass
class InformerStats:
    lists: int = 0
    watches: int = 0
    events: int = 0
    bookmarks: int = 0
    gone: int = 0  # 410s that forced a relist
    errors: int = 0
    deleted_in_gap: int = 0  # deletions found by diffing a relist


class Backoff:
    """Exponential backoff with jitter; ``reset`` after a healthy stretch."""

    def __init__(self, initial: float = 0.8, maximum: float = 30.0, factor: float = 2.0, jitter: float = 1.0) -> None:
        self.initial, self.maximum, self.factor, self.jitter = initial, maximum, factor, jitter
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return delay * (1 + random.random() * self.jitter)

    def reset(self) -> None:
        self._next = self.initial


class Informer:
    """Keeps ``store`` in step with one resource (optionally one namespace and selectors); see the module doc."""

    def __init__(
        self,
        client: WatchSource,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        transform: Transform | None = strip_managed_fields,
        page_size: int = 500,
        watch_timeout: tuple[int, int] = (240, 300),
        read_timeout: float = 330.0,
        backoff: Backoff | None = None,
        healthy_after: float = 60.0,
        name: str | None = None,
        list_slots: asyncio.Semaphore | None = None,
        watch_after: asyncio.Event | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.transform = transform
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.read_timeout = read_timeout
        self.backoff = backoff or Backoff()
        self.healthy_after = healthy_after
        self.name = name or resource.plural
        # Start-up (issue 16): the first list waits for one of ``list_slots`` (shared by a component's informers, so
        # that their lists share a few keep-alive connections instead of opening one TLS connection each), and every
        # watch waits for ``watch_after`` (say, the first decision made from the lists): a watch holds its
        # connection, so watching at once would open those connections anyway.
        self.list_slots = list_slots
        self.watch_after = watch_after
        self.store = Store()
        self.synced = asyncio.Event()
        self.last_resource_version = ""
        self.stats = InformerStats()
        self._handlers: list[Handler] = []
        # key -> resourceVersion of its DELETED event. A write of ours that raced with the deletion (the PATCH
        # answered after the watch delivered the DELETED) must not bring the object back: the cache would keep a
        # deleted pool or Service for good, until the next relist.
        self._tombstones: dict[str, str] = {}

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def _emit(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        for handler in self._handlers:
            try:
                handler(kind, old, new)
            except Exception:  # a handler's bug must not stop the informer
                log.exception("%s informer: handler failed on %s", self.name, kind)

    def put_local(self, obj: Obj) -> None:
        """Store an object this process just wrote (the API's answer), unless the cache already has newer.

        The watch event for the same write then matches and is not reported again. An answer older than the
        object's deletion, seen meanwhile on the watch, is dropped: the object is gone.
        """
        key = object_key(obj)
        rv = resource_version(obj)
        tomb = self._tombstones.get(key)
        if tomb is not None and not (rv and rv != tomb and newer_or_equal(rv, tomb)):
            return
        current = self.store._items.get(key)
        if current is None or newer_or_equal(rv, resource_version(current)):
            self.store._items[key] = self._transform(obj)

    def _bury(self, key: str, rv: str) -> None:
        self._tombstones.pop(key, None)
        self._tombstones[key] = rv
        while len(self._tombstones) > MAX_TOMBSTONES:  # bounded: the oldest deletions go first
            del self._tombstones[next(iter(self._tombstones))]

    def _transform(self, obj: Obj) -> Obj:
        obj.setdefault("apiVersion", self.resource.api_version)
        obj.setdefault("kind", self.resource.kind)
        return self.transform(obj) if self.transform else obj

    # ------------------------------------------------------------------------------------------------ main loop
    async def run(self) -> None:
        """List and watch until cancelled."""
        need_list = True
        while True:
            started = time.monotonic()
            try:
                if need_list:
                    await (self._relist() if self.synced.is_set() else self._first_list())
                    need_list = False
                if self.watch_after is not None:
                    await self.watch_after.wait()
                await self._watch_once()
            except Gone:
                self.stats.gone += 1
                log.info("%s informer: resourceVersion %s expired, relisting", self.name, self.last_resource_version)
                need_list = True
            except KubeError as err:
                self.stats.errors += 1
                if time.monotonic() - started > self.healthy_after:
                    self.backoff.reset()
                delay = self.backoff.next()
                log.warning("%s informer: %s; retrying in %.1fs", self.name, err, delay)
                await asyncio.sleep(delay)
            else:
                if time.monotonic() - started > self.healthy_after:
                    self.backoff.reset()

    async def _first_list(self) -> None:
        if self.list_slots is None:
            await self._relist()
            return
        async with self.list_slots:
            await self._relist()

    async def _relist(self) -> None:
        items, rv = await self.client.list_all(
            self.resource, self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector, page_size=self.page_size, transform=self._transform,
        )
        self.stats.lists += 1
        fresh: dict[str, Obj] = {object_key(obj): obj for obj in items}
        old = self.store._items
        self.store._items = fresh
        for key in set(old) - set(fresh):
            self._bury(key, rv)  # deleted in the gap: a write that answered before the list is older than rv
        self.last_resource_version = rv
        first = not self.synced.is_set()
        for key, obj in old.items():
            if key not in fresh:
                if not first:
                    self.stats.deleted_in_gap += 1
                self._emit(DELETED, obj, None)
        for key, obj in fresh.items():
            before = old.get(key)
            if before is None:
                self._emit(ADDED, None, obj)
            elif resource_version(before) != resource_version(obj):
                self._emit(MODIFIED, before, obj)
        self.synced.set()

    async def _watch_once(self) -> None:
        lo, hi = self.watch_timeout
        self.stats.watches += 1
        events = self.client.watch(
            self.resource, self.namespace, resource_version=self.last_resource_version, allow_bookmarks=True,
            timeout_seconds=random.randint(lo, hi), read_timeout=self.read_timeout,
            label_selector=self.label_selector, field_selector=self.field_selector,
        )
        started, seen = time.monotonic(), self.stats.events + self.stats.bookmarks
        try:
            async for event in events:
                self._handle(event)
        except ApiError as err:
            if err.gone:
                raise Gone(str(err)) from err
            raise
        finally:
            with contextlib.suppress(Exception):
                await events.aclose()
        if time.monotonic() - started < 1.0 and self.stats.events + self.stats.bookmarks == seen:
            raise KubeError("very short watch: the server closed it at once")  # back off, as client-go does

    def _handle(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "BOOKMARK":
            self.stats.bookmarks += 1
            self.last_resource_version = resource_version(obj) or self.last_resource_version
            return
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise Gone(str(obj.get("message", "resource version expired")))
            raise ApiError("WATCH", self.resource.path(self.namespace), int(code or 500), obj)
        if kind not in (ADDED, MODIFIED, DELETED):
            return
        self.stats.events += 1
        obj = self._transform(dict(obj))
        rv = resource_version(obj)
        if rv:
            self.last_resource_version = rv
        key = object_key(obj)
        old = self.store._items.get(key)
        if kind == DELETED:
            if old is not None:
                del self.store._items[key]
            if rv:
                self._bury(key, rv)
            self._emit(DELETED, old or obj, None)
            return
        self._tombstones.pop(key, None)  # created again
        if old is not None and rv and (rv == resource_version(old) or not newer_or_equal(rv, resource_version(old))):
            return  # the version put_local stored (our own write), or older
        self.store._items[key] = obj
        self._emit(ADDED if old is None else MODIFIED, old, obj)


async def wait_synced(informers: Sequence[Informer], timeout: float | None = None, *, report: float = 30.0) -> bool:
    """Wait until every informer has listed once, logging the ones still waiting every ``report`` s (a list that
    never completes shows in the log); False on ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while pending := [i for i in informers if not i.synced.is_set()]:
        wait = report if deadline is None else min(report, deadline - loop.time())
        if wait <= 0:
            return False
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancellation that comes as the event is set,
            # and this loop would then wait on for informers that are being cancelled too (a stop hung for 10 s).
            async with asyncio.timeout(wait):
                await pending[0].synced.wait()
        except TimeoutError:
            if deadline is None or loop.time() < deadline:
                log.info("waiting for caches to sync: %s", ", ".join(i.name for i in pending))
    return True
