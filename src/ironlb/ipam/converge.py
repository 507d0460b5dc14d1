"""A Service's allocation, as MetalLB's controller converges it (controller/service.go).

``converge`` reads the annotations and spec, re-claims what the status already holds, and asks the allocator
for the rest. It returns the new status and the Events MetalLB would record, so the Kubernetes shell, the
standalone shell and ``ironlb plan`` all share one implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ironlb.cluster.annotations import (
    ADDRESS_POOL,
    ALLOW_SHARED_IP,
    DEPRECATED_PREFIX,
    IP_ALLOCATED_FROM_POOL,
    LOAD_BALANCER_IPS,
    PREFIX,
)
from ironlb.cluster.objects import Service
from ironlb.config.types import IPAddress
from ironlb.ipam.allocator import (
    DUAL,
    AllocationError,
    Allocator,
    AllocKey,
    family_of_ips,
    go_quote_ips,
    ip_text,
    parse_ip,
)

NORMAL, WARNING = "Normal", "Warning"

_NAMES = (ADDRESS_POOL, LOAD_BALANCER_IPS, ALLOW_SHARED_IP, IP_ALLOCATED_FROM_POOL)
_STABLE = {n: PREFIX + n for n in _NAMES}
_DEPRECATED = {n: DEPRECATED_PREFIX + n for n in _NAMES}


class Event(NamedTuple):
    type: str
    reason: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "reason": self.reason, "message": self.message}


class Convergence(NamedTuple):
    """The outcome for one Service: the status to write, the events to record, and success.

    ``changed``: the ingress or the ``ip-allocated-from-pool`` annotation differ from what the Service carries,
    i.e. MetalLB would write the Service (its ``reflect.DeepEqual(svcRo, svc)`` is false).
    """

    ingress: tuple[str, ...]
    pool: str | None
    events: tuple[Event, ...]
    ok: bool
    changed: bool = False


def annotation(svc: Service, name: str) -> str:
    """The stable annotation's value, else the deprecated one's (stable wins when both are set)."""
    annotations = svc.annotations
    if not annotations:
        return ""
    value = annotations.get(_STABLE[name])
    if value is not None:
        return value
    return annotations.get(_DEPRECATED[name], "")


def deprecated_annotations(svc: Service) -> list[str]:
    if not svc.annotations:
        return []
    return sorted(k for k in svc.annotations if k.startswith(DEPRECATED_PREFIX))


def sharing_key(svc: Service) -> str:
    return annotation(svc, ALLOW_SHARED_IP)


def backend_key(svc: Service) -> str:
    """ETP Local services may share only with services that select the same pods (labels.Set.String())."""
    if svc.external_traffic_policy == "Local":
        return ",".join(f"{k}={v}" for k, v in sorted(svc.selector.items()))
    return ""


def alloc_key(svc: Service) -> AllocKey:
    return AllocKey(sharing_key(svc), backend_key(svc))


def handles_class(svc: Service, lb_class: str) -> bool:
    """MetalLB's filterByLoadBalancerClass: no class only without --lb-class, else an exact match."""
    if svc.load_balancer_class is None or svc.load_balancer_class == "":
        return lb_class == ""
    return svc.load_balancer_class == lb_class


def go_list(items: Sequence[str]) -> str:
    return "[" + " ".join(items) + "]"


def service_family(svc: Service) -> str:
    """MetalLB's ipfamily.ForService, from the ClusterIPs."""
    try:
        ips = [parse_ip(ip) for ip in svc.cluster_ips]
    except ValueError as exc:
        raise AllocationError(f"invalid ClusterIPs {go_list(svc.cluster_ips)}: {exc}") from None
    return family_of_ips(ips)


def desired_ips(svc: Service) -> tuple[list[IPAddress], str]:
    """The IPs the user asked for (annotation or spec.loadBalancerIP) and their family."""
    wanted = annotation(svc, LOAD_BALANCER_IPS)
    if not wanted and not svc.load_balancer_ip:
        return [], ""
    if wanted and svc.load_balancer_ip:
        raise AllocationError(f"service can not have both {PREFIX}{LOAD_BALANCER_IPS} and svc.Spec.LoadBalancerIP")
    if wanted:
        ips: list[IPAddress] = []
        for part in wanted.split(","):
            try:
                ips.append(parse_ip(part.strip()))
            except ValueError:
                raise AllocationError(f'invalid {PREFIX}{LOAD_BALANCER_IPS}: "{wanted}"') from None
        return ips, family_of_ips(ips)
    try:
        ip = parse_ip(svc.load_balancer_ip)
    except ValueError:
        raise AllocationError(f'invalid spec.loadBalancerIP "{svc.load_balancer_ip}"') from None
    return [ip], family_of_ips([ip])


class _Run:
    """Accumulates the events and the status of one convergence."""

    def __init__(self, allocator: Allocator, svc: Service) -> None:
        self.allocator = allocator
        self.svc = svc
        self.key = svc.key
        self.events: list[Event] = []
        self.cleared = False

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def clear(self) -> None:
        self.allocator.unassign(self.key)
        self.cleared = True

    def result(self, ingress: tuple[str, ...], pool: str) -> Convergence:
        return Convergence(ingress, pool or None, tuple(self.events), True)

    def fail(self) -> Convergence:
        """MetalLB returns ErrConverge without touching a status it has not cleared: a working IP stays."""
        if self.cleared or not self.svc.ingress:
            return Convergence((), None, tuple(self.events), False)
        return Convergence(self.svc.ingress, self.allocator.pool_of(self.key) or None, tuple(self.events), False)


POOL_ANNOTATION = PREFIX + IP_ALLOCATED_FROM_POOL


def converge(allocator: Allocator, svc: Service) -> Convergence:
    """Bring one Service to its allocation (MetalLB's convergeBalancer), recording events.

    When the result changes the Service, every deprecated annotation it carries gets a ``deprecatedAnnotation``
    event after the others (MetalLB's SetBalancer warns only when there is something to write, clearing a stale
    ingress included, to keep the noise down).
    """
    run = _Run(allocator, svc)
    c = _converge(allocator, svc, run)
    if c.ok or run.cleared or not svc.ingress:
        before = (svc.ingress, (svc.annotations or {}).get(POOL_ANNOTATION))
        after = (c.ingress, c.pool if c.ingress else None)
        if before != after:
            deprecated = tuple(
                Event(WARNING, "deprecatedAnnotation", f"Service uses deprecated annotation {name}")
                for name in deprecated_annotations(svc)
            )
            c = c._replace(events=c.events + deprecated, changed=True)
    return c  # a failure that cleared nothing leaves the Service untouched (its working IP stays)


def _converge(allocator: Allocator, svc: Service, run: _Run) -> Convergence:
    key = svc.key
    if not svc.is_load_balancer:
        run.clear()
        return Convergence((), None, (), True)
    if not allocator.config.pools:
        run.clear()
        return run.fail()
    if not svc.cluster_ips:
        run.clear()
        return run.fail()

    policy = svc.ip_family_policy
    if policy == "RequireDualStack" and len(svc.cluster_ips) < 2:
        run.clear()
        run.event(
            WARNING, "not enough clusterips",
            f"Service requires dual stack but not enough clusterips {go_list(svc.cluster_ips)}",
        )
        return run.fail()

    lb_ips: list[IPAddress] = []
    for text in svc.ingress:
        try:
            lb_ips.append(parse_ip(text))
        except ValueError:
            continue
    if not lb_ips:
        run.clear()
    else:
        lb_family: str | None
        try:
            lb_family = family_of_ips(lb_ips)
        except AllocationError as exc:
            lb_family = None
            message = f"Failed to retrieve LBIPs IPFamily for {go_quote_ips(lb_ips)}: {exc}"
            run.event(WARNING, "nolbIPsIPFamily", message)
        try:
            svc_family = service_family(svc)
        except AllocationError as exc:
            run.event(
                WARNING, "noclusterIPsIPFamily",
                f'Failed to retrieve ClusterIPs IPFamily for "{go_list(svc.cluster_ips)}": {exc}',
            )
            return run.fail()
        changed = lb_family is None or (
            lb_family != svc_family and not (svc_family == DUAL and policy == "PreferDualStack")
        )
        if changed:
            run.clear()
            lb_ips = []

    if lb_ips:
        try:
            allocator.assign(key, svc, lb_ips, svc.ports, alloc_key(svc))
        except AllocationError as exc:
            run.event(
                NORMAL, "ClearAssignment",
                f'current IP for "{key}" not allowed by config, will attempt for new IP assignment: {exc}',
            )
            run.clear()
            lb_ips = []
        wanted_pool = annotation(svc, ADDRESS_POOL)
        if lb_ips and wanted_pool and allocator.pool_of(key) != wanted_pool:
            run.clear()
            lb_ips = []
        try:
            wanted_ips, _ = desired_ips(svc)
        except AllocationError as exc:
            run.event(WARNING, "LoadBalancerFailed", f"invalid requested loadbalancer IPs: {exc}")
            return run.fail()
        if wanted_ips and sorted(map(str, lb_ips)) != sorted(map(str, wanted_ips)):
            run.clear()
            lb_ips = []

    if len(lb_ips) == 1 and policy == "PreferDualStack":
        try:
            extra = allocator.allocate_additional_family(
                key, svc, lb_ips[0], allocator.pool_of(key), svc.ports, alloc_key(svc)
            )
        except AllocationError as exc:
            run.event(NORMAL, "AdditionalAssignFailed", f"cannot assign additional IP in PreferDualStack: {exc}")
        else:
            lb_ips.append(extra)
            run.event(NORMAL, "IPAllocated", f'Assigned additional IP "{extra}"')

    if not lb_ips:
        try:
            lb_ips = _allocate(allocator, svc)
        except AllocationError as exc:
            run.event(WARNING, "AllocationFailed", f'Failed to allocate IP for "{key}": {exc}')
            return run.fail()
        ingress = tuple(map(ip_text, lb_ips))
        run.event(NORMAL, "IPAllocated", f"Assigned IP {go_quote_ips(ingress)}")
    else:
        ingress = tuple(map(ip_text, lb_ips))

    pool = allocator.pool_of(key)
    if not pool:
        run.event(WARNING, "InternalError", "allocated an IP that has no pool")
        run.clear()
        return run.fail()
    return run.result(ingress, pool)


def _allocate(allocator: Allocator, svc: Service) -> list[IPAddress]:
    """MetalLB's allocateIPs: requested IPs, else the requested pool, else any pool."""
    key = svc.key
    family = service_family(svc)
    wanted, wanted_family = desired_ips(svc)
    wanted_pool = annotation(svc, ADDRESS_POOL)
    if wanted:
        if family != wanted_family:
            raise AllocationError(
                f"requested loadBalancer IP(s) {go_quote_ips(wanted)} does not match the ipFamily of the service"
            )
        allocator.assign(key, svc, wanted, svc.ports, alloc_key(svc))
        if wanted_pool and allocator.pool_of(key) != wanted_pool:
            allocator.unassign(key)
            raise AllocationError(
                f"requested loadBalancer IP(s) {go_quote_ips(wanted)} is not compatible with requested address "
                f"pool {wanted_pool}"
            )
        return wanted
    if wanted_pool:
        return allocator.allocate_from_pool(key, svc, family, wanted_pool, svc.ports, alloc_key(svc))
    return allocator.allocate(key, svc, family, svc.ports, alloc_key(svc))
