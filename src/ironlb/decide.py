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
from functools import cached_property
from itertools import islice

from ironlb.bgp.attributes import Attributes
from ironlb.bgp.planner import (
    Advertisement,
    NodePlan,
    ServiceInput,
    advertisements,
    implicit_slice,
    parse_address,
    peer_carries,
    peers_for_node,
    should_announce,
)
from ironlb.bgp.wire import Network
from ironlb.cluster.objects import EndpointSlice, Node, Service
from ironlb.cluster.reasons import IP_NOT_ALLOWED, NO_IP_ALLOCATED, NOT_OWNER, RESTARTING
from ironlb.config.types import BFDProfile, Config, Peer, Pool
from ironlb.layer2.election import (
    L2Decision,
    NodeReason,
    elect,
    elect_with,
    elect_without,
    slices_of,
    with_node_reasons,
)

LAYER2 = "layer2"
BGP = "bgp"

# One ``metallb_speaker_announced`` series: (service key, protocol, node, ip).
Series = tuple[str, str, str, str]

Held = Mapping[str, frozenset[str]]
"""Restart holds (``ironlb.membership.hold``): each held member with the IPs it announced when its hold began. It
stays a candidate only for the Services whose IPs are all among them (:func:`barred_by_holds`)."""


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
        addrs = [parse_address(ip) for ip in ips]
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
        key: item if item.slices else ServiceInput(item.service, item.pool, (implicit_slice(item.service, names),))
        for key, item in services.items()
    }


def elect_all(
    nodes: Sequence[Node],
    services: Mapping[str, ServiceInput],
    *,
    live: Collection[str] | None,
    ignore_exclude_lb: bool = False,
    held: Held | None = None,
) -> dict[str, L2Decision]:
    """The L2 election of every Service, the same on every node (``live`` None: every Node is live).

    A Service holding IPs that no pool contains is not announced (``ipNotAllowed``, as MetalLB's speaker says).
    ``held``: the restart holds in force (:func:`elect_one`).
    """
    live_names = [n.name for n in nodes] if live is None else sorted(live)
    return {
        key: elect_one(item, nodes, live_names, ignore_exclude_lb=ignore_exclude_lb, held=held)
        for key, item in services.items()
    }


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
            out.update(l2_ips(decision, ingress.get(key, ())))
    return frozenset(out)


def stand_ins(
    node: str, layer2: Mapping[str, L2Decision], ingress: Mapping[str, Sequence[str]], alive: Collection[str]
) -> dict[str, list[str]]:
    """For a restart hold (``ironlb.membership.hold``): per member, the IPs of this node it stands in for.

    The IPs of the Services elected to ``node``, each given to its next candidate in election order that is in
    ``alive``: the node that would take it over if ``node`` left, so one stand-in per IP.
    """
    out: dict[str, list[str]] = {}
    for key, decision in layer2.items():
        if decision.node != node:
            continue
        successor = next((c for c in decision.candidates if c != node and c in alive), None)
        if successor is not None:
            out.setdefault(successor, []).extend(l2_ips(decision, ingress.get(key, ())))
    return out


def holding(
    names: Iterable[str],
    before: Held,
    layer2: Mapping[str, L2Decision] | None,
    ingress: Mapping[str, Sequence[str]],
    *,
    counted: Collection[str] | None = None,
    late: Collection[str] = (),
    me: str | None = None,
    standing_in: Held | None = None,
    pending: Collection[str] = (),
    known: Held | None = None,
) -> dict[str, frozenset[str]]:
    """The held members ``names`` with the IPs each keeps: those in ``before`` (a hold already in force), else the
    IPs of the Services ``layer2`` elects to it (the decision in force as its hold began; ``ingress``: each
    Service's IPs).

    A newly held member that ``layer2`` did not count alive (``counted``: the live members it was decided for,
    None all; or no ``layer2`` at all: this member just started) is left out: fully a candidate, for one decision.
    The caller passes it in ``late`` next time, and its IPs then come from that decision by
    :func:`joined_holding` (``me``: this member; ``standing_in``: per held member, the IPs it asked ``me`` to
    stand in for); one in ``pending`` too (its share for ``me`` came in part so far: the Services of the part to
    come would look new) stays left out, and ``late``, until its share is complete. One in ``known`` (held by a
    relay, every stand-in having told ``me`` its share: the held member's IPs with a stand-in) keeps those IPs, as
    on the members that saw its hold begin.
    """
    out: dict[str, frozenset[str]] = {}
    won: dict[str, set[str]] = {}
    for name in names:
        if name in before:
            out[name] = before[name]
        elif layer2 is None or (counted is not None and name not in counted):
            continue  # left out: the caller's next decision counts it fully, and it is ``late`` then
        elif name in late:
            if known and name in known:
                out[name] = known[name]
                continue
            if name in pending:
                continue  # its share is still coming: counted fully again, and late, until it is complete
            out[name] = joined_holding(name, layer2, ingress, me, (standing_in or {}).get(name, frozenset()))
        else:
            won[name] = set()
    if won:
        for key, decision in layer2.items() if layer2 is not None else ():
            if decision.node in won:
                won[decision.node].update(ingress.get(key, ()))
        out.update((name, frozenset(ips)) for name, ips in won.items())
    return out


def joined_holding(
    name: str,
    layer2: Mapping[str, L2Decision],
    ingress: Mapping[str, Sequence[str]],
    me: str | None,
    standing_in: frozenset[str],
) -> frozenset[str]:
    """The IPs held member ``name`` keeps, for a member ``me`` that had no decision counting it alive as its hold
    began (``me`` had just started): ``layer2`` counts ``name`` fully, so it may elect to it a Service created (or
    gaining an IP) since its hold began, which the members that saw the hold begin bar it from.

    What the held member said settles the Services that ``me`` would take if it were barred (``me`` is the next
    candidate after it): its hold named ``me`` a stand-in for ``standing_in``, the IPs of exactly those of its
    Services ``me`` succeeds it in (the restarting node chose each IP's stand-in as the next candidate, see
    :func:`stand_ins`), so such a Service whose IPs are not all among them is one it never had: barred, and
    ``me`` announces it as the others expect. Named a stand-in for nothing (``standing_in`` empty), ``me`` cannot
    tell such a Service from one the held member's decision did not count ``me`` alive for, and keeps it with the
    held member: nobody answers it until the hold ends, rather than ``me`` taking it from a stand-in that
    answers for it. The other Services it wins ``me`` announces nothing of either way (another node succeeds it).
    """
    out: set[str] = set()
    for key, decision in layer2.items():
        if decision.node != name:
            continue
        ips = ingress.get(key, ())
        successor = decision.candidates[1] if len(decision.candidates) > 1 else None
        if standing_in and successor == me and not standing_in.issuperset(ips):
            continue
        out.update(ips)
    return frozenset(out)


def barred_by_holds(held: Held, candidates: Iterable[str], ingress: Sequence[str]) -> frozenset[str]:
    """The held members among ``candidates`` that are no candidates of a Service with IPs ``ingress``: those that did
    not announce all of them when their hold began. Such a Service (created, or changing hands, during the hold)
    goes to the next candidate, which announces it as usual; only the IPs a held member had keep it as owner."""
    if not held:
        return frozenset()
    return frozenset(c for c in candidates if (kept := held.get(c)) is not None and not kept.issuperset(ingress))


def _all_available(interfaces: tuple[str, ...]) -> bool:
    return True


@dataclass(frozen=True)
class Context:
    """What every Service's decision on one node depends on besides the Service itself.

    A change here re-decides every Service; a Service's own inputs (:class:`ServiceInput`) re-decide only it.
    ``interfaces``: the interfaces that exist on this node (None: every one an advertisement names);
    ``interfaces_available`` overrides it with a predicate (not compared: give a new Context when it changes).
    ``held``: the restart holds in force (:data:`Held`).
    """

    config: Config
    node: str
    nodes: tuple[Node, ...]
    live: frozenset[str] | None
    may_announce_l2: bool = True
    ignore_exclude_lb: bool = False
    interfaces: frozenset[str] | None = None
    interfaces_available: Callable[[tuple[str, ...]], bool] | None = field(default=None, compare=False)
    held: Held = field(default_factory=dict, hash=False)

    @cached_property
    def me(self) -> Node | None:
        """This node's Node object, if the cluster has one."""
        return next((n for n in self.nodes if n.name == self.node), None)

    @cached_property
    def live_names(self) -> list[str]:
        return [n.name for n in self.nodes] if self.live is None else sorted(self.live)

    @cached_property
    def peers(self) -> tuple[Peer, ...]:
        return peers_for_node(self.config, self.me or Node(self.node))

    def available(self, interfaces: tuple[str, ...]) -> bool:
        """Whether some of ``interfaces`` exists here (() means all, always available)."""
        if self.interfaces_available is not None:
            return self.interfaces_available(interfaces)
        return self.interfaces is None or not interfaces or not self.interfaces.isdisjoint(interfaces)


@dataclass(frozen=True)
class ServiceDecision:
    """One Service's part of a node's decision (:func:`decide_service`)."""

    l2: L2Decision  # its election (kept by a NodeDecider while only the candidates after the winner change)
    ingress: tuple[str, ...]
    l2_interfaces: tuple[str, ...] | None = None  # announced over Layer 2 from this node on these (() all)
    failed: bool = False  # elected here, but none of its interfaces exists on this node
    bgp_reason: str | None = NO_IP_ALLOCATED  # None: announced over BGP
    bgp_ads: tuple[Advertisement, ...] = ()

    @property
    def l2_ips(self) -> tuple[str, ...]:
        """The IPs announced over Layer 2 when elected here: all but a held member's (:func:`keeping`)."""
        return l2_ips(self.l2, self.ingress)


def elect_one(
    item: ServiceInput,
    nodes: Sequence[Node],
    live_names: Collection[str],
    *,
    ignore_exclude_lb: bool = False,
    held: Held | None = None,
) -> L2Decision:
    """The L2 election of one Service; IPs that no pool contains are not announced (``ipNotAllowed``). A held
    member is a candidate only if it announced all the Service's IPs when its hold began (:func:`barred_by_holds`).
    """
    if item.pool is None and item.service.ingress:
        return L2Decision(None, IP_NOT_ALLOWED)
    svc, pool = item.service, item.pool
    decision = elect(svc, pool, nodes, live_names, item.slices, ignore_exclude_lb=ignore_exclude_lb)
    barred = barred_by_holds(held or {}, decision.candidates, svc.ingress)
    if not barred:
        return decision
    without = elect_without(decision, barred, svc, pool, {n.name: n for n in nodes})
    if without is None:
        live = [name for name in live_names if name not in barred]
        without = elect(svc, pool, nodes, live, item.slices, ignore_exclude_lb=ignore_exclude_lb)
    return keeping(without, decision.node, held or {}, svc.ingress) if decision.node in barred else without


def keeping(decision: L2Decision, winner: str | None, held: Held, ingress: Sequence[str]) -> L2Decision:
    """``decision`` made without the held members barred from a Service (:func:`barred_by_holds`), where ``winner``
    won it before they were barred: if ``winner`` is one of them, it keeps the Service's IPs it had as its hold
    began (``L2Decision.kept``) and ``decision``'s winner announces only the others.

    Why: a Service that gains an IP during the hold (a second family) is barred to its held owner, whose stand-in
    still answers the IP it had with its MAC, and the node keeps forwarding its traffic: moving that IP too would
    reset its connections (twice: to the next node, and back when the owner returns), for nothing. Only the new
    IP, which has no traffic yet, goes to the next node; when the hold ends the Service is elected as a whole
    again, as MetalLB elects it (one node per Service), and its owner takes the new IP back by the usual hand-over.
    """
    kept = held.get(winner) if winner is not None else None
    ips = tuple(ip for ip in ingress if ip in kept) if kept else ()
    if not ips:
        return decision
    return replace(decision, kept=ips, kept_by=winner)


def l2_ips(decision: L2Decision, ingress: Sequence[str]) -> tuple[str, ...]:
    """The IPs of a Service with IPs ``ingress`` that its elected node announces: all but a held member's
    (:func:`keeping`)."""
    if not decision.kept:
        return tuple(ingress)
    return tuple(ip for ip in ingress if ip not in decision.kept)


def decide_service(ctx: Context, item: ServiceInput, l2: L2Decision | None = None) -> ServiceDecision:
    """One Service's decision on ``ctx.node``: its election, whether and where it is announced over L2, over BGP.

    ``l2``: its election when already computed (the same on every node). The one per-Service decision that
    :func:`decide_node` and the speaker's incremental :class:`NodeDecider` both use.
    """
    if l2 is None:
        l2 = elect_one(item, ctx.nodes, ctx.live_names, ignore_exclude_lb=ctx.ignore_exclude_lb, held=ctx.held)
    svc = item.service
    interfaces, failed = _l2_part(ctx, l2)
    me = ctx.me
    reason = should_announce(
        svc, item.pool, item.slices, me or Node(ctx.node), ignore_exclude_lb=ctx.ignore_exclude_lb,
        node_known=me is not None,
    )  # fmt: skip
    ads: tuple[Advertisement, ...] = ()
    if reason is None and item.pool is not None:
        ads = advertisements(svc, item.pool, me or Node(ctx.node), item.slices)
    return ServiceDecision(l2, svc.ingress, interfaces, failed, reason, ads)


def _l2_part(ctx: Context, l2: L2Decision) -> tuple[tuple[str, ...] | None, bool]:
    """:func:`decide_service`'s Layer 2 part: the interfaces this node announces on (None: not announced) and
    whether it won without any of them here. The rest of a Service's decision does not depend on the election."""
    if l2.node == ctx.node and ctx.may_announce_l2:
        if ctx.available(l2.interfaces):
            return l2.interfaces, False
        return None, True
    return None, False


def same_winner(a: L2Decision, b: L2Decision) -> bool:
    """Whether :func:`decide_service` gives the same result for both elections (other inputs equal): only the
    winner and its interfaces count, not the candidates after it."""
    return a.node == b.node and a.interfaces == b.interfaces and a.kept == b.kept


def _merge_interfaces(contributions: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    """The interfaces one IP is answered on when several Services share it: all if one says all, else the union."""
    union: set[str] = set()
    for ifs in contributions:
        if not ifs:
            return ()
        union.update(ifs)
    return tuple(sorted(union))


class NodeDecider:
    """A node's decision kept up to date Service by Service: the speaker's incremental form of :func:`decide_node`.

    :meth:`put` / :meth:`remove` a Service's inputs, :meth:`set_context` when what every Service depends on
    changes; both only mark Services stale. :meth:`step` re-decides up to ``limit`` stale Services with
    :func:`decide_service` and folds each change into the merged tables (an IP shared by Services, a prefix
    shared by Services: BGP routes per peer and each Service's peers), so a change costs its own Services, not
    all of them. :meth:`decision` is what :func:`decide_node` returns for the same inputs once nothing is stale.
    Pure: no I/O, no clock.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._inputs: dict[str, ServiceInput] = {}
        self._given_l2: dict[str, L2Decision] = {}
        self._decided: dict[str, ServiceDecision] = {}
        self._stale: dict[str, None] = {}  # an ordered set
        self._l2_only: set[str] = set()  # stale Services whose only change is their given election
        self.urgent = 0  # Services at the head of _stale to decide before a partial decision (see set_context)
        self._layer2: dict[str, L2Decision] = {}
        self._l2_status: dict[str, tuple[str, ...]] = {}
        self._failed: dict[str, tuple[str, ...]] = {}
        self._by_ip: dict[str, dict[str, tuple[str, ...]]] = {}  # ip -> service key -> interfaces
        self._announce: dict[str, tuple[str, ...]] = {}
        self._reasons: dict[str, str | None] = {}
        self._by_service: dict[str, tuple[Advertisement, ...]] = {}
        self._by_prefix: dict[Network, dict[tuple[str, int], Advertisement]] = {}
        self._carried: dict[Network, frozenset[str]] = {}  # prefix -> the peers that get it
        self._prefix_dirty: set[Network] = set()
        self._added: dict[Network, list[Advertisement]] = {}  # dirty prefixes that only gained advertisements
        self._status_dirty: set[str] = set()
        self._routes: dict[str, dict[Network, Attributes]] = {p.name: {} for p in ctx.peers}
        self._bgp_status: dict[str, tuple[str, ...]] = {}
        self._series: set[Series] = set()

    # ------------------------------------------------------------------ inputs
    def set_context(self, ctx: Context) -> bool:
        """Use ``ctx`` from now on; True (every Service stale) if it differs from the one in use.

        When the only change is that speakers died, the Services elected to a dead speaker are decided first
        (:attr:`urgent` of them): every other winner is still alive and still wins (the election is per IP and
        deterministic), so once those are decided, :meth:`decision` with ``complete=False`` already announces
        what the full pass will, and the failover need not wait for the other Services' new candidate lists.
        When only the live speakers changed and every Service's election is given (:class:`ClusterDecision`),
        nothing here depends on them: nothing is stale (the caller puts the elections that changed).
        """
        if ctx == self.ctx:
            self.ctx = ctx  # an equal one: keep its cached properties' source current
            return False
        old = self.ctx
        if replace(old, live=ctx.live, held=ctx.held) == ctx and self._given_l2.keys() >= self._inputs.keys():
            self.ctx = ctx
            self.urgent = 0
            return False
        urgent: list[str] = []
        if _only_deaths(old, ctx):
            dead = old.live - ctx.live  # type: ignore[operator]
            urgent = [key for key, d in self._decided.items() if d.l2.node in dead and key in self._inputs]
        self.urgent = len(urgent)
        peers_changed = ctx.peers != old.peers
        self.ctx = ctx
        if peers_changed:
            self._routes = {p.name: {} for p in ctx.peers}
            self._carried.clear()
            self._added.clear()
            self._prefix_dirty.update(self._by_prefix)
            self._status_dirty.update(self._by_service)
        self._stale.update(dict.fromkeys(self._inputs))  # keeping the removals not yet folded in
        self._l2_only.clear()
        if urgent:
            self._stale = {**dict.fromkeys(urgent), **self._stale}
        return True

    def put(self, key: str, item: ServiceInput, l2: L2Decision | None = None) -> None:
        """A Service's inputs (``l2``: its election when already computed); it is decided at the next step.

        The same ``item`` (the very object) with only another given election is decided cheaply when the winner
        and its interfaces stand (only the candidates changed, as when a losing candidate dies).
        """
        l2_only = (
            l2 is not None and self._inputs.get(key) is item and key in self._given_l2
            and (key not in self._stale or key in self._l2_only)
        )  # fmt: skip
        if l2_only and l2 is not None and key not in self._stale:
            decided = self._decided.get(key)
            if decided is not None and same_winner(decided.l2, l2):
                self._given_l2[key] = self._layer2[key] = l2  # decided as it stands: only the candidates differ
                return
        self._inputs[key] = item
        if l2 is None:
            self._given_l2.pop(key, None)
        else:
            self._given_l2[key] = l2
        self._stale[key] = None
        if l2_only:
            self._l2_only.add(key)
        else:
            self._l2_only.discard(key)

    def remove(self, key: str) -> None:
        """A Service is gone (or no longer one this node decides for)."""
        if self._inputs.pop(key, None) is None:
            return
        self._given_l2.pop(key, None)
        self._stale[key] = None
        self._l2_only.discard(key)

    @property
    def pending(self) -> int:
        """Services still to be decided."""
        return len(self._stale)

    def keys(self) -> Iterable[str]:
        return self._inputs.keys()

    # ------------------------------------------------------------------ deciding
    def step(self, limit: int | None = None) -> int:
        """Decide up to ``limit`` stale Services (all: None); returns how many are still stale."""
        batch = list(self._stale if limit is None else islice(self._stale, limit))
        for key in batch:
            del self._stale[key]
            item = self._inputs.get(key)
            old = self._decided.get(key)
            given = self._given_l2.get(key)
            if key in self._l2_only:
                self._l2_only.discard(key)
                if old is not None and given is not None:
                    if same_winner(old.l2, given):
                        # Nothing merged changes, only the election's candidates after the winner (the decision
                        # keeps its earlier election, which has the same winner: the node's are ``_layer2``).
                        self._layer2[key] = given
                        continue
                    # Another winner (a take-over): only the Layer 2 part is decided again, the BGP part stands.
                    interfaces, failed = _l2_part(self.ctx, given)
                    taken = ServiceDecision(given, old.ingress, interfaces, failed, old.bgp_reason, old.bgp_ads)
                    self._fold(key, old, taken)
                    continue
            new = None if item is None else decide_service(self.ctx, item, given)
            self._fold(key, old, new)
        self._flush_bgp()
        return len(self._stale)

    def decision(self, *, complete: bool = True) -> NodeDecision:
        """The node's decision from every Service's latest inputs (deciding what is still stale first, unless
        ``complete`` is false: then the Services not decided yet keep their previous decision)."""
        if complete:
            self.step()
        ctx = self.ctx
        plan = NodePlan(
            ctx.node, ctx.peers, dict(self._reasons), dict(self._by_service),
            {name: dict(table) for name, table in self._routes.items()},
        )  # fmt: skip
        announcement = Announcement(dict(self._announce), plan, ctx.config.bfd_profiles, frozenset(self._series))
        return NodeDecision(
            dict(self._layer2), plan, announcement, dict(self._l2_status), dict(self._bgp_status), dict(self._failed)
        )

    # ------------------------------------------------------------------ folding one change in
    def _fold(self, key: str, old: ServiceDecision | None, new: ServiceDecision | None) -> None:
        if old == new:
            if new is not None:
                self._layer2[key] = new.l2  # ``old`` may hold an earlier election than ``_layer2`` (step)
            return
        if new is None:
            self._decided.pop(key, None)
            self._layer2.pop(key, None)
            self._reasons.pop(key, None)
        else:
            self._decided[key] = new
            self._layer2[key] = new.l2
            self._reasons[key] = new.bgp_reason
        self._fold_l2(key, old, new)
        self._fold_bgp(key, old, new)
        if old is not None and new is not None and _series_key(old) == _series_key(new):
            return  # the same metric series (only where, or which election)
        node = self.ctx.node
        if old is not None:
            self._series.difference_update(_series_of(node, key, old))
        if new is not None:
            self._series.update(_series_of(node, key, new))

    def _fold_l2(self, key: str, old: ServiceDecision | None, new: ServiceDecision | None) -> None:
        before = old.l2_interfaces if old is not None else None
        after = new.l2_interfaces if new is not None else None
        if after is None:
            self._l2_status.pop(key, None)
        else:
            self._l2_status[key] = after
        if new is not None and new.failed:
            self._failed[key] = new.l2_ips
        else:
            self._failed.pop(key, None)
        if before == after and (old.l2_ips if old else ()) == (new.l2_ips if new else ()):
            return
        touched: set[str] = set()
        if old is not None and before is not None:
            for ip in old.l2_ips:
                self._by_ip.get(ip, {}).pop(key, None)
                touched.add(ip)
        if new is not None and after is not None:
            for ip in new.l2_ips:
                self._by_ip.setdefault(ip, {})[key] = after
                touched.add(ip)
        for ip in touched:
            holders = self._by_ip.get(ip)
            if holders:
                self._announce[ip] = _merge_interfaces(holders.values())
            else:
                self._by_ip.pop(ip, None)
                self._announce.pop(ip, None)

    def _fold_bgp(self, key: str, old: ServiceDecision | None, new: ServiceDecision | None) -> None:
        before = old.bgp_ads if old is not None and old.bgp_reason is None else None
        after = new.bgp_ads if new is not None and new.bgp_reason is None else None
        if before == after:
            return
        if after is None:
            self._by_service.pop(key, None)
        else:
            self._by_service[key] = after
        self._status_dirty.add(key)
        for i, ad in enumerate(before or ()):
            self._by_prefix.get(ad.prefix, {}).pop((key, i), None)
            self._added.pop(ad.prefix, None)  # a removal: that prefix is merged again from all its Services
            self._prefix_dirty.add(ad.prefix)
        for i, ad in enumerate(after or ()):
            self._by_prefix.setdefault(ad.prefix, {})[(key, i)] = ad
            if ad.prefix not in self._prefix_dirty or ad.prefix in self._added:
                self._added.setdefault(ad.prefix, []).append(ad)  # only additions so far: merged onto the route
            self._prefix_dirty.add(ad.prefix)

    def _flush_bgp(self) -> None:
        """Merge the prefixes that changed (each once) and refresh the peers of the Services they concern."""
        for prefix in self._prefix_dirty:
            ads = self._by_prefix.get(prefix)
            added = self._added.get(prefix)
            carried = self._merge_prefix(prefix, added, ads or {})
            if carried != self._carried.get(prefix, frozenset()):
                if carried:
                    self._carried[prefix] = carried
                else:
                    self._carried.pop(prefix, None)
                self._status_dirty.update(k for k, _ in ads or {})  # every Service announcing it
            if not ads:
                self._by_prefix.pop(prefix, None)
        self._prefix_dirty.clear()
        self._added.clear()
        for key in self._status_dirty:
            self._update_bgp_status(key)
        self._status_dirty.clear()

    def _merge_prefix(
        self, prefix: Network, added: list[Advertisement] | None, ads: Mapping[tuple[str, int], Advertisement]
    ) -> frozenset[str]:
        """Each peer's route for ``prefix``: its Services' advertisements for that peer, merged (with ``added``
        only, those merged onto the current route). Returns the peers that get it."""
        carried: set[str] = set()
        for peer in self.ctx.peers:
            table = self._routes[peer.name]
            merged: Attributes | None = table.get(prefix) if added is not None else None
            if peer_carries(peer, prefix):
                for ad in ads.values() if added is None else added:
                    if ad.matches_peer(peer.name):
                        merged = ad.attributes if merged is None else merged.merge(ad.attributes)
            if merged is None:
                table.pop(prefix, None)
            else:
                table[prefix] = merged
                carried.add(peer.name)
        return frozenset(carried)

    def _update_bgp_status(self, key: str) -> None:
        ads = self._by_service.get(key)
        peers: set[str] = set()
        for ad in ads or ():
            peers.update(self._carried.get(ad.prefix, ()))
        if peers:
            self._bgp_status[key] = tuple(sorted(peers))
        else:
            self._bgp_status.pop(key, None)


def _only_deaths(old: Context, new: Context) -> bool:
    """Whether ``new`` is ``old`` with fewer live speakers and nothing else (the holds of the dead ones ended)."""
    if old.live is None or new.live is None or not new.live < old.live:
        return False
    return replace(old, live=new.live, held=new.held) == new and dict(new.held) == {
        name: ips for name, ips in old.held.items() if name in new.live
    }


def _series_key(decision: ServiceDecision) -> tuple[tuple[str, ...], tuple[str, ...], bool, bool]:
    """What a Service's ``metallb_speaker_announced`` series depend on."""
    return decision.ingress, decision.l2.kept, decision.l2_interfaces is not None, decision.bgp_reason is None


def _series_of(node: str, key: str, decision: ServiceDecision) -> frozenset[Series]:
    l2, bgp = decision.l2_interfaces is not None, decision.bgp_reason is None
    if not decision.l2.kept or not l2:
        return announced_series(node, [(key, decision.ingress, l2, bgp)])
    return announced_series(node, [(key, decision.l2_ips, True, False), (key, decision.ingress, False, bgp)])


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
    held: Held | None = None,
) -> NodeDecision:
    """Elect and plan for ``services`` (LoadBalancer Services of this speaker's class, keyed ``ns/name``).

    ``live``: the live speakers (None: every Node, as MetalLB without memberlist). ``may_announce_l2`` false
    (no membership quorum yet, or lost) keeps the election results but announces nothing over Layer 2. A won
    Service whose advertisements name interfaces of which none exists here is not announced (``announce_failed``).
    ``layer2``: the election of :func:`elect_all` when already computed (it is the same for every node). A node
    without a Node object still runs its BGP sessions, without labels, but announces nothing (``notOwner``).
    Each Service is decided by :func:`decide_service` and merged by :class:`NodeDecider`, as the speaker does.
    ``held``: the restart holds in force (:data:`Held`).
    """
    ctx = Context(
        config, node, tuple(nodes), None if live is None else frozenset(live), may_announce_l2, ignore_exclude_lb,
        interfaces_available=interfaces_available, held=dict(held or {}),
    )  # fmt: skip
    return _decider(ctx, services, layer2).decision()


def _decider(
    ctx: Context, services: Mapping[str, ServiceInput], layer2: Mapping[str, L2Decision] | None
) -> NodeDecider:
    """Every Service put into a new decider: the start of :func:`decide_node` and of each speaker's in
    :class:`ClusterDecision`."""
    decider = NodeDecider(ctx)
    for key, item in services.items():
        decider.put(key, item, None if layer2 is None else layer2[key])
    return decider


class ClusterDecision:
    """The election of every Service and each speaker's :func:`decide_node`, each speaker decided when first asked.

    ``ironlb run`` announces on its own part (:meth:`node`) before it decides the other speakers (:meth:`nodes`),
    which only its status shows; ``ironlb plan`` and ``ironlb explain`` ask for all of them. BGP speakers do not
    coordinate, so every speaker plans its own sessions whatever ``live`` says (None: every Node is live). Speakers
    in ``without_l2`` (no membership quorum) announce nothing over Layer 2. ``speakers`` defaults to every Node.
    ``layer2``: the elections for these very inputs and ``live``, when already computed. ``held``: the restart
    holds in force (:data:`Held`): a held speaker wins only the IPs it had when its hold began. ``late``: held
    speakers not in ``held``, counted fully because no earlier decision counted them alive (:func:`holding`); the
    next :meth:`with_live` gives them their IPs.

    A membership change is :meth:`with_live`: the same decision for other live speakers, computed from this one
    (the elections the change can affect, and each speaker's decision Service by Service, :class:`NodeDecider`).
    """

    def __init__(
        self,
        config: Config,
        nodes: Sequence[Node],
        services: Mapping[str, ServiceInput],
        *,
        live: Collection[str] | None = None,
        speakers: Iterable[str] | None = None,
        without_l2: Collection[str] = (),
        ignore_exclude_lb: bool = False,
        layer2: Mapping[str, L2Decision] | None = None,
        held: Held | None = None,
        late: Collection[str] = (),
    ) -> None:
        self.config = config
        self.node_objects = tuple(nodes)
        self.services = services
        self.live = live
        self.speakers = [n.name for n in self.node_objects] if speakers is None else list(speakers)
        self.without_l2 = without_l2
        self.ignore_exclude_lb = ignore_exclude_lb
        self.held: dict[str, frozenset[str]] = dict(held or {})
        self.late = frozenset(late)
        self._layer2: Mapping[str, L2Decision] = (
            elect_all(self.node_objects, services, live=live, ignore_exclude_lb=ignore_exclude_lb, held=self.held)
            if layer2 is None else layer2
        )  # fmt: skip
        # After deaths (with_live): the Services whose winner stands, with the dead among their candidates still
        # (``_layer2`` has the previous election), completed by :meth:`_complete` when first asked.
        self._rest: list[str] = []
        self._gone: frozenset[str] = frozenset()
        self._decided: dict[str, NodeDecision] = {}
        self._deciders: dict[str, NodeDecider] = {}  # each speaker's, until handed to the next (with_live)
        self._behind: dict[str, NodeDecider] = {}  # handed over by the previous one: ``_changed`` not put yet
        self._changed: list[str] = []  # the Services whose election differs from the previous one's

    def _context(self, name: str) -> Context:
        live = None if self.live is None else frozenset(self.live)
        return Context(
            self.config, name, self.node_objects, live, name not in self.without_l2, self.ignore_exclude_lb,
            interfaces_available=_all_available, held=self.held,
        )  # fmt: skip

    @property
    def layer2(self) -> Mapping[str, L2Decision]:
        """Every Service's election."""
        if self._rest:
            self._complete()
        return self._layer2

    def winners(self) -> Mapping[str, L2Decision]:
        """Every Service's election as far as its winner and that winner's interfaces go: after deaths
        (:meth:`with_live`), before the rest is complete, an election whose winner stands still lists the dead
        among its candidates."""
        return self._layer2

    def node(self, name: str, *, early: bool = False) -> NodeDecision:
        """Speaker ``name``'s decision (what :func:`decide_node` returns for it).

        ``early``: as soon as the winners are known (:meth:`winners`), for a take-over: the same announcement,
        BGP plan and statuses, but the elections of the Services whose winner stands may still list the dead
        among their candidates (not kept: asked again, the decision is complete)."""
        if early and self._rest:
            return self._decider(name).decision()
        decided = self._decided.get(name)
        if decided is None:
            if self._rest:
                self._complete()
            decided = self._decided[name] = self._decider(name).decision()
        return decided

    def _complete(self) -> None:
        """The elections whose winner stood after deaths, without the dead (:func:`elect_without`), into every
        decider already handed over; the decisions given so far were early ones."""
        rest, self._rest = self._rest, []
        layer2 = dict(self._layer2)
        by_name = {n.name: n for n in self.node_objects}
        live_names = sorted(self.live or ())
        for key in rest:
            item = self.services[key]
            new = elect_without(layer2[key], self._gone, item.service, item.pool, by_name)
            if new is None:
                new = elect_one(item, self.node_objects, live_names, ignore_exclude_lb=self.ignore_exclude_lb,
                                held=self.held)  # fmt: skip
            layer2[key] = new
        self._layer2 = layer2
        self._changed.extend(rest)  # for the deciders not caught up yet
        for decider in self._deciders.values():
            for key in rest:
                decider.put(key, self.services[key], layer2[key])
        self._decided.clear()

    def _decider(self, name: str) -> NodeDecider:
        """Speaker ``name``'s decider, up to date with this decision's inputs."""
        decider = self._deciders.get(name)
        if decider is None:
            decider = self._behind.pop(name, None)
            if decider is None:
                decider = _decider(self._context(name), self.services, self._layer2)
            else:
                decider.set_context(self._context(name))
                for key in self._changed:
                    decider.put(key, self.services[key], self._layer2[key])
            self._deciders[name] = decider
        return decider

    def holding(
        self,
        names: Iterable[str],
        *,
        me: str | None = None,
        standing_in: Held | None = None,
        pending: Collection[str] = (),
        known: Held | None = None,
    ) -> dict[str, frozenset[str]]:
        """The held speakers ``names`` with the IPs each keeps: as in this decision if it held them already, else
        the IPs this decision elects them (:func:`holding`: one it did not count alive is left out, one in
        ``late`` is given them by :func:`joined_holding`, as seen by ``me`` with ``standing_in``, once not
        ``pending``)."""
        names = list(names)
        if not names:
            return {}
        ingress = {key: item.service.ingress for key, item in self.services.items()}
        return holding(
            names, self.held, self.layer2, ingress, counted=self.live, late=self.late, me=me, standing_in=standing_in,
            pending=pending, known=known,
        )  # fmt: skip

    def with_live(
        self,
        live: Collection[str],
        *,
        without_l2: Collection[str] = (),
        held: Collection[str] = (),
        me: str | None = None,
        standing_in: Held | None = None,
        pending: Collection[str] = (),
        known: Held | None = None,
    ) -> ClusterDecision:
        """This cluster with ``live`` speakers (and ``without_l2``, and ``held`` speakers among them, each keeping
        what :meth:`holding` gives, ``me``, ``standing_in``, ``pending`` and ``known`` as there): equal to a new
        ClusterDecision given them (and the held speakers left out as ``late``).

        After deaths and new holds, an election changes only where a dead or newly held speaker was a candidate,
        and is recomputed from the surviving candidates (:func:`ironlb.layer2.election.elect_without`); when
        speakers come back (holds unchanged), each is put in its place among a Service's candidates if it is one
        (:func:`ironlb.layer2.election.elect_with`): the winner changes only where a newcomer lands first. An
        election without a winner is computed again; when a hold ends, or begins as a speaker comes back, every
        Service is; a hold that ends with its member's death elects again the Services that member kept an IP of
        (:func:`keeping`). The speakers this one decided hand their :class:`NodeDecider` over, which decides again only
        the Services whose election changed (cheaply when the winner stands), so the next :meth:`node` costs the
        change, not every Service. This one keeps the decisions it gave; asked for another speaker, it decides it
        from scratch.
        """
        by_name = {n.name: n for n in self.node_objects}
        before = frozenset(by_name) if self.live is None else frozenset(self.live) & by_name.keys()
        after = frozenset(live) & by_name.keys()
        gone, came = before - after, after - before
        live_set = frozenset(live)
        held_live = [name for name in held if name in live_set]
        kept = self.holding(held_live, me=me, standing_in=standing_in, pending=pending, known=known)
        lifted = any(name in after and kept.get(name) != ips for name, ips in self.held.items())
        newly = {name: ips for name, ips in kept.items() if name not in self.held}
        rest: list[str] = []  # deaths alone: the elections whose winner stands, completed later (_complete)
        if lifted or (came and (newly or not came.isdisjoint(kept))):
            fresh = elect_all(
                self.node_objects, self.services, live=live, ignore_exclude_lb=self.ignore_exclude_lb, held=kept
            )  # fmt: skip
            layer2 = {key: old if fresh[key] == old else fresh[key] for key, old in self.layer2.items()}
        elif gone and not newly and not came:
            # Deaths alone: first the elections whose winner died (or that had none); those whose winner stands
            # keep it, and lose their dead candidates when the decision is completed (after the announcement).
            layer2 = {}
            live_names = sorted(live)
            for key, old in self.layer2.items():
                if old.node is not None and old.node not in gone:
                    layer2[key] = old
                    if not gone.isdisjoint(old.candidates):
                        rest.append(key)
                    continue
                item = self.services[key]
                elected = elect_without(old, gone, item.service, item.pool, by_name)
                if elected is None:
                    elected = elect_one(item, self.node_objects, live_names, ignore_exclude_lb=self.ignore_exclude_lb,
                                    held=kept)  # fmt: skip
                    if elected == old:
                        elected = old
                layer2[key] = elected
        elif gone or newly or came:
            layer2 = {}
            live_names = sorted(live)
            exclude = self.ignore_exclude_lb
            for key, old in self.layer2.items():
                item = self.services[key]
                barred = gone | barred_by_holds(newly, old.candidates, item.service.ingress)
                new: L2Decision | None = old
                if barred:  # else no candidate gone: the same election (a Service without one has no candidate)
                    new = elect_without(old, barred, item.service, item.pool, by_name)
                    if new is not None and old.node in barred and old.node in newly:
                        new = keeping(new, old.node, newly, item.service.ingress)
                if came and new is not None:
                    new = elect_with(
                        new, came, item.service, item.pool, item.slices, by_name, ignore_exclude_lb=exclude
                    )
                if new is None:
                    new = elect_one(item, self.node_objects, live_names, ignore_exclude_lb=exclude, held=kept)
                    if new == old:
                        new = old
                layer2[key] = new
        else:
            layer2 = dict(self.layer2)
        ended = self.held.keys() - kept.keys()
        if ended and not lifted:  # a hold ended with its member's death: what it kept goes with the rest
            for key, old in layer2.items():
                if old.kept_by in ended:
                    item = self.services[key]
                    layer2[key] = elect_one(item, self.node_objects, sorted(live),
                                            ignore_exclude_lb=self.ignore_exclude_lb, held=kept)  # fmt: skip
        out = ClusterDecision(
            self.config, self.node_objects, self.services, live=live, speakers=self.speakers, without_l2=without_l2,
            ignore_exclude_lb=self.ignore_exclude_lb, layer2=layer2, held=kept,
            late=[name for name in held_live if name not in kept],
        )  # fmt: skip
        out._changed = [key for key, new in layer2.items() if new is not self._layer2[key]]
        out._rest, out._gone = rest, gone
        for name in list(self._behind):
            self._decider(name)  # catch up first: out's changes are relative to this one
        out._behind, self._deciders = self._deciders, {}
        return out

    def nodes(self) -> dict[str, NodeDecision]:
        """Every speaker's decision, in ``speakers`` order."""
        return {name: self.node(name) for name in self.speakers}

    def with_reasons(self) -> dict[str, L2Decision]:
        """Each election with every speaker's part (:func:`ironlb.layer2.election.node_reason`), for ``nodeReasons``.

        A held speaker that would be a candidate but for its hold (:func:`barred_by_holds`) says so: ``notOwner``,
        detail ``restarting``."""
        live = [n.name for n in self.node_objects] if self.live is None else self.live
        out = {
            key: with_node_reasons(self.layer2[key], self.speakers, item.service, item.pool, self.node_objects, live,
                                   item.slices, ignore_exclude_lb=self.ignore_exclude_lb)
            for key, item in self.services.items()
        }  # fmt: skip
        for key, decision in out.items():
            barred = barred_by_holds(self.held, self.held, self.services[key].service.ingress)
            if barred:
                out[key] = replace(decision, nodes=tuple(
                    NodeReason(r.node, NOT_OWNER, RESTARTING) if r.node in barred and r.reason == NOT_OWNER
                    and r.detail is None else r
                    for r in decision.nodes
                ))  # fmt: skip
        return out


__all__ = [
    "BGP",
    "IP_NOT_ALLOWED",
    "LAYER2",
    "Announcement",
    "ClusterDecision",
    "Context",
    "Held",
    "NodeDecider",
    "NodeDecision",
    "Series",
    "ServiceDecision",
    "ServiceInput",
    "announced_series",
    "barred_by_holds",
    "bgp_peers_of",
    "decide_node",
    "decide_service",
    "elect_all",
    "elect_one",
    "handed_over",
    "holding",
    "keeping",
    "l2_ips",
    "pool_for",
    "served_everywhere",
    "service_inputs",
]
