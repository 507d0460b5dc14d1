"""The explanation of every LoadBalancer Service, computed from a :class:`View` (pure: no I/O, no clock).

Everything decided here is decided by the functions the processes run, never by a copy: the allocation and its
events by the controller's schedule (:func:`ironlb.plan.allocate`, i.e. :func:`ironlb.ipam.reprocess.converge_all`),
the layer 2 election and every node's BGP plan by :class:`ironlb.decide.ClusterDecision`, a node's reason not to be
a layer 2 candidate by :func:`ironlb.layer2.election.candidate_reason` (the filters of the election itself).
What was observed (Service status, ServiceL2Status / ServiceBGPStatus, events, ConfigurationStates, the members'
views) is set beside what these functions compute, and any disagreement is listed under ``problems``.

The shells fill the :class:`View`: from a cluster (``observed`` ingress, the controller's) or from ``ironlb run``'s
state directory and status files (``allocate``: every node computes the allocation from the files itself).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ironlb.cluster.annotations import ADDRESS_POOL, LOAD_BALANCER_IPS, PREFIX
from ironlb.cluster.objects import EndpointSlice, Namespace, Node, Service
from ironlb.cluster.reasons import NOT_OWNER, SPEAKER_NOT_LIVE
from ironlb.config import build
from ironlb.config.errors import ConfigError
from ironlb.config.loader import Resources
from ironlb.config.types import Config, Pool
from ironlb.decide import (
    ClusterDecision,
    NodeDecision,
    bgp_peers_of,
    pool_for,
    served_everywhere,
    service_inputs,
)
from ironlb.ipam.converge import WARNING, annotation
from ironlb.ipam.reprocess import Outcome, pool_status
from ironlb.layer2.election import L2Decision, ads_for_service, candidate_reason, nodes_with_serving_endpoint
from ironlb.plan import Snapshot, allocate

LAYER2 = "layer2"
BGP = "bgp"

# What each reason means, for people (the JSON keeps MetalLB's reason strings).
REASON_TEXT = {
    "notLoadBalancer": "not a LoadBalancer Service",
    "noIPAllocated": "the Service has no IP",
    "ipNotAllowed": "its IPs are in no IPAddressPool",
    "notOwner": "not elected",
    "noMatchingAdvertisement": "no advertisement of its pool selects this node (nodeSelectors) or the Service",
    "sharedIPWithServiceSelector": "a shared IP cannot use L2Advertisements with serviceSelectors",
    "conflictingAdvertisements": "two of its BGPAdvertisements on this node may give one prefix different localPrefs",
    "nodeNetworkUnavailable": "the node's NetworkUnavailable condition is True",
    "nodeLabeledExcludeBalancers": "the node has the label node.kubernetes.io/exclude-from-external-load-balancers",
    "noLocalEndpoints": "externalTrafficPolicy Local and no ready endpoint on this node",
    "noEndpoints": "the Service has no ready endpoint",
    SPEAKER_NOT_LIVE: "no live speaker on this node",
}


@dataclass(frozen=True)
class EventRecord:
    """One Kubernetes Event of a Service (or one event of the modelled controller in standalone mode)."""

    type: str
    reason: str
    message: str
    count: int = 1
    last: str = ""  # RFC 3339, "" when unknown
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "reason": self.reason, "message": self.message}
        if self.count != 1:
            out["count"] = self.count
        if self.last:
            out["last"] = self.last
        if self.source:
            out["source"] = self.source
        return out


@dataclass(frozen=True)
class Announced:
    """An observed announcement: ServiceL2Status (``detail``: interfaces) or ServiceBGPStatus (``detail``: peers)."""

    node: str
    protocol: str  # LAYER2 or BGP
    detail: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComponentState:
    """A ConfigurationState (``controller``, ``speaker-<node>``) or an ``ironlb run`` node's ``config``."""

    name: str
    valid: bool | None  # None: the component reported nothing yet
    error: str = ""


@dataclass(frozen=True)
class MemberView:
    """What one speaker's membership sees: the live members and whether it has quorum (None: unknown)."""

    node: str
    alive: tuple[str, ...]
    quorum: bool | None = None


@dataclass(frozen=True)
class View:
    """The snapshot an explanation is computed from.

    ``config``: the configuration in force (None: none valid). ``services``: as observed (their status ingress is
    what the controller wrote), or, with ``allocate``, as written in the state directory (each node allocates).
    ``speakers``: nodes where a speaker runs (None: every Node); ``live``: the members a speaker's membership sees
    alive (None: the speakers); ``no_quorum``: speakers that lost quorum (they announce nothing over layer 2).
    """

    config: Config | None
    services: tuple[Service, ...] = ()
    nodes: tuple[Node, ...] = ()
    endpoint_slices: tuple[EndpointSlice, ...] = ()
    namespaces: tuple[Namespace, ...] = ()
    allocate: bool = False
    served_without_slices: bool = False
    speakers: tuple[str, ...] | None = None
    live: tuple[str, ...] | None = None
    no_quorum: tuple[str, ...] = ()
    announced: Mapping[str, tuple[Announced, ...]] = field(default_factory=dict)
    announcements_known: bool = False  # ``announced`` was read (so a Service missing from it is announced by nobody)
    events: Mapping[str, tuple[EventRecord, ...]] = field(default_factory=dict)
    components: tuple[ComponentState, ...] = ()
    members: tuple[MemberView, ...] = ()
    pools: Mapping[str, Mapping[str, int]] | None = None  # observed IPAddressPool status counters
    lb_class: str = ""
    ignore_exclude_lb: bool = False


@dataclass(frozen=True)
class _Computed:
    """What the processes' own functions make of a view."""

    config: Config
    outcomes: Mapping[str, Outcome]
    ingress: Mapping[str, tuple[str, ...]]  # what the speakers act on, per handled Service
    pools: Mapping[str, Pool | None]
    layer2: Mapping[str, L2Decision]
    nodes: Mapping[str, NodeDecision]
    pool_counters: Mapping[str, Mapping[str, int]]
    slices: Mapping[str, tuple[EndpointSlice, ...]]  # each Service's EndpointSlices, as the election saw them
    by_name: Mapping[str, Node]
    live: frozenset[str]


def _node_names(view: View) -> list[str]:
    names = [n.name for n in view.nodes]
    for extra in view.speakers or ():
        if extra not in names:
            names.append(extra)
    return names


def _live(view: View) -> list[str]:
    if view.live is not None:
        return sorted(view.live)
    if view.speakers is not None:
        return sorted(view.speakers)
    return [n.name for n in view.nodes]


def _compute(view: View) -> _Computed:
    config = view.config or Config()
    snapshot = Snapshot(config, view.services, view.nodes, view.endpoint_slices, view.namespaces)
    allocator, outcomes = allocate(snapshot, lb_class=view.lb_class)
    handled = [o for o in outcomes.values() if not o.ignored]
    if view.allocate:
        pairs = [(o.service, config.pools_by_name.get(o.pool) if o.pool else None) for o in handled]
    else:  # the speakers read the ingress the controller wrote, and find its pool (MetalLB's poolFor)
        observed = {s.key: s for s in snapshot.services}
        pairs = [(observed[o.service.key], pool_for(config, observed[o.service.key].ingress)) for o in handled]
    inputs = service_inputs(pairs, view.endpoint_slices)
    speakers = view.speakers if view.speakers is not None else [n.name for n in view.nodes]
    if view.served_without_slices:
        inputs = served_everywhere(inputs, speakers)
    cluster = ClusterDecision(
        config, view.nodes, inputs, live=_live(view), speakers=speakers, without_l2=view.no_quorum,
        ignore_exclude_lb=view.ignore_exclude_lb,
    )  # fmt: skip
    layer2, nodes = dict(cluster.layer2), cluster.nodes()
    return _Computed(
        config,
        outcomes,
        {key: item.service.ingress for key, item in inputs.items()},
        {key: item.pool for key, item in inputs.items()},
        layer2,
        nodes,
        pool_status(allocator, config),
        {key: item.slices for key, item in inputs.items()},
        {n.name: n for n in view.nodes},
        frozenset(_live(view)),
    )


def allocated_services(view: View) -> list[Service]:
    """The Services as the controller's allocation leaves them (their ingress is the computed one)."""
    return [o.service for o in _compute(view).outcomes.values()]


def pool_reason(svc: Service, pool: Pool | None) -> str:
    """Why the Service's IPs come from ``pool`` (the rule of MetalLB's allocateIPs that chose it)."""
    if pool is None:
        return ""
    wanted = annotation(svc, LOAD_BALANCER_IPS) or svc.load_balancer_ip
    if wanted:
        how = f"{PREFIX}{LOAD_BALANCER_IPS}" if annotation(svc, LOAD_BALANCER_IPS) else "spec.loadBalancerIP"
        return f"the requested IPs ({how}: {wanted}) are in this pool"
    if annotation(svc, ADDRESS_POOL):
        return f"requested by the {PREFIX}{ADDRESS_POOL} annotation"
    sa = pool.service_allocation
    if sa is not None and (sa.namespaces or sa.service_selectors):
        what = " and ".join(
            w for w, on in (("namespace", bool(sa.namespaces)), ("labels", bool(sa.service_selectors))) if on
        )
        return f"serviceAllocation (priority {sa.priority}) selects the Service's {what}"
    if not pool.auto_assign:
        return "the Service holds an IP of this pool (autoAssign is false: it is never picked automatically)"
    return "auto-assigned: a pool with a free IP of the Service's family, none pinned to the Service"


def no_ip_reason(svc: Service, outcome: Outcome, config: Config) -> str:
    """Why the controller gives the Service no IP: MetalLB's event message, or the silent cases named."""
    if outcome.ignored:
        return outcome.ignored
    if not config.pools:
        return "no IPAddressPool is configured"
    if not svc.cluster_ips:
        return "the Service has no ClusterIP yet"
    warnings = [e.message for e in outcome.events if e.type == WARNING and e.reason != "deprecatedAnnotation"]
    if warnings:
        return warnings[-1]
    return "the controller has not assigned one yet"


def _l2_nodes(
    view: View, c: _Computed, svc: Service, decision: L2Decision, names: Sequence[str]
) -> list[dict[str, Any]]:
    """Every node's part in the election of one Service: elected, standby (its rank), or why not a candidate."""
    item_pool = c.pools.get(svc.key)
    by_name, live = c.by_name, c.live
    ads = ads_for_service(item_pool, svc) if item_pool is not None else []
    local = nodes_with_serving_endpoint(c.slices.get(svc.key, ())) if svc.external_traffic_policy == "Local" else None
    rows: list[dict[str, Any]] = []
    for name in names:
        row: dict[str, Any] = {"node": name}
        if decision.reason is not None:
            row.update(state="none", reason=decision.reason)
        elif name == decision.node:
            row.update(state="elected", reason=None)
            if name in view.no_quorum:
                row.update(state="elected-no-quorum", reason="noQuorum")
        elif name in decision.candidates:
            rank = decision.candidates.index(name)
            row.update(state="standby", reason=NOT_OWNER, rank=rank)
        else:
            node = by_name.get(name) or Node(name)
            reason = candidate_reason(
                node, ads, local, ignore_exclude_lb=view.ignore_exclude_lb, live=name in live and name in by_name,
            )  # fmt: skip
            row.update(state="excluded", reason=reason or NOT_OWNER)
            if reason == SPEAKER_NOT_LIVE and view.speakers is not None and name not in view.speakers:
                row["detail"] = "no speaker runs on this node"
            elif reason == SPEAKER_NOT_LIVE and name not in by_name:
                row["detail"] = "no Node object"
        rows.append(row)
    return rows


def _bgp_nodes(c: _Computed, key: str, names: Sequence[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in names:
        decision = c.nodes.get(name)
        plan = decision.bgp if decision is not None else None
        if plan is None:
            continue
        reason = plan.reasons.get(key, NOT_OWNER)
        row: dict[str, Any] = {"node": name, "reason": reason}
        if reason is None:
            row["peers"] = list(bgp_peers_of(plan, key))
            if not plan.peers:
                row["note"] = "no BGPPeer selects this node: nothing is sent"
        rows.append(row)
    return rows


def _uses_bgp(pool: Pool | None) -> bool:
    return pool is not None and bool(pool.bgp_advertisements)


def _service(view: View, c: _Computed, svc: Service, names: Sequence[str]) -> dict[str, Any]:
    key = svc.key
    outcome = c.outcomes[key]
    entry: dict[str, Any] = {"namespace": svc.namespace, "name": svc.name}
    if outcome.ignored:
        entry.update(ingress=[], pool=None, ignored=outcome.ignored)
        return entry
    ingress = c.ingress.get(key, ())
    pool = c.pools.get(key)
    entry["ingress"] = list(ingress)
    entry["pool"] = pool.name if pool is not None else None
    problems: list[str] = []
    known = view.config is not None  # without a valid configuration nothing can be computed against it
    if ingress:
        if not known:
            entry["poolReason"] = "unknown: no valid configuration is in force"
        elif pool is None:
            entry["poolReason"] = "its IPs are in no IPAddressPool: no speaker announces them (ipNotAllowed)"
            problems.append(f"{key}: holds {', '.join(ingress)}, in no pool of the configuration in force")
        else:
            entry["poolReason"] = pool_reason(svc, pool)
    else:
        entry["noIPReason"] = no_ip_reason(svc, outcome, c.config) if known else "no valid configuration is in force"
    if known and not view.allocate and tuple(outcome.service.ingress) != tuple(ingress):
        entry["controllerWouldAssign"] = list(outcome.service.ingress)
        problems.append(
            f"{key}: status holds [{', '.join(ingress)}] but the controller's allocation gives "
            f"[{', '.join(outcome.service.ingress)}] (not converged yet, or the configuration is stale)"
        )
    decision = c.layer2.get(key)
    announced = view.announced.get(key, ())
    l2_seen = sorted(a.node for a in announced if a.protocol == LAYER2)
    if decision is not None and (pool is None or pool.l2_advertisements or not _uses_bgp(pool)):
        layer2: dict[str, Any] = {
            "node": decision.node,
            "reason": decision.reason,
            "interfaces": list(decision.interfaces),
            "nodes": _l2_nodes(view, c, svc, decision, names),
        }
        if view.announcements_known:
            layer2["announcedBy"] = l2_seen
            expected = [] if decision.node is None or decision.node in view.no_quorum else [decision.node]
            if l2_seen != expected:
                problems.append(
                    f"{key}: layer 2 announced by [{', '.join(l2_seen)}], elected: "
                    f"[{', '.join(expected)}] (converging, or the speakers disagree on who is alive)"
                )
        entry["layer2"] = layer2
    if _uses_bgp(pool):
        bgp: dict[str, Any] = {"nodes": _bgp_nodes(c, key, names)}
        if view.announcements_known:
            bgp["announcedBy"] = [{"node": a.node, "peers": list(a.detail)} for a in announced if a.protocol == BGP]
        entry["bgp"] = bgp
    events = view.events.get(key)
    entry["events"] = [e.to_dict() for e in events] if events is not None else [e.to_dict() for e in outcome.events]
    if problems:
        entry["problems"] = problems
    return entry


def _membership(view: View) -> dict[str, Any] | None:
    if not view.members:
        return None
    views = {m.node: {"alive": list(m.alive), "quorum": m.quorum} for m in view.members}
    distinct = {tuple(sorted(m.alive)) for m in view.members}
    return {"views": views, "agree": len(distinct) <= 1}


def _pools(view: View, c: _Computed) -> dict[str, dict[str, Any]]:
    counters = view.pools if view.pools is not None else c.pool_counters
    out: dict[str, dict[str, Any]] = {}
    for name, cnt in sorted(counters.items()):
        used = int(cnt.get("assignedIPv4", 0)) + int(cnt.get("assignedIPv6", 0))
        total = used + int(cnt.get("availableIPv4", 0)) + int(cnt.get("availableIPv6", 0))
        out[name] = {**dict(cnt), "used": used, "size": total, "usage": round(used / total, 4) if total else None}
    return out


def explain(view: View, *, only: Collection[str] | None = None) -> dict[str, Any]:
    """The explanation JSON (see the README): per Service, the configuration, membership, pools and problems.

    ``only``: the ``namespace/name`` keys to explain (None: every LoadBalancer Service).
    """
    c = _compute(view)
    names = _node_names(view)
    services: dict[str, Any] = {}
    problems: list[str] = []
    for svc in sorted(view.services, key=lambda s: s.key):
        if svc.key not in c.outcomes or (only is not None and svc.key not in only):
            continue
        entry = _service(view, c, svc, names)
        problems.extend(entry.get("problems", ()))
        services[svc.key] = entry
    if only is not None:
        for missing in sorted(set(only) - set(services)):
            problems.append(f"{missing}: no such LoadBalancer Service")
    components = [{"name": s.name, "valid": s.valid, "error": s.error or None} for s in view.components]
    for s in view.components:
        if s.valid is False:
            problems.append(f"{s.name}: configuration error: {s.error}")
    if view.config is None:
        problems.append("no valid configuration is in force")
    if services and not names:
        problems.append("no node is known (no Node objects, no speakers): nobody can announce")
    membership = _membership(view)
    if membership is not None:
        if not membership["agree"]:
            problems.append("the speakers' membership views disagree")
        problems.extend(f"{m.node}: no membership quorum" for m in view.members if m.quorum is False)
    pools = _pools(view, c)
    problems.extend(f"pool {name} is full" for name, p in pools.items() if p["size"] and p["used"] >= p["size"])
    return {
        "services": services,
        "nodes": names,
        "live": _live(view),
        "configuration": components,
        "membership": membership,
        "pools": pools,
        "problems": problems,
    }


CONFIG_KINDS = ("IPAddressPool", "L2Advertisement", "BGPAdvertisement", "BGPPeer", "BFDProfile", "Community")
_FIELDS = dict(zip(CONFIG_KINDS, ("pools", "l2_advertisements", "bgp_advertisements", "bgp_peers", "bfd_profiles",
                                  "communities"), strict=True))  # fmt: skip


def merge_resources(current: Resources, change: Resources | None, removed: Collection[str] = ()) -> Resources:
    """``current`` with each configuration object of ``change`` replacing the one of its kind and name, or added,
    and the ``Kind/name`` objects of ``removed`` deleted (ConfigError naming one that does not exist).

    Only the ``metallb.io`` configuration (and Namespaces) change: a what-if is about configuration.
    """
    change = change or Resources()
    out: dict[str, tuple[Any, ...]] = {}
    problems: list[str] = []
    gone: dict[str, set[str]] = {}
    for item in removed:
        kind, _, name = item.partition("/")
        if kind not in _FIELDS or not name:
            problems.append(f"--what-if-delete {item}: expected KIND/NAME, KIND one of {', '.join(CONFIG_KINDS)}")
        elif not any(o.name == name for o in getattr(current, _FIELDS[kind])):
            problems.append(f"--what-if-delete {item}: no {kind} named {name!r} in the current configuration")
        gone.setdefault(kind, set()).add(name)
    if problems:
        raise ConfigError(problems)
    for kind, attr in _FIELDS.items():
        new = getattr(change, attr)
        drop = {n.name for n in new} | gone.get(kind, set())
        out[attr] = tuple(o for o in getattr(current, attr) if o.name not in drop) + tuple(new)

    new_ns = {_obj_name(n) for n in change.namespaces}
    kept = tuple(o for o in current.others if o.get("kind") != "Namespace" or _obj_name(o) not in new_ns)
    return replace(
        current, pools=out["pools"], l2_advertisements=out["l2_advertisements"],
        bgp_advertisements=out["bgp_advertisements"], bgp_peers=out["bgp_peers"], bfd_profiles=out["bfd_profiles"],
        communities=out["communities"], others=kept + tuple(change.namespaces),
    )  # fmt: skip


def _obj_name(o: Mapping[str, Any]) -> str:
    return str((o.get("metadata") or {}).get("name") or "")


def changed_config(
    current: Resources | None, change: Resources | None, removed: Collection[str], namespace: str
) -> Config:
    """The configuration a change would put in force over ``current``; ConfigError when it is invalid."""
    return build(merge_resources(current or Resources(), change, removed), namespace=namespace).config


def _state(c: _Computed, key: str) -> dict[str, Any]:
    o = c.outcomes[key]
    pool = c.pools.get(key)
    l2 = c.layer2.get(key)
    bgp_nodes = sorted(n for n, d in c.nodes.items() if d.bgp is not None and d.bgp.reasons.get(key, "") is None)
    return {
        "ingress": list(c.ingress.get(key, o.service.ingress)),
        "pool": pool.name if pool is not None else o.pool,
        "layer2Node": l2.node if l2 is not None else None,
        "bgpNodes": bgp_nodes,
    }


def what_if(view: View, new_config: Config) -> dict[str, Any]:
    """What ``new_config`` would do to every Service: the controller's allocation and the speakers' decisions.

    Before: the view as it stands. After: the controller converging every Service under ``new_config`` from the
    Services as they are (holding their IPs, which they keep when the new configuration allows them; in
    standalone mode every node recomputes from the files), then the election and BGP plans with the new
    advertisements. ``change`` per Service: ``unchanged``, ``moves`` (IPs change), ``losesIP``, ``getsIP``,
    ``poolChanges``, ``announcerChanges``.
    """
    before = _compute(view)
    after = _compute(replace(view, config=new_config, allocate=True))
    services: dict[str, Any] = {}
    summary: dict[str, int] = {}
    for key in sorted(before.outcomes):
        if before.outcomes[key].ignored:
            continue
        b, a = _state(before, key), _state(after, key)
        if b["ingress"] and not a["ingress"]:
            change = "losesIP"
        elif a["ingress"] and not b["ingress"]:
            change = "getsIP"
        elif a["ingress"] != b["ingress"]:
            change = "moves"
        elif a["pool"] != b["pool"]:
            change = "poolChanges"
        elif a["layer2Node"] != b["layer2Node"] or a["bgpNodes"] != b["bgpNodes"]:
            change = "announcerChanges"
        else:
            change = "unchanged"
        summary[change] = summary.get(change, 0) + 1
        entry: dict[str, Any] = {"change": change, "before": b, "after": a}
        if change == "losesIP" or (not a["ingress"] and not b["ingress"]):
            entry["reason"] = no_ip_reason(after.outcomes[key].service, after.outcomes[key], new_config)
        services[key] = entry
    return {"services": services, "summary": summary, "pools": _pools(replace(view, pools=None), after)}


__all__ = [
    "Announced",
    "ComponentState",
    "EventRecord",
    "MemberView",
    "View",
    "allocated_services",
    "changed_config",
    "explain",
    "merge_resources",
    "no_ip_reason",
    "pool_reason",
    "what_if",
]
