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

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ironlb.bgp.planner import NodePlan
from ironlb.cluster.objects import Node
from ironlb.decide import Announcement, ClusterDecision, Held, holding
from ironlb.ipam.allocator import Allocator
from ironlb.ipam.reprocess import Outcome
from ironlb.layer2.election import L2Decision
from ironlb.plan import Snapshot, allocate, bgp_plans, cluster_decision, render

ALL_INTERFACES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    plan: dict[str, Any]
    layer2: dict[str, tuple[str, ...]]  # ip -> interfaces this node answers on (() = all)
    layer2_by_service: dict[str, L2Decision]
    bgp: NodePlan | None = None  # this node's BGP sessions and routes per peer
    announcement: Announcement = field(default_factory=Announcement)  # what the Announcer applies

    @property
    def ingress(self) -> dict[str, tuple[str, ...]]:
        """Each Service's IPs, by ``namespace/name``."""
        return {key: tuple(svc.get("ingress") or ()) for key, svc in self.plan.get("services", {}).items()}


@dataclass(frozen=True)
class Early:
    """This node's own part of a decision, enough to announce; :meth:`finish` adds the plans of the other speakers
    and the status (``plan``). With three members they take half of a decision: a node announces without them.
    """

    announcement: Announcement
    layer2_by_service: Mapping[str, L2Decision]  # the elections (without each speaker's reason)
    ingress: Mapping[str, tuple[str, ...]]
    _finish: Callable[[], Decision]
    cluster: ClusterDecision | None = None  # what a membership change starts from (``decide_early``'s previous)
    basis: tuple[object, ...] = ()  # the inputs besides the live members that ``cluster`` was decided from

    def finish(self) -> Decision:
        return self._finish()


Allocated = tuple[Allocator, dict[str, Outcome]]


class Allocation:
    """The last :func:`allocate` result, kept for the snapshot (by identity) and class it was computed for.

    Allocating converges every Service twice (half of a 1,000-Service decision); a membership change (a node
    joining or leaving: when a successor must take IPs over quickly) changes the election, not the allocation.
    """

    def __init__(self) -> None:
        self._key: tuple[Snapshot, str] | None = None
        self._value: Allocated | None = None

    def of(self, snapshot: Snapshot, lb_class: str = "") -> Allocated:
        if self._value is None or self._key is None or self._key[0] is not snapshot or self._key[1] != lb_class:
            self._value = allocate(snapshot, lb_class=lb_class)
            self._key = (snapshot, lb_class)
        return self._value


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
    allocated: Allocated | None = None,
) -> Decision:
    """Allocate, then :func:`ironlb.decide.decide_node` for every speaker; this node's part is announced.

    Node objects given, but not this node's: it still runs its BGP sessions, without labels, and announces nothing.
    ``allocated``: :func:`allocate` of this very snapshot and ``lb_class``, when already computed (the allocation
    does not depend on the members: a recompute after a membership change reuses it, see :class:`Allocation`).
    The route of ``ironlb plan`` (:func:`ironlb.plan.cluster_decision`, then :func:`ironlb.plan.render`), taken in
    two steps (:func:`decide_early`).
    """
    return decide_early(
        snapshot, node=node, members=members, alive=alive, has_quorum=has_quorum, lb_class=lb_class,
        ignore_exclude_lb=ignore_exclude_lb, allocated=allocated,
    ).finish()  # fmt: skip


def decide_early(
    snapshot: Snapshot,
    *,
    node: str,
    members: Collection[str],
    alive: Collection[str],
    has_quorum: bool = True,
    lb_class: str = "",
    ignore_exclude_lb: bool = False,
    allocated: Allocated | None = None,
    previous: Early | None = None,
    held: Collection[str] = (),
    held_ips: Held | None = None,
    standing_in: Held | None = None,
    pending: Collection[str] = (),
    known: Held | None = None,
) -> Early:
    """:func:`decide` up to this node's own announcement; the rest (other speakers, the plan) when finished.

    ``previous``: the last result, when only the live members or the quorum may have changed since (the same
    snapshot object and allocation): the decision is then :meth:`ClusterDecision.with_live` of its, which costs
    the Services the change concerns (a membership change), not all of them; the result is the same.
    ``held``: the members held for a restart (``ironlb.membership.hold``): each keeps the IPs ``previous`` gave it
    (:meth:`ClusterDecision.holding`) and is no candidate for any other, so a Service created during its hold is
    announced by another node. Without ``previous`` (the last decision failed), ``held_ips`` gives the IPs each
    held member keeps (the last decision's ``cluster.held``). A held member that no earlier decision counted alive
    (this node just started) counts as any live one for this decision, and the next gives it the IPs
    :func:`ironlb.decide.joined_holding` finds (``standing_in``: per held member, the IPs it asked this node to
    stand in for; not before that share is complete: ``pending``, the held members whose share came in part), or
    ``known`` gives (per held member learnt by a relay, its IPs with a stand-in, as its stand-ins told it).
    """
    given, snapshot = snapshot, with_member_nodes(snapshot, members)
    allocated = allocated if allocated is not None else allocate(snapshot, lb_class=lb_class)
    basis: tuple[object, ...] = (given, allocated, node, frozenset(members), lb_class, ignore_exclude_lb)
    allocator, outcomes = allocated
    without_l2 = () if has_quorum else (node,)
    held = sorted(name for name in held if name in alive)
    if previous is not None and previous.cluster is not None and _same(previous.basis, basis):
        cluster = previous.cluster.with_live(
            sorted(alive), without_l2=without_l2, held=held, me=node, standing_in=standing_in, pending=pending,
            known=known,
        )
    else:
        speakers = [n.name for n in snapshot.nodes]
        if node not in speakers:
            speakers.append(node)
        if previous is not None and previous.cluster is not None:
            kept = previous.cluster.holding(held, me=node, standing_in=standing_in, pending=pending, known=known)
        else:
            kept = holding(held, held_ips or {}, None, {})
        cluster = cluster_decision(
            snapshot, outcomes, live=sorted(alive), speakers=speakers, without_l2=without_l2,
            served_without_slices=True, ignore_exclude_lb=ignore_exclude_lb, held=kept,
            late=[name for name in held if name not in kept],
        )  # fmt: skip
    if cluster.late:  # counted fully by this decision, which no earlier one did: give them their IPs now
        cluster = cluster.with_live(
            sorted(alive), without_l2=without_l2, held=held, me=node, standing_in=standing_in, pending=pending,
            known=known,
        )
    mine = cluster.node(node, early=True)  # a take-over announces before the elections' rest is complete

    def finish() -> Decision:
        l2 = cluster.with_reasons()
        plan = render(snapshot, allocator, outcomes, l2, bgp_plans(cluster.nodes()))
        final = cluster.node(node)  # complete: the same announcement as ``mine``
        return Decision(plan, dict(final.announcement.layer2), l2, final.bgp, final.announcement)

    ingress = {key: tuple(o.service.ingress) for key, o in outcomes.items()}
    return Early(mine.announcement, cluster.winners(), ingress, finish, cluster, basis)


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """The snapshot and allocation the very objects (an equal snapshot read again is not compared), the rest equal."""
    return len(a) == len(b) and a[0] is b[0] and a[1] is b[1] and a[2:] == b[2:]
