"""``ironlb controller``: wires the client, the controller, leader election, metrics and signals together."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ironlb.controller.controller import COMPONENT, Controller, ControllerOptions
from ironlb.controller.metrics import ClientCounters, ControllerCollector, registry_for
from ironlb.kube.client import KubeClient
from ironlb.kube.events import EventRecorder
from ironlb.kube.leader import LeaderElector, LeadershipLost
from ironlb.kube.process import connect, run_until_stopped
from ironlb.metrics.secure import SecureOptions, metrics_servers

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
    metrics_secure: SecureOptions | None = None  # HTTPS + TokenReview/SubjectAccessReview on the metrics port


async def run(options: RunOptions) -> int:
    """Run until SIGTERM/SIGINT (exit 0) or lost leadership (exit 1)."""
    verbose = options.verbose_http and logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    client = connect(options.kubeconfig, qps=options.qps, burst=options.burst, verbose_http=verbose)
    if client is None:
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
    try:
        servers = await metrics_servers(
            client, (options.metrics_host, options.port), (options.health_host, options.health_probe_port),
            ready=ready, secure=options.metrics_secure, registry=registry,
        )  # fmt: skip
    except ValueError as err:
        log.error("cannot serve metrics: %s", err)
        if elector is not None:
            await elector.close()
        await client.close()
        return 2

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

    side: list[Callable[[], Awaitable[None]]] = []
    if serves_webhooks:
        side.append(webhooks)
    if options.ml_secret_name:
        side.append(memberlist_secret)

    async def work() -> None:
        if options.webhook_mode == "onlywebhook":
            await asyncio.Event().wait()  # the webhooks only, until stopped
        elif elector is not None:
            await elector.run(controller.run)
        else:
            await controller.run()

    return await run_until_stopped(
        "controller", client, servers, work, side=side, close=elector.close if elector else None,
        expected=(LeadershipLost,),
    )


def env_namespace() -> str:
    """``METALLB_NAMESPACE``, else the service account's namespace, else ``metallb-system``."""
    from ironlb.kube.client import in_cluster_namespace

    return os.environ.get("METALLB_NAMESPACE") or in_cluster_namespace() or "metallb-system"
