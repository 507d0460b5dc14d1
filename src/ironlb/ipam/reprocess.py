"""MetalLB's controller schedule without I/O: when each Service is converged, and what asks for another pass.

``ironlb controller`` drives a :class:`Reconciler` from its work queue and writes what it returns;
``ironlb plan`` (:func:`converge_all`) drives the same :class:`Reconciler` from a modelled queue in which every
write succeeds. So the plan's IPs and events are the controller's by construction. The rules are MetalLB's
(``controller/main.go`` SetBalancer, ``internal/k8s/controllers/service_controller*.go``):

- A valid new configuration asks for a pass over every Service of this controller's class (``reprocessAll``):
  Services holding more ingress IPs first, so they re-claim them before anything new is handed out (ties: by
  creation time, then namespace/name; MetalLB leaves ties to its cache's order).
- :func:`set_balancer` converges one Service and asks for another pass when the Service's allocation key
  (backend and sharing key) changed, or when it wrote the Service and so gave up IPs a pool still contains;
  deleting an allocated Service asks for one too. A pass in which anything asked is followed by another whole
  pass, which repeats the events of the Services still failing (MetalLB's event counts grow the same way).
- Per-Service reconciles are ignored until one pass went through without asking for another (the initial load).
- Every write of a Service comes back as a watch event and reconciles it once more: a PreferDualStack Service
  that holds one IP reports ``AdditionalAssignFailed`` again then.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

from ironlb.cluster.objects import Service
from ironlb.config.types import Config
from ironlb.ipam.allocator import Alloc, Allocator
from ironlb.ipam.converge import POOL_ANNOTATION, Convergence, Event, converge, handles_class

MAX_PASSES = 10  # a configuration that keeps asking for passes is cut short (MetalLB would back off forever)
RELOAD = "\x00reprocess-all"


class SyncState(Enum):
    """MetalLB's SyncState of one SetBalancer, minus the write error (that one is the shell's)."""

    SUCCESS = "success"
    REPROCESS_ALL = "reprocessAll"
    ERROR_NO_RETRY = "errorNoRetry"


@dataclass(frozen=True)
class Synced:
    """One Service through SetBalancer: the Service as it is to be written, the convergence, the sync state."""

    service: Service  # with the converged ingress and ``ip-allocated-from-pool`` annotation
    convergence: Convergence
    state: SyncState

    @property
    def write(self) -> bool:
        """MetalLB writes the Service (status and pool annotation) only when convergence changed it."""
        return self.convergence.changed


@dataclass(frozen=True)
class Outcome:
    """A Service after convergence: its new status and every event recorded on the way."""

    service: Service  # with the converged ingress
    pool: str | None
    events: tuple[Event, ...]
    ok: bool
    ignored: str | None = None  # why this controller leaves the Service alone


def startup_order(svc: Service) -> tuple[int, str, str, str]:
    return (-len(svc.ingress), svc.creation_timestamp, svc.namespace, svc.name)


def _allocation_key(alloc: Alloc | None) -> str:
    """MetalLB's ``AllocationKey``: backend key then sharing key, "" when unallocated."""
    return alloc.key.backend + alloc.key.sharing if alloc is not None else ""


def as_written(svc: Service, c: Convergence) -> Service:
    """``svc`` with the ingress and pool annotation MetalLB writes for ``c``."""
    if not c.changed:
        return svc
    annotations = {k: v for k, v in (svc.annotations or {}).items() if k != POOL_ANNOTATION}
    if c.ingress and c.pool:
        annotations[POOL_ANNOTATION] = c.pool
    return replace(svc, ingress=c.ingress, annotations=annotations)


def set_balancer(allocator: Allocator, svc: Service) -> Synced:
    """Converge one existing Service and say whether every Service must be converged again (SetBalancer)."""
    key = svc.key
    previous = allocator.allocations().get(key)
    c = converge(allocator, svc)
    current = allocator.allocations().get(key)
    state = SyncState.SUCCESS if c.ok else SyncState.ERROR_NO_RETRY
    if _allocation_key(previous) != _allocation_key(current):
        state = SyncState.REPROCESS_ALL  # others may share with it now, or no longer
    elif c.changed and previous is not None and current is None and allocator.pool_for(previous.ips) is not None:
        state = SyncState.REPROCESS_ALL  # its IPs are free and still allocatable: a waiting Service may fit
    return Synced(as_written(svc, c), c, state)


@dataclass(frozen=True)
class Pass:
    """One reprocessAll pass: each Service's result, in processing order."""

    results: tuple[Synced, ...]
    dropped: tuple[str, ...] = ()  # allocations of Services that no longer exist, freed first

    @property
    def asks_again(self) -> bool:
        return bool(self.dropped) or any(r.state is SyncState.REPROCESS_ALL for r in self.results)


@dataclass
class Reconciler:
    """MetalLB's ServiceReconciler around :func:`set_balancer`: passes, the initial load, per-Service reconciles."""

    allocator: Allocator
    lb_class: str = ""
    initial_load_done: bool = False
    passes: int = field(default=0)

    def handles(self, svc: Service) -> bool:
        return handles_class(svc, self.lb_class)

    def reprocess_all(self, services: Iterable[Service]) -> Pass:
        """Converge every Service of this class, in MetalLB's start-up order; see :meth:`finish`."""
        listed = list(services)
        keys = {s.key for s in listed}
        dropped = tuple(k for k in list(self.allocator.allocations()) if k not in keys)
        for key in dropped:
            self.allocator.unassign(key)
        ordered = sorted((s for s in listed if self.handles(s)), key=startup_order)
        self.passes += 1
        return Pass(tuple(set_balancer(self.allocator, s) for s in ordered), dropped)

    def finish(self, done: Pass, *, write_failed: bool = False) -> bool:
        """After the pass's writes: True when another pass must follow; a clean pass completes the initial load."""
        again = write_failed or done.asks_again
        if not again:
            self.initial_load_done = True
        return again

    def reconcile(self, svc: Service) -> Synced | None:
        """One Service changed (or was just written): None while the initial load is pending or for another class."""
        if not self.initial_load_done or not self.handles(svc):
            return None
        return set_balancer(self.allocator, svc)

    def delete(self, key: str) -> SyncState | None:
        """A Service is gone: free its IPs; REPROCESS_ALL when it had some (None during the initial load)."""
        if not self.initial_load_done:
            return None
        return SyncState.REPROCESS_ALL if self.allocator.unassign(key) else SyncState.SUCCESS


def converge_all(allocator: Allocator, services: Iterable[Service], *, lb_class: str = "") -> dict[str, Outcome]:
    """What the controller does with these Services from start-up until it has nothing left to do.

    The work queue is modelled as MetalLB's runs on a quiet apiserver: a key is queued at most once; a write's
    watch event is queued when the write happens; a pass that asks again is retried after those (it is
    rate-limited), a reconcile that asks for a pass queues it at once. Keys are ``namespace/name`` of the
    LoadBalancer Services.
    """
    listed = list(services)
    current = {s.key: s for s in listed}
    reconciler = Reconciler(allocator, lb_class)
    events: dict[str, list[Event]] = {}
    last: dict[str, Convergence] = {}
    queue: deque[str] = deque([RELOAD])
    queued = {RELOAD}  # a key waits in the queue at most once

    def enqueue(item: str) -> None:
        if item not in queued:
            queued.add(item)
            queue.append(item)
    budget = MAX_PASSES * (len(listed) + 1)  # per-Service reconciles: a write that keeps changing is cut short

    def record(synced: Synced) -> bool:
        key = synced.service.key
        events.setdefault(key, []).extend(synced.convergence.events)
        last[key] = synced.convergence
        if synced.write:
            current[key] = synced.service
        return synced.write

    while queue:
        item = queue.popleft()
        queued.discard(item)
        if item == RELOAD:
            done = reconciler.reprocess_all(current.values())
            for synced in done.results:
                if record(synced):
                    enqueue(synced.service.key)
            if reconciler.finish(done) and reconciler.passes < MAX_PASSES:
                enqueue(RELOAD)
            continue
        if budget <= 0:
            continue
        budget -= 1
        result = reconciler.reconcile(current[item])
        if result is None:
            continue
        if result.state is SyncState.REPROCESS_ALL:
            enqueue(RELOAD)
        if record(result):
            enqueue(item)
    return _outcomes(listed, current, events, last, lb_class)


def _outcomes(
    listed: list[Service],
    current: Mapping[str, Service],
    events: Mapping[str, list[Event]],
    last: Mapping[str, Convergence],
    lb_class: str,
) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for svc in sorted((s for s in listed if s.is_load_balancer), key=startup_order):
        c = last.get(svc.key)
        if c is None:
            reason = f'loadBalancerClass "{svc.load_balancer_class or ""}" is not "{lb_class}"'
            outcomes[svc.key] = Outcome(replace(svc, ingress=()), None, (), True, reason)
        else:
            written = current[svc.key]
            if written.ingress != c.ingress:  # else already so (as written): no copy, 1,000 of them at start-up
                written = replace(written, ingress=c.ingress)
            outcomes[svc.key] = Outcome(written, c.pool, tuple(events[svc.key]), c.ok)
    return outcomes


def pool_status(allocator: Allocator, config: Config) -> dict[str, dict[str, int]]:
    """Every pool's counters (IPAddressPool ``status``; exact, the Kubernetes writer clamps them to int64)."""
    out = {}
    for pool in config.pools:
        c = allocator.counters(pool.name)
        out[pool.name] = {
            "assignedIPv4": c.assigned_ipv4,
            "assignedIPv6": c.assigned_ipv6,
            "availableIPv4": c.available_ipv4,
            "availableIPv6": c.available_ipv6,
        }
    return out
