"""One node decision: ``ironlb plan``, the speaker and ``ironlb run`` announce the same thing from the same state."""

from __future__ import annotations

from ipaddress import ip_network

from ironlb.decide import decide_node, handed_over, pool_for, served_everywhere, service_inputs
from ironlb.layer2.election import L2Decision
from ironlb.plan import allocate, cluster_decision
from ironlb.standalone.decide import decide
from tests.support.objects import (
    BGP_HOSTS,
    BGP_POOL,
    TOR,
    documents,
    l2_advertisement_yaml,
    pool_yaml,
    snapshot_of,
)

STATE = documents(
    pool_yaml("l2", "192.168.10.0/28"),
    BGP_POOL,
    l2_advertisement_yaml("eth0", ["l2"], interfaces=["eth0"]),
    l2_advertisement_yaml("eth1", ["l2"], interfaces=["eth1"], nodeSelectors=[{"matchLabels": {"rack": "1"}}]),
    BGP_HOSTS,
    TOR,
) + """---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {rack: "1"}}
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {rack: "1"}}
---
apiVersion: v1
kind: Node
metadata: {name: n3}
"""

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, loadBalancerIP: 192.168.10.3, ports: [{port: 80}], selector: {app: web}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec: {type: LoadBalancer, loadBalancerIP: 10.50.0.7, externalTrafficPolicy: Local, ports: [{port: 80}],
       selector: {app: api}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
- {addresses: [10.244.1.5], nodeName: n1, conditions: {ready: true}}
- {addresses: [10.244.2.5], nodeName: n2, conditions: {ready: true}}
- {addresses: [10.244.3.5], nodeName: n3, conditions: {ready: true}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-1, namespace: default, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
endpoints:
- {addresses: [10.244.2.9], nodeName: n2, conditions: {ready: true}}
"""

NODES = ("n1", "n2", "n3")


def test_plan_speaker_and_run_announce_the_same() -> None:
    snap = snapshot_of(STATE, SERVICES)
    _, outcomes = allocate(snap)
    planned = cluster_decision(snap, outcomes).nodes()
    # The speaker sees only the ingress the controller wrote, and finds the pool from it.
    written = [(o.service, pool_for(snap.config, o.service.ingress)) for o in outcomes.values()]
    inputs = service_inputs(written, snap.endpoint_slices)
    seen = set()
    for node in NODES:
        speaker = decide_node(snap.config, node, snap.nodes, inputs, live=None).announcement
        run = decide(snap, node=node, members=NODES, alive=NODES).announcement
        assert planned[node].announcement == speaker == run
        seen |= set(speaker.layer2)
    assert seen == {"192.168.10.3"}
    # api (ETP Local) is announced over BGP from n2 only, where its endpoint is.
    assert [n for n in NODES if ("default/api", "bgp", n, "10.50.0.7") in planned[n].announcement.series] == ["n2"]


def test_the_l2_interfaces_of_a_winner_in_rack_1_are_merged() -> None:
    snap = snapshot_of(STATE, SERVICES)
    _, outcomes = allocate(snap)
    cluster = cluster_decision(snap, outcomes)
    layer2, planned = cluster.layer2, cluster.nodes()
    winner = layer2["default/web"].node
    assert winner is not None
    expected = ("eth0", "eth1") if winner in ("n1", "n2") else ("eth0",)
    assert planned[winner].announcement.layer2 == {"192.168.10.3": expected}


def test_run_serves_a_service_without_slices_on_every_node_over_both_protocols() -> None:
    """``ironlb run``'s one "served everywhere" rule holds for L2 and for BGP, ETP Local included."""
    services = "---".join(SERVICES.split("---")[:2])
    snap = snapshot_of(STATE, services)
    for node in NODES:
        d = decide(snap, node=node, members=NODES, alive=NODES)
        assert d.bgp is not None and ip_network("10.50.0.7/32") in d.bgp.routes["tor"]
        assert ("default/api", "bgp", node, "10.50.0.7") in d.announcement.series
    owners = [n for n in NODES if decide(snap, node=n, members=NODES, alive=NODES).layer2]
    assert len(owners) == 1
    # Kubernetes (plan, speaker): no EndpointSlice means no endpoint, so nothing is announced.
    _, outcomes = allocate(snap)
    planned = cluster_decision(snap, outcomes).nodes()
    assert all(not d.announcement.series for d in planned.values())
    inputs = service_inputs(((o.service, None) for o in outcomes.values()), ())
    assert set(served_everywhere(inputs, NODES)) == set(inputs)


def test_handed_over_names_the_ips_another_live_node_takes() -> None:

    l2 = {
        "a/mine": L2Decision("n1", None, (), ("n1", "n2")),
        "a/alone": L2Decision("n1", None, (), ("n1",)),  # externalTrafficPolicy Local, one endpoint node
        "a/theirs": L2Decision("n2", None, (), ("n2", "n1")),
        "a/nobody": L2Decision(None, "notOwner"),
    }
    ingress = {"a/mine": ("10.0.0.1",), "a/alone": ("10.0.0.2",), "a/theirs": ("10.0.0.3", "fd00::3")}
    assert handed_over("n1", l2, ingress) == {"10.0.0.3", "fd00::3"}
    assert handed_over("n1", l2, ingress, leaving=True) == {"10.0.0.1"}
