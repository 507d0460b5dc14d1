"""``ironlb plan``: the ``bgp`` entries and each speaker's own decision (``nodeReasons``), case by case.

Every expected value below was checked against MetalLB's speaker (``speaker/bgp_controller.go`` and
``speaker/layer2_controller.go``, main after v0.16.1) fed the same objects; each case names the MetalLB functions
whose behaviour it pins. MetalLB's code is not used by these tests: the cases are ours.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from ironlb.plan import plan_files

HEAD = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p, namespace: metallb-system}
spec: {addresses: ["10.40.0.0/24", "fc00:40::/120"]}
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: aliases, namespace: metallb-system}
spec: {communities: [{name: gold, value: "65000:100"}, {name: big, value: "large:1:2:3"}]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor-a, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64512, peerAddress: 10.0.0.1, nodeSelectors: [{matchLabels: {zone: a}}]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: spine, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64600, peerAddress: 10.0.0.2}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: spine6, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64600, peerAddress: "fd00::2"}
---
{apiVersion: v1, kind: Node, metadata: {name: a1, labels: {zone: a}}}
---
{apiVersion: v1, kind: Node, metadata: {name: a2, labels: {zone: a}}}
---
{apiVersion: v1, kind: Node, metadata: {name: b1, labels: {zone: b}}}
"""


def svc(name: str, ips: str, etp: str = "Cluster", labels: str = "{}", **more: str) -> str:
    families = "[IPv6]" if ":" in ips else "[IPv4]"
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default, labels: {labels}, annotations: {{metallb.io/loadBalancerIPs: "{ips}"}}}}
spec: {{type: LoadBalancer, externalTrafficPolicy: {etp}, ipFamilies: {families}, ports: [{{port: 80}}]}}
"""


def slice_(svc_name: str, suffix: str, *endpoints: str) -> str:
    return f"""
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {svc_name}-{suffix}, namespace: default, labels: {{kubernetes.io/service-name: {svc_name}}}}}
addressType: IPv4
endpoints: [{", ".join(endpoints)}]
"""


def bgp_ad(name: str, spec: str) -> str:
    return f"""
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: {name}, namespace: metallb-system}}
spec: {spec}
"""


def l2_ad(name: str, spec: str) -> str:
    return f"""
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: {name}, namespace: metallb-system}}
spec: {spec}
"""


def plan(tmp_path: Path, *docs: str, head: str = HEAD) -> dict[str, Any]:
    path = tmp_path / "cluster.yaml"
    path.write_text("---".join((head, *docs)))
    result, _ = plan_files([path])
    return result


def entry(node: str, prefix: str, peers: list[str], communities: tuple[str, ...] = (), lp: int | None = None) -> Any:
    return {"node": node, "prefix": prefix, "peers": peers, "communities": list(communities), "localPref": lp}


def test_peers_aggregation_communities_and_aliases(tmp_path: Path) -> None:
    # bgpController.syncPeers (a BGPPeer's nodeSelectors pick the nodes with a session), bgpAdsForService (an ad's
    # nodeSelectors), SetBalancer (one prefix per IP and ad, masked to aggregationLength), adsForPeer (an ad's
    # peers list), config.getCommunityValue (Community aliases, large ones too), FRR's per-family neighbours.
    out = plan(
        tmp_path,
        bgp_ad("hosts", "{communities: [gold, big, '65000:7'], localPref: 50}"),
        bgp_ad("agg", "{aggregationLength: 24, aggregationLengthV6: 120, peers: [spine, spine6], "
               "nodeSelectors: [{matchLabels: {zone: a}}]}"),
        svc("web", "10.40.0.9"),
        slice_("web", "x", "{addresses: [10.1.0.5], nodeName: b1}"),
        svc("web6", "fc00:40::9"),
        slice_("web6", "x", "{addresses: [10.1.0.6], nodeName: b1}"),
    )
    host = ("65000:100", "65000:7", "large:1:2:3")
    assert out["services"]["default/web"]["bgp"] == [
        entry("a1", "10.40.0.0/24", ["spine"]),
        entry("a1", "10.40.0.9/32", ["spine", "tor-a"], host, 50),
        entry("a2", "10.40.0.0/24", ["spine"]),
        entry("a2", "10.40.0.9/32", ["spine", "tor-a"], host, 50),
        entry("b1", "10.40.0.9/32", ["spine"], host, 50),
    ]
    assert out["services"]["default/web6"]["bgp"] == [
        entry("a1", "fc00:40::/120", ["spine6"]),
        entry("a1", "fc00:40::9/128", ["spine6"], host, 50),
        entry("a2", "fc00:40::/120", ["spine6"]),
        entry("a2", "fc00:40::9/128", ["spine6"], host, 50),
        entry("b1", "fc00:40::9/128", ["spine6"], host, 50),
    ]
    assert out["nodeReasons"]["default/web"]["bgp"] == {"a1": None, "a2": None, "b1": None}


def test_local_traffic_policy_and_node_state(tmp_path: Path) -> None:
    # bgpController.ShouldAnnounce: node conditions before endpoints (k8snodes.IsNetworkUnavailable, then
    # IsNodeExcludedFromBalancers), then hasHealthyEndpoint on this node for externalTrafficPolicy Local (since
    # v0.16.0 any endpoint with an address that can serve counts, even if the address is not serving in another
    # slice). layer2Controller.ShouldAnnounce: those nodes are no candidates, so their speakers say notOwner.
    head = HEAD.replace(
        "metadata: {name: a2, labels: {zone: a}}}",
        'metadata: {name: a2, labels: {zone: a}}, status: {conditions: [{type: NetworkUnavailable, status: "True"}]}}',
    ).replace(
        "metadata: {name: b1, labels: {zone: b}}}",
        'metadata: {name: b1, labels: {zone: b, node.kubernetes.io/exclude-from-external-load-balancers: ""}}}',
    )
    out = plan(
        tmp_path,
        bgp_ad("all", "{}"),
        l2_ad("all", "{}"),
        svc("local", "10.40.0.3", etp="Local"),
        slice_("local", "x", "{addresses: [10.1.0.5], nodeName: a1}", "{addresses: [10.1.0.6], nodeName: b1}"),
        slice_("local", "y", "{addresses: [10.1.0.5], nodeName: a1, conditions: {ready: false}}"),
        svc("nowhere", "10.40.0.4", etp="Local"),
        slice_("nowhere", "x", "{addresses: [10.1.0.7], nodeName: a2, conditions: {ready: false, serving: true}}"),
        head=head,
    )
    assert out["services"]["default/local"]["bgp"] == [entry("a1", "10.40.0.3/32", ["spine", "tor-a"])]
    reasons = out["nodeReasons"]["default/local"]
    assert reasons["bgp"] == {"a1": None, "a2": "nodeNetworkUnavailable", "b1": "nodeLabeledExcludeBalancers"}
    assert reasons["layer2"] == {
        "a1": {"reason": None, "detail": None, "rank": 0},
        "a2": {"reason": "notOwner", "detail": "nodeNetworkUnavailable"},
        "b1": {"reason": "notOwner", "detail": "nodeLabeledExcludeBalancers"},
    }
    # Serving (not ready) on a2 only, and a2 cannot announce: nobody does.
    assert out["services"]["default/nowhere"]["bgp"] == []
    assert out["services"]["default/nowhere"]["layer2"] == {"node": None, "reason": "notOwner", "interfaces": []}
    reasons = out["nodeReasons"]["default/nowhere"]
    assert reasons["bgp"] == {
        "a1": "noLocalEndpoints",
        "a2": "nodeNetworkUnavailable",
        "b1": "nodeLabeledExcludeBalancers",
    }
    assert reasons["layer2"] == {
        "a1": {"reason": "notOwner", "detail": "noLocalEndpoints"},
        "a2": {"reason": "notOwner", "detail": "nodeNetworkUnavailable"},
        "b1": {"reason": "notOwner", "detail": "nodeLabeledExcludeBalancers"},
    }


def test_conflicting_local_prefs_in_a_dual_stack_pool(tmp_path: Path) -> None:
    # bgpController.ShouldAnnounce -> checkBGPAdvConflicts -> config.BGPAdvertisementsHaveCompatibleLocalPref: the
    # pool has both families, so a different v4 aggregationLength alone does not keep the two ads apart (the v6
    # lengths are equal), even for an IPv4-only Service; ads without serviceSelectors would be refused at load.
    out = plan(
        tmp_path,
        bgp_ad("short", "{localPref: 100, serviceSelectors: [{matchLabels: {app: web}}]}"),
        bgp_ad("agg", "{localPref: 200, aggregationLength: 30}"),
        svc("web", "10.40.0.9", labels="{app: web}"),
        slice_("web", "x", "{addresses: [10.1.0.5], nodeName: b1}"),
        svc("other", "10.40.0.10"),
        slice_("other", "x", "{addresses: [10.1.0.6], nodeName: b1}"),
    )
    assert out["services"]["default/web"]["bgp"] == []
    assert out["nodeReasons"]["default/web"]["bgp"] == dict.fromkeys(["a1", "a2", "b1"], "conflictingAdvertisements")
    # A Service only one of them selects is announced.
    assert [e["prefix"] for e in out["services"]["default/other"]["bgp"]] == ["10.40.0.8/30"] * 3


def test_layer2_each_speaker_decides(tmp_path: Path) -> None:
    # layer2Controller.ShouldAnnounce, per speaker: activeEndpointExists (none serving: notOwner everywhere), the
    # shared-IP/serviceSelectors rule, adsMatchNodeL2 for *this* node (noMatchingAdvertisement), then the election
    # among the candidates (speakersForAds, sortL2Candidates): the first announces, the others say notOwner.
    out = plan(
        tmp_path,
        l2_ad("zone-a", "{nodeSelectors: [{matchLabels: {zone: a}}]}"),
        svc("web", "10.40.0.9"),
        slice_("web", "x", "{addresses: [10.1.0.5], nodeName: b1}"),
        svc("idle", "10.40.0.10"),
        slice_("idle", "x", "{addresses: [10.1.0.6], nodeName: b1, conditions: {ready: false}}"),
    )
    web = out["services"]["default/web"]["layer2"]
    winner, loser = ("a1", "a2") if web["node"] == "a1" else ("a2", "a1")
    assert out["nodeReasons"]["default/web"]["layer2"] == {
        winner: {"reason": None, "detail": None, "rank": 0},
        loser: {"reason": "notOwner", "detail": "notElected", "rank": 1},
        "b1": {"reason": "noMatchingAdvertisement", "detail": None},
    }
    idle = {"reason": "notOwner", "detail": "noEndpoints"}
    assert out["nodeReasons"]["default/idle"]["layer2"] == {"a1": idle, "a2": idle, "b1": idle}
    # No BGPAdvertisement: every BGP speaker says notOwner (poolMatchesNodeBGP).
    assert out["nodeReasons"]["default/web"]["bgp"] == dict.fromkeys(["a1", "a2", "b1"], "notOwner")


@pytest.mark.parametrize(
    ("selectors", "reason"),
    [("", None), ("serviceSelectors: [{matchLabels: {app: web}}]", "sharedIPWithServiceSelector")],
)
def test_layer2_shared_ip_with_service_selectors(tmp_path: Path, selectors: str, reason: str | None) -> None:
    # layer2Controller.ShouldAnnounce: serviceHasSharedIP && adsHaveServiceSelectors, on every speaker.
    shared = svc("web", "10.40.0.9", labels="{app: web}").replace(
        "annotations: {", 'annotations: {metallb.io/allow-shared-ip: "k", '
    )
    out = plan(
        tmp_path,
        l2_ad("all", "{" + selectors + "}"),
        shared,
        slice_("web", "x", "{addresses: [10.1.0.5], nodeName: b1}"),
    )
    reasons = {n: r["reason"] for n, r in out["nodeReasons"]["default/web"]["layer2"].items()}
    if reason is None:
        assert sorted(reasons.values(), key=str) == [None, "notOwner", "notOwner"]
    else:
        assert reasons == dict.fromkeys(["a1", "a2", "b1"], reason)


def test_speakers_without_a_node_object_or_not_live() -> None:
    # MetalLB's L2Advertisement Nodes map holds only the cluster's Node objects (adsMatchNodeL2 is false for a
    # speaker without one); a node whose speaker is not live (memberlist) is no candidate: its speaker, if any,
    # says notOwner (speakersForAds / UsableSpeakers).
    from ironlb.cluster.objects import Endpoint, EndpointSlice, Node, Service
    from ironlb.config.types import L2Advertisement, Pool
    from ironlb.layer2.election import elect, with_node_reasons

    pool = Pool("p", (ipaddress.ip_network("10.40.0.0/24"),), l2_advertisements=(L2Advertisement("all"),))
    service = Service("default", "web", type="LoadBalancer", cluster_ips=("10.96.0.1",), ingress=("10.40.0.9",))
    nodes = (Node("n1"), Node("n2"))
    slices = (EndpointSlice("default", "web-x", "web", (Endpoint(("10.1.0.5",), "n1"),)),)
    decision = elect(service, pool, nodes, ["n1"], slices)
    got = with_node_reasons(decision, ["n1", "n2", "ghost"], service, pool, nodes, ["n1"], slices)
    assert got == decision  # the per-node part is not part of the decision's equality
    assert got.nodes_dict() == {
        "n1": {"reason": None, "detail": None, "rank": 0},
        "n2": {"reason": "notOwner", "detail": "speakerNotLive"},
        "ghost": {"reason": "noMatchingAdvertisement", "detail": "noNodeObject"},
    }
