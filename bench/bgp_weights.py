"""Traffic weighted by ready pods and ETP Local take-over, against FRR 8.4 in network namespaces (root).

Three nodes run ``ironlb run`` and peer over eBGP with one FRR router (multipath); a BGPAdvertisement has ironlb's
``ironlb.io/link-bandwidth: ready-endpoints`` annotation and the Service is ``externalTrafficPolicy: Local``.
Each trial rewrites the nodes' EndpointSlice file (what a pod scale change is to ``ironlb run``) and times how long
until the router's kernel route has the new next-hop weights (``ip -j route`` and its nexthop group, polled):

1. ``weights``: 1/2/3 ready pods <-> 3/2/1;
2. ``withdraw``: node2's last ready pod goes (1/2/1 -> 1/0/1) until node2's next hop is gone;
3. ``announce``: it comes back (1/0/1 -> 1/2/1) until node2 is a next hop again with its weight.

The time includes ``ironlb run``'s 50 ms state-directory poll and the poll of the router here (a few ms per
``ip`` call). Run from the repository root: ``python -m bench.bgp_weights [--trials N] [--append-results]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.bgp_interop import ROUTER4, BgpLan, doc, peer_yaml, service_yaml, slice_yaml

from ironlb.lab.failover import percentile
from ironlb.lab.frr import FRRInstance, frr_missing
from ironlb.lab.netns import NetnsLab, netns_available
from ironlb.lab.waits import wait_until

ROOT = Path(__file__).resolve().parent.parent
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


def endpoints(counts: dict[str, int]) -> str:
    eps: list[tuple[str, str, bool]] = []
    for k, (node, n) in enumerate(sorted(counts.items())):
        eps += [(f"10.1.{k}.{i + 1}", node, True) for i in range(n)]
        eps.append((f"10.1.{k}.200", node, False))
    return slice_yaml("local", *eps)


class Router:
    def __init__(self, lab: NetnsLab, ns: str) -> None:
        self.lab, self.ns = lab, ns

    def _ip(self, *args: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = json.loads(self.lab.run(self.ns, ["ip", "-j", *args]).stdout or "[]")
        return out

    def weights(self) -> dict[str, int]:
        """Next hop -> weight of the kernel route (zebra installs a nexthop group)."""
        got: dict[str, int] = {}
        for route in self._ip("route", "show", PREFIX):
            if "gateway" in route:
                got[route["gateway"]] = 1
            if "nhid" in route:
                for group in self._ip("nexthop", "show", "id", str(route["nhid"])):
                    for member in group.get("group") or [{"id": group["id"], "weight": 1}]:
                        (hop,) = self._ip("nexthop", "show", "id", str(member["id"]))
                        got[hop["gateway"]] = int(member.get("weight", 1))
        return got


def proportional(weights: dict[str, int], want: dict[str, int]) -> bool:
    if set(weights) != set(want):
        return False
    total_w, total = sum(weights.values()), sum(want.values())
    return all(abs(weights[k] / total_w - want[k] / total) < 0.02 for k in want)


def timed_change(lan: BgpLan, router: Router, counts: dict[str, int], ip: dict[str, str]) -> float:
    """Write the new endpoints on every node; seconds until the router's weights match ``counts``."""
    want = {ip[n]: c for n, c in counts.items() if c}
    text = endpoints(counts)
    t0 = time.monotonic()
    lan.write_all("eps.yaml", text)
    while time.monotonic() - t0 < 30:
        try:
            if proportional(router.weights(), want):
                return time.monotonic() - t0
        except (ValueError, KeyError, OSError):
            pass
    raise TimeoutError(f"weights {counts} not at the router after 30 s")


def run(trials: int) -> dict[str, Any]:
    lab = NetnsLab()
    tmp = Path(tempfile.mkdtemp(prefix="ironlb-bench-weights-"))
    lan = BgpLan(lab, tmp)
    frr = FRRInstance(lab, lan.router_ns, ("zebra", "bgpd"))
    try:
        frr.start()
        lines = [f"router bgp {ROUTER_ASN}", f" bgp router-id {ROUTER4}", " no bgp ebgp-requires-policy"]
        lines += [" bgp bestpath as-path multipath-relax", " no bgp default ipv4-unicast"]
        ip = {n: lan.node_ip(n) for n in sorted(lan.nodes)}
        for addr in ip.values():
            lines += [f" neighbor {addr} remote-as {NODE_ASN}", f" neighbor {addr} timers connect 1"]
        lines += [" address-family ipv4 unicast", *[f"  neighbor {a} activate" for a in ip.values()]]
        frr.configure("\n".join([*lines, " exit-address-family"]) + "\n")
        peer = peer_yaml("tor", NODE_ASN, ROUTER_ASN, ROUTER4, connectTime="1s")
        lan.write_all("config.yaml", CONFIG + "---\n" + peer)
        lan.write_all("svc.yaml", service_yaml("local", "10.50.0.20", etp="Local"))
        lan.write_all("eps.yaml", endpoints({"node1": 1, "node2": 2, "node3": 3}))
        for node in lan.nodes.values():
            node.start()
        router = Router(lab, lan.router_ns)
        want = {ip["node1"]: 1, ip["node2"]: 2, ip["node3"]: 3}
        wait_until(lambda: proportional(router.weights(), want), 60, "weights 1:2:3", retry=(ValueError, KeyError))
        out: dict[str, list[float]] = {"weights": [], "withdraw": [], "announce": []}
        for k in range(trials):
            flip = {"node1": 3, "node2": 2, "node3": 1} if k % 2 == 0 else {"node1": 1, "node2": 2, "node3": 3}
            out["weights"].append(timed_change(lan, router, flip, ip))
            time.sleep(0.3)
        base = {"node1": 1, "node2": 2, "node3": 1}
        timed_change(lan, router, base, ip)
        for _ in range(trials):
            time.sleep(0.3)
            out["withdraw"].append(timed_change(lan, router, {**base, "node2": 0}, ip))
            time.sleep(0.3)
            out["announce"].append(timed_change(lan, router, base, ip))
        info = frr.json("show bgp neighbors json")
        resets = {a: (info[a].get("connectionsEstablished"), info[a].get("connectionsDropped")) for a in ip.values()}
        return {
            name: {
                "p50_ms": round(percentile(v, 50) * 1000),
                "max_ms": round(max(v) * 1000),
                "n": len(v),
            }
            for name, v in out.items()
        } | {"sessions_established_dropped": resets}
    finally:
        lan.stop_all()
        frr.cleanup()
        lab.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--append-results", action="store_true")
    args = parser.parse_args(argv)
    reason = netns_available() or frr_missing()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    result = run(args.trials)
    print(json.dumps(result, indent=1))
    if args.append_results:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        load = os.getloadavg()[0]
        rows = [
            f"\n`python -m bench.bgp_weights --trials {args.trials}` ({stamp}, FRR 8.4, 3 nodes running `ironlb run`, "
            f"load average {load:.1f} on 2 cores shared with other work: noisy):\n",
            "| change (EndpointSlice file rewritten on every node) | p50 | max | trials |",
            "|---|---|---|---|",
        ]
        names = {
            "weights": "ready pods 1/2/3 <-> 3/2/1, until the router's kernel weights follow",
            "withdraw": "node2's last ready pod gone, until its next hop is withdrawn",
            "announce": "node2's pods back, until it is a weighted next hop again",
        }
        for key, label in names.items():
            r = result[key]
            rows.append(f"| {label} | {r['p50_ms']} ms | {r['max_ms']} ms | {r['n']} |")
        pairs = ", ".join(f"{a} {e}/{d}" for a, (e, d) in result["sessions_established_dropped"].items())
        rows.append(f"\nFRR connections established/dropped per node after all trials: {pairs}.\n")
        path = ROOT / "bench" / "RESULTS.md"
        text = path.read_text()
        marker = "\n## Controller"
        section = "\n### Weighted by ready pods, ETP Local take-over (issue 14)\n" + "\n".join(rows)
        path.write_text(text.replace(marker, section + marker, 1) if marker in text else text + section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
