"""client-go's rate-limited work queue, for asyncio, with a "reprocess all" key.

A key is queued at most once however often it is added (events coalesce), and never handed out twice at the
same time: a key added while it is being processed is queued again when :meth:`done` is called. Failed keys
come back after a per-key exponential delay (:meth:`add_rate_limited`, reset by :meth:`forget`). The queue
orders nothing else: keys come out in the order they were first added.

``REPROCESS_ALL`` is an ordinary key by convention: the consumer converges every object when it gets it, which
is how freed addresses reach Services that were waiting (MetalLB's ``SyncStateReprocessAll``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

REPROCESS_ALL = "\x00reprocess-all"


class ShutDown(Exception):
    """The queue was shut down; the worker should return."""


class WorkQueue(Generic[K]):
    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 60.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._wakeup = asyncio.Event()
        self._shutdown = False
        self.adds = 0  # keys accepted (not coalesced), for tests and metrics

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutdown

    def add(self, key: K) -> None:
        """Queue ``key`` unless it is already waiting."""
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        self.adds += 1
        if key in self._processing:
            return  # done() queues it again
        self._queue.append(key)
        self._wakeup.set()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds; an earlier pending timer for it wins."""
        if self._shutdown:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= when:
                return
            pending[1].cancel()
        self._timers[key] = (when, loop.call_at(when, self._fire, key))

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: K) -> None:
        """Queue ``key`` again after ``base_delay * 2**failures`` (at most ``max_delay``)."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(self.max_delay, self.base_delay * (2**n)))

    def forget(self, key: K) -> None:
        """``key`` succeeded: its next failure starts from ``base_delay`` again."""
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> K:
        """The next key (waits for one); raises ShutDown once the queue is shut down and drained."""
        while not self._queue:
            if self._shutdown:
                raise ShutDown
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        """Processing of ``key`` finished; if it was added meanwhile, it is queued again."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wakeup.set()

    def shut_down(self) -> None:
        """No more adds; pending timers are dropped and waiting ``get`` calls raise ShutDown once drained."""
        self._shutdown = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._wakeup.set()
