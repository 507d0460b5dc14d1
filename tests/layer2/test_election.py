"""The L2 election: MetalLB's TestSortL2Candidates vectors and the eligibility rules of reference 5.1."""

from __future__ import annotations

import ipaddress

import pytest

from ironlb.cluster.labels import LabelSelector
from ironlb.cluster.objects import EXCLUDE_LB_LABEL, Endpoint, EndpointSlice, Node, Service, ServicePort
from ironlb.config.types import L2Advertisement, Pool, PreferredNode
from ironlb.layer2.election import elect, sort_candidates


@pytest.mark.parametrize(
    ("nodes", "ip", "scores", "order"),
    [
        (["node-a", "node-b", "node-c"], "10.0.0.1", {}, ["node-b", "node-a", "node-c"]),
        (["node-a", "node-b", "node-c"], "10.0.0.2", {}, ["node-b", "node-c", "node-a"]),
        (["edge-a", "edge-b", "worker-a", "worker-b"], "10.20.30.1", {"edge-a": 100}, ["edge-a", "edge-b", "worker-a", "worker-b"]),
        (["node-a", "node-b"], "10.20.30.1", {"node-a": 100, "node-b": 100}, ["node-b", "node-a"]),
        (["edge-a", "edge-b", "worker-a"], "10.20.30.1", {"edge-a": 100, "edge-b": 100}, ["edge-b", "edge-a", "worker-a"]),
        (["iris1", "iris2"], "10.20.30.1", {}, ["iris2", "iris1"]),
    ],
)
def test_sort_l2_candidates_vectors(nodes: list[str], ip: str, scores: dict[str, int], order: list[str]) -> None:
    assert sort_candidates(nodes, ip, scores) == order


def sel(**labels: str) -> LabelSelector:
    return LabelSelector(tuple(sorted(labels.items())))


def pool(*ads: L2Advertisement) -> Pool:
    return Pool("p", (ipaddress.ip_network("10.20.30.0/24"),), l2_advertisements=ads)


def service(etp: str = "Cluster", ip: str = "10.20.30.1", **annotations: str) -> Service:
    return Service(
        namespace="default", name="web", type="LoadBalancer", cluster_ips=("10.96.0.1",),
        ports=(ServicePort("TCP", 80),), ingress=(ip,), external_traffic_policy=etp,
        annotations=annotations, labels={"app": "web"},
    )


def slices(*on_nodes: str, ready: bool = True) -> list[EndpointSlice]:
    return [EndpointSlice("default", "web-1", "web", tuple(Endpoint(("10.1.0.1",), n, ready) for n in on_nodes))]


NODES = [Node("iris1"), Node("iris2"), Node("iris3", {"edge": "true"})]
ALL = [n.name for n in NODES]


def test_winner_is_the_first_candidate_and_is_stable() -> None:
    d = elect(service(), pool(L2Advertisement("ad")), NODES, ALL, slices("iris1"))
    assert d.node == sort_candidates(ALL, "10.20.30.1")[0]
    assert d.reason is None and d.interfaces == ()
    # Removing a non-winner never moves the IP.
    others = [n for n in ALL if n != d.node]
    d2 = elect(service(), pool(L2Advertisement("ad")), NODES, [d.node, others[0]], slices("iris1"))
    assert d2.node == d.node


def test_no_endpoints_no_ads_and_no_ip() -> None:
    assert elect(service(), pool(L2Advertisement("ad")), NODES, ALL, []).reason == "notOwner"
    assert elect(service(), pool(L2Advertisement("ad")), NODES, ALL, slices("iris1", ready=False)).reason == "notOwner"
    assert elect(service(), pool(), NODES, ALL, slices("iris1")).reason == "noMatchingAdvertisement"
    no_ip = Service(namespace="default", name="web", type="LoadBalancer")
    assert elect(no_ip, pool(L2Advertisement("ad")), NODES, ALL, slices("iris1")).reason == "noIPAllocated"


def test_node_selectors_restrict_candidates() -> None:
    d = elect(service(), pool(L2Advertisement("ad", node_selectors=(sel(edge="true"),))), NODES, ALL, slices("iris1"))
    assert d.node == "iris3"
    assert d.candidates == ("iris3",)


def test_advertisements_selecting_no_speaker_say_no_matching_advertisement() -> None:
    """MetalLB's layer2Controller.ShouldAnnounce checks adsMatchNodeL2 for its own node before anything about
    candidates: when the L2Advertisements select no node with a speaker, every speaker says
    noMatchingAdvertisement (not notOwner)."""
    nowhere = pool(L2Advertisement("ad", node_selectors=(sel(zone="mars"),)))
    assert elect(service(), nowhere, NODES, ALL, slices("iris1")).reason == "noMatchingAdvertisement"
    assert elect(service("Local"), nowhere, NODES, ALL, slices("iris1")).reason == "noMatchingAdvertisement"
    # Only the dead iris3 is selected: the live speakers are not selected either.
    edge = pool(L2Advertisement("ad", node_selectors=(sel(edge="true"),)))
    assert elect(service(), edge, NODES, ["iris1", "iris2"], slices("iris1")).reason == "noMatchingAdvertisement"
    # Selected but not eligible (ETP Local, no endpoint there): notOwner, as MetalLB's "no available nodes".
    assert elect(service("Local"), edge, NODES, ALL, slices("iris1")).reason == "notOwner"


def test_etp_local_only_nodes_with_endpoints() -> None:
    for node in ALL:
        assert elect(service("Local"), pool(L2Advertisement("ad")), NODES, ALL, slices(node)).node == node


def test_exclude_label_and_network_unavailable() -> None:
    winner = elect(service(), pool(L2Advertisement("ad")), NODES, ALL, slices("iris1")).node
    assert winner is not None
    excluded = [Node(n.name, {EXCLUDE_LB_LABEL: ""}) if n.name == winner else n for n in NODES]
    moved = elect(service(), pool(L2Advertisement("ad")), excluded, ALL, slices("iris1"))
    assert moved.node not in (None, winner)
    back = elect(service(), pool(L2Advertisement("ad")), excluded, ALL, slices("iris1"), ignore_exclude_lb=True)
    assert back.node == winner
    down = [Node(n.name, n.labels, network_unavailable=(n.name == winner)) for n in NODES]
    assert elect(service(), pool(L2Advertisement("ad")), down, ALL, slices("iris1")).node not in (None, winner)


def test_preferred_nodes_win_and_scores_add_up() -> None:
    ad = L2Advertisement("ad", preferred_nodes=(PreferredNode(50, sel(edge="true")),))
    assert elect(service(), pool(ad), NODES, ALL, slices("iris1")).node == "iris3"
    # A preference on a node the ad does not select counts for nothing.
    ad2 = L2Advertisement("ad2", node_selectors=(sel(edge="false"),), preferred_nodes=(PreferredNode(99, sel(edge="true")),))
    plain = elect(service(), pool(L2Advertisement("ad")), NODES, ALL, slices("iris1")).node
    assert elect(service(), pool(L2Advertisement("ad"), ad2), NODES, ALL, slices("iris1")).node == plain


def test_shared_ip_with_service_selector_is_not_announced() -> None:
    ad = L2Advertisement("ad", service_selectors=(sel(app="web"),))
    assert elect(service(**{"metallb.io/allow-shared-ip": "k"}), pool(ad), NODES, ALL, slices("iris1")).reason == (
        "sharedIPWithServiceSelector"
    )
    assert elect(service(), pool(ad), NODES, ALL, slices("iris1")).node is not None


def test_interfaces_are_the_union_of_the_winners_ads() -> None:
    a = L2Advertisement("a", interfaces=("eth1",))
    b = L2Advertisement("b", interfaces=("eth0", "eth1"))
    c = L2Advertisement("c", interfaces=("eth9",), node_selectors=(sel(nothing="matches"),))
    d = elect(service(), pool(a, b, c), NODES, ALL, slices("iris1"))
    assert d.interfaces == ("eth0", "eth1")
    assert elect(service(), pool(a, L2Advertisement("all")), NODES, ALL, slices("iris1")).interfaces == ()


def test_services_sharing_an_ip_get_the_same_node() -> None:
    d1 = elect(service(ip="10.20.30.7"), pool(L2Advertisement("ad")), NODES, ALL, slices("iris1"))
    other = Service(namespace="x", name="y", type="LoadBalancer", ingress=("10.20.30.7",))
    other_slices = [EndpointSlice("x", "y-1", "y", (Endpoint(("1.1.1.1",), "iris2"),))]
    assert elect(other, pool(L2Advertisement("ad")), NODES, ALL, other_slices).node == d1.node
