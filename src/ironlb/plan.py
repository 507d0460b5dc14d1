"""``ironlb plan``: what the controller (and, later, the speakers) would do with a cluster snapshot.

The output is a contract other tools read (see the README): one entry per LoadBalancer Service with its
ingress, pool and events, and the counters of every pool. It is a pure function of the snapshot.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ironlb.bgp.planner import NodePlan
from ironlb.cluster.objects import EndpointSlice, Namespace, Node, Service
from ironlb.config import ConfigError, Resources, build, load_files
from ironlb.config.types import Config
from ironlb.decide import ClusterDecision, Held, NodeDecision, served_everywhere, service_inputs
from ironlb.ipam.allocator import Allocator
from ironlb.ipam.reprocess import Outcome, converge_all, pool_status
from ironlb.layer2.election import L2Decision


@dataclass(frozen=True)
class Snapshot:
    """The cluster state a decision is computed from."""

    config: Config
    services: tuple[Service, ...] = ()
    nodes: tuple[Node, ...] = ()
    endpoint_slices: tuple[EndpointSlice, ...] = ()
    namespaces: tuple[Namespace, ...] = ()


def snapshot_from(resources: Resources, *, namespace: str = "metallb-system") -> tuple[Snapshot, tuple[str, ...]]:
    """Validate the config of ``resources`` and collect the cluster objects; ConfigError if invalid."""
    result = build(resources, namespace=namespace)
    return with_objects(result.config, resources), result.warnings


def with_objects(config: Config, resources: Resources) -> Snapshot:
    """A snapshot of ``resources``' cluster objects under ``config`` (which may be the last valid one)."""
    return Snapshot(
        config=config,
        services=tuple(Service.from_dict(s, default_cluster_ips=True) for s in resources.services),
        nodes=tuple(Node.from_dict(n) for n in resources.nodes),
        endpoint_slices=tuple(EndpointSlice.from_dict(e) for e in resources.endpoint_slices),
        namespaces=tuple(Namespace.from_dict(n) for n in resources.namespaces),
    )


def allocate(snapshot: Snapshot, *, lb_class: str = "") -> tuple[Allocator, dict[str, Outcome]]:
    """Allocate as the controller would from start-up (:func:`ironlb.ipam.reprocess.converge_all`)."""
    allocator = Allocator(snapshot.config)
    return allocator, converge_all(allocator, snapshot.services, lb_class=lb_class)


def service_entry(outcome: Outcome) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ingress": list(outcome.service.ingress),
        "pool": outcome.pool,
        "events": [e.to_dict() for e in outcome.events],
    }
    if outcome.ignored:
        entry["ignored"] = outcome.ignored
    return entry


def cluster_decision(
    snapshot: Snapshot,
    outcomes: Mapping[str, Outcome],
    *,
    live: Collection[str] | None = None,
    speakers: Iterable[str] | None = None,
    without_l2: Collection[str] = (),
    served_without_slices: bool = False,
    ignore_exclude_lb: bool = False,
    held: Held | None = None,
    late: Collection[str] = (),
) -> ClusterDecision:
    """The election of every allocated Service and each speaker's decision (:class:`ironlb.decide.ClusterDecision`,
    each speaker decided when asked): the one route ``ironlb plan`` and ``ironlb run`` take. ``with_reasons()``
    gives the elections with every speaker's part (the plan's ``nodeReasons``), ``nodes()`` every speaker's decision.

    ``live`` defaults to every Node of the snapshot, ``speakers`` to every Node. With ``served_without_slices``
    (standalone mode), a Service with no EndpointSlice at all counts as served on every speaker; in Kubernetes it
    has no endpoint and is not announced. ``held``: the restart holds in force (:data:`ironlb.decide.Held`),
    ``late``: the held speakers counted fully for now (:class:`ironlb.decide.ClusterDecision`).
    """
    config = snapshot.config
    inputs = service_inputs(
        ((o.service, config.pools_by_name.get(o.pool) if o.pool else None) for o in outcomes.values()),
        snapshot.endpoint_slices,
    )
    names = [n.name for n in snapshot.nodes] if speakers is None else list(speakers)
    if served_without_slices:
        inputs = served_everywhere(inputs, names)
    return ClusterDecision(
        config, snapshot.nodes, inputs, live=live, speakers=names, without_l2=without_l2,
        ignore_exclude_lb=ignore_exclude_lb, held=held, late=late,
    )  # fmt: skip


def bgp_entries(key: str, bgp: Mapping[str, NodePlan]) -> list[dict[str, Any]]:
    """The ``bgp`` list of a service: one entry per (node, prefix), nodes in name order; empty if not advertised."""
    entries: list[dict[str, Any]] = []
    for name in sorted(bgp):
        entries.extend(bgp[name].entries(key))
    return entries


def bgp_plans(nodes: Mapping[str, NodeDecision]) -> dict[str, NodePlan]:
    """Each node's BGP plan, for :func:`render`."""
    return {name: d.bgp for name, d in nodes.items() if d.bgp is not None}


def render(
    snapshot: Snapshot,
    allocator: Allocator,
    outcomes: Mapping[str, Outcome],
    l2: Mapping[str, L2Decision],
    bgp: Mapping[str, NodePlan] | None = None,
) -> dict[str, Any]:
    """The plan JSON: per service its allocation, the ``layer2`` election and the ``bgp`` advertisements; then
    ``nodeReasons``, each speaker's own decision (:func:`node_reasons`)."""
    services = {}
    for key, outcome in sorted(outcomes.items()):
        entry = service_entry(outcome)
        if key in l2:
            entry["layer2"] = l2[key].to_dict()
        if bgp is not None:
            entry["bgp"] = bgp_entries(key, bgp)
        services[key] = entry
    out: dict[str, Any] = {"services": services, "pools": pool_status(allocator, snapshot.config)}
    out["nodeReasons"] = node_reasons(l2, bgp)
    return out


def node_reasons(l2: Mapping[str, L2Decision], bgp: Mapping[str, NodePlan] | None) -> dict[str, Any]:
    """Per Service, each speaker's own decision: MetalLB's reason not to announce (None: it announces).

    ``layer2``: node -> ``{"reason", "detail", "rank"?}`` (:class:`ironlb.layer2.election.NodeReason`); ``bgp``:
    node -> reason (:func:`ironlb.bgp.planner.should_announce`). A key of its own, beside ``services``, so that
    the Service entries keep exactly their fields.
    """
    out: dict[str, Any] = {}
    for key in sorted(l2):
        entry: dict[str, Any] = {"layer2": l2[key].nodes_dict()}
        if bgp is not None:
            entry["bgp"] = {name: bgp[name].reasons.get(key) for name in sorted(bgp)}
        out[key] = entry
    return out


def plan_snapshot(snapshot: Snapshot, *, lb_class: str = "") -> dict[str, Any]:
    allocator, outcomes = allocate(snapshot, lb_class=lb_class)
    cluster = cluster_decision(snapshot, outcomes)
    return render(snapshot, allocator, outcomes, cluster.with_reasons(), bgp_plans(cluster.nodes()))


def plan_files(
    paths: Iterable[str | Path], *, namespace: str = "metallb-system", lb_class: str = ""
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Plan from YAML files; returns the plan and config warnings. Raises ConfigError on invalid config."""
    resources = load_files(paths, default_namespace=namespace)
    snapshot, warnings = snapshot_from(resources, namespace=namespace)
    return plan_snapshot(snapshot, lb_class=lb_class), warnings


__all__ = ["ConfigError", "Snapshot", "plan_files", "plan_snapshot", "snapshot_from"]
