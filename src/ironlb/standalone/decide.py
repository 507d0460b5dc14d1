"""The pure part of ``ironlb run``: a snapshot and the live members in, the status and announcements out.

Standalone rules, on top of ``ironlb plan``'s: without Node objects in the state directory the members are the
nodes, and a Service with no EndpointSlice counts as served on every node. A node that has lost quorum
announces nothing over Layer 2 (see ``ironlb.membership``).

BGP does not depend on membership or quorum, as in MetalLB, where BGP announcement never consults memberlist:
every node with a matching BGPAdvertisement announces on its own sessions, and the router (ECMP, hold timer or
BFD) is what removes a dead node. Withdrawing BGP routes on lost quorum would make a network partition between
speakers, which the routers may not even see, take the service down everywhere. So ``Decision.bgp`` is the
node's plan regardless of ``has_quorum``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from ironlb.bgp.planner import NodePlan
from ironlb.cluster.objects import Node
from ironlb.layer2.election import L2Decision
from ironlb.plan import Snapshot, allocate, bgp_decisions, layer2_decisions, render

ALL_INTERFACES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    plan: dict[str, Any]
    layer2: dict[str, tuple[str, ...]]  # ip -> interfaces this node answers on (() = all)
    layer2_by_service: dict[str, L2Decision]
    bgp: NodePlan | None = None  # this node's BGP sessions and routes per peer


def with_member_nodes(snapshot: Snapshot, members: Collection[str]) -> Snapshot:
    """Without Node objects, the configured members are the nodes."""
    if snapshot.nodes:
        return snapshot
    return replace(snapshot, nodes=tuple(Node(name) for name in sorted(members)))


def decide(
    snapshot: Snapshot,
    *,
    node: str,
    members: Collection[str],
    alive: Collection[str],
    has_quorum: bool = True,
    lb_class: str = "",
    ignore_exclude_lb: bool = False,
) -> Decision:
    snapshot = with_member_nodes(snapshot, members)
    allocator, outcomes = allocate(snapshot, lb_class=lb_class)
    l2 = layer2_decisions(
        snapshot, outcomes, live=sorted(alive), served_without_slices=True, ignore_exclude_lb=ignore_exclude_lb
    )
    announce: dict[str, tuple[str, ...]] = {}
    if has_quorum:
        for key, decision in l2.items():
            if decision.node != node:
                continue
            for ip in outcomes[key].service.ingress:
                previous = announce.get(ip)
                if previous is None or not decision.interfaces:
                    announce[ip] = decision.interfaces
                elif previous:
                    announce[ip] = tuple(sorted({*previous, *decision.interfaces}))
    speakers = snapshot
    if all(n.name != node for n in snapshot.nodes):
        # Node objects given, but not this node's: it still runs its sessions, without labels.
        speakers = replace(snapshot, nodes=(*snapshot.nodes, Node(node)))
    bgp = bgp_decisions(speakers, outcomes, served_without_slices=True, ignore_exclude_lb=ignore_exclude_lb)
    return Decision(render(snapshot, allocator, outcomes, l2, bgp), announce, l2, bgp.get(node))
