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


def _retried(exc: BaseException, retry: Retry, retry_if: Callable[[BaseException], bool] | None) -> bool:
    return isinstance(exc, retry) and (retry_if is None or retry_if(exc))


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
    deadline = time.monotonic() + timeout
    last: object = None
    error: BaseException | None = None
    while True:
        try:
            value = fn()
        except BaseException as exc:
            if not _retried(exc, retry, retry_if):
                raise
            error = exc
        else:
            if value:
                return value
            last, error = value, None
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeout(what, timeout, last, error)
        time.sleep(min(interval, left))


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
    deadline = loop.time() + timeout
    last: object = None
    error: BaseException | None = None
    while True:
        try:
            result = fn()
            value = await result if isinstance(result, Awaitable) else result
        except BaseException as exc:
            if not _retried(exc, retry, retry_if):
                raise
            error = exc
        else:
            if value:
                return value
            last, error = value, None
        left = deadline - loop.time()
        if left <= 0:
            raise WaitTimeout(what, timeout, last, error)
        await asyncio.sleep(min(interval, left))
