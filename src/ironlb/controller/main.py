"""``ironlb controller``: wires the client, the controller, leader election, metrics and signals together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass

from ironlb.controller.controller import COMPONENT, Controller, ControllerOptions
from ironlb.controller.metrics import ClientCounters, ControllerCollector, registry_for
from ironlb.kube.client import KubeClient, KubeError
from ironlb.kube.events import EventRecorder
from ironlb.kube.leader import LeaderElector, LeadershipLost
from ironlb.metrics.server import HealthServer

log = logging.getLogger(__name__)

LEASE_NAME = "ironlb-controller"


@dataclass(frozen=True)
class RunOptions:
    namespace: str = "metallb-system"
    lb_class: str = ""
    kubeconfig: str | None = None
    metrics_host: str = "0.0.0.0"
    port: int = 9120  # /metrics (and the probes); 0 disables
    health_host: str = "0.0.0.0"
    health_probe_port: int = 17472  # /healthz, /readyz; 0 disables
    pod_name: str = ""
    leader_elect: bool = False
    lease_name: str = LEASE_NAME
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    qps: float = 100.0
    burst: int = 200
    event_qps: float = 50.0
    event_burst: int = 100
    verbose_http: bool = False  # log every request (with --log-level all)
    webhook_mode: str = "enabled"  # enabled | disabled | onlywebhook (MetalLB's --webhook-mode)
    webhook_port: int = 9443
    ml_secret_name: str = "memberlist"
    deployment: str = ""  # owner of the memberlist Secret (MetalLB's --deployment)
    disable_cert_rotation: bool = False
    cert_dir: str = ""


async def run(options: RunOptions) -> int:
    """Run until SIGTERM/SIGINT (exit 0) or lost leadership (exit 1)."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG or not options.verbose_http:
        for name in ("httpx2", "httpcore2"):
            logging.getLogger(name).setLevel(logging.WARNING)  # one line per request otherwise
    try:
        client = KubeClient.from_kubeconfig(options.kubeconfig, qps=options.qps, burst=options.burst)
    except KubeError as err:
        log.error("%s", err)
        return 2
    counters = ClientCounters()
    controller = Controller(
        client,
        ControllerOptions(namespace=options.namespace, lb_class=options.lb_class, pod_name=options.pod_name),
        recorder=EventRecorder(client.with_limiter(options.event_qps, options.event_burst), COMPONENT),
        counters=counters,
    )
    elector: LeaderElector | None = None
    if options.leader_elect:
        identity = options.pod_name or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        # The Lease is renewed from a thread and a client of its own: a long validation or reconcile on this loop
        # (or a request queue behind the client's rate limit) never makes the leader miss its renew deadline.
        elector = await LeaderElector.on_own_thread(
            lambda: KubeClient.from_kubeconfig(options.kubeconfig, qps=options.qps, burst=options.burst),
            options.namespace,
            options.lease_name,
            identity,
            lease_duration=options.lease_duration,
            renew_deadline=options.renew_deadline,
            retry_period=options.retry_period,
        )

    serves_webhooks = options.webhook_mode in ("enabled", "onlywebhook") and bool(options.webhook_port)
    webhooks_listening = asyncio.Event()

    def ready() -> bool:
        if serves_webhooks and not webhooks_listening.is_set():
            return False  # the webhook port opens once its certificate exists: not ready before
        if options.webhook_mode == "onlywebhook":
            return True
        if elector is not None and not elector.is_leader:
            return True  # a standby is healthy; it just waits for the lease
        return controller.ready

    registry = registry_for(ControllerCollector(lambda: controller.allocator, counters, lambda: client.stats))
    servers = []
    for host, port in ((options.metrics_host, options.port), (options.health_host, options.health_probe_port)):
        if port:
            servers.append(HealthServer(host, port, registry=registry, ready=ready))
    try:
        for server in servers:
            await server.start()
    except OSError as err:
        log.error("cannot listen: %s", err)
        await client.close()
        if elector is not None:
            await elector.close()
        return 2

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def lead() -> None:
        await controller.run()

    async def webhooks() -> None:
        """Stateless, so every replica serves them (outside leader election); failures never stop allocation."""
        from ironlb.webhooks import serve_webhooks

        opts: dict[str, object] = {"namespace": options.namespace, "port": options.webhook_port}
        if options.disable_cert_rotation:
            opts.update(rotate=False, cert_dir=options.cert_dir)
        try:
            await serve_webhooks(client, listening=webhooks_listening, **opts)
        except OSError as err:
            log.error("webhooks not served: %s", err)

    async def memberlist_secret() -> None:
        """MetalLB's CreateMlSecret: the speakers' membership key, created once if absent (retried until it is)."""
        from ironlb.webhooks.certs import ensure_memberlist_secret

        delay = 1.0
        while True:
            try:
                if await ensure_memberlist_secret(
                    client, namespace=options.namespace, name=options.ml_secret_name, deployment=options.deployment
                ):
                    log.info("created Secret %s/%s", options.namespace, options.ml_secret_name)
                return
            except Exception as err:  # the apiserver may be unreachable for a while
                log.warning("cannot ensure the memberlist Secret: %s", err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    side: list[asyncio.Task[None]] = []
    if serves_webhooks:
        side.append(asyncio.create_task(webhooks(), name="webhooks"))
    if options.ml_secret_name:
        side.append(asyncio.create_task(memberlist_secret(), name="memberlist-secret"))
    async def nothing() -> None:
        await stop.wait()

    if options.webhook_mode == "onlywebhook":
        work = asyncio.create_task(nothing(), name="webhooks-only")
    else:
        work = asyncio.create_task(elector.run(lead) if elector else lead(), name="controller")
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    code = 0
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            try:
                work.result()
            except LeadershipLost as err:
                log.error("%s: exiting", err)
                code = 1
            except Exception:
                log.exception("controller failed")
                code = 1
        else:
            log.info("stopping")
    finally:
        for task in (work, stopper, *side):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.gather(work, stopper, *side, return_exceptions=True), 10)
        for server in servers:
            await server.close()
        await client.close()
        if elector is not None:
            await elector.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return code


def env_namespace() -> str:
    """``METALLB_NAMESPACE``, else the service account's namespace, else ``metallb-system``."""
    from ironlb.kube.client import in_cluster_namespace

    return os.environ.get("METALLB_NAMESPACE") or in_cluster_namespace() or "metallb-system"
