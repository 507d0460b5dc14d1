"""The weighted-ECMP topology shared by ``tests/bgp/test_weighted_frr.py`` and ``bench/bgp_weights.py``.

Three nodes peer over eBGP with one FRR router (multipath across the nodes' AS paths); the advertisement carries
ironlb's ``ironlb.io/link-bandwidth: ready-endpoints`` annotation, so FRR weights each node's next hop by its ready
local endpoints.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.bgp_interop import ROUTER4, BgpLan, frr_bgp_conf, peer_yaml, slice_yaml
from tests.support.objects import BGP_POOL, bgp_advertisement_yaml, documents

PREFIX = "10.50.0.20/32"
ROUTER_ASN, NODE_ASN = 64512, 64513

CONFIG = documents(
    BGP_POOL, bgp_advertisement_yaml("weighted", ["bgp"], annotations={"ironlb.io/link-bandwidth": "ready-endpoints"})
)
PEER = peer_yaml("tor", NODE_ASN, ROUTER_ASN, ROUTER4, connectTime="1s")


def router_conf(lan: BgpLan) -> str:
    """eBGP multipath (across the nodes' AS paths) with every node, connect retry 1 s."""
    neighbors = [(lan.node_ip(n), NODE_ASN, ["timers connect 1"]) for n in sorted(lan.nodes)]
    return frr_bgp_conf(ROUTER_ASN, neighbors, options=["bgp bestpath as-path multipath-relax"])


def endpoints(counts: dict[str, int]) -> str:
    """An EndpointSlice of ``local`` with ``counts[node]`` ready endpoints on each node (and one unready each)."""
    eps: list[tuple[str, str, bool]] = []
    for k, (node, n) in enumerate(sorted(counts.items())):
        eps += [(f"10.1.{k}.{i + 1}", node, True) for i in range(n)]
        eps.append((f"10.1.{k}.200", node, False))
    return slice_yaml("local", *eps)


def kernel_weights(lan: BgpLan, prefix: str = PREFIX) -> dict[str, int]:
    """Next hop -> weight of the kernel route in the router's namespace (zebra installs a nexthop group)."""

    def ip_json(*args: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = json.loads(lan.lab.run(lan.router_ns, ["ip", "-j", *args]).stdout or "[]")
        return out

    got: dict[str, int] = {}
    for route in ip_json("route", "show", prefix):
        if "gateway" in route:
            got[route["gateway"]] = 1
        for hop in route.get("multipath", []):
            got[hop["gateway"]] = int(hop.get("weight", 1))
        if "nhid" in route:
            for group in ip_json("nexthop", "show", "id", str(route["nhid"])):
                members = group.get("group") or [{"id": group["id"], "weight": 1}]
                for member in members:
                    (hop,) = ip_json("nexthop", "show", "id", str(member["id"]))
                    got[hop["gateway"]] = int(member.get("weight", 1))
    return got


def proportional(weights: dict[str, int], want: dict[str, int]) -> bool:
    """``weights`` split as ``want`` does, within FRR's rounding (it installs floor(100 * share))."""
    if set(weights) != set(want):
        return False
    total_w, total = sum(weights.values()), sum(want.values())
    return all(abs(weights[k] / total_w - want[k] / total) < 0.02 for k in want)
