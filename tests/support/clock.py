"""An event loop on a fake clock, for tests that check a schedule (rounds of gratuitous ARP, hold timers).

On the real clock such a test counts what happened in ``sleep(0.5)``, and a loaded machine shifts the count. On
:class:`VirtualClockLoop` time stands still while anything is runnable and jumps to the next timer (and a hair
beyond, as a real wake-up is always late) when the loop would otherwise wait, so ``sleep(0.5)`` sees exactly the rounds scheduled in that half second, however
slow the machine. Real sockets still work: before each jump the loop gives I/O already in flight (loopback TCP and
UDP between parts of the same test) a short real-time grace to arrive, so a packet is never overtaken by a timer
it would have beaten on the real clock.

Use :func:`virtual_clock` on an ``async def`` test (its fixtures must be sync: an async fixture would run on
pytest-asyncio's loop, not this one)::

    @virtual_clock
    async def test_burst() -> None: ...
"""

from __future__ import annotations

import asyncio
import functools
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec

P = ParamSpec("P")

# Real seconds the loop waits for in-flight I/O before it jumps the clock (loopback delivers within microseconds;
# the margin covers a loaded machine).
IO_GRACE = 0.005
# How late a timer fires. A real loop always wakes a little after a timer's time, never before or exactly on it;
# code that compares ``loop.time()`` with a deadline relies on that, and so do the schedules the tests assert
# (a round "at" a burst's deadline does not happen). 0.1 ms: far below any interval the tests use.
LATENESS = 0.0001


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A selector loop whose ``time()`` only moves when the loop is idle, straight to the next timer."""

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__()
        self._now = start
        selector: selectors.BaseSelector = self._selector  # type: ignore[attr-defined]
        real_select = selector.select

        def select(timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            ready = real_select(0)
            if ready or timeout == 0:
                return ready
            ready = real_select(IO_GRACE if timeout is None else min(IO_GRACE, timeout))
            if ready:
                return ready
            if timeout is None:
                # No timer at all: only real I/O can wake us (a test waiting on a socket or a thread).
                return real_select(None)
            self._now += timeout + LATENESS
            return []

        selector.select = select  # type: ignore[method-assign]

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (timers due by then run on the next loop iteration)."""
        self._now += seconds


def virtual_clock(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an ``async def`` test on a :class:`VirtualClockLoop` (the test itself becomes a sync test)."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
            runner.run(test(*args, **kwargs))

    return run
