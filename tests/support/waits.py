"""The tests' and benchmarks' waits: :func:`ironlb.lab.waits.wait_until` (one implementation, shipped for the
demo) and the "not yet" errors of the things they wait for, to pass as ``retry``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ironlb.kube.client import ApiError
from ironlb.lab import waits as _waits
from ironlb.lab.frr import VTYSH_NOT_READY
from ironlb.lab.waits import Retry, WaitTimeout
from tests.support.controlplane import KubeError

T = TypeVar("T")

# A deadline only bounds how long a *failing* test takes: a passing wait returns as soon as its condition holds.
# So the tests' deadlines are stretched (x3 unless IRONLB_TEST_DEADLINE_SCALE says otherwise): a machine loaded by
# other work makes things slower, and slower must not read as broken. Figures are measured in bench/, not here.
DEADLINE_SCALE = float(os.environ.get("IRONLB_TEST_DEADLINE_SCALE", "3"))


def wait_until(
    fn: Callable[[], T | None],
    timeout: float,
    what: str | Callable[[], str],
    retry: Retry = (),
    *,
    retry_if: Callable[[BaseException], bool] | None = None,
    interval: float = 0.05,
) -> T:
    """:func:`ironlb.lab.waits.wait_until` with the deadline stretched by :data:`DEADLINE_SCALE`."""
    return _waits.wait_until(fn, timeout * DEADLINE_SCALE, what, retry, retry_if=retry_if, interval=interval)


async def wait_until_async(
    fn: Callable[[], T | Awaitable[T | None] | None],
    timeout: float,
    what: str | Callable[[], str],
    retry: Retry = (),
    *,
    retry_if: Callable[[BaseException], bool] | None = None,
    interval: float = 0.01,
) -> T:
    """:func:`ironlb.lab.waits.wait_until_async` with the deadline stretched by :data:`DEADLINE_SCALE`."""
    return await _waits.wait_until_async(
        fn, timeout * DEADLINE_SCALE, what, retry, retry_if=retry_if, interval=interval
    )

__all__ = [
    "DEADLINE_SCALE",
    "KUBE_NOT_YET",
    "NOT_LISTENING",
    "STARTING",
    "VTYSH_NOT_READY",
    "WaitTimeout",
    "only_404",
    "wait_until",
    "wait_until_async",
]

# A server that is starting: connection refused or reset, or no answer yet (all OSError).
NOT_LISTENING: tuple[type[BaseException], ...] = (OSError,)


# A router, a speaker or a helper process that is starting: its CLI exits non-zero, times out or prints a partial
# document (CalledProcessError, TimeoutExpired, ValueError), its status file is missing (OSError) or lacks a field.
STARTING: tuple[type[BaseException], ...] = (
    subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError, KeyError, TypeError, OSError,
)

# An object read while it is being created: the apiserver says 404 (with ``retry_if=only_404``: other statuses are
# real errors), or the object is there without the field a controller writes next (KeyError, TypeError on None).
KUBE_NOT_YET: tuple[type[BaseException], ...] = (KubeError, ApiError, KeyError, TypeError)


def only_404(exc: BaseException) -> bool:
    """``retry_if`` for :data:`KUBE_NOT_YET`: an apiserver error is "not yet" only when it is a 404."""
    status = getattr(exc, "status", None)
    return status is None or status == 404
