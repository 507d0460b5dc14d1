"""Kubernetes Events the way client-go's recorder writes them (``tools/record``), so ``kubectl describe`` reads
the same as with MetalLB.

- **Never blocks the caller, loses no event**: :meth:`EventRecorder.event` only queues, a background task writes.
  Up to 1000 events wait in order; beyond that (a burst faster than the API accepts writes) events are folded into
  a backlog keyed by (object, type, reason, message), where a repeat only raises a count, and written, count
  included, as the queue drains. client-go's broadcaster drops events here; ironlb drops only past
  ``BACKLOG_SIZE`` distinct backlogged events (memory bounded at a few MB), and counts them.
- **Spam filter**: per (source, object, type, reason, message) a token bucket of 25, refilled one per 5 minutes.
- **Aggregation**: the 10th event of the same (source, object, type, reason) with different messages within
  10 minutes becomes ``(combined from similar events): <message>``.
- **Deduplication**: an event identical to one already written is a PATCH of its ``count`` and
  ``lastTimestamp`` (``kubectl`` shows ``x3``), not a new object.
- Writes are retried a few times on transport errors, then dropped with a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ironlb.kube.client import EVENTS, ApiError, KubeError, Obj, Resource

log = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"

SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0
AGGREGATE_MAX = 10
AGGREGATE_WINDOW = 600.0
CACHE_SIZE = 4096
QUEUE_SIZE = 1000
BACKLOG_SIZE = 50_000
WRITE_ATTEMPTS = 4


class EventWriter(Protocol):
    async def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj: ...

    async def patch(
        self, res: Resource, name: str, patch: Any, namespace: str | None = None, *, subresource: str | None = None,
        patch_type: str = "merge", field_manager: str | None = None, force: bool | None = None,
    ) -> Obj: ...


def object_reference(obj: Mapping[str, Any]) -> dict[str, str]:
    """``involvedObject`` for ``obj`` (kind, apiVersion, namespace, name, uid, resourceVersion)."""
    meta = obj.get("metadata") or {}
    ref = {
        "kind": str(obj.get("kind", "")),
        "apiVersion": str(obj.get("apiVersion", "")),
        "name": str(meta.get("name", "")),
    }
    for src, dst in (("namespace", "namespace"), ("uid", "uid"), ("resourceVersion", "resourceVersion")):
        if meta.get(src):
            ref[dst] = str(meta[src])
    return ref


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _object_key(ref: Mapping[str, str]) -> tuple[str, str, str, str, str]:
    return (ref.get("kind", ""), ref.get("namespace", ""), ref.get("name", ""), ref.get("uid", ""),
            ref.get("apiVersion", ""))


@dataclass(slots=True)
class _Item:
    """One event waiting to be written; ``count`` > 1 when repeats were folded into it in the backlog."""

    ref: dict[str, str]
    type: str
    reason: str
    message: str
    stamp: float
    count: int = 1


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class _Written:
    name: str
    namespace: str
    count: int
    first: str


@dataclass
class RecorderStats:
    queued: int = 0
    created: int = 0
    patched: int = 0
    spam_dropped: int = 0
    backlogged: int = 0
    queue_dropped: int = 0
    failed: int = 0


class EventRecorder:
    """Records Events for ``component`` (``metallb-controller`` / ``metallb-speaker``); run :meth:`run` as a task."""

    def __init__(self, client: EventWriter, component: str, *, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        self.stats = RecorderStats()
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(QUEUE_SIZE)
        # Events that did not fit in the queue: key -> [ref, type, reason, message, first stamp, count].
        self._backlog: OrderedDict[tuple[str, ...], _Item] = OrderedDict()
        self._spam: OrderedDict[tuple[str, ...], _Bucket] = OrderedDict()
        self._similar: OrderedDict[tuple[str, ...], tuple[set[str], float]] = OrderedDict()
        self._written: OrderedDict[tuple[str, ...], _Written] = OrderedDict()
        self._seq = 0

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Queue an event about ``obj`` (a full object or an ``involvedObject`` reference)."""
        ref = object_reference(obj) if "metadata" in obj else {str(k): str(v) for k, v in obj.items()}
        self.stats.queued += 1
        if not self._backlog:
            try:
                self._queue.put_nowait(_Item(ref, type_, reason, message, time.monotonic()))
                return
            except asyncio.QueueFull:
                pass
        key = (*_object_key(ref), type_, reason, message)
        pending = self._backlog.get(key)
        if pending is not None:
            pending.count += 1
        elif len(self._backlog) < BACKLOG_SIZE:
            self._backlog[key] = _Item(ref, type_, reason, message, time.monotonic())
        else:
            self.stats.queued -= 1
            self.stats.queue_dropped += 1
            return
        self.stats.backlogged += 1

    def pending(self) -> int:
        """Events queued or backlogged and not written yet (distinct backlogged ones count once)."""
        return self._queue.qsize() + len(self._backlog)

    def _refill(self) -> None:
        """Move backlogged events into the queue, oldest first, as space allows (order kept)."""
        while self._backlog and not self._queue.full():
            _key, item = self._backlog.popitem(last=False)
            self._queue.put_nowait(item)

    async def run(self) -> None:
        """Write queued events until cancelled."""
        while True:
            self._refill()
            item = await self._queue.get()
            try:
                await self._record(item.ref, item.type, item.reason, item.message, item.stamp, item.count)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one event stop the recorder
                self.stats.failed += 1
                log.exception("event recorder: dropping %s %s", item.reason, item.message)

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until the queue is empty (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while (not self._queue.empty() or self._backlog) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------------------------------------ correlator
    def _allowed(self, key: tuple[str, ...], now: float) -> bool:
        bucket = self._spam.get(key)
        if bucket is None:
            bucket = self._spam[key] = _Bucket(float(SPAM_BURST), now)
            if len(self._spam) > CACHE_SIZE:
                self._spam.popitem(last=False)
        else:
            self._spam.move_to_end(key)
            bucket.tokens = min(float(SPAM_BURST), bucket.tokens + (now - bucket.stamp) / SPAM_REFILL_SECONDS)
            bucket.stamp = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _aggregate(self, key: tuple[str, ...], message: str, now: float) -> tuple[str, bool]:
        messages, since = self._similar.get(key, (set(), now))
        if now - since > AGGREGATE_WINDOW:
            messages, since = set(), now
        messages.add(message)
        self._similar[key] = (messages, since)
        self._similar.move_to_end(key)
        if len(self._similar) > CACHE_SIZE:
            self._similar.popitem(last=False)
        if len(messages) >= AGGREGATE_MAX:
            return f"(combined from similar events): {message}", True
        return message, False

    async def _record(
        self, ref: dict[str, str], type_: str, reason: str, message: str, stamp: float, count: int = 1
    ) -> None:
        obj_key = _object_key(ref)
        source = (self.component, self.host)
        if not self._allowed((*source, *obj_key, type_, reason, message), stamp):
            self.stats.spam_dropped += 1
            return
        message, aggregated = self._aggregate((*source, *obj_key, type_, reason), message, stamp)
        dedup = (*source, *obj_key, type_, reason, "" if aggregated else message)
        now = _now()
        namespace = ref.get("namespace") or "default"
        for attempt in range(WRITE_ATTEMPTS):
            try:
                written = self._written.get(dedup)
                if written is not None:
                    try:
                        await self.client.patch(
                            EVENTS, written.name,
                            {"count": written.count + count, "lastTimestamp": now, "message": message},
                            written.namespace, patch_type="strategic",
                        )
                        written.count += count
                        self._written.move_to_end(dedup)
                        self.stats.patched += 1
                        return
                    except ApiError as err:
                        if not err.not_found:
                            raise
                        del self._written[dedup]  # deleted (or expired): write a new one
                name = self._name(ref)
                body = {
                    "metadata": {"name": name, "namespace": namespace},
                    "involvedObject": ref,
                    "reason": reason,
                    "message": message,
                    "type": type_,
                    "source": {"component": self.component, **({"host": self.host} if self.host else {})},
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": count,
                    "reportingComponent": self.component,
                    "reportingInstance": self.host,
                }
                await self.client.create(EVENTS, body, namespace)
                self._written[dedup] = _Written(name, namespace, count, now)
                if len(self._written) > CACHE_SIZE:
                    self._written.popitem(last=False)
                self.stats.created += 1
                return
            except ApiError as err:
                if err.status in (400, 403, 404, 409, 422) or attempt == WRITE_ATTEMPTS - 1:
                    self.stats.failed += 1
                    log.warning("event recorder: cannot write %s event: %s", reason, err)
                    return
            except KubeError as err:
                if attempt == WRITE_ATTEMPTS - 1:
                    self.stats.failed += 1
                    log.warning("event recorder: cannot write %s event: %s", reason, err)
                    return
            await asyncio.sleep(0.5 * 2**attempt)

    def _name(self, ref: Mapping[str, str]) -> str:
        # client-go: <object name>.<unix nanoseconds in hex>; a sequence number keeps same-tick events apart.
        self._seq += 1
        return f"{ref.get('name', 'object')}.{time.time_ns() + self._seq:x}"


async def stop_recorder(task: asyncio.Task[None], recorder: EventRecorder, timeout: float = 5.0) -> None:
    """Let queued events go out (bounded by ``timeout``), then cancel the recorder task."""
    await recorder.flush(timeout)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
