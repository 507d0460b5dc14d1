"""The pure part of ``ironlb run``: a snapshot and the live members in, the status and announcements out.

Standalone rules, on top of ``ironlb plan``'s: without Node objects in the state directory the members are the
nodes, and a Service with no EndpointSlice counts as served on every node. A node that has lost quorum
announces nothing (see ``ironlb.membership``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from ironlb.cluster.objects import Node
from ironlb.layer2.election import L2Decision
from ironlb.plan import Snapshot, allocate, layer2_decisions, render

ALL_INTERFACES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    plan: dict[str, Any]
    layer2: dict[str, tuple[str, ...]]  # ip -> interfaces this node answers on (() = all)
    layer2_by_service: dict[str, L2Decision]


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
    return Decision(render(snapshot, allocator, outcomes, l2), announce, l2)
