"""``ironlb run``'s pure decision for BGP: the node's sessions and routes, independent of quorum."""

from __future__ import annotations

from ipaddress import ip_network

from ironlb.bgp.attributes import Attributes
from ironlb.standalone.decide import decide
from tests.support.objects import BGP_HOSTS, BGP_POOL, TOR, documents, snapshot_of

STATE = documents(BGP_POOL, BGP_HOSTS, TOR) + """---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, loadBalancerIP: 10.50.0.10, ports: [{port: 80}]}
"""


def test_bgp_routes_without_endpoint_slices_and_without_quorum() -> None:
    for quorum in (True, False):
        d = decide(snapshot_of(STATE), node="n1", members={"n1", "n2", "n3"}, alive={"n1"}, has_quorum=quorum)
        assert d.bgp is not None and [p.name for p in d.bgp.peers] == ["tor"]
        assert d.bgp.routes == {"tor": {ip_network("10.50.0.10/32"): Attributes(None, (64512 << 16 | 100,))}}
        entries = d.plan["services"]["default/web"]["bgp"]
        assert {e["node"] for e in entries} == {"n1", "n2", "n3"}  # every member is a speaker
        assert d.layer2 == {}


def test_a_member_without_its_node_object_runs_sessions_but_announces_nothing() -> None:
    # MetalLB's speaker: syncPeers runs the sessions of peers without nodeSelectors (no labels), but
    # poolMatchesNodeBGP finds the node in no BGPAdvertisement's Nodes (built from the cluster's Node objects).
    state = STATE + "---\n{apiVersion: v1, kind: Node, metadata: {name: n2}}\n"
    snap = snapshot_of(state)
    d = decide(snap, node="n1", members={"n1", "n2"}, alive={"n1", "n2"})
    assert d.bgp is not None and [p.name for p in d.bgp.peers] == ["tor"]
    assert d.bgp.reasons == {"default/web": "notOwner"} and d.bgp.routes == {"tor": {}}
    assert {e["node"] for e in d.plan["services"]["default/web"]["bgp"]} == {"n2"}
    assert d.plan["nodeReasons"]["default/web"]["bgp"] == {"n1": "notOwner", "n2": None}
