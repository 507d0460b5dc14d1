"""BGP route planning: reference 6.1, 3.2 and 3.3, one rule per test, on hand-built Config values."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import pytest

from ironlb.bgp.attributes import Attributes
from ironlb.bgp.planner import (
    CONFLICTING_ADVERTISEMENTS,
    NO_ENDPOINTS,
    NO_IP_ALLOCATED,
    NO_LOCAL_ENDPOINTS,
    NO_MATCHING_ADVERTISEMENT,
    NODE_LABELED_EXCLUDE_BALANCERS,
    NODE_NETWORK_UNAVAILABLE,
    NOT_LOAD_BALANCER,
    NOT_OWNER,
    Advertisement,
    ServiceInput,
    advertisements,
    has_healthy_endpoint,
    implicit_slice,
    peers_for_node,
    plan_node,
    routes_per_peer,
    should_announce,
)
from ironlb.cluster.labels import LabelSelector
from ironlb.cluster.objects import EXCLUDE_LB_LABEL, Endpoint, EndpointSlice, Node, Service
from ironlb.config.types import BGPAdvertisement, Community, Config, Peer, Pool

net = ipaddress.ip_network


def sel(**labels: str) -> LabelSelector:
    return LabelSelector(tuple(sorted(labels.items())))


def comm(text: str) -> Community:
    parts = text.split(":")
    if parts[0] == "large":
        return Community(tuple(int(p) for p in parts[1:]))
    return Community(((int(parts[0]) << 16) | int(parts[1]),))


def ad(name: str = "ad", **kw: object) -> BGPAdvertisement:
    if "communities" in kw:
        kw["communities"] = frozenset(comm(c) for c in kw["communities"])  # type: ignore[union-attr]
    return BGPAdvertisement(name, **kw)  # type: ignore[arg-type]


def pool(*ads: BGPAdvertisement, cidrs: tuple[str, ...] = ("10.20.30.0/24", "fc00:20::/120")) -> Pool:
    return Pool("p", tuple(net(c) for c in cidrs), bgp_advertisements=ads)


def service(
    ingress: tuple[str, ...] = ("10.20.30.1",), etp: str = "Cluster", name: str = "web", **labels: str
) -> Service:
    return Service(
        namespace="default",
        name=name,
        type="LoadBalancer",
        labels=labels,
        cluster_ips=("10.96.0.1",),
        external_traffic_policy=etp,
        ingress=ingress,
    )


def eps(*endpoints: Endpoint, name: str = "web") -> tuple[EndpointSlice, ...]:
    return (EndpointSlice("default", f"{name}-x", name, endpoints),)


def ep(node: str, addr: str = "10.1.0.1", ready: bool | None = True, serving: bool | None = None) -> Endpoint:
    return Endpoint((addr,) if addr else (), node, ready, serving)


N1 = Node("n1", {"zone": "a"})
N2 = Node("n2", {"zone": "b"})
READY_ON_N1 = eps(ep("n1"))


# --------------------------------------------------------------------------- reasons, in MetalLB's order


def test_announces_with_default_advertisement() -> None:
    assert should_announce(service(), pool(ad()), READY_ON_N1, N1) is None
    assert should_announce(service(), pool(ad()), READY_ON_N1, N2) is None  # Cluster: every node


def test_not_load_balancer_and_no_ip() -> None:
    svc = service()
    assert should_announce(Service("default", "web", ingress=("10.20.30.1",)), pool(ad()), (), N1) == NOT_LOAD_BALANCER
    assert should_announce(service(ingress=()), pool(ad()), READY_ON_N1, N1) == NO_IP_ALLOCATED
    assert should_announce(svc, None, READY_ON_N1, N1) == NO_IP_ALLOCATED


def test_not_owner_when_no_advertisement_selects_the_node() -> None:
    p = pool(ad(node_selectors=(sel(zone="b"),)))
    assert should_announce(service(), p, READY_ON_N1, N1) == NOT_OWNER
    assert should_announce(service(), p, READY_ON_N1, N2) is None
    # A pool without BGPAdvertisement is not announced over BGP by anybody.
    assert should_announce(service(), pool(), READY_ON_N1, N1) == NOT_OWNER


def test_no_matching_advertisement_when_service_selectors_do_not_match() -> None:
    p = pool(ad(service_selectors=(sel(app="db"),)))
    assert should_announce(service(app="web"), p, READY_ON_N1, N1) == NO_MATCHING_ADVERTISEMENT
    assert should_announce(service(app="db"), p, READY_ON_N1, N1) is None


def test_not_owner_comes_before_no_matching_advertisement() -> None:
    p = pool(ad(node_selectors=(sel(zone="b"),), service_selectors=(sel(app="db"),)))
    assert should_announce(service(app="web"), p, (), N1) == NOT_OWNER


def test_conflicting_advertisements() -> None:
    a = ad("a", local_pref=100, service_selectors=(sel(app="web"),))
    b = ad("b", local_pref=200)
    assert should_announce(service(app="web"), pool(a, b), READY_ON_N1, N1) == CONFLICTING_ADVERTISEMENTS
    # Same localPref, disjoint peers, or a service the first ad does not select: no conflict.
    assert should_announce(service(app="web"), pool(a, ad("b", local_pref=100)), READY_ON_N1, N1) is None
    a2 = ad("a", local_pref=100, peers=("r1",), service_selectors=(sel(app="web"),))
    b2 = ad("b", local_pref=200, peers=("r2",))
    assert should_announce(service(app="web"), pool(a2, b2), READY_ON_N1, N1) is None
    assert should_announce(service(app="other"), pool(a, b), READY_ON_N1, N1) is None


def test_conflict_needs_the_same_prefix() -> None:
    a = ad("a", local_pref=100, aggregation_length=24)
    b = ad("b", local_pref=200)
    assert should_announce(service(), pool(a, b, cidrs=("10.20.30.0/24",)), READY_ON_N1, N1) is None


def test_conflict_compares_aggregation_lengths_per_pool_family_not_per_ip() -> None:
    # MetalLB speaker/bgp_controller.go checkBGPAdvConflicts -> config.BGPAdvertisementsHaveCompatibleLocalPref
    # (isAggrLengthDifferent): in a dual-stack pool two ads are told apart only if both their v4 and v6 lengths
    # differ, whatever families the Service has; in a single-family pool that family's length is enough.
    a = ad("a", local_pref=100, aggregation_length=30, service_selectors=(sel(app="web"),))
    b = ad("b", local_pref=200)
    v4 = service(app="web")
    assert should_announce(v4, pool(a, b), READY_ON_N1, N1) == CONFLICTING_ADVERTISEMENTS
    assert should_announce(v4, pool(a, b, cidrs=("10.20.30.0/24",)), READY_ON_N1, N1) is None
    v6 = service(("fc00:20::1c",), app="web")
    a6 = ad("a", local_pref=100, aggregation_length_v6=124, service_selectors=(sel(app="web"),))
    assert should_announce(v6, pool(a6, b), READY_ON_N1, N1) == CONFLICTING_ADVERTISEMENTS
    assert should_announce(v6, pool(a6, b, cidrs=("fc00:20::/120",)), READY_ON_N1, N1) is None
    both = ad("a", local_pref=100, aggregation_length=30, aggregation_length_v6=124, service_selectors=(sel(app="web"),))
    assert should_announce(v6, pool(both, b), READY_ON_N1, N1) is None


def test_conflict_comes_before_node_conditions() -> None:
    a = ad("a", local_pref=100, service_selectors=(sel(app="web"),))
    b = ad("b", local_pref=200)
    sick = Node("n1", {EXCLUDE_LB_LABEL: ""}, network_unavailable=True)
    assert should_announce(service(app="web"), pool(a, b), READY_ON_N1, sick) == CONFLICTING_ADVERTISEMENTS


def test_network_unavailable_before_exclude_label() -> None:
    sick = Node("n1", {EXCLUDE_LB_LABEL: ""}, network_unavailable=True)
    assert should_announce(service(), pool(ad()), READY_ON_N1, sick) == NODE_NETWORK_UNAVAILABLE


def test_exclude_label_unless_ignored() -> None:
    excluded = Node("n1", {EXCLUDE_LB_LABEL: "anything"})
    assert should_announce(service(), pool(ad()), READY_ON_N1, excluded) == NODE_LABELED_EXCLUDE_BALANCERS
    assert should_announce(service(), pool(ad()), READY_ON_N1, excluded, ignore_exclude_lb=True) is None


def test_node_conditions_come_before_endpoints() -> None:
    excluded = Node("n1", {EXCLUDE_LB_LABEL: ""})
    assert should_announce(service(), pool(ad()), (), excluded) == NODE_LABELED_EXCLUDE_BALANCERS


def test_cluster_needs_a_serving_endpoint_anywhere() -> None:
    assert should_announce(service(), pool(ad()), eps(ep("n2")), N1) is None
    assert should_announce(service(), pool(ad()), (), N1) == NO_ENDPOINTS
    assert should_announce(service(), pool(ad()), eps(ep("n2", ready=False)), N1) == NO_ENDPOINTS


def test_local_needs_a_serving_endpoint_on_the_node() -> None:
    svc = service(etp="Local")
    assert should_announce(svc, pool(ad()), eps(ep("n1")), N1) is None
    assert should_announce(svc, pool(ad()), eps(ep("n1")), N2) == NO_LOCAL_ENDPOINTS
    assert should_announce(svc, pool(ad()), eps(ep("")), N1) == NO_LOCAL_ENDPOINTS  # no nodeName
    assert should_announce(svc, pool(ad()), (), N1) == NO_LOCAL_ENDPOINTS


def test_endpoints_need_addresses() -> None:
    assert should_announce(service(), pool(ad()), eps(ep("n1", addr="")), N1) == NO_ENDPOINTS
    assert should_announce(service(etp="Local"), pool(ad()), eps(ep("n1", addr="")), N1) == NO_LOCAL_ENDPOINTS


@pytest.mark.parametrize(
    ("ready", "serving", "can"),
    [(None, None, True), (True, None, True), (False, None, False), (False, True, True), (False, False, False)],
)
def test_serving_condition(ready: bool | None, serving: bool | None, can: bool) -> None:
    assert has_healthy_endpoint(eps(ep("n1", ready=ready, serving=serving))) is can


def test_an_address_serving_in_one_slice_counts_even_if_not_serving_in_another() -> None:
    # MetalLB speaker/bgp_controller.go hasHealthyEndpoint since v0.16.0 (commit "Simplify hasHealthyEndpoint logic
    # and fix edge cases with reused IPs"): any endpoint with an address that can serve; before, a not-serving
    # copy of the address in another slice won. Checked against MetalLB's bgpController on random cases.
    both = (
        EndpointSlice("default", "a", "web", (ep("n1", "10.1.0.1"),)),
        EndpointSlice("default", "b", "web", (ep("n1", "10.1.0.1", ready=False),)),
    )
    assert has_healthy_endpoint(both)
    assert has_healthy_endpoint(both, "n1") and not has_healthy_endpoint(both, "n2")
    assert should_announce(service(etp="Local"), pool(ad()), both, N1) is None
    assert not has_healthy_endpoint(both[1:])


def test_implicit_slice_serves_everywhere() -> None:
    svc = service(etp="Local")
    slices = (implicit_slice(svc, ["n1", "n2"]),)
    assert should_announce(svc, pool(ad()), slices, N1) is None
    assert should_announce(svc, pool(ad()), slices, N2) is None


# --------------------------------------------------------------------------- advertisements and routes


def test_one_advertisement_per_ip_and_matching_ad() -> None:
    p = pool(
        ad("all", communities=["65000:1"]),
        ad("agg", aggregation_length=24, aggregation_length_v6=64, local_pref=50),
        ad("zone-b", node_selectors=(sel(zone="b"),)),
    )
    got = advertisements(service(("10.20.30.7", "fc00:20::7")), p, N1)
    assert [(str(a.prefix), a.attributes) for a in got] == [
        ("10.20.30.7/32", Attributes(None, (65000 << 16 | 1,))),
        ("10.20.30.0/24", Attributes(50)),
        ("fc00:20::7/128", Attributes(None, (65000 << 16 | 1,))),
        ("fc00:20::/64", Attributes(50)),
    ]


def test_large_communities_and_peers() -> None:
    p = pool(ad(communities=["large:1:2:3", "65000:7"], peers=("r1",)))
    (a,) = advertisements(service(), p, N1)
    assert a.attributes.large_communities == ((1, 2, 3),)
    assert a.attributes.communities == (65000 << 16 | 7,)
    assert a.peers == frozenset({"r1"}) and a.matches_peer("r1") and not a.matches_peer("r2")


def test_routes_per_peer_merge_communities_and_filter_peers() -> None:
    pfx = net("10.20.30.0/24")
    ads = [
        Advertisement(pfx, Attributes(None, (1,))),
        Advertisement(pfx, Attributes(None, (2,), ((1, 2, 3),))),
        Advertisement(net("10.20.30.5/32"), Attributes(7), frozenset({"r2"})),
    ]
    got = routes_per_peer(ads, ["r1", "r2"])
    assert got["r1"] == {pfx: Attributes(None, (1, 2), ((1, 2, 3),))}
    assert got["r2"] == {pfx: Attributes(None, (1, 2), ((1, 2, 3),)), net("10.20.30.5/32"): Attributes(7)}


def peer(name: str, **kw: object) -> Peer:
    return Peer(name, my_asn=64512, peer_asn=64513, address="10.0.0.1", **kw)  # type: ignore[arg-type]


def cfg(p: Pool, *peers: Peer) -> Config:
    return Config(pools=(p,), peers=peers)


def inputs(*items: tuple[Service, tuple[EndpointSlice, ...]], p: Pool) -> Mapping[str, ServiceInput]:
    return {s.key: ServiceInput(s, p, sl) for s, sl in items}


def test_peer_node_selectors() -> None:
    c = cfg(pool(ad()), peer("r1"), peer("r2", node_selectors=(sel(zone="b"),)))
    assert [p.name for p in peers_for_node(c, N1)] == ["r1"]
    assert [p.name for p in peers_for_node(c, N2)] == ["r1", "r2"]


def test_aggregation_dedups_across_services() -> None:
    p = pool(ad(aggregation_length=24, communities=["65000:100"]))
    c = cfg(p, peer("r1"))
    a = service(("10.20.30.1",), name="a")
    b = service(("10.20.30.2",), name="b")
    plan = plan_node(c, N1, inputs((a, eps(ep("n1"), name="a")), (b, eps(ep("n1"), name="b")), p=p))
    assert plan.routes == {"r1": {net("10.20.30.0/24"): Attributes(None, (65000 << 16 | 100,))}}
    assert (
        plan.entries("default/a")
        == plan.entries("default/b")
        == [{"node": "n1", "prefix": "10.20.30.0/24", "peers": ["r1"], "communities": ["65000:100"], "localPref": None}]
    )


def test_communities_unioned_across_advertisements_of_the_same_prefix() -> None:
    p = pool(
        ad("a", communities=["65000:1"], local_pref=300),
        ad("b", communities=["large:1:2:3", "65000:2"], local_pref=300),
    )
    c = cfg(p, peer("r1"))
    plan = plan_node(c, N1, inputs((service(), READY_ON_N1), p=p))
    assert plan.entries("default/web") == [
        {
            "node": "n1",
            "prefix": "10.20.30.1/32",
            "peers": ["r1"],
            "communities": ["65000:1", "65000:2", "large:1:2:3"],
            "localPref": 300,
        }
    ]


def test_advertisement_peers_pick_bgppeer_names_and_ignore_unknown_ones() -> None:
    p = pool(ad(peers=("r2", "ghost")))
    c = cfg(p, peer("r1"), peer("r2"))
    plan = plan_node(c, N1, inputs((service(), READY_ON_N1), p=p))
    assert plan.routes["r1"] == {}
    assert [e["peers"] for e in plan.entries("default/web")] == [["r2"]]


def test_node_without_matching_peer_announces_to_nobody() -> None:
    p = pool(ad())
    c = cfg(p, peer("r1", node_selectors=(sel(zone="b"),)))
    plan = plan_node(c, N1, inputs((service(), READY_ON_N1), p=p))
    assert plan.peers == () and plan.routes == {}
    assert plan.entries("default/web")[0]["peers"] == []


def test_withdrawn_service_has_no_entries_and_a_reason() -> None:
    p = pool(ad())
    c = cfg(p, peer("r1"))
    plan = plan_node(c, N1, inputs((service(), ()), p=p))
    assert plan.reasons == {"default/web": NO_ENDPOINTS}
    assert plan.entries("default/web") == [] and plan.routes == {"r1": {}}


def test_local_etp_next_hops_only_where_endpoints_are() -> None:
    p = pool(ad())
    c = cfg(p, peer("r1"))
    svcs = inputs((service(etp="Local"), eps(ep("n2"))), p=p)
    assert plan_node(c, N1, svcs).routes == {"r1": {}}
    assert plan_node(c, N2, svcs).routes == {"r1": {net("10.20.30.1/32"): Attributes()}}


def test_prefixes_go_to_peers_of_their_family_unless_dual_stack() -> None:
    p = pool(ad())
    v4 = peer("v4")
    v6 = Peer("v6", my_asn=64512, peer_asn=64513, address="fd00::1")
    dual = Peer("dual", my_asn=64512, peer_asn=64513, address="10.0.0.9", dual_stack_address_family=True)
    c = cfg(p, dual, v4, v6)
    plan = plan_node(c, N1, inputs((service(("10.20.30.1", "fc00:20::1")), READY_ON_N1), p=p))
    assert plan.routes == {
        "dual": {net("10.20.30.1/32"): Attributes(), net("fc00:20::1/128"): Attributes()},
        "v4": {net("10.20.30.1/32"): Attributes()},
        "v6": {net("fc00:20::1/128"): Attributes()},
    }
    assert [(e["prefix"], e["peers"]) for e in plan.entries("default/web")] == [
        ("10.20.30.1/32", ["dual", "v4"]),
        ("fc00:20::1/128", ["dual", "v6"]),
    ]


@pytest.mark.parametrize(
    ("ip", "length", "length_v6"),
    [("10.50.1.2", 32, 128), ("10.50.1.2", 24, 64), ("10.50.1.2", 0, 0), ("2001:db8::5", 32, 128),
     ("2001:db8::5", 32, 64), ("::1", 32, 128), ("::ffff:10.0.0.1", 32, 96), ("fe80::1%eth0", 32, 128),
     ("fe80::1%eth0", 32, 64)],
)  # fmt: skip
def test_prefixes_are_the_string_forms(ip: str, length: int, length_v6: int) -> None:
    """The integer-built, cached prefix is what ``ip_network("ip/length", strict=False)`` gives (issue 16)."""
    from ipaddress import ip_address, ip_network

    from ironlb.bgp.planner import _network

    addr = ip_address(ip)
    want = ip_network(f"{addr}/{length if addr.version == 4 else length_v6}", strict=False)
    got = _network(ip, length, length_v6)
    assert (got, str(got), type(got)) == (want, str(want), type(want))
    with pytest.raises(ValueError):
        _network("10.50.1.256", length, length_v6)


@pytest.mark.parametrize(
    "ip",
    ["10.50.1.2", "0.0.0.0", "2001:db8::5", "::1", "::ffff:10.0.0.1", "fe80::1%eth0", "10.50.1.256", "", "10.1",
     "2001:db8::g", "1.2.3.4/32", " 1.2.3.4", "fe80::1%"],
)  # fmt: skip
def test_parse_address_is_ip_address(ip: str) -> None:
    """The cached parse a decision shares between a Service's pool and its prefixes gives ``ip_address``'s value,
    or its error, every time (issue 16)."""
    from ipaddress import ip_address

    from ironlb.bgp.planner import parse_address
    from ironlb.decide import pool_for

    everything = Config(pools=(Pool("all", cidrs=(net("0.0.0.0/0"), net("::/0"))),))
    try:
        want = ip_address(ip)
    except ValueError as err:
        for _ in range(2):
            with pytest.raises(ValueError) as got:
                parse_address(ip)
            assert (type(got.value), str(got.value)) == (type(err), str(err))
        assert pool_for(everything, [ip]) is None
        return
    assert pool_for(everything, [ip]) is everything.pools[0]
    for _ in range(2):
        got_addr = parse_address(ip)
        assert (got_addr, str(got_addr), type(got_addr), got_addr.scope_id if got_addr.version == 6 else None) == (
            want, str(want), type(want), want.scope_id if want.version == 6 else None)  # fmt: skip
