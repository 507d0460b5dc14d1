"""Converging every Service at once, as MetalLB's controller does on start-up (reprocessAll).

Services that already hold IPs go first (more IPs first) so they re-claim them before anything new is handed
out; the rest follow by creation time, then namespace/name. A pass that freed addresses is followed by another
pass over the Services that failed, as MetalLB's ReprocessAll would retry them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ironlb.cluster.objects import Service
from ironlb.ipam.allocator import Allocator
from ironlb.ipam.converge import Event, converge, handles_class

MAX_PASSES = 5


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


def converge_all(allocator: Allocator, services: Iterable[Service], *, lb_class: str = "") -> dict[str, Outcome]:
    """Converge every LoadBalancer Service of the snapshot; keys are ``namespace/name``."""
    outcomes: dict[str, Outcome] = {}
    pending: list[Service] = []
    for svc in sorted((s for s in services if s.is_load_balancer), key=startup_order):
        if handles_class(svc, lb_class):
            pending.append(svc)
        else:
            reason = f'loadBalancerClass "{svc.load_balancer_class or ""}" is not "{lb_class}"'
            outcomes[svc.key] = Outcome(replace(svc, ingress=()), None, (), True, reason)
    for _ in range(MAX_PASSES):
        released = allocator.released
        failed: list[Service] = []
        for svc in pending:
            c = converge(allocator, svc)
            previous = outcomes.get(svc.key)
            events = (previous.events if previous else ()) + c.events
            updated = replace(svc, ingress=c.ingress)
            outcomes[svc.key] = Outcome(updated, c.pool, events, c.ok)
            if not c.ok:
                failed.append(updated)
        if not failed or allocator.released == released:
            break
        pending = failed
    return outcomes
