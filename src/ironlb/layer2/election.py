"""Who answers ARP/NDP for a service IP: MetalLB's stateless per-IP election (speaker/layer2_controller.go).

Every speaker computes the same answer from the same snapshot, so no coordination is needed beyond agreeing on
which speakers are alive (see ``ironlb.membership``). Candidates are the live speakers, minus nodes with
``NetworkUnavailable`` and nodes labelled to be excluded from load balancers, intersected with the nodes the
service's L2Advertisements select, and for ``externalTrafficPolicy: Local`` only nodes with a serving endpoint.
They are ordered by preferred-node score (higher first), then by ``sha256(node + "#" + ip)``, where ``ip`` is the
first ingress IP, so services sharing an IP are announced by the same node.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ironlb.cluster.annotations import ALLOW_SHARED_IP, DEPRECATED_PREFIX, PREFIX
from ironlb.cluster.labels import any_matches
from ironlb.cluster.objects import EndpointSlice, Node, Service
from ironlb.cluster.reasons import (
    NO_ENDPOINTS,
    NO_IP_ALLOCATED,
    NO_LOCAL_ENDPOINTS,
    NO_MATCHING_ADVERTISEMENT,
    NO_NODE_OBJECT,
    NOT_ELECTED,
    NOT_LOAD_BALANCER,
    NOT_OWNER,
    SHARED_IP_WITH_SERVICE_SELECTOR,
    SPEAKER_NOT_LIVE,
    node_state_reason,
)
from ironlb.config.types import L2Advertisement, Pool


@dataclass(frozen=True)
class L2Decision:
    """The elected node of a service (or why there is none) and the interfaces it announces on."""

    node: str | None
    reason: str | None
    interfaces: tuple[str, ...] = ()  # empty: all interfaces
    candidates: tuple[str, ...] = ()  # in election order
    # A restart hold (``ironlb.decide.elect_one``): the IPs of the Service that the held member ``kept_by``, which
    # would win it but for its hold, keeps (its stand-in answers them with its MAC); ``node`` announces the others.
    kept: tuple[str, ...] = ()
    kept_by: str | None = None
    # Filled by :func:`with_node_reasons` for ``ironlb plan`` only: every speaker's part (not part of equality).
    nodes: tuple[NodeReason, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"node": self.node, "reason": self.reason, "interfaces": list(self.interfaces)}
        if self.kept:  # only during a restart hold (ironlb run's status file): who still answers which IPs
            out["kept"] = {"node": self.kept_by, "ips": list(self.kept)}
        return out

    def nodes_dict(self) -> dict[str, dict[str, object]]:
        """``nodes`` by node name, for the plan's ``nodeReasons``."""
        return {n.node: n.to_dict() for n in self.nodes}


@dataclass(frozen=True)
class NodeReason:
    """One speaker's part in a Service's layer 2 decision.

    ``reason``: what MetalLB's speaker on that node decides (its ``layer2Controller.ShouldAnnounce`` result; None:
    it announces). ``detail``: why, where MetalLB's reason says less (``notOwner`` covers a lost election, a node
    that is NetworkUnavailable or excluded, and no local endpoint). ``rank``: the place among the candidates.
    """

    node: str
    reason: str | None
    detail: str | None = None
    rank: int | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"reason": self.reason, "detail": self.detail}
        if self.rank is not None:
            out["rank"] = self.rank
        return out


def sort_candidates(nodes: Iterable[str], ip: str, scores: Mapping[str, int] | None = None) -> list[str]:
    """MetalLB's sortL2Candidates: higher score first, then the smallest sha256(node#ip)."""
    scores = scores or {}
    return sorted(nodes, key=lambda n: (-scores.get(n, 0), hashlib.sha256(f"{n}#{ip}".encode()).digest()))


def slices_of(svc: Service, slices: Iterable[EndpointSlice]) -> list[EndpointSlice]:
    return [s for s in slices if s.namespace == svc.namespace and s.service_name == svc.name]


def has_serving_endpoint(slices: Sequence[EndpointSlice]) -> bool:
    return any(ep.can_serve for s in slices for ep in s.endpoints)


def nodes_with_serving_endpoint(slices: Sequence[EndpointSlice]) -> set[str]:
    return {ep.node_name for s in slices for ep in s.endpoints if ep.can_serve and ep.node_name}


def has_sharing_annotation(svc: Service) -> bool:
    return PREFIX + ALLOW_SHARED_IP in svc.annotations or DEPRECATED_PREFIX + ALLOW_SHARED_IP in svc.annotations


def ads_for_service(pool: Pool, svc: Service) -> list[L2Advertisement]:
    """The pool's L2Advertisements whose serviceSelectors are empty or match the service."""
    return [ad for ad in pool.l2_advertisements if any_matches(ad.service_selectors, svc.labels)]


def preferred_scores(ads: Sequence[L2Advertisement], nodes: Iterable[Node]) -> dict[str, int]:
    """Sum of the weights of the preferences a node matches, over the ads that select it."""
    scores: dict[str, int] = {}
    for node in nodes:
        total = 0
        for ad in ads:
            if not any_matches(ad.node_selectors, node.labels):
                continue
            total += sum(p.weight for p in ad.preferred_nodes if p.preference.matches(node.labels))
        if total:
            scores[node.name] = total
    return scores


def interfaces_for(ads: Sequence[L2Advertisement], node: Node) -> tuple[str, ...] | None:
    """The union of interfaces of the node's matching ads; () when any of them means all interfaces."""
    mine = [ad for ad in ads if any_matches(ad.node_selectors, node.labels)]
    if not mine:
        return None
    if any(ad.all_interfaces for ad in mine):
        return ()
    return tuple(sorted({i for ad in mine for i in ad.interfaces}))


def candidate_reason(
    node: Node,
    ads: Sequence[L2Advertisement],
    local: Collection[str] | None,
    *,
    ignore_exclude_lb: bool = False,
    live: bool = True,
) -> str | None:
    """Why a node is not a candidate for a Service's IPs (None: it is): the filters :func:`elect` applies.

    ``ads``: the Service's L2Advertisements (:func:`ads_for_service`); ``local``: for ``externalTrafficPolicy:
    Local``, the nodes with a serving endpoint, else None. ``ironlb explain`` reports these reasons per node.
    """
    if not live:
        return SPEAKER_NOT_LIVE
    if reason := node_state_reason(node, ignore_exclude_lb=ignore_exclude_lb):
        return reason
    if not any(any_matches(ad.node_selectors, node.labels) for ad in ads):
        return NO_MATCHING_ADVERTISEMENT
    if local is not None and node.name not in local:
        return NO_LOCAL_ENDPOINTS
    return None


def elect(
    svc: Service,
    pool: Pool | None,
    nodes: Sequence[Node],
    live: Collection[str],
    slices: Sequence[EndpointSlice],
    *,
    ignore_exclude_lb: bool = False,
) -> L2Decision:
    """The node that announces the service's IPs, computed identically on every speaker.

    ``nodes`` are the known Node objects, ``live`` the names of live speakers; ``slices`` the service's own
    EndpointSlices.
    """
    if not svc.is_load_balancer:
        return L2Decision(None, NOT_LOAD_BALANCER)
    if not svc.ingress or pool is None:
        return L2Decision(None, NO_IP_ALLOCATED)
    if not has_serving_endpoint(slices):
        return L2Decision(None, NOT_OWNER)
    ads = ads_for_service(pool, svc)
    if has_sharing_annotation(svc) and any(ad.service_selectors for ad in ads):
        return L2Decision(None, SHARED_IP_WITH_SERVICE_SELECTOR)
    if not ads:
        return L2Decision(None, NO_MATCHING_ADVERTISEMENT)
    by_name = {n.name: n for n in nodes}
    speakers = [by_name[name] for name in live if name in by_name]
    if speakers and not any(any_matches(ad.node_selectors, n.labels) for ad in ads for n in speakers):
        return L2Decision(None, NO_MATCHING_ADVERTISEMENT)  # adsMatchNodeL2 fails on every speaker
    local = nodes_with_serving_endpoint(slices) if svc.external_traffic_policy == "Local" else None
    eligible = [
        by_name[name]
        for name in live
        if name in by_name and candidate_reason(by_name[name], ads, local, ignore_exclude_lb=ignore_exclude_lb) is None
    ]
    if not eligible:
        return L2Decision(None, NOT_OWNER)
    order = sort_candidates([n.name for n in eligible], svc.ingress[0], preferred_scores(ads, eligible))
    winner = by_name[order[0]]
    return L2Decision(winner.name, None, interfaces_for(ads, winner) or (), tuple(order))


def elect_without(
    decision: L2Decision, gone: frozenset[str], svc: Service, pool: Pool | None, by_name: Mapping[str, Node]
) -> L2Decision | None:
    """``decision`` once the speakers in ``gone`` are no longer live (nothing else changed), or None: elect again.

    The candidates are the live eligible nodes in an order that does not depend on which others are live, so the
    survivors keep their order and the first of them wins, on the interfaces its advertisements give it: what
    :func:`elect` returns for the smaller live set, without checking every node and hashing again. None when
    there was no winner (the reason may change) or no candidate is left.
    """
    if decision.node is None:
        return None
    if gone.isdisjoint(decision.candidates):
        return decision
    remaining = tuple(c for c in decision.candidates if c not in gone)
    if not remaining or pool is None:
        return None
    kept, kept_by = decision.kept, decision.kept_by  # a restart hold's (``ironlb.decide.with_live`` checks it)
    if remaining[0] == decision.node:
        return L2Decision(decision.node, decision.reason, decision.interfaces, remaining, kept, kept_by)
    interfaces = interfaces_for(ads_for_service(pool, svc), by_name[remaining[0]]) or ()
    return L2Decision(remaining[0], None, interfaces, remaining, kept, kept_by)


def elect_with(
    decision: L2Decision,
    came: Collection[str],
    svc: Service,
    pool: Pool | None,
    slices: Sequence[EndpointSlice],
    by_name: Mapping[str, Node],
    *,
    ignore_exclude_lb: bool = False,
) -> L2Decision | None:
    """``decision`` once the speakers in ``came`` are live too (nothing else changed), or None: elect again.

    A newcomer that passes :func:`candidate_reason` takes its place in the election order (two nodes' order does
    not depend on which others are live), found by comparing its key with a few candidates' rather than hashing
    every one; it wins only if it lands first. What :func:`elect` returns for the larger live set. None when
    there was no winner (the reason may change).
    """
    if decision.node is None or pool is None or not svc.ingress:
        return None
    ads = ads_for_service(pool, svc)
    local = nodes_with_serving_endpoint(slices) if svc.external_traffic_policy == "Local" else None
    joining = [
        name for name in sorted(came)
        if name in by_name and name not in decision.candidates
        and candidate_reason(by_name[name], ads, local, ignore_exclude_lb=ignore_exclude_lb) is None
    ]  # fmt: skip
    if not joining:
        return decision
    ip = svc.ingress[0]
    scored = any(ad.preferred_nodes for ad in ads)

    def key(name: str) -> tuple[int, bytes]:  # sort_candidates' key
        score = preferred_scores(ads, (by_name[name],)).get(name, 0) if scored else 0
        return -score, hashlib.sha256(f"{name}#{ip}".encode()).digest()

    order = list(decision.candidates)
    for name in joining:
        bisect.insort(order, name, key=key)
    kept, kept_by = decision.kept, decision.kept_by  # a restart hold's, unchanged (holds unchanged)
    if order[0] == decision.node:
        return L2Decision(decision.node, decision.reason, decision.interfaces, tuple(order), kept, kept_by)
    return L2Decision(order[0], None, interfaces_for(ads, by_name[order[0]]) or (), tuple(order), kept, kept_by)


def node_reason(
    decision: L2Decision,
    name: str,
    svc: Service,
    ads: Sequence[L2Advertisement],
    by_name: Mapping[str, Node],
    live: Collection[str],
    slices: Sequence[EndpointSlice],
    *,
    ignore_exclude_lb: bool = False,
) -> NodeReason:
    """What the speaker on node ``name`` decides for the Service, in the order of MetalLB's ``SetBalancer`` and
    ``layer2Controller.ShouldAnnounce``: the Service-wide reasons, no serving endpoint, shared IP with
    serviceSelectors, then ``noMatchingAdvertisement`` when none of the Service's L2Advertisements (``ads``,
    :func:`ads_for_service`) selects *this* node (``adsMatchNodeL2``), then the election among the candidates.
    """
    if decision.node is None and decision.reason not in (NOT_OWNER, NO_MATCHING_ADVERTISEMENT):
        return NodeReason(name, decision.reason)
    if not has_serving_endpoint(slices):
        return NodeReason(name, NOT_OWNER, NO_ENDPOINTS)
    node = by_name.get(name)
    if node is None:  # MetalLB's ad.Nodes only holds the cluster's Node objects
        return NodeReason(name, NO_MATCHING_ADVERTISEMENT, NO_NODE_OBJECT)
    if not any(any_matches(ad.node_selectors, node.labels) for ad in ads):
        return NodeReason(name, NO_MATCHING_ADVERTISEMENT)
    if name in decision.candidates:
        rank = decision.candidates.index(name)
        return NodeReason(name, None, None, 0) if rank == 0 else NodeReason(name, NOT_OWNER, NOT_ELECTED, rank)
    local = nodes_with_serving_endpoint(slices) if svc.external_traffic_policy == "Local" else None
    why = candidate_reason(node, ads, local, ignore_exclude_lb=ignore_exclude_lb, live=name in live)
    return NodeReason(name, NOT_OWNER, why)


def with_node_reasons(
    decision: L2Decision,
    names: Iterable[str],
    svc: Service,
    pool: Pool | None,
    nodes: Sequence[Node],
    live: Collection[str],
    slices: Sequence[EndpointSlice],
    *,
    ignore_exclude_lb: bool = False,
) -> L2Decision:
    """``decision`` with :func:`node_reason` for each speaker of ``names`` (``ironlb plan`` shows them)."""
    by_name = {n.name: n for n in nodes}
    live_set = frozenset(live)
    ads = ads_for_service(pool, svc) if pool is not None else []
    reasons = tuple(
        node_reason(decision, name, svc, ads, by_name, live_set, slices, ignore_exclude_lb=ignore_exclude_lb)
        for name in names
    )
    return replace(decision, nodes=reasons)


def should_announce(decision: L2Decision, node: str) -> str | None:
    """MetalLB's ShouldAnnounce for this node: None to announce, else the reason not to."""
    if decision.node == node:
        return None
    return decision.reason or NOT_OWNER
