"""The controller: MetalLB's IP allocation against a live cluster (``ironlb controller``).

Informers cache Services and Namespaces cluster-wide, and the IPAddressPools, Communities, the legacy ConfigMap
``config`` and the ``controller`` ConfigurationState in ironlb's namespace. One worker drains one work queue, so
the allocator is only ever touched by one coroutine (MetalLB's single mutex). Keys:

- ``svc:<ns>/<name>`` reconciles one Service through :class:`ironlb.ipam.reprocess.Reconciler` (MetalLB's
  SetBalancer: :func:`ironlb.ipam.converge.converge` plus its "reprocess all" rules) and writes what changed,
  ``status.loadBalancer.ingress`` plus the ``metallb.io/ip-allocated-from-pool`` annotation, in one PATCH of the
  status subresource (MetalLB's single UpdateStatus). A write queues the key again, as the write's watch event
  does in MetalLB. A Service gone from the cache gives its IPs back.
- ``CONFIG`` rebuilds the config from the pools, communities, namespaces (and the legacy ConfigMap). An invalid one
  is kept out: the last good config stays in force, ``metallb_k8s_client_config_stale_bool`` goes to 1 and the
  ConfigurationState says why. A changed valid one goes to ``Allocator.set_pools`` and then ``REPROCESS_ALL``.
- ``REPROCESS_ALL`` is one pass of the same Reconciler over every Service (those holding IPs first); a pass that
  asks for another is retried with backoff. ``ironlb plan`` runs this very schedule, so it shows the controller's
  IPs and events.
- ``POOL_STATUS`` writes ``IPAddressPool.status`` counters; ``CONFIG_STATE`` the ConfigurationState.

Restart safety: per-Service keys are ignored until the caches have synced, a valid config was loaded and a
``REPROCESS_ALL`` pass went through without asking for another (it re-claimed the IPs already in Service status
first), so an IP never moves across a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ironlb.cluster.annotations import IP_ALLOCATED_FROM_POOL, PREFIX
from ironlb.cluster.objects import Service
from ironlb.config import ConfigError, build, load_objects
from ironlb.config.types import Config
from ironlb.ipam.allocator import Allocator
from ironlb.ipam.capacity import clamp_int64
from ironlb.ipam.reprocess import Reconciler, Synced, SyncState, pool_status
from ironlb.kube.client import (
    COMMUNITIES,
    CONFIG_MAPS,
    CONFIGURATION_STATES,
    IP_ADDRESS_POOLS,
    NAMESPACES,
    SERVICES,
    ApiError,
    KubeClient,
    KubeError,
    Obj,
    object_key,
)
from ironlb.kube.configstate import ConfigurationStateWriter, pod_owner
from ironlb.kube.events import EventRecorder
from ironlb.kube.informer import DELETED, MODIFIED, Informer, wait_synced
from ironlb.kube.slim import slim_service
from ironlb.kube.workqueue import REPROCESS_ALL, ShutDown, WorkQueue
from ironlb.metrics.client import ClientCounters

log = logging.getLogger(__name__)

COMPONENT = "metallb-controller"
POOL_ANNOTATION = PREFIX + IP_ALLOCATED_FROM_POOL
LEGACY_CONFIGMAP = "config"
STATE_NAME = "controller"
CONDITION_TYPE = "poolReconcilerValid"
FIELD_MANAGER = "poolReconciler"

CONFIG = "\x00config"
POOL_STATUS = "\x00pool-status"
CONFIG_STATE = "\x00config-state"
SVC = "svc:"

POOL_STATUS_DELAY = 0.2  # coalesce pool status writes during bursts


@dataclass(frozen=True)
class ControllerOptions:
    namespace: str = "metallb-system"
    lb_class: str = ""
    pod_name: str = ""  # owner of the ConfigurationState, when known


class PassAgain(Exception):
    """A reprocessAll pass asked for another: the worker re-queues it with backoff (MetalLB's errRetry)."""


def _ingress_ips(obj: Mapping[str, Any]) -> tuple[str, ...]:
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(str(i["ip"]) for i in ingress if isinstance(i, Mapping) and i.get("ip"))


class Controller:
    def __init__(
        self,
        client: KubeClient,
        options: ControllerOptions | None = None,
        *,
        recorder: EventRecorder | None = None,
        counters: ClientCounters | None = None,
    ) -> None:
        self.client = client
        self.options = options or ControllerOptions()
        self.recorder = recorder or EventRecorder(client, COMPONENT)
        self.counters = counters or ClientCounters()
        self.queue: WorkQueue[str] = WorkQueue()
        ns = self.options.namespace
        self.services = Informer(client, SERVICES, transform=slim_service)
        self.namespaces = Informer(client, NAMESPACES)
        self.pools = Informer(client, IP_ADDRESS_POOLS, namespace=ns)
        self.communities = Informer(client, COMMUNITIES, namespace=ns)
        self.config_maps = Informer(client, CONFIG_MAPS, namespace=ns,
                                    field_selector=f"metadata.name={LEGACY_CONFIGMAP}")
        self.states = Informer(client, CONFIGURATION_STATES, namespace=ns,
                               field_selector=f"metadata.name={STATE_NAME}")
        self.state_writer = ConfigurationStateWriter(
            client, self.states, namespace=ns, name=STATE_NAME, labels={"metallb.io/component-type": "controller"},
            condition_type=CONDITION_TYPE, field_manager=FIELD_MANAGER, create_manager="ironlb-controller",
        )
        self.informers = [self.services, self.namespaces, self.pools, self.communities, self.config_maps, self.states]
        self.allocator: Allocator | None = None
        self.reconciler: Reconciler | None = None  # MetalLB's schedule, shared with ``ironlb plan``
        self.config: Config | None = None  # the last valid config, in force
        self.config_error: str | None = None  # why the latest config was refused
        self.config_evaluated = False

        self.services.add_handler(self._on_service)
        self.namespaces.add_handler(self._on_namespace)
        for inf in (self.pools, self.communities, self.config_maps):
            inf.add_handler(self._on_config_object)
        self.pools.add_handler(self._on_pool)
        self.states.add_handler(self._on_state)

    @property
    def ready(self) -> bool:
        return self.reconciler is not None and self.reconciler.initial_load_done

    # ------------------------------------------------------------------------------------------------ event handlers
    def _on_service(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        self.queue.add(SVC + object_key(new or old or {}))

    def _on_namespace(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        labels = [((o or {}).get("metadata") or {}).get("labels") for o in (old, new)]
        if kind == MODIFIED and labels[0] == labels[1]:
            return  # only labels matter (namespaceSelectors)
        self.queue.add(CONFIG)

    def _on_config_object(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        self.queue.add(CONFIG)

    def _on_pool(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        if kind != DELETED:
            self.queue.add_after(POOL_STATUS, POOL_STATUS_DELAY)  # reverts manual status edits

    def _on_state(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        self.queue.add(CONFIG_STATE)  # recreated when deleted, reverted when edited

    # ------------------------------------------------------------------------------------------------ main loop
    async def run(self) -> None:
        """Run until cancelled: informers, event recorder and the worker."""
        async with asyncio.TaskGroup() as tg:
            for inf in self.informers:
                tg.create_task(inf.run(), name=f"informer-{inf.name}")
            tg.create_task(self.recorder.run(), name="event-recorder")
            await self._wait_synced()
            if self.options.pod_name:
                self.state_writer.owner = await pod_owner(self.client, self.options.pod_name, self.options.namespace)
            self.queue.add(CONFIG)
            await self._worker()

    async def _wait_synced(self) -> None:
        await wait_synced(self.informers)
        log.info("caches synced: %d services, %d pools", len(self.services.store), len(self.pools.store))

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.process(key)
            except PassAgain as why:
                log.info("reprocessing all services again: %s", why)
                self.queue.add_rate_limited(key)
            except KubeError as err:
                self.counters.update_errors += 1
                log.warning("processing %s failed: %s; will retry", key.lstrip("\x00"), err)
                self.queue.add_rate_limited(key)
            except Exception:
                self.counters.update_errors += 1
                log.exception("processing %s failed; will retry", key.lstrip("\x00"))
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
            finally:
                self.counters.updates += 1
                self.queue.done(key)

    async def process(self, key: str) -> None:
        if key.startswith(SVC):
            await self._process_service(key[len(SVC):])
        elif key == CONFIG:
            self._process_config()
        elif key == REPROCESS_ALL:
            await self._reprocess_all()
        elif key == POOL_STATUS:
            await self._write_pool_status()
        elif key == CONFIG_STATE:
            await self._write_configuration_state()

    # ------------------------------------------------------------------------------------------------ config
    def build_config(self) -> Config:
        """The config of the cached objects (pools, communities, namespaces, legacy ConfigMap); ConfigError."""
        ns = self.options.namespace
        objects: list[Obj] = [*self.pools.store.values(), *self.communities.store.values()]
        objects += self.config_maps.store.values()
        objects += self.namespaces.store.values()
        resources = load_objects(objects, default_namespace=ns)
        # MetalLB's controller reads only pools, communities and namespaces: advertisements, peers and BFD
        # profiles (from the legacy ConfigMap too) are the speaker's business and cannot invalidate allocation.
        resources = replace(resources, l2_advertisements=(), bgp_advertisements=(), bgp_peers=(), bfd_profiles=())
        return build(resources, namespace=ns).config

    def _process_config(self) -> None:
        self.config_evaluated = True
        try:
            config = self.build_config()
        except ConfigError as err:
            if self.config_error != str(err):
                log.error("failed to parse the configuration: %s", err)
            self.config_error = str(err)
            self.counters.config_stale = True
            self.queue.add(CONFIG_STATE)
            return
        if self.config_error is not None:
            log.info("configuration is valid again")
        self.config_error = None
        self.counters.config_stale = False
        self.counters.config_loaded = True
        self.queue.add(CONFIG_STATE)
        if self.allocator is not None and config == self.config:
            return
        log.info("new configuration: %d pool(s)", len(config.pools))
        self.config = config
        if self.allocator is None:
            self.allocator = Allocator(config)
            self.reconciler = Reconciler(self.allocator, self.options.lb_class)
        else:
            self.allocator.set_pools(config)
        self.queue.add(REPROCESS_ALL)
        self.queue.add_after(POOL_STATUS, POOL_STATUS_DELAY)

    # ------------------------------------------------------------------------------------------------ services
    async def _process_service(self, key: str) -> None:
        reconciler, allocator = self.reconciler, self.allocator
        if reconciler is None or allocator is None:
            return  # no valid config yet: the first REPROCESS_ALL covers it
        obj = self.services.store.get(key)
        if obj is None:
            if reconciler.delete(key) is SyncState.REPROCESS_ALL:
                log.info("service %s deleted: its IPs are free, reprocessing all", key)
                self.queue.add(REPROCESS_ALL)
                self.queue.add_after(POOL_STATUS, POOL_STATUS_DELAY)
            return
        before = allocator.allocations().get(key)
        synced = reconciler.reconcile(Service.from_dict(obj))
        if synced is None:
            return  # the initial load is pending, or another controller's class
        if allocator.allocations().get(key) != before:
            self.queue.add_after(POOL_STATUS, POOL_STATUS_DELAY)
        self._record(obj, synced)
        if synced.state is SyncState.REPROCESS_ALL:
            self.queue.add(REPROCESS_ALL)
        await self._write(obj, synced)

    async def _reprocess_all(self) -> None:
        """One MetalLB reprocessAll pass; if it asks for another, the worker retries it with backoff."""
        reconciler = self.reconciler
        if reconciler is None:
            return
        objs = dict(self.services.store.items())
        done = reconciler.reprocess_all(Service.from_dict(o) for o in objs.values())
        write_failed = False
        for synced in done.results:
            obj = objs[synced.service.key]
            self._record(obj, synced)
            try:
                await self._write(obj, synced)
            except KubeError as err:
                self.counters.update_errors += 1
                log.warning("service %s: %s; will retry", synced.service.key, err)
                write_failed = True
        self.queue.add_after(POOL_STATUS, POOL_STATUS_DELAY)
        initial = not reconciler.initial_load_done
        if reconciler.finish(done, write_failed=write_failed):
            raise PassAgain(f"{len(done.results)} service(s) processed, another pass is due")
        if initial:
            allocs = len(reconciler.allocator.allocations())
            log.info("initial load done: %d allocation(s) for %d service(s)", allocs, len(objs))

    def _record(self, obj: Obj, synced: Synced) -> None:
        for event in synced.convergence.events:
            self.recorder.event(obj, event.type, event.reason, event.message)

    async def _write(self, obj: Obj, synced: Synced) -> None:
        """Write what convergence changed; its watch event then reconciles the Service once more, as in MetalLB."""
        if not synced.write:
            return
        c = synced.convergence
        if await self._write_service_status(obj, c.ingress, c.pool if c.ingress else None):
            self.queue.add(SVC + synced.service.key)

    async def _write_service_status(self, obj: Obj, ingress: tuple[str, ...], pool: str | None) -> bool:
        """PATCH the status and pool annotation when they differ; True when written."""
        meta = obj.get("metadata") or {}
        current_pool = (meta.get("annotations") or {}).get(POOL_ANNOTATION)
        if _ingress_ips(obj) == ingress and current_pool == pool:
            return False
        patch = {
            "metadata": {"annotations": {POOL_ANNOTATION: pool}},
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress] if ingress else None}},
        }
        try:
            written = await self.client.patch(SERVICES, meta["name"], patch, meta.get("namespace"),
                                              subresource="status")
        except ApiError as err:
            if err.not_found:
                return False  # deleted meanwhile: the delete event frees the IPs
            if err.status in (400, 422):
                self.counters.update_errors += 1
                log.error("service %s: status refused: %s", object_key(obj), err)
                return False
            raise
        self.services.put_local(written)
        return True

    # ------------------------------------------------------------------------------------------------ pool status
    async def _write_pool_status(self) -> None:
        allocator, config = self.allocator, self.config
        if allocator is None or config is None:
            return
        ns = self.options.namespace
        counters = pool_status(allocator, config)
        for pool in config.pools:
            obj = self.pools.store.get(f"{ns}/{pool.name}")
            if obj is None:
                continue  # from the legacy ConfigMap: there is no object to write
            want = {k: clamp_int64(v) for k, v in counters[pool.name].items()}
            status = obj.get("status") or {}
            if all(status.get(k) == v for k, v in want.items()):
                continue
            try:
                written = await self.client.patch(IP_ADDRESS_POOLS, pool.name, {"status": want}, ns,
                                                  subresource="status")
            except ApiError as err:
                if err.not_found:
                    continue
                raise
            self.pools.put_local(written)

    # ----------------------------------------------------------------------------------------- ConfigurationState
    def desired_state(self) -> dict[str, Any]:
        """The ConfigurationState status for the latest config evaluation (MetalLB's condition and summary)."""
        return self.state_writer.desired(self.config_error)

    async def _write_configuration_state(self) -> None:
        if self.config_evaluated:
            await self.state_writer.write(self.config_error)
