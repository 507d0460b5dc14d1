"""Traffic weighted by ready pods, and ETP Local take-over, against FRR 8.4 in network namespaces.

Three nodes run ``ironlb run`` and peer over eBGP with FRR (multipath across ASes). With ironlb's
``ironlb.io/link-bandwidth: ready-endpoints`` annotation each node's path carries the Link Bandwidth extended
community of its ready local endpoints, and FRR (weighted ECMP is its default when every path has one) installs
the route with next-hop weights in that ratio, in its RIB and in the kernel. BIRD 2, which has no weighted ECMP,
is checked to receive the community intact.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.bgp.conftest import FRR
from tests.support.bgp_interop import ROUTER4, BgpLan, doc, missing, peer_yaml, service_yaml, slice_yaml
from tests.support.netns import NetnsLab, netns_available
from tests.support.waits import STARTING, wait_until

pytestmark = pytest.mark.netns

PREFIX = "10.50.0.20/32"
ROUTER_ASN, NODE_ASN = 64512, 64513

CONFIG = doc(
    """
    apiVersion: metallb.io/v1beta1
    kind: IPAddressPool
    metadata: {name: bgp, namespace: metallb-system}
    spec: {addresses: ["10.50.0.0/24"]}
    ---
    apiVersion: metallb.io/v1beta1
    kind: BGPAdvertisement
    metadata:
      name: weighted
      namespace: metallb-system
      annotations: {ironlb.io/link-bandwidth: ready-endpoints}
    spec: {ipAddressPools: [bgp]}
    """
)


@pytest.fixture
def lan_frr(netns_lab: NetnsLab, tmp_path: Path) -> Iterator[tuple[BgpLan, FRR]]:
    lan = BgpLan(netns_lab, tmp_path)
    frr = FRR(netns_lab, lan.router_ns)
    try:
        frr.start()
        lines = [f"router bgp {ROUTER_ASN}", f" bgp router-id {ROUTER4}", " no bgp ebgp-requires-policy"]
        lines += [" bgp bestpath as-path multipath-relax", " no bgp default ipv4-unicast"]
        for name in sorted(lan.nodes):
            ip = lan.node_ip(name)
            lines += [f" neighbor {ip} remote-as {NODE_ASN}", f" neighbor {ip} timers connect 1"]
        lines.append(" address-family ipv4 unicast")
        lines += [f"  neighbor {lan.node_ip(n)} activate" for n in sorted(lan.nodes)]
        lines.append(" exit-address-family")
        frr.configure("\n".join(lines) + "\n")
        lan.write_all("config.yaml", CONFIG + "---\n" + peer_yaml("tor", NODE_ASN, ROUTER_ASN, ROUTER4, connectTime="1s"))
        yield lan, frr
    except Exception:
        print(lan.logs())
        print(frr.logs())
        raise
    finally:
        lan.stop_all()
        netns_lab.cleanup()
        frr.cleanup()


def endpoints(counts: dict[str, int]) -> str:
    """An EndpointSlice of ``local`` with ``counts[node]`` ready endpoints on each node (and one unready each)."""
    eps: list[tuple[str, str, bool]] = []
    for k, (node, n) in enumerate(sorted(counts.items())):
        eps += [(f"10.1.{k}.{i + 1}", node, True) for i in range(n)]
        eps.append((f"10.1.{k}.200", node, False))
    return slice_yaml("local", *eps)


def kernel_weights(lan: BgpLan, prefix: str) -> dict[str, int]:
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


def rib_weights(frr: FRR, prefix: str) -> dict[str, int]:
    """Next hop -> weight of FRR's installed route (``show ip route json``)."""
    data = frr.json(f"show ip route {prefix} json").get(prefix, [])
    got: dict[str, int] = {}
    for route in data:
        if not route.get("installed"):
            continue
        for hop in route.get("nexthops", []):
            if hop.get("active"):
                got[hop["ip"]] = int(hop.get("weight", 1))
    return got


def proportional(weights: dict[str, int], want: dict[str, int]) -> bool:
    """``weights`` split as ``want`` does, within FRR's rounding (it installs floor(100 * share))."""
    if set(weights) != set(want):
        return False
    total_w, total = sum(weights.values()), sum(want.values())
    return all(abs(weights[k] / total_w - want[k] / total) < 0.02 for k in want)


def link_bandwidths(frr: FRR, prefix: str) -> dict[str, str]:
    """Next hop -> the Link Bandwidth extended community FRR shows on that path."""
    paths = frr.json(f"show bgp ipv4 unicast {prefix} json").get("paths", [])
    return {p["nexthops"][0]["ip"]: p.get("extendedCommunity", {}).get("string", "") for p in paths}


def test_frr_weights_follow_ready_local_endpoints(lan_frr: tuple[BgpLan, FRR]) -> None:
    """1, 2 and 3 ready pods: FRR installs weights 1:2:3 (RIB and kernel), and they follow the pods as they scale."""
    lan, frr = lan_frr
    ip = {n: lan.node_ip(n) for n in sorted(lan.nodes)}
    lan.write_all("svc.yaml", service_yaml("local", "10.50.0.20", etp="Local"))
    counts = {"node1": 1, "node2": 2, "node3": 3}
    lan.write_all("eps.yaml", endpoints(counts))
    for n in lan.nodes.values():
        n.start()

    def converged(counts: dict[str, int]) -> bool:
        want = {ip[n]: c for n, c in counts.items() if c}
        return proportional(kernel_weights(lan, PREFIX), want) and proportional(rib_weights(frr, PREFIX), want)

    def state() -> str:
        return f"rib {rib_weights(frr, PREFIX)}, kernel {kernel_weights(lan, PREFIX)}\n{lan.logs()}"

    wait_until(lambda: converged(counts), 30, lambda: f"weights 1:2:3: {state()}", retry=STARTING, interval=0.1)
    assert link_bandwidths(frr, PREFIX) == {
        ip["node1"]: "LB:64513:125000 (1.000 Mbps)",
        ip["node2"]: "LB:64513:250000 (2.000 Mbps)",
        ip["node3"]: "LB:64513:375000 (3.000 Mbps)",
    }
    for scaled in ({"node1": 3, "node2": 2, "node3": 1}, {"node1": 5, "node2": 1, "node3": 1}):
        lan.write_all("eps.yaml", endpoints(scaled))
        wait_until(partial(converged, scaled), 20, f"weights {scaled}", retry=STARTING, interval=0.1)


def test_etp_local_take_over(lan_frr: tuple[BgpLan, FRR]) -> None:
    """The last ready pod on a node goes: that node withdraws (the others' weights re-split); it comes back: the
    node announces again (metallb#148)."""
    lan, frr = lan_frr
    ip = {n: lan.node_ip(n) for n in sorted(lan.nodes)}
    lan.write_all("svc.yaml", service_yaml("local", "10.50.0.20", etp="Local"))
    lan.write_all("eps.yaml", endpoints({"node1": 1, "node2": 2, "node3": 1}))
    for n in lan.nodes.values():
        n.start()
    wait_until(lambda: len(kernel_weights(lan, PREFIX)) == 3, 30, "three next hops", retry=STARTING, interval=0.1)
    lan.write_all("eps.yaml", endpoints({"node1": 1, "node2": 0, "node3": 1}))  # node2: one unready pod only
    wait_until(
        lambda: proportional(kernel_weights(lan, PREFIX), {ip["node1"]: 1, ip["node3"]: 1}),
        20, lambda: f"node2 withdrawn: {kernel_weights(lan, PREFIX)}", retry=STARTING, interval=0.1,
    )  # fmt: skip
    assert ip["node2"] not in link_bandwidths(frr, PREFIX)
    assert lan.nodes["node2"].peer_state("tor") == "Established"  # a withdrawal, not a session reset
    lan.write_all("eps.yaml", endpoints({"node1": 1, "node2": 2, "node3": 1}))
    wait_until(
        lambda: proportional(kernel_weights(lan, PREFIX), {ip["node1"]: 1, ip["node2"]: 2, ip["node3"]: 1}),
        20, lambda: f"node2 back: {kernel_weights(lan, PREFIX)}", retry=STARTING, interval=0.1,
    )  # fmt: skip


def test_bird_receives_the_link_bandwidth_community(tmp_path: Path) -> None:
    """BIRD 2 has no weighted ECMP, but gets the community intact: type 0x00/0x04, our AS, 2 pods' float32."""
    if why := netns_available() or missing("bird", "birdc"):
        pytest.skip(why)
    lab = NetnsLab()
    lan = BgpLan(lab, tmp_path, nodes=1)
    d = Path(tempfile.mkdtemp(prefix=f"{lab.prefix}-bird-"))
    try:
        conf = d / "bird.conf"
        conf.write_text(
            doc(
                f"""
                router id {ROUTER4};
                protocol device {{ }}
                protocol bgp ironlb {{
                  local {ROUTER4} as {ROUTER_ASN};
                  neighbor {lan.node_ip("node1")} as {NODE_ASN};
                  hold time 9;
                  ipv4 {{ import all; export none; }};
                }}
                """
            )
        )
        sock = d / "bird.ctl"
        lab.popen(lan.router_ns, ["bird", "-f", "-c", str(conf), "-s", str(sock), "-P", str(d / "bird.pid")])
        node = lan.nodes["node1"]
        node.write("config.yaml", CONFIG + "---\n" + peer_yaml("tor", NODE_ASN, ROUTER_ASN, ROUTER4, connectTime="1s"))
        node.write("svc.yaml", service_yaml("local", "10.50.0.20", etp="Local"))
        node.write("eps.yaml", endpoints({"node1": 2}))
        node.start()

        def ext_community() -> re.Match[str] | None:
            out = subprocess.run(["birdc", "-s", str(sock), "show", "route", "all"], capture_output=True, text=True,
                                 timeout=10).stdout  # fmt: skip
            return re.search(r"BGP\.ext_community: \(unknown 0x4, (\d+), (\d+)\)", out)

        found = wait_until(ext_community, 20, "the route with its extended community in BIRD", retry=STARTING)
        asn, raw = int(found.group(1)), int(found.group(2))
        assert asn == NODE_ASN and struct.unpack("!f", raw.to_bytes(4, "big"))[0] == 2 * 125_000.0
    finally:
        lan.stop_all()
        lab.cleanup()
        shutil.rmtree(d, ignore_errors=True)
