"""The pure part of ``ironlb speaker``: cluster objects in, what this node announces (and its statuses) out.

The speaker never allocates: a Service's IPs are its ``status.loadBalancer.ingress`` as the controller wrote
them, and its pool is the pool containing all of them (MetalLB's ``poolFor``; none means ``ipNotAllowed``).
Layer 2 runs MetalLB's per-IP election (:func:`ironlb.layer2.election.elect`) over the live speakers; BGP runs
the route planner for this node only (:func:`ironlb.bgp.planner.plan_node`).

The configuration a speaker builds keeps only the BGPPeers and BGPAdvertisements whose nodeSelectors select its
own node (MetalLB's ConfigReconciler), so a peer meant for other nodes can neither start a session here nor make
this node's configuration invalid; L2Advertisements are kept whole, since every speaker must see the same
candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import ip_address

from ironlb.announce.announcer import Announcement, announced_series, bgp_peers_of
from ironlb.bgp.planner import NodePlan, ServiceInput, plan_node
from ironlb.cluster.labels import LabelSelector, SelectorError
from ironlb.cluster.objects import Node
from ironlb.config import Resources, build, load_objects
from ironlb.config.models import LabelSelectorModel
from ironlb.config.types import Config, Pool
from ironlb.layer2.election import L2Decision, elect

IP_NOT_ALLOWED = "ipNotAllowed"


def _selects(selectors: Sequence[LabelSelectorModel], labels: Mapping[str, str]) -> bool:
    """Whether nodeSelectors select a node; an unparsable selector is kept, so validation reports it."""
    if not selectors:
        return True
    try:
        parsed: list[LabelSelector] = [s.to_selector() for s in selectors]
    except SelectorError:
        return True
    return any(s.matches(labels) for s in parsed)


def for_node(resources: Resources, node_labels: Mapping[str, str]) -> Resources:
    """Only the BGPPeers and BGPAdvertisements selecting this node (MetalLB's speaker-side filter)."""
    return replace(
        resources,
        bgp_peers=tuple(p for p in resources.bgp_peers if _selects(p.spec.node_selectors, node_labels)),
        bgp_advertisements=tuple(
            a for a in resources.bgp_advertisements if _selects(a.spec.node_selectors, node_labels)
        ),
    )


def speaker_config(objects: Iterable[object], node_labels: Mapping[str, str], namespace: str) -> Config:
    """The speaker's configuration from the cached objects; raises ConfigError when invalid."""
    resources = for_node(load_objects(objects, default_namespace=namespace), node_labels)
    return build(resources, namespace=namespace).config


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


@dataclass(frozen=True)
class NodeDecision:
    """This node's part: per-service election results, its BGP plan, and the status CRs it should hold."""

    layer2: Mapping[str, L2Decision] = field(default_factory=dict)
    bgp: NodePlan | None = None
    announcement: Announcement = field(default_factory=Announcement)
    l2_status: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # service key -> interfaces
    bgp_status: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # service key -> peer names
    announce_failed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # won, but no such interface here


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
) -> NodeDecision:
    """Elect and plan for ``services`` (LoadBalancer Services of this speaker's class, keyed ``ns/name``).

    ``live``: the live speakers (None: every Node, as MetalLB without memberlist). ``may_announce_l2`` false
    (no membership quorum yet, or lost) keeps the election results but announces nothing over Layer 2. A won
    Service whose advertisements name interfaces of which none exists here is not announced (``announce_failed``).
    """
    live_names = [n.name for n in nodes] if live is None else sorted(live)
    me = next((n for n in nodes if n.name == node), None) or Node(node)
    layer2: dict[str, L2Decision] = {}
    announce: dict[str, tuple[str, ...]] = {}
    l2_status: dict[str, tuple[str, ...]] = {}
    failed: dict[str, tuple[str, ...]] = {}
    for key, item in services.items():
        if item.pool is None and item.service.ingress:
            layer2[key] = L2Decision(None, IP_NOT_ALLOWED)
            continue
        decision = elect(item.service, item.pool, nodes, live_names, item.slices, ignore_exclude_lb=ignore_exclude_lb)
        layer2[key] = decision
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
    plan = plan_node(config, me, services, ignore_exclude_lb=ignore_exclude_lb)
    bgp_status = {key: peers for key in plan.by_service if (peers := bgp_peers_of(plan, key))}
    series = announced_series(
        node,
        (
            (key, item.service.ingress, key in l2_status, plan.reasons.get(key, "") is None)
            for key, item in services.items()
        ),
    )
    return NodeDecision(
        layer2, plan, Announcement(announce, plan, config.bfd_profiles, series), l2_status, bgp_status, failed
    )
