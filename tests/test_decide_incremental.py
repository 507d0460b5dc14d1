"""The speaker's incremental decision (``NodeDecider``) equals the full one after any sequence of changes.

Random sequences of Service puts and removals, Node, membership, quorum, interface and configuration changes are
folded in a few Services at a time, as the speaker does; after each, the decision must equal
:func:`ironlb.decide.decide_node` on the same inputs, and a reference assembled the original way (the election of
every Service, :func:`ironlb.bgp.planner.plan_node`, the merge of shared IPs), so the incremental bookkeeping can
neither drift from the full recomputation nor from what the pieces decide.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

from ironlb.bgp.planner import ServiceInput, plan_node
from ironlb.cluster.objects import EXCLUDE_LB_LABEL, Endpoint, EndpointSlice, Node, Service
from ironlb.config.types import Config
from ironlb.decide import (
    Announcement,
    ClusterDecision,
    Context,
    NodeDecider,
    NodeDecision,
    announced_series,
    bgp_peers_of,
    decide_node,
    elect_all,
    pool_for,
)
from ironlb.speaker.decide import speaker_config

NS = "metallb-system"
NODE = "n1"
NAMES = ("n1", "n2", "n3", "n4")
NAMES_SVC = ("s0", "s1", "s2", "s3")
IPS = ("192.168.1.1", "192.168.1.2", "10.0.0.1", "10.0.1.1", "fd00::1", "8.8.8.8")
IFACES = ("eth0", "eth1")


def _objects(variant: int) -> list[dict[str, Any]]:
    def obj(kind: str, name: str, spec: dict[str, Any], version: str = "v1beta1") -> dict[str, Any]:
        return {"apiVersion": f"metallb.io/{version}", "kind": kind, "metadata": {"name": name, "namespace": NS},
                "spec": spec}  # fmt: skip

    out = [
        obj("IPAddressPool", "l2", {"addresses": ["192.168.1.0/28", "fd00::/120"]}),
        obj("IPAddressPool", "bgp", {"addresses": ["10.0.0.0/23"]}),
        obj("L2Advertisement", "all", {"ipAddressPools": ["l2"], "nodeSelectors": [{"matchLabels": {"rack": "1"}}]}),
        obj("L2Advertisement", "eth0", {"ipAddressPools": ["l2"], "interfaces": ["eth0"]}),
        obj(
            "L2Advertisement",
            "eth1",
            {"ipAddressPools": ["l2"], "interfaces": ["eth1"], "serviceSelectors": [{"matchLabels": {"app": "x"}}]},
        ),
        # A /24 for every Service to r1 only, a /32 to r1 only, and a /32 to every peer for app=x: a Service's
        # peers then depend on the other Services sharing its prefixes.
        obj(
            "BGPAdvertisement",
            "agg",
            {
                "ipAddressPools": ["bgp"],
                "aggregationLength": 24,
                "peers": ["r1"],
                "communities": ["64512:1"],
                "localPref": 50 + variant,
            },
        ),
        obj("BGPAdvertisement", "host", {"ipAddressPools": ["bgp"], "peers": ["r1"], "communities": ["64512:2"]}),
        obj(
            "BGPAdvertisement",
            "tagged",
            {
                "ipAddressPools": ["bgp"],
                "communities": ["64512:3"],
                "serviceSelectors": [{"matchLabels": {"app": "x"}}],
            },
        ),
        obj("BGPPeer", "r1", {"myASN": 64512, "peerASN": 64512, "peerAddress": "192.168.1.254"}, "v1beta2"),
        obj("BGPPeer", "r2", {"myASN": 64512, "peerASN": 64513, "peerAddress": "fd00::fe"}, "v1beta2"),
        obj("BGPPeer", "r3", {"myASN": 64512, "peerASN": 64514, "peerAddress": "192.168.1.253"}, "v1beta2"),
    ]
    if variant == 1:
        out.append(obj("BGPPeer", "r4", {"myASN": 64512, "peerASN": 64515, "peerAddress": "192.168.1.252"}, "v1beta2"))
    if variant == 2:
        out = [o for o in out if o["metadata"]["name"] != "eth0"]
    return out


CONFIGS = [speaker_config(_objects(v), {}, NS) for v in range(3)]


def _service(rng: random.Random) -> tuple[Service, tuple[EndpointSlice, ...]]:
    name = rng.choice(NAMES_SVC)
    if rng.random() < 0.5:  # Layer 2 Services sharing their IPs, often
        ips: tuple[str, ...] = (rng.choice(IPS[:2]),)
    else:
        ips = tuple(rng.sample(IPS, rng.choice((1, 1, 1, 2, 0))))
    svc = Service("app", name, "LoadBalancer", cluster_ips=("10.96.0.1",), ingress=ips,
                  external_traffic_policy=rng.choice(("Cluster", "Local")),
                  labels={"app": "x"} if rng.random() < 0.5 else {})  # fmt: skip
    slices = tuple(
        EndpointSlice(
            "app", f"{name}-{i}", name, (Endpoint((f"10.244.0.{i}",), rng.choice(NAMES), rng.random() < 0.8),)
        )
        for i in range(rng.choice((0, 1, 2, 3)))
    )
    return svc, slices


def _nodes(rng: random.Random) -> tuple[Node, ...]:
    """Mostly present and usable, sometimes absent, NetworkUnavailable or excluded."""
    out = []
    for name in NAMES:
        if rng.random() < 0.2:
            continue
        labels = {"rack": rng.choice("12")}
        if rng.random() < 0.15:
            labels[EXCLUDE_LB_LABEL] = ""
        out.append(Node(name, labels, rng.random() < 0.15))
    return tuple(out)


def _change(rng: random.Random) -> tuple[str, Any]:
    kind = rng.choice(["put"] * 8 + ["remove"] * 2 + ["nodes", "live", "quorum", "ifaces", "config", "exclude"])
    if kind == "put":
        return kind, _service(rng)
    if kind == "remove":
        return kind, rng.choice(NAMES_SVC)
    if kind == "nodes":
        return kind, _nodes(rng)
    if kind == "live":
        return kind, None if rng.random() < 0.3 else frozenset(n for n in NAMES if rng.random() < 0.7)
    if kind == "ifaces":
        return kind, None if rng.random() < 0.5 else frozenset(i for i in IFACES if rng.random() < 0.5)
    if kind == "config":
        return kind, rng.randrange(len(CONFIGS))
    return kind, rng.random() < 0.8 if kind == "quorum" else rng.random() < 0.3


def reference(
    config: Config,
    nodes: Sequence[Node],
    inputs: Mapping[str, ServiceInput],
    *,
    live: Collection[str] | None,
    may_announce_l2: bool,
    ignore_exclude_lb: bool,
    available: Callable[[tuple[str, ...]], bool],
) -> NodeDecision:
    """The node's decision assembled from the whole election and the whole BGP plan, as it used to be."""
    layer2 = elect_all(nodes, inputs, live=live, ignore_exclude_lb=ignore_exclude_lb)
    known = next((n for n in nodes if n.name == NODE), None)
    announce: dict[str, tuple[str, ...]] = {}
    l2_status: dict[str, tuple[str, ...]] = {}
    failed: dict[str, tuple[str, ...]] = {}
    for key, item in inputs.items():
        decision = layer2[key]
        if decision.node != NODE or not may_announce_l2:
            continue
        if not available(decision.interfaces):
            failed[key] = item.service.ingress
            continue
        l2_status[key] = decision.interfaces
        for ip in item.service.ingress:
            previous = announce.get(ip)
            if previous is None or not decision.interfaces:
                announce[ip] = decision.interfaces
            elif previous:
                announce[ip] = tuple(sorted({*previous, *decision.interfaces}))
    plan = plan_node(config, known or Node(NODE), inputs, ignore_exclude_lb=ignore_exclude_lb,
                     node_known=known is not None)  # fmt: skip
    bgp_status = {key: peers for key in plan.by_service if (peers := bgp_peers_of(plan, key))}
    series = announced_series(
        NODE, ((k, i.service.ingress, k in l2_status, plan.reasons.get(k, "") is None) for k, i in inputs.items())
    )
    return NodeDecision(
        layer2, plan, Announcement(announce, plan, config.bfd_profiles, series), l2_status, bgp_status, failed
    )


@pytest.mark.parametrize("seed", range(40))
def test_incremental_decision_equals_the_full_one(seed: int) -> None:
    rng = random.Random(seed)
    state: dict[str, Any] = {"config": 0, "nodes": _nodes(rng), "live": None, "quorum": True, "ifaces": None,
                             "exclude": False}  # fmt: skip
    raw: dict[str, tuple[Service, tuple[EndpointSlice, ...]]] = {}

    def context() -> Context:
        return Context(CONFIGS[state["config"]], NODE, state["nodes"], state["live"], state["quorum"],
                       state["exclude"], state["ifaces"])  # fmt: skip

    def inputs() -> dict[str, ServiceInput]:
        config = CONFIGS[state["config"]]
        return {k: ServiceInput(svc, pool_for(config, svc.ingress), sl) for k, (svc, sl) in raw.items()}

    decider = NodeDecider(context())
    for _ in range(60):
        kind, value = _change(rng)
        limit = rng.choice((0, 1, 2, 4))
        if kind == "put":
            svc, slices = value
            raw[svc.key] = (svc, slices)
            decider.put(svc.key, inputs()[svc.key])
        elif kind == "remove":
            raw.pop(f"app/{value}", None)
            decider.remove(f"app/{value}")
        else:
            state[kind] = value
            if kind == "config":  # the speaker re-reads every Service's pool with a new configuration
                for key, item in inputs().items():
                    decider.put(key, item)
            decider.set_context(context())
        decider.step(limit)  # a few at a time, as the speaker's sync does between yields
        if rng.random() < 0.5:
            continue  # more changes come before this pass ends
        got = decider.decision()
        assert decider.pending == 0
        ctx = context()
        full = decide_node(ctx.config, NODE, ctx.nodes, inputs(), live=ctx.live, may_announce_l2=ctx.may_announce_l2,
                           ignore_exclude_lb=ctx.ignore_exclude_lb, interfaces_available=ctx.available)  # fmt: skip
        ref = reference(ctx.config, ctx.nodes, inputs(), live=ctx.live, may_announce_l2=ctx.may_announce_l2,
                        ignore_exclude_lb=ctx.ignore_exclude_lb, available=ctx.available)  # fmt: skip
        assert got == full
        assert got == ref


def test_a_service_change_decides_only_that_service() -> None:
    config = CONFIGS[0]
    nodes = tuple(Node(n, {"rack": "1"}) for n in NAMES)
    decider = NodeDecider(Context(config, NODE, nodes, None))
    for i in range(50):
        svc = Service("app", f"s{i}", "LoadBalancer", cluster_ips=("10.96.0.1",), ingress=(f"10.0.0.{i + 1}",))
        decider.put(svc.key, ServiceInput(svc, pool_for(config, svc.ingress), ()))
    assert decider.step() == 0
    svc = Service("app", "s7", "LoadBalancer", cluster_ips=("10.96.0.1",), ingress=("10.0.0.99",))
    decider.put(svc.key, ServiceInput(svc, pool_for(config, svc.ingress), ()))
    assert decider.pending == 1
    assert decider.set_context(Context(config, NODE, nodes, None)) is False  # an equal context: nothing stale
    assert decider.pending == 1
    assert decider.set_context(Context(config, NODE, nodes, frozenset({"n1"}))) is True
    assert decider.pending == 50


def test_services_sharing_an_ip_answer_on_the_union_of_their_interfaces() -> None:
    config = CONFIGS[0]
    nodes = (Node("n1", {"rack": "2"}),)  # not selected by the all-interfaces advertisement
    decider = NodeDecider(Context(config, NODE, nodes, None))
    served = (EndpointSlice("app", "x", "a", (Endpoint(("10.244.0.1",), "n1"),)),)

    def put(name: str, labels: dict[str, str]) -> None:
        svc = Service("app", name, "LoadBalancer", cluster_ips=("10.96.0.1",), ingress=("192.168.1.1",), labels=labels)
        slices = tuple(EndpointSlice("app", s.name, name, s.endpoints) for s in served)
        decider.put(svc.key, ServiceInput(svc, pool_for(config, svc.ingress), slices))

    put("a", {})
    assert decider.decision().announcement.layer2 == {"192.168.1.1": ("eth0",)}
    put("b", {"app": "x"})  # eth1 too
    assert decider.decision().announcement.layer2 == {"192.168.1.1": ("eth0", "eth1")}
    decider.remove("app/b")
    assert decider.decision().announcement.layer2 == {"192.168.1.1": ("eth0",)}
    decider.remove("app/a")
    assert decider.decision().announcement.layer2 == {}


@pytest.mark.parametrize("seed", range(30))
def test_after_deaths_the_urgent_services_alone_give_the_final_announcement(seed: int) -> None:
    rng = random.Random(seed)
    config, nodes = CONFIGS[rng.randrange(len(CONFIGS))], _nodes(rng)
    live = frozenset(NAMES)
    decider = NodeDecider(Context(config, NODE, nodes, live))
    inputs: dict[str, ServiceInput] = {}
    for _ in range(12):
        svc, slices = _service(rng)
        inputs[svc.key] = ServiceInput(svc, pool_for(config, svc.ingress), slices)
        decider.put(svc.key, inputs[svc.key])
    before = decider.decision()
    survivors = frozenset(n for n in NAMES if n == NODE or rng.random() < 0.5) - {rng.choice(NAMES[1:])}
    assert decider.set_context(Context(config, NODE, nodes, survivors))
    dead_winners = {k for k, d in before.layer2.items() if d.node is not None and d.node not in survivors}
    assert decider.urgent == len(dead_winners)
    decider.step(decider.urgent)
    partial = decider.decision(complete=False)
    full = decide_node(config, NODE, nodes, inputs, live=survivors)
    assert partial.announcement == full.announcement
    assert (partial.l2_status, partial.announce_failed, partial.bgp_status) == (
        full.l2_status,
        full.announce_failed,
        full.bgp_status,
    )
    assert {k: d.node for k, d in partial.layer2.items()} == {k: d.node for k, d in full.layer2.items()}
    assert decider.decision() == full


def _cluster_inputs(rng: random.Random) -> tuple[Config, tuple[Node, ...], dict[str, ServiceInput]]:
    """A random configuration, Nodes and 16 Services (s0..s15) with their pools and EndpointSlices."""
    config = CONFIGS[rng.randrange(len(CONFIGS))]
    nodes = _nodes(rng)
    raw = {}
    for i in range(16):
        svc, slices = _service(rng)
        name = f"s{i}"
        svc = replace(svc, name=name)
        raw[svc.key] = ServiceInput(
            svc, pool_for(config, svc.ingress), tuple(replace(s, service_name=name) for s in slices)
        )
    return config, nodes, raw


@pytest.mark.parametrize("seed", range(30))
def test_a_membership_change_from_the_previous_cluster_decision_equals_the_full_one(seed: int) -> None:
    """``ClusterDecision.with_live`` (``ironlb run``'s reaction to MemberDown / MemberUp / LEAVE: elect again only
    where the change can matter, each speaker's decider re-deciding only those Services) equals a new
    ClusterDecision with the same live speakers: the elections, every speaker's decision, the plan's reasons;
    whichever speakers were asked in between (the others catch up when asked)."""
    rng = random.Random(seed)
    config, nodes, raw = _cluster_inputs(rng)
    speakers = [*NAMES, "n5"]  # n5: a member without a Node object
    exclude = rng.random() < 0.3

    def full(live: Collection[str], without_l2: Collection[str]) -> ClusterDecision:
        return ClusterDecision(config, nodes, raw, live=live, speakers=speakers, without_l2=without_l2,
                               ignore_exclude_lb=exclude)  # fmt: skip

    live: frozenset[str] = frozenset(n for n in speakers if rng.random() < 0.7)
    cluster = full(live, ())
    for _ in range(12):
        roll = rng.random()
        if roll < 0.4 and live:  # a death (MemberDown, LEAVE)
            live = live - {rng.choice(sorted(live))}
        elif roll < 0.7:  # a member comes back
            live = live | {rng.choice(speakers)}
        elif roll < 0.8:
            live = live - set(rng.sample(sorted(live), min(len(live), 2)))
        else:
            live = frozenset(n for n in speakers if rng.random() < 0.6)
        without_l2 = tuple(n for n in speakers if rng.random() < 0.15)
        cluster = cluster.with_live(sorted(live), without_l2=without_l2)
        reference = full(sorted(live), without_l2)
        assert cluster.layer2 == reference.layer2
        asked = rng.sample(speakers, rng.randint(0, len(speakers)))
        for name in asked:
            assert cluster.node(name) == reference.node(name)
        if rng.random() < 0.3:
            assert cluster.nodes() == reference.nodes()
            assert cluster.with_reasons() == reference.with_reasons()
            assert {k: d.nodes for k, d in cluster.with_reasons().items()} == {
                k: d.nodes for k, d in reference.with_reasons().items()
            }


@pytest.mark.parametrize("seed", range(30))
def test_holds_from_the_previous_cluster_decision_equal_the_full_one(seed: int) -> None:
    """Restart holds beginning and ending (returned, or the held member dying) among deaths and returns:
    ``ClusterDecision.with_live`` with ``held`` equals a new ClusterDecision given the same held IPs, each held
    member keeps exactly the IPs it won as its hold began, and wins nothing else."""
    rng = random.Random(seed)
    config, nodes, raw = _cluster_inputs(rng)
    speakers = [*NAMES, "n5"]
    live: frozenset[str] = frozenset(speakers)
    held: set[str] = set()
    cluster = ClusterDecision(config, nodes, raw, live=sorted(live), speakers=speakers)
    for _ in range(12):
        roll = rng.random()
        previous = cluster
        began: set[str] | None = None
        if roll < 0.4 and live - held:  # a hold begins
            name = rng.choice(sorted(live - held))
            held.add(name)
            began = {ip for key, d in previous.layer2.items() if d.node == name for ip in raw[key].service.ingress}
        elif roll < 0.6 and held:  # a hold ends: returned
            held.discard(rng.choice(sorted(held)))
        elif roll < 0.8 and live:  # a death (of a held member too: unreachable, expired)
            gone = rng.choice(sorted(live))
            live, held = live - {gone}, held - {gone}
        else:
            live = live | {rng.choice(speakers)}
        cluster = previous.with_live(sorted(live), held=sorted(held))
        kept = previous.holding(sorted(held & live))
        assert cluster.held == kept
        if began is not None:
            assert kept[name] == frozenset(began)
        reference = ClusterDecision(config, nodes, raw, live=sorted(live), speakers=speakers, held=kept)
        assert cluster.layer2 == reference.layer2
        for name in rng.sample(speakers, rng.randint(0, len(speakers))):
            assert cluster.node(name) == reference.node(name)
        for key, decision in cluster.layer2.items():
            if decision.node in kept:
                assert set(raw[key].service.ingress) <= kept[decision.node], (key, decision)
            assert not set(decision.candidates) & {
                h for h, ips in kept.items() if not ips >= set(raw[key].service.ingress)
            }


@pytest.mark.parametrize("seed", range(20))
def test_the_speakers_incremental_decision_with_holds_equals_the_full_one(seed: int) -> None:
    """The speaker's NodeDecider given holds in its Context (and deaths of held members, its urgent path)."""
    rng = random.Random(seed)
    config, nodes = CONFIGS[rng.randrange(len(CONFIGS))], _nodes(rng)
    inputs: dict[str, ServiceInput] = {}
    for _ in range(12):
        svc, slices = _service(rng)
        inputs[svc.key] = ServiceInput(svc, pool_for(config, svc.ingress), slices)
    live = frozenset(NAMES)
    decider = NodeDecider(Context(config, NODE, nodes, live))
    for key, item in inputs.items():
        decider.put(key, item)
    held: dict[str, frozenset[str]] = {}
    for _ in range(10):
        roll = rng.random()
        if roll < 0.4:
            name = rng.choice(sorted(live))
            held[name] = frozenset(rng.sample(IPS, rng.randint(0, 3)))
        elif roll < 0.6 and held:
            held.pop(rng.choice(sorted(held)))
        elif len(live) > 1:
            gone = rng.choice(sorted(live))
            live = live - {gone}
            held.pop(gone, None)
        decider.set_context(Context(config, NODE, nodes, live, held=dict(held)))
        decider.step(rng.choice((0, 1, 4)))
        full = decide_node(config, NODE, nodes, inputs, live=live, held=held)
        assert decider.decision() == full


def _preferring(variant: int) -> Config:
    """CONFIGS[variant] with preferred nodes on the Layer 2 pool: weights reorder the candidates."""
    objects = _objects(variant)
    for obj in objects:
        if obj["kind"] == "L2Advertisement" and obj["metadata"]["name"] == "all":
            obj["spec"]["preferredNodeSelectors"] = [
                {"weight": 10, "preference": {"matchLabels": {"rack": "2"}}},
                {"weight": 5, "preference": {"matchLabels": {"fast": "yes"}}},
            ]
    return speaker_config(objects, {}, NS)


PREFERRING = [_preferring(v) for v in range(3)]


def _raw_services(rng: random.Random, config: Config, count: int) -> dict[str, ServiceInput]:
    raw = {}
    for i in range(count):
        svc, slices = _service(rng)
        name = f"s{i}"
        svc = replace(svc, name=name)
        raw[svc.key] = ServiceInput(
            svc, pool_for(config, svc.ingress), tuple(replace(s, service_name=name) for s in slices)
        )
    return raw


@pytest.mark.parametrize("seed", range(40))
def test_members_coming_back_equal_a_fresh_decision(seed: int) -> None:
    """A MemberUp (and a return together with a death) from the previous ClusterDecision equals a fresh one,
    with preferred nodes reordering the candidates, ``externalTrafficPolicy: Local``, excluded and unavailable
    nodes: :func:`ironlb.layer2.election.elect_with` puts a returning speaker where :func:`elect` would."""
    rng = random.Random(seed)
    config = (PREFERRING + CONFIGS)[rng.randrange(len(PREFERRING) + len(CONFIGS))]
    nodes = tuple(replace(n, labels={**n.labels, "fast": "yes"}) if rng.random() < 0.4 else n for n in _nodes(rng))
    raw = _raw_services(rng, config, 20)
    speakers = [*NAMES, "n5"]
    exclude = rng.random() < 0.3
    live = frozenset(n for n in speakers if rng.random() < 0.4)
    cluster = ClusterDecision(config, nodes, raw, live=sorted(live), speakers=speakers, ignore_exclude_lb=exclude)
    for _ in range(10):
        came = {rng.choice(speakers) for _ in range(rng.choice((1, 1, 2)))}
        gone = {rng.choice(sorted(live))} if live and rng.random() < 0.25 else set()
        live = (live | came) - (gone - came)
        cluster = cluster.with_live(sorted(live))
        reference = ClusterDecision(config, nodes, raw, live=sorted(live), speakers=speakers,
                                    ignore_exclude_lb=exclude)  # fmt: skip
        assert cluster.layer2 == reference.layer2
        for name in rng.sample(speakers, rng.randint(1, len(speakers))):
            assert cluster.node(name) == reference.node(name)


def test_a_member_coming_back_elects_again_only_where_there_was_no_winner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A MemberUp costs no full election of a Service that had a winner, and no speaker decides a Service
    again from its inputs: only its Layer 2 part where the returning member now wins."""
    import ironlb.decide as decide

    config = PREFERRING[0]
    nodes = tuple(Node(n, {"rack": "1"}) for n in NAMES)
    raw = {}
    for i in range(60):
        svc = Service("app", f"s{i}", "LoadBalancer", cluster_ips=("10.96.0.1",), ingress=(f"192.168.1.{i % 14 + 1}",))
        slices = () if i % 10 == 0 else (EndpointSlice("app", f"s{i}-0", f"s{i}", (Endpoint(("10.244.0.1",), "n1"),)),)
        raw[svc.key] = ServiceInput(svc, pool_for(config, svc.ingress), slices)
    live = ["n1", "n2", "n3"]
    cluster = ClusterDecision(config, nodes, raw, live=live)
    cluster.nodes()
    elections: list[str] = []
    decisions: list[str] = []
    real_elect, real_decide = decide.elect_one, decide.decide_service

    def counting_elect(item: ServiceInput, *args: Any, **kwargs: Any) -> Any:
        elections.append(item.service.key)
        return real_elect(item, *args, **kwargs)

    def counting_decide(ctx: Context, item: ServiceInput, *args: Any, **kwargs: Any) -> Any:
        decisions.append(item.service.key)
        return real_decide(ctx, item, *args, **kwargs)

    monkeypatch.setattr(decide, "elect_one", counting_elect)
    monkeypatch.setattr(decide, "decide_service", counting_decide)
    back = cluster.with_live([*live, "n4"])
    decided = back.nodes()
    without_winner = sorted(k for k, d in cluster.layer2.items() if d.node is None)
    assert without_winner and sorted(elections) == without_winner
    assert decisions == []
    moved = {k for k, d in back.layer2.items() if d.node != cluster.layer2[k].node}
    assert moved and {back.layer2[k].node for k in moved} == {"n4"}
    monkeypatch.undo()
    reference = ClusterDecision(config, nodes, raw, live=[*live, "n4"])
    assert back.layer2 == reference.layer2
    assert decided == reference.nodes()


@pytest.mark.parametrize("seed", range(30))
def test_after_deaths_the_early_decision_announces_what_the_complete_one_does(seed: int) -> None:
    """After deaths, ``ClusterDecision.node(name, early=True)`` (ironlb run's take-over, before the candidates of
    the Services whose winner stands are complete) gives the announcement, BGP plan and statuses of a fresh
    decision, and its winners; asked again, or for the elections, the decision is complete."""
    rng = random.Random(seed)
    config = (PREFERRING + CONFIGS)[rng.randrange(len(PREFERRING) + len(CONFIGS))]
    nodes = _nodes(rng)
    raw = _raw_services(rng, config, 20)
    speakers = [*NAMES, "n5"]
    live = frozenset(speakers)
    cluster = ClusterDecision(config, nodes, raw, live=sorted(live), speakers=speakers)
    for name in rng.sample(speakers, rng.randint(0, len(speakers))):
        cluster.node(name)
    while len(live) > 1:
        live = live - set(rng.sample(sorted(live), rng.choice((1, 1, 2))))
        cluster = cluster.with_live(sorted(live))
        reference = ClusterDecision(config, nodes, raw, live=sorted(live), speakers=speakers)
        for name in rng.sample(speakers, rng.randint(1, len(speakers))):
            early, full = cluster.node(name, early=True), reference.node(name)
            assert early.announcement == full.announcement
            assert (early.bgp, early.l2_status, early.bgp_status, early.announce_failed) == (
                full.bgp, full.l2_status, full.bgp_status, full.announce_failed
            )  # fmt: skip
            assert {k: (d.node, d.interfaces) for k, d in early.layer2.items()} == {
                k: (d.node, d.interfaces) for k, d in full.layer2.items()
            }
            assert {k: (d.node, d.interfaces) for k, d in cluster.winners().items()} == {
                k: (d.node, d.interfaces) for k, d in reference.layer2.items()
            }
        if rng.random() < 0.5:
            assert cluster.layer2 == reference.layer2
        for name in rng.sample(speakers, rng.randint(1, len(speakers))):
            assert cluster.node(name) == reference.node(name)
