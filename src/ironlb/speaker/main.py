"""``ironlb speaker``: the client, the speaker, metrics, health probes and signals, wired together."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from ironlb.fastproc.spawn import Spawned
from ironlb.kube.client import in_cluster_namespace
from ironlb.kube.events import EventRecorder
from ironlb.kube.process import connect, run_until_stopped
from ironlb.metrics.client import ClientCounters
from ironlb.metrics.export import DEFAULT_REGISTRY, register, unregister
from ironlb.metrics.secure import SecureOptions, metrics_servers

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
    # ServiceL2Status/ServiceBGPStatus writes. A create plus a status write per Service: 1,000 new Services on one
    # node are 2,000 requests. MetalLB's controller-runtime clients send them unthrottled and leave fairness to the
    # apiserver's API Priority and Fairness; ironlb keeps a client-side ceiling, high enough for 1,000 statuses in
    # a few seconds, low enough that a confused speaker cannot flood the apiserver.
    status_qps: float = 400.0
    status_burst: int = 400
    verbose_http: bool = False
    metrics_secure: SecureOptions | None = None  # HTTPS + TokenReview/SubjectAccessReview on the metrics port


async def run(options: RunOptions, fastproc_spawned: Spawned | None = None) -> int:
    """Run until SIGTERM/SIGINT (exit 0); 2 when the client cannot be configured or a port cannot be bound.

    ``fastproc_spawned``: the fast process, already started by the command line (see :mod:`ironlb.fastproc.spawn`).
    """
    client = connect(options.kubeconfig, qps=options.qps, burst=options.burst, verbose_http=options.verbose_http)
    if client is None:
        return 2
    counters = ClientCounters()
    opts = options.speaker
    speaker = Speaker(
        client,
        opts,
        recorder=EventRecorder(client.with_limiter(options.event_qps, options.event_burst), COMPONENT, host=opts.node),
        counters=counters,
        status_client=client.with_limiter(options.status_qps, options.status_burst),
        fastproc_spawned=fastproc_spawned,
    )
    collector = SpeakerCollector(counters, lambda: client.stats, lambda: speaker.membership, lambda: speaker.fastproc)
    register(collector, DEFAULT_REGISTRY)
    try:
        servers = await metrics_servers(
            client, (options.metrics_host, options.port), ("127.0.0.1", options.health_probe_port),
            ready=lambda: speaker.ready, secure=options.metrics_secure,
        )  # fmt: skip
    except ValueError as err:
        log.error("cannot serve metrics: %s", err)
        unregister(collector)
        await client.close()
        return 2
    try:
        return await run_until_stopped("speaker", client, servers, speaker.run, close=speaker.close)
    finally:
        unregister(collector)


def env_namespace() -> str:
    """``METALLB_NAMESPACE``, else the service account's namespace, else ``metallb-system``."""
    return os.environ.get("METALLB_NAMESPACE") or in_cluster_namespace() or "metallb-system"
