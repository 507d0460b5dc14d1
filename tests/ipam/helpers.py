"""Builders for allocator tests: pools and services without going through YAML."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from ironlb.cluster.labels import LabelSelector
from ironlb.cluster.objects import Service, ServicePort
from ironlb.config.types import Config, Pool, ServiceAllocation


def pool(
    name: str,
    *cidrs: str,
    auto_assign: bool = True,
    avoid_buggy_ips: bool = False,
    allocation: ServiceAllocation | None = None,
) -> Pool:
    return Pool(
        name,
        tuple(ipaddress.ip_network(c, strict=False) for c in cidrs),
        auto_assign=auto_assign,
        avoid_buggy_ips=avoid_buggy_ips,
        service_allocation=allocation,
    )


def config(*pools: Pool) -> Config:
    return Config(pools=tuple(sorted(pools, key=lambda p: p.name)))


def pinned(priority: int = 0, namespaces: Iterable[str] = (), selectors: Mapping[str, str] | None = None) -> ServiceAllocation:
    sels = (LabelSelector(tuple(sorted(selectors.items()))),) if selectors is not None else ()
    if not namespaces and not sels:
        sels = (LabelSelector(),)
    return ServiceAllocation(priority, frozenset(namespaces), sels)


def svc(
    name: str,
    *,
    namespace: str = "default",
    cluster_ips: tuple[str, ...] = ("10.96.0.10",),
    policy: str = "SingleStack",
    families: tuple[str, ...] = (),
    ingress: tuple[str, ...] = (),
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    ports: tuple[tuple[str, int], ...] = (("TCP", 80),),
    lb_ip: str = "",
    etp: str = "Cluster",
    selector: Mapping[str, str] | None = None,
    type_: str = "LoadBalancer",
    lb_class: str | None = None,
) -> Service:
    return Service(
        namespace=namespace,
        name=name,
        type=type_,
        labels=dict(labels or {}),
        annotations=dict(annotations or {}),
        cluster_ips=cluster_ips,
        ip_families=families,
        ip_family_policy=policy,
        load_balancer_ip=lb_ip,
        load_balancer_class=lb_class,
        ports=tuple(ServicePort(p, n) for p, n in ports),
        external_traffic_policy=etp,
        selector=dict(selector or {}),
        ingress=ingress,
    )


V6 = ("fd00::10",)
DUAL = ("10.96.0.10", "fd00::10")
