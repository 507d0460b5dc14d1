"""The tests' and benchmarks' waits: :func:`ironlb.lab.waits.wait_until` (one implementation, shipped for the
demo) and the "not yet" errors of the things they wait for, to pass as ``retry``."""

from __future__ import annotations

import subprocess

from ironlb.kube.client import ApiError
from ironlb.lab.frr import VTYSH_NOT_READY
from ironlb.lab.waits import WaitTimeout, wait_until, wait_until_async
from tests.support.controlplane import KubeError

__all__ = [
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
