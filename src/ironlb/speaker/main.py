"""``ironlb speaker``: the client, the speaker, metrics, health probes and signals, wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass

from prometheus_client import REGISTRY

from ironlb.kube.client import KubeClient, KubeError, in_cluster_namespace
from ironlb.kube.events import EventRecorder
from ironlb.metrics.client import ClientCounters
from ironlb.metrics.server import HealthServer

from .metrics import SpeakerCollector
from .speaker import COMPONENT, Speaker, SpeakerOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    speaker: SpeakerOptions
    kubeconfig: str | None = None
    metrics_host: str = "0.0.0.0"
    port: int = 9120  # /metrics (and the probes); 0 disables
    health_probe_port: int = 17472  # /healthz, /readyz on 127.0.0.1, as MetalLB's speaker; 0 disables
    qps: float = 50.0
    burst: int = 100
    event_qps: float = 20.0
    event_burst: int = 50
    verbose_http: bool = False


async def run(options: RunOptions) -> int:
    """Run until SIGTERM/SIGINT (exit 0); 2 when the client cannot be configured or a port cannot be bound."""
    if not options.verbose_http:
        for name in ("httpx2", "httpcore2"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        client = KubeClient.from_kubeconfig(options.kubeconfig, qps=options.qps, burst=options.burst)
    except KubeError as err:
        log.error("%s", err)
        return 2
    counters = ClientCounters()
    opts = options.speaker
    speaker = Speaker(
        client,
        opts,
        recorder=EventRecorder(client.with_limiter(options.event_qps, options.event_burst), COMPONENT, host=opts.node),
        counters=counters,
    )
    collector = SpeakerCollector(counters, lambda: client.stats)
    REGISTRY.register(collector)
    servers = []
    for host, port in ((options.metrics_host, options.port), ("127.0.0.1", options.health_probe_port)):
        if port:
            servers.append(HealthServer(host, port, ready=lambda: speaker.ready))
    try:
        for server in servers:
            await server.start()
    except OSError as err:
        log.error("cannot listen: %s", err)
        for server in servers:
            await server.close()
        await client.close()
        REGISTRY.unregister(collector)
        return 2

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    work = asyncio.create_task(speaker.run(), name="speaker")
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    code = 0
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if work.done() and not work.cancelled() and work.exception() is not None:
            log.error("speaker failed", exc_info=work.exception())
            code = 1
        else:
            log.info("stopping")
    finally:
        for task in (work, stopper):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.gather(work, stopper, return_exceptions=True), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(speaker.close(), 10)
        for server in servers:
            await server.close()
        await client.close()
        REGISTRY.unregister(collector)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return code


def env_namespace() -> str:
    """``METALLB_NAMESPACE``, else the service account's namespace, else ``metallb-system``."""
    return os.environ.get("METALLB_NAMESPACE") or in_cluster_namespace() or "metallb-system"
