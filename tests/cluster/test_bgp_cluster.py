"""BGP mode on the real cluster, against the lab's FRR router (src/ironlb/lab/kube_cluster.py): every node's
speaker pod peers with it, a Service's IP reaches it with one next hop per announcing node (installed as ECMP
routes), the BGPAdvertisement's community rides along, ``externalTrafficPolicy: Local`` narrows the next hops to the
nodes with a ready pod, BFD sessions come up, and the client outside the cluster reaches the pods through the router.

Self-contained (it applies the backend pods itself, removes what it made), so it can run before the seed's tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ironlb.lab.kube_cluster import ROUTER_ASN, ROUTER_IP, KubeCluster, wait_until
from ironlb.lab.kube_demo import (
    BACKEND,
    BGP_POOL,
    bgp_config,
    delete_bgp_config,
    external_ip,
    http_echo_deployment,
    lb_service,
    pods_state,
    ready_pods,
)

pytestmark = pytest.mark.cluster

BGP_IP = BGP_POOL[0]
LOCAL_IP = "10.77.0.11"
COMMUNITY = "64512:300"
BGP_CONFIG = bgp_config(community=COMMUNITY)

LOCAL_APP = http_echo_deployment("bgp-local-app", node="node2")


@pytest.fixture(scope="module")
def bgp_cluster(ironlb_installed: KubeCluster) -> Iterator[KubeCluster]:
    """The router, ironlb's BGP configuration applied, and every node's session Established (then removed)."""
    c = ironlb_installed
    if c.frr is None:
        pytest.fail("FRR is not installed (scripts/setup.sh installs it): the cluster lab has no router")
    c.kubectl("apply", "-f", "-", input=BACKEND)
    c.kubectl("apply", "-f", "-", input=BGP_CONFIG)
    for node in c.nodes:
        wait_until(lambda ip=node.ip: _bgp_state(c, ip) == "Established", 120,  # type: ignore[misc]
                   f"the router's session with {node.name} Established", interval=1)
    yield c
    delete_bgp_config(c)


def _bgp_state(c: KubeCluster, ip: str) -> str | None:
    assert c.frr is not None
    state = c.frr.json(f"show bgp neighbor {ip} json").get(ip, {}).get("bgpState")
    return None if state is None else str(state)


def _paths(c: KubeCluster, ip: str) -> list[dict[str, Any]]:
    assert c.frr is not None
    paths: list[dict[str, Any]] = c.frr.json(f"show bgp ipv4 unicast {ip}/32 json").get("paths", [])
    return paths


def _next_hops(c: KubeCluster, ip: str) -> set[str]:
    return {h["ip"] for p in _paths(c, ip) for h in p.get("nexthops", [])}


def _kernel_next_hops(c: KubeCluster, ip: str) -> set[str]:
    """The next hops zebra installed in the router's kernel for ``ip`` (``ip route``: one per ECMP leg)."""
    out = c.lab.run(c.router, ["ip", "-j", "route", "show", f"{ip}/32"]).stdout
    routes = json.loads(out or "[]")
    hops = {r["gateway"] for r in routes if "gateway" in r}
    hops |= {h["gateway"] for r in routes for h in r.get("nexthops", []) if "gateway" in h}
    return hops


def test_bgp_ecmp_through_the_router(bgp_cluster: KubeCluster) -> None:
    """A BGP Service: the router has one path per node (next hops 192.168.1.11-13, the community on each),
    installs all three in its kernel, and the client reaches the pods at the IP through it."""
    c = bgp_cluster
    all_nodes = {n.ip for n in c.nodes}
    c.kubectl("apply", "-f", "-", input=lb_service("bgp-service", BGP_IP, pool="bgp-pool"))
    try:
        assert wait_until(lambda: external_ip(c, "bgp-service"), 120, "EXTERNAL-IP of bgp-service") == BGP_IP
        wait_until(lambda: _next_hops(c, BGP_IP) == all_nodes, 60, f"{BGP_IP} from the 3 nodes at the router")
        for path in _paths(c, BGP_IP):
            assert COMMUNITY in path.get("community", {}).get("string", "").split(), path
        wait_until(lambda: _kernel_next_hops(c, BGP_IP) == all_nodes, 60, f"3 ECMP routes to {BGP_IP} installed")
        wait_until(lambda: len(ready_pods(c, "default", "app=my-app")) == 3, 300,
                   lambda: f"my-app pods Ready: {pods_state(c, 'default', 'app=my-app')}", interval=1)
        pods = {p["metadata"]["name"] for p in ready_pods(c, "default", "app=my-app")}
        body = wait_until(lambda: c.client_get(f"http://{BGP_IP}/"), 60, f"the client's GET http://{BGP_IP}/")
        assert body.strip() in pods
        # Through the router, still: it sent no ICMP redirect that would send the client straight to a node.
        route = c.client_run(["ip", "route", "get", BGP_IP]).stdout
        assert f"via {ROUTER_IP} " in route and "redirected" not in route, route
    finally:
        c.kubectl("delete", "svc", "bgp-service", "--ignore-not-found")
    wait_until(lambda: not _paths(c, BGP_IP), 60, f"{BGP_IP} withdrawn at the router")


def test_bgp_external_traffic_policy_local_only_nodes_with_a_pod(bgp_cluster: KubeCluster) -> None:
    """``externalTrafficPolicy: Local`` in BGP mode: only node2, where the one pod runs, is a next hop."""
    c = bgp_cluster
    c.kubectl("apply", "-f", "-", input=LOCAL_APP)
    c.kubectl("apply", "-f", "-",
              input=lb_service("bgp-local", LOCAL_IP, pool="bgp-pool", selector="bgp-local-app", policy="Local"))
    try:
        wait_until(lambda: [p["spec"]["nodeName"] for p in ready_pods(c, "default", "app=bgp-local-app")]
                   == ["node2"], 180,
                   lambda: f"bgp-local-app Ready on node2: {pods_state(c, 'default', 'app=bgp-local-app')}",
                   interval=1)
        assert wait_until(lambda: external_ip(c, "bgp-local"), 120, "EXTERNAL-IP of bgp-local") == LOCAL_IP
        node2 = c.node("node2").ip
        wait_until(lambda: _next_hops(c, LOCAL_IP) == {node2}, 60, f"{LOCAL_IP} from node2 only")
        assert wait_until(lambda: c.client_get(f"http://{LOCAL_IP}/"), 60, f"the client's GET at {LOCAL_IP}")
    finally:
        c.kubectl("delete", "svc", "bgp-local", "--ignore-not-found")
        c.kubectl("delete", "deployment", "bgp-local-app", "--ignore-not-found")


def test_bfd_sessions_up_with_every_node(bgp_cluster: KubeCluster) -> None:
    """The BGPPeer's BFD profile: the router, asked to run BFD with each node, sees every session up."""
    c = bgp_cluster
    assert c.frr is not None
    c.frr.configure(f"router bgp {ROUTER_ASN}\n" + "".join(f" neighbor {n.ip} bfd\n" for n in c.nodes))
    try:
        for node in c.nodes:
            wait_until(lambda ip=node.ip: c.frr is not None and c.frr.bfd_status(ip) == "up",  # type: ignore[misc]
                       60, f"BFD with {node.name} up at the router", interval=1)
    finally:
        c.frr.configure(f"router bgp {ROUTER_ASN}\n" + "".join(f" no neighbor {n.ip} bfd\n" for n in c.nodes))
