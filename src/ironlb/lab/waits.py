"""One way to wait for something that is starting: poll until it holds, retrying the errors it raises meanwhile.

A server that is starting refuses connections, an object not yet created answers 404, a status not yet written
has no key, a daemon not yet listening makes ``vtysh`` exit non-zero: those are "not yet", not failures, and a
wait that lets them escape makes a flaky test. :func:`wait_until` retries exactly the exceptions it is told to,
stops at a deadline, and says what it waited for and the last value or error when it gives up. The demo, the
tests and the benchmarks all wait with it (``tests/support/waits.py`` re-exports it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

Retry = tuple[type[BaseException], ...]


class WaitTimeout(TimeoutError):
    """The condition did not hold in time; the message names what was awaited and the last value or error."""

    def __init__(
        self, what: str | Callable[[], str], timeout: float, last: object, error: BaseException | None
    ) -> None:
        if callable(what):
            try:
                what = what()
            except Exception as exc:  # the message must not hide the timeout
                what = f"<message failed: {exc!r}>"
        self.what = what
        detail = f"last error: {error!r}" if error is not None else f"last value: {last!r}"
        super().__init__(f"timed out after {timeout:g} s waiting for {self.what}; {detail}")
        self.last = last
        self.error = error


class _Poll:
    """What both waits keep between attempts: the deadline, and the last falsy value or retried error."""

    def __init__(
        self, what: str | Callable[[], str], timeout: float, retry: Retry,
        retry_if: Callable[[BaseException], bool] | None, now: float,
    ) -> None:  # fmt: skip
        self.what, self.timeout, self.retry, self.retry_if = what, timeout, retry, retry_if
        self.deadline = now + timeout
        self.last: object = None
        self.error: BaseException | None = None

    def retries(self, exc: BaseException) -> bool:
        """Whether ``exc`` means "not yet" (it is then the last error); if not, the caller lets it propagate."""
        if not (isinstance(exc, self.retry) and (self.retry_if is None or self.retry_if(exc))):
            return False
        self.error = exc
        return True

    def falsy(self, value: object) -> None:
        self.last, self.error = value, None

    def pause(self, now: float, interval: float) -> float:
        """How long to sleep before the next attempt; :class:`WaitTimeout` once the deadline has passed."""
        left = self.deadline - now
        if left <= 0:
            raise WaitTimeout(self.what, self.timeout, self.last, self.error)
        return min(interval, left)


def wait_until(
    fn: Callable[[], T | None],
    timeout: float,
    what: str | Callable[[], str],
    retry: Retry = (),
    *,
    retry_if: Callable[[BaseException], bool] | None = None,
    interval: float = 0.05,
) -> T:
    """Call ``fn`` until it returns something truthy and return that; :class:`WaitTimeout` after ``timeout`` s.

    An exception of a type in ``retry`` (and for which ``retry_if``, when given, is true) counts as "not yet";
    any other exception propagates at once. ``fn`` is called at least once, and once more at the deadline.
    ``what`` may be a callable, for a message computed only on timeout (logs, the state seen then).
    """
    poll = _Poll(what, timeout, retry, retry_if, time.monotonic())
    while True:
        try:
            value = fn()
        except BaseException as exc:
            if not poll.retries(exc):
                raise
        else:
            if value:
                return value
            poll.falsy(value)
        time.sleep(poll.pause(time.monotonic(), interval))


async def wait_until_async(
    fn: Callable[[], T | Awaitable[T | None] | None],
    timeout: float,
    what: str | Callable[[], str],
    retry: Retry = (),
    *,
    retry_if: Callable[[BaseException], bool] | None = None,
    interval: float = 0.01,
) -> T:
    """:func:`wait_until` for code on an event loop: ``fn`` may be a coroutine function, and the wait yields to
    the loop (its clock, so a test loop with a fake clock waits in fake time)."""
    loop = asyncio.get_running_loop()
    poll = _Poll(what, timeout, retry, retry_if, loop.time())
    while True:
        try:
            result = fn()
            value = await result if isinstance(result, Awaitable) else result
        except BaseException as exc:
            if not poll.retries(exc):
                raise
        else:
            if value:
                return value
            poll.falsy(value)
        await asyncio.sleep(poll.pause(loop.time(), interval))
