"""The fast path: an event loop on its own thread for the work nothing may delay.

Failure detection (membership heartbeats), the ARP/NDP responders and BFD must answer within milliseconds
whatever else the process does. The main loop parses YAML, validates configuration, plans, encodes and decodes
BGP UPDATEs, serves webhooks and follows Kubernetes watches: any of these can hold it for seconds. So the
latency-critical objects live on a second asyncio loop, on a daemon thread, and the two loops talk only through
this narrow interface:

- main -> fast: :meth:`FastPath.call` (run a coroutine or a function there and await its result) and
  :meth:`FastPath.post` (fire and forget). The decisions go this way: the responder's announced set, the member
  list, BFD sessions to add or remove.
- fast -> main: :meth:`FastPath.to_main` wraps a callback so that it runs on the main loop (membership changes,
  BFD down). Callbacks never run on the wrong loop, so neither side needs locks.

``FastPath(threaded=False)`` runs everything on the caller's loop, with the same interface: unit tests and
embedders that do not want a thread use that. See ``docs/fastpath.md`` for which work runs where.

Both loops share the GIL. A thread that wants it waits up to ``sys.getswitchinterval()`` for the holder to let
go, so starting a threaded fast path lowers that interval to :data:`SWITCH_INTERVAL` (process-wide) and, when
the process may (CAP_SYS_NICE), gives the fast thread a better nice value (:data:`NICE`) so the kernel runs it
first when the machine is busy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

__all__ = ["FastPath"]

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.001
"""Seconds a GIL holder may keep it while the fast thread waits (CPython's default is 5 ms)."""
NICE = -10
"""Nice value asked for the fast thread (only the thread; needs CAP_SYS_NICE, else it keeps the process's)."""

P = ParamSpec("P")
T = TypeVar("T")


class FastPath:
    """Owns the fast loop (and its thread): :meth:`start`, :meth:`call`, :meth:`post`, :meth:`stop`.

    Create and use it from the main loop. ``start`` returns once the fast loop runs; ``stop`` cancels whatever
    is still running there, closes the loop and joins the thread (idempotent).
    """

    def __init__(self, *, threaded: bool = True, name: str = "ironlb-fastpath") -> None:
        self.threaded = threaded
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The fast loop (the main loop itself when not threaded)."""
        if self._loop is None:
            raise RuntimeError("the fast path is not started")
        return self._loop

    @property
    def main_loop(self) -> asyncio.AbstractEventLoop:
        if self._main is None:
            raise RuntimeError("the fast path is not started")
        return self._main

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._stopped

    def on_fast_thread(self) -> bool:
        """Whether the caller runs on the fast loop's thread (always true when not threaded)."""
        return not self.threaded or (self._thread is not None and threading.current_thread() is self._thread)

    async def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("the fast path is already started")
        self._main = asyncio.get_running_loop()
        if not self.threaded:
            self._loop = self._main
            return
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
            except (OSError, AttributeError) as exc:
                log.debug("fast path thread keeps the process priority: %s", exc)
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                with contextlib.suppress(Exception):
                    _cancel_all(loop)
                loop.close()

        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        await asyncio.get_running_loop().run_in_executor(None, ready.wait)
        self._loop = loop

    async def call(self, work: Coroutine[Any, Any, T] | Callable[[], T]) -> T:
        """Run ``work`` (a coroutine, or a function of no arguments) on the fast loop; return its result here."""
        loop = self.loop
        if not self.threaded:
            if asyncio.iscoroutine(work):
                return await work
            assert callable(work)
            return work()
        if self._stopped:
            if asyncio.iscoroutine(work):
                work.close()
            raise RuntimeError("the fast path is stopped")
        if asyncio.iscoroutine(work):
            future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(work, loop)
        else:
            assert callable(work)
            future = concurrent.futures.Future()
            fn = work

            def run_fn() -> None:
                if not future.set_running_or_notify_cancel():
                    return
                try:
                    future.set_result(fn())
                except BaseException as exc:  # handed to the caller
                    future.set_exception(exc)

            loop.call_soon_threadsafe(run_fn)
        return await asyncio.wrap_future(future)

    def post(self, fn: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
        """Run ``fn(*args)`` on the fast loop soon, without waiting (dropped once stopped); at once when not
        threaded, so that order with :meth:`call` is kept either way."""
        if self._stopped or self._loop is None:
            return
        if not self.threaded:
            fn(*args, **kwargs)
            return
        if kwargs:
            self._loop.call_soon_threadsafe(lambda: fn(*args, **kwargs))
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def to_main(self, fn: Callable[P, object]) -> Callable[P, None]:
        """``fn`` wrapped so that calling it (on the fast loop) runs it on the main loop."""
        main = self.main_loop

        def relay(*args: P.args, **kwargs: P.kwargs) -> None:
            if main.is_closed():
                return
            if not self.threaded:
                fn(*args, **kwargs)
                return
            with contextlib.suppress(RuntimeError):  # the main loop closed meanwhile
                main.call_soon_threadsafe(lambda: fn(*args, **kwargs))

        return relay

    async def stop(self, timeout: float = 5.0) -> None:
        """Cancel what still runs on the fast loop, stop it and join the thread."""
        if self._stopped:
            return
        self._stopped = True
        loop, thread = self._loop, self._thread
        if not self.threaded or loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        await asyncio.get_running_loop().run_in_executor(None, thread.join, timeout)
        if thread.is_alive():
            log.warning("the fast path thread did not stop within %.1f s", timeout)

    async def __aenter__(self) -> FastPath:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the fast loop's remaining tasks and let them finish (``asyncio.run``'s clean-up)."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())

