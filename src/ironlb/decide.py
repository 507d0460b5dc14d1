"""What a node announces: the one decision ``ironlb plan``, ``ironlb speaker`` and ``ironlb run`` all compute.

Inputs are the configuration, the Node objects, the live speakers and one :class:`ServiceInput` per
LoadBalancer Service (its ingress, its pool, its EndpointSlices). Layer 2 runs MetalLB's per-IP election
(:func:`ironlb.layer2.election.elect`) over the live speakers; BGP runs the route planner for one node
(:func:`ironlb.bgp.planner.plan_node`). The result is an :class:`Announcement`: the IPs to answer ARP/NDP for
(with their interfaces), the BGP plan, and the ``metallb_speaker_announced`` series, which the shells hand to
their announcer unchanged.

The shells differ only in where the inputs come from: the speaker reads the ingress the controller wrote and
finds its pool with :func:`pool_for`; ``plan`` and ``run`` allocate first (:func:`ironlb.plan.allocate`).
``run`` (``served_everywhere``) counts a Service without EndpointSlices as served on every node; in Kubernetes
such a Service has no endpoint and is not announced. Pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import ip_address

from ironlb.bgp.planner import NodePlan, ServiceInput, implicit_slice, plan_node
from ironlb.cluster.objects import EndpointSlice, Node, Service
from ironlb.cluster.reasons import IP_NOT_ALLOWED
from ironlb.config.types import BFDProfile, Config, Pool
from ironlb.layer2.election import L2Decision, elect, slices_of

LAYER2 = "layer2"
BGP = "bgp"

# One ``metallb_speaker_announced`` series: (service key, protocol, node, ip).
Series = tuple[str, str, str, str]


@dataclass(frozen=True)
class Announcement:
    """What one node announces: L2 IPs (with their interfaces, () meaning all), its BGP plan, the metric series."""

    layer2: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    bgp: NodePlan | None = None
    bfd_profiles: tuple[BFDProfile, ...] = ()
    series: frozenset[Series] = frozenset()


@dataclass(frozen=True)
class NodeDecision:
    """This node's part: per-service election results, its BGP plan, and the status CRs it should hold."""

    layer2: Mapping[str, L2Decision] = field(default_factory=dict)
    bgp: NodePlan | None = None
    announcement: Announcement = field(default_factory=Announcement)
    l2_status: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # service key -> interfaces
    bgp_status: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # service key -> peer names
    announce_failed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # won, but no such interface here


def announced_series(node: str, services: Iterable[tuple[str, Iterable[str], bool, bool]]) -> frozenset[Series]:
    """``metallb_speaker_announced`` keys from ``(service key, ips, announced over L2, announced over BGP)``."""
    out: set[Series] = set()
    for key, ips, l2, bgp in services:
        for ip in ips:
            if l2:
                out.add((key, LAYER2, node, ip))
            if bgp:
                out.add((key, BGP, node, ip))
    return frozenset(out)


def bgp_peers_of(plan: NodePlan | None, service_key: str) -> tuple[str, ...]:
    """The BGPPeer names a service's prefixes go to from this node, sorted (ServiceBGPStatus ``peers``)."""
    if plan is None:
        return ()
    prefixes = {ad.prefix for ad in plan.by_service.get(service_key, ())}
    if not prefixes:
        return ()
    return tuple(sorted(name for name, table in plan.routes.items() if prefixes & table.keys()))


def pool_for(config: Config, ips: Sequence[str]) -> Pool | None:
    """The pool holding every one of ``ips`` (MetalLB's ``poolFor``), or None."""
    try:
        addrs = [ip_address(ip) for ip in ips]
    except ValueError:
        return None
    for pool in config.pools:
        if addrs and all(pool.contains(a) for a in addrs):
            return pool
    return None


def service_inputs(
    services: Iterable[tuple[Service, Pool | None]], endpoint_slices: Iterable[EndpointSlice]
) -> dict[str, ServiceInput]:
    """Each Service with its pool and its own EndpointSlices, keyed ``namespace/name``."""
    all_slices = tuple(endpoint_slices)
    return {svc.key: ServiceInput(svc, pool, tuple(slices_of(svc, all_slices))) for svc, pool in services}


def served_everywhere(services: Mapping[str, ServiceInput], nodes: Iterable[str]) -> dict[str, ServiceInput]:
    """Standalone rule: a Service without EndpointSlices is served on every one of ``nodes``."""
    names = tuple(nodes)
    return {
        key: item if item.slices else replace(item, slices=(implicit_slice(item.service, names),))
        for key, item in services.items()
    }


def elect_all(
    nodes: Sequence[Node],
    services: Mapping[str, ServiceInput],
    *,
    live: Collection[str] | None,
    ignore_exclude_lb: bool = False,
) -> dict[str, L2Decision]:
    """The L2 election of every Service, the same on every node (``live`` None: every Node is live).

    A Service holding IPs that no pool contains is not announced (``ipNotAllowed``, as MetalLB's speaker says).
    """
    live_names = [n.name for n in nodes] if live is None else sorted(live)
    out: dict[str, L2Decision] = {}
    for key, item in services.items():
        if item.pool is None and item.service.ingress:
            out[key] = L2Decision(None, IP_NOT_ALLOWED)
        else:
            out[key] = elect(
                item.service, item.pool, nodes, live_names, item.slices, ignore_exclude_lb=ignore_exclude_lb
            )
    return out


def handed_over(
    node: str, layer2: Mapping[str, L2Decision], ingress: Mapping[str, Sequence[str]], *, leaving: bool = False
) -> frozenset[str]:
    """IPs another live node answers for when this one lets them go (make before break).

    ``leaving`` false: the IPs of Services elected to another node (if this node answered them, it keeps answering
    until that node claims them). ``leaving`` true (a planned stop): the IPs of Services elected to this node that
    have another candidate, which takes them once this node has left. ``ingress``: each Service's IPs.
    """
    out: set[str] = set()
    for key, decision in layer2.items():
        if decision.node is None:
            continue
        if (decision.node == node and len(decision.candidates) > 1) if leaving else decision.node != node:
            out.update(ingress.get(key, ()))
    return frozenset(out)


def _all_available(interfaces: tuple[str, ...]) -> bool:
    return True


def decide_node(
    config: Config,
    node: str,
    nodes: Sequence[Node],
    services: Mapping[str, ServiceInput],
    *,
    live: Collection[str] | None,
    may_announce_l2: bool = True,
    ignore_exclude_lb: bool = False,
    interfaces_available: Callable[[tuple[str, ...]], bool] = _all_available,
    layer2: Mapping[str, L2Decision] | None = None,
) -> NodeDecision:
    """Elect and plan for ``services`` (LoadBalancer Services of this speaker's class, keyed ``ns/name``).

    ``live``: the live speakers (None: every Node, as MetalLB without memberlist). ``may_announce_l2`` false
    (no membership quorum yet, or lost) keeps the election results but announces nothing over Layer 2. A won
    Service whose advertisements name interfaces of which none exists here is not announced (``announce_failed``).
    ``layer2``: the election of :func:`elect_all` when already computed (it is the same for every node). A node
    without a Node object still runs its BGP sessions, without labels, but announces nothing (``notOwner``).
    """
    if layer2 is None:
        layer2 = elect_all(nodes, services, live=live, ignore_exclude_lb=ignore_exclude_lb)
    known = next((n for n in nodes if n.name == node), None)
    me = known or Node(node)
    announce: dict[str, tuple[str, ...]] = {}
    l2_status: dict[str, tuple[str, ...]] = {}
    failed: dict[str, tuple[str, ...]] = {}
    for key, item in services.items():
        decision = layer2[key]
        if decision.node != node or not may_announce_l2:
            continue
        if not interfaces_available(decision.interfaces):
            failed[key] = item.service.ingress
            continue
        l2_status[key] = decision.interfaces
        for ip in item.service.ingress:
            previous = announce.get(ip)
            if previous is None or not decision.interfaces:
                announce[ip] = decision.interfaces
            elif previous:
                announce[ip] = tuple(sorted({*previous, *decision.interfaces}))
    plan = plan_node(config, me, services, ignore_exclude_lb=ignore_exclude_lb, node_known=known is not None)
    bgp_status = {key: peers for key in plan.by_service if (peers := bgp_peers_of(plan, key))}
    series = announced_series(
        node,
        (
            (key, item.service.ingress, key in l2_status, plan.reasons.get(key, "") is None)
            for key, item in services.items()
        ),
    )
    return NodeDecision(
        dict(layer2), plan, Announcement(announce, plan, config.bfd_profiles, series), l2_status, bgp_status, failed
    )


def decide_cluster(
    config: Config,
    nodes: Sequence[Node],
    services: Mapping[str, ServiceInput],
    *,
    live: Collection[str] | None = None,
    speakers: Iterable[str] | None = None,
    without_l2: Collection[str] = (),
    ignore_exclude_lb: bool = False,
) -> tuple[dict[str, L2Decision], dict[str, NodeDecision]]:
    """The election, and :func:`decide_node` for every speaker (default: every Node), as ``ironlb plan`` shows.

    BGP speakers do not coordinate, so every speaker plans its own sessions whatever ``live`` says. Speakers in
    ``without_l2`` (no membership quorum) announce nothing over Layer 2.
    """
    layer2 = elect_all(nodes, services, live=live, ignore_exclude_lb=ignore_exclude_lb)
    names = [n.name for n in nodes] if speakers is None else list(speakers)
    out: dict[str, NodeDecision] = {}
    for name in names:
        out[name] = decide_node(
            config, name, nodes, services, live=live, may_announce_l2=name not in without_l2,
            ignore_exclude_lb=ignore_exclude_lb, layer2=layer2,
        )  # fmt: skip
    return layer2, out


__all__ = [
    "BGP",
    "IP_NOT_ALLOWED",
    "LAYER2",
    "Announcement",
    "NodeDecision",
    "Series",
    "ServiceInput",
    "announced_series",
    "bgp_peers_of",
    "decide_cluster",
    "decide_node",
    "elect_all",
    "handed_over",
    "pool_for",
    "served_everywhere",
    "service_inputs",
]
