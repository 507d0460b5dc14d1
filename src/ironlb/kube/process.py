"""The one process bootstrap of ``ironlb controller`` and ``ironlb speaker``: the Kubernetes client, the HTTP
servers (metrics and probes), SIGTERM/SIGINT, and a clean shutdown in a bounded time.

Exit codes: 0 after a signal (or when the work returns), 1 when the work fails, 2 when the client cannot be
configured or a port cannot be bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence

from ironlb.kube.client import KubeClient, KubeError
from ironlb.metrics.server import HealthServer

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 10.0  # seconds for the work, then for the component's own close, to finish


def connect(kubeconfig: str | None, *, qps: float, burst: int, verbose_http: bool = False) -> KubeClient | None:
    """The client (in-cluster or from ``kubeconfig``); None, logged, when it cannot be configured."""
    if not verbose_http:
        for name in ("httpx2", "httpcore2"):
            logging.getLogger(name).setLevel(logging.WARNING)  # one line per request otherwise
    try:
        return KubeClient.from_kubeconfig(kubeconfig, qps=qps, burst=burst)
    except KubeError as err:
        log.error("%s", err)
        return None


async def run_until_stopped(
    name: str,
    client: KubeClient,
    servers: Sequence[HealthServer],
    work: Callable[[], Awaitable[None]],
    *,
    side: Sequence[Callable[[], Awaitable[None]]] = (),
    close: Callable[[], Awaitable[None]] | None = None,
    expected: tuple[type[BaseException], ...] = (),
) -> int:
    """Serve ``servers``, run ``work`` (and the ``side`` tasks, whose failures are theirs to log) until a signal
    or until ``work`` ends; then cancel everything, ``close`` the component and the client. An ``expected``
    exception from ``work`` (e.g. lost leadership) is logged in one line, any other with its traceback."""
    try:
        for server in servers:
            await server.start()
    except OSError as err:
        log.error("cannot listen: %s", err)
        for server in servers:
            await server.close()
        if close is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(), SHUTDOWN_TIMEOUT)
        await client.close()
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    main = asyncio.create_task(_call(work), name=name)
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    extra = [asyncio.create_task(_call(fn), name=f"{name}-side") for fn in side]
    code = 0
    try:
        await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
        failure = main.exception() if main.done() and not main.cancelled() else None
        if isinstance(failure, expected):
            log.error("%s: exiting", failure)
            code = 1
        elif failure is not None:
            log.error("%s failed", name, exc_info=failure)
            code = 1
        else:
            log.info("stopping")
    finally:
        tasks = (main, stopper, *extra)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), SHUTDOWN_TIMEOUT)
        if close is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(), SHUTDOWN_TIMEOUT)
        for server in servers:
            await server.close()
        await client.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return code


async def _call(fn: Callable[[], Awaitable[None]]) -> None:
    await fn()


__all__ = ["SHUTDOWN_TIMEOUT", "connect", "run_until_stopped"]
