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

from tests.support.bgp_interop import BgpLan, frr_lan, service_yaml
from tests.support.bgp_weighted import CONFIG, PEER, endpoints, kernel_weights, proportional, router_conf

from ironlb.lab.failover import percentile
from ironlb.lab.frr import frr_missing
from ironlb.lab.netns import NetnsLab, netns_available
from ironlb.lab.waits import wait_until

ROOT = Path(__file__).resolve().parent.parent


def timed_change(lan: BgpLan, counts: dict[str, int], ip: dict[str, str]) -> float:
    """Write the new endpoints on every node; seconds until the router's weights match ``counts``."""
    want = {ip[n]: c for n, c in counts.items() if c}
    text = endpoints(counts)
    t0 = time.monotonic()
    lan.write_all("eps.yaml", text)
    while time.monotonic() - t0 < 30:
        try:
            if proportional(kernel_weights(lan), want):
                return time.monotonic() - t0
        except (ValueError, KeyError, OSError):
            pass
    raise TimeoutError(f"weights {counts} not at the router after 30 s")


def run(trials: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="ironlb-bench-weights-"))
    with frr_lan(NetnsLab(), tmp, config=router_conf) as (lan, frr):
        ip = {n: lan.node_ip(n) for n in sorted(lan.nodes)}
        lan.write_all("config.yaml", CONFIG + "---\n" + PEER)
        lan.write_all("svc.yaml", service_yaml("local", "10.50.0.20", etp="Local"))
        lan.write_all("eps.yaml", endpoints({"node1": 1, "node2": 2, "node3": 3}))
        for node in lan.nodes.values():
            node.start()
        want = {ip["node1"]: 1, ip["node2"]: 2, ip["node3"]: 3}
        wait_until(lambda: proportional(kernel_weights(lan), want), 60, "weights 1:2:3", retry=(ValueError, KeyError))
        out: dict[str, list[float]] = {"weights": [], "withdraw": [], "announce": []}
        for k in range(trials):
            flip = {"node1": 3, "node2": 2, "node3": 1} if k % 2 == 0 else {"node1": 1, "node2": 2, "node3": 3}
            out["weights"].append(timed_change(lan, flip, ip))
            time.sleep(0.3)
        base = {"node1": 1, "node2": 2, "node3": 1}
        timed_change(lan, base, ip)
        for _ in range(trials):
            time.sleep(0.3)
            out["withdraw"].append(timed_change(lan, {**base, "node2": 0}, ip))
            time.sleep(0.3)
            out["announce"].append(timed_change(lan, base, ip))
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
