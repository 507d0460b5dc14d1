"""Immutable snapshots of the Kubernetes objects that allocation, election and route planning read."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _str_map(value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not value:
        return _EMPTY
    return MappingProxyType({str(k): "" if v is None else str(v) for k, v in value.items()})


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata") or {}
    return meta if isinstance(meta, Mapping) else {}


class ServicePort(NamedTuple):
    """``Proto/port``, MetalLB's unit of port sharing (a tuple: hashed in C on the allocator's hot path)."""

    protocol: str
    port: int

    def __str__(self) -> str:
        return f"{self.protocol}/{self.port}"


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str = "ClusterIP"
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    cluster_ips: tuple[str, ...] = ()
    ip_families: tuple[str, ...] = ()
    ip_family_policy: str = "SingleStack"
    load_balancer_ip: str = ""
    load_balancer_class: str | None = None
    ports: tuple[ServicePort, ...] = ()
    external_traffic_policy: str = "Cluster"
    selector: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    ingress: tuple[str, ...] = ()
    creation_timestamp: str = ""
    uid: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def is_load_balancer(self) -> bool:
        return self.type == "LoadBalancer"

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], *, default_cluster_ips: bool = False) -> Service:
        """Parse a Service; with ``default_cluster_ips``, fill ClusterIPs as the apiserver would (see plan)."""
        meta = _meta(obj)
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        ports = tuple(
            ServicePort(str(p.get("protocol") or "TCP"), int(p.get("port") or 0))
            for p in spec.get("ports") or []
            if isinstance(p, Mapping)
        )
        cluster_ips = tuple(str(ip) for ip in spec.get("clusterIPs") or [] if ip)
        if not cluster_ips and spec.get("clusterIP"):
            cluster_ips = (str(spec["clusterIP"]),)
        families = tuple(str(f) for f in spec.get("ipFamilies") or [])
        policy = str(spec.get("ipFamilyPolicy") or "SingleStack")
        if not cluster_ips and default_cluster_ips:
            cluster_ips = _defaulted_cluster_ips(families, policy)
        ingress = tuple(
            str(i["ip"])
            for i in ((status.get("loadBalancer") or {}).get("ingress") or [])
            if isinstance(i, Mapping) and i.get("ip")
        )
        lb_class = spec.get("loadBalancerClass")
        return cls(
            namespace=str(meta.get("namespace") or "default"),
            name=str(meta.get("name") or ""),
            type=str(spec.get("type") or "ClusterIP"),
            labels=_str_map(meta.get("labels")),
            annotations=_str_map(meta.get("annotations")),
            cluster_ips=cluster_ips,
            ip_families=families,
            ip_family_policy=policy,
            load_balancer_ip=str(spec.get("loadBalancerIP") or ""),
            load_balancer_class=None if lb_class is None else str(lb_class),
            ports=ports,
            external_traffic_policy=str(spec.get("externalTrafficPolicy") or "Cluster"),
            selector=_str_map(spec.get("selector")),
            ingress=ingress,
            creation_timestamp=str(meta.get("creationTimestamp") or ""),
            uid=str(meta.get("uid") or ""),
        )


def _defaulted_cluster_ips(families: tuple[str, ...], policy: str) -> tuple[str, ...]:
    """Placeholder ClusterIPs with the families the apiserver would give (only the family is ever read).

    Single stack takes ``ipFamilies[0]`` (else IPv4); a dual-stack policy on a dual-stack cluster gets one
    ClusterIP of each family, in ``ipFamilies`` order.
    """
    sample = {"IPv4": "10.96.0.1", "IPv6": "fd00:10:96::1"}
    primary = families[0] if families and families[0] in sample else "IPv4"
    if policy in ("RequireDualStack", "PreferDualStack"):
        secondary = "IPv6" if primary == "IPv4" else "IPv4"
        return (sample[primary], sample[secondary])
    return (sample[primary],)


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    network_unavailable: bool = False

    @property
    def excluded_from_lb(self) -> bool:
        return EXCLUDE_LB_LABEL in self.labels

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Node:
        meta = _meta(obj)
        conditions = (obj.get("status") or {}).get("conditions") or []
        unavailable = any(
            isinstance(c, Mapping) and c.get("type") == "NetworkUnavailable" and str(c.get("status")) == "True"
            for c in conditions
        )
        return cls(str(meta.get("name") or ""), _str_map(meta.get("labels")), unavailable)


@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...]
    node_name: str = ""
    ready: bool | None = None
    serving: bool | None = None

    @property
    def can_serve(self) -> bool:
        """MetalLB's EndpointCanServe: ready unset or true, or serving true."""
        return self.ready is None or self.ready or self.serving is True


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service_name: str
    endpoints: tuple[Endpoint, ...] = ()

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> EndpointSlice:
        meta = _meta(obj)
        labels = _str_map(meta.get("labels"))
        eps = []
        for ep in obj.get("endpoints") or []:
            if not isinstance(ep, Mapping):
                continue
            cond = ep.get("conditions") or {}
            eps.append(
                Endpoint(
                    tuple(str(a) for a in ep.get("addresses") or []),
                    str(ep.get("nodeName") or ""),
                    cond.get("ready"),
                    cond.get("serving"),
                )
            )
        return cls(
            str(meta.get("namespace") or "default"),
            str(meta.get("name") or ""),
            labels.get(SERVICE_NAME_LABEL, ""),
            tuple(eps),
        )


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Namespace:
        meta = _meta(obj)
        return cls(str(meta.get("name") or ""), _str_map(meta.get("labels")))


def ip_family(ip: str) -> int | None:
    try:
        return ipaddress.ip_address(ip).version
    except ValueError:
        return None
