"""How long ``ironlb explain`` takes to compute (not to read) the explanation of a large cluster, and a what-if.

Usage: ``.venv/bin/python -m bench.explain [--sizes 500x20,2000x50] [--runs 3]``. Pure CPU, no root. S Services
(all with an IP in their status, as in a cluster), N Nodes, one EndpointSlice per Service with an endpoint on two
nodes, one /16 pool and one L2Advertisement; the what-if shrinks the pool to a /23 (512 addresses), so the Services
above it move into the free addresses or lose their IP.
Prints the best CPU time of ``--runs`` (CPU, not wall: the machine may be shared) for ``explain`` (which runs the
controller's allocation and every node's decision), ``render`` (the table) and ``what_if``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import platform
import sys
import time
from collections.abc import Callable

from ironlb.cluster.objects import Endpoint, EndpointSlice, Node, Service, ServicePort
from ironlb.config.types import Config, L2Advertisement, Pool
from ironlb.explain.core import View, explain, what_if
from ironlb.explain.render import render


def view(services: int, nodes: int) -> tuple[View, Config]:
    net = ipaddress.ip_network("10.0.0.0/16")
    ad = L2Advertisement("l2")
    config = Config(pools=(Pool("p", (net,), l2_advertisements=(ad,)),))
    small = Config(pools=(Pool("p", (ipaddress.ip_network("10.0.0.0/23"),), l2_advertisements=(ad,)),))
    names = [f"node-{i:03d}" for i in range(nodes)]
    svcs, slices = [], []
    for i in range(services):
        ip = str(net[i * 2 + 1 if i * 2 + 1 < net.num_addresses else i])
        svcs.append(Service("default", f"s{i:05d}", "LoadBalancer", cluster_ips=("10.96.0.1",),
                            ports=(ServicePort("TCP", 80),), ingress=(ip,), creation_timestamp=f"{i:08d}"))  # fmt: skip
        eps = (Endpoint(("10.1.0.1",), names[i % nodes]), Endpoint(("10.1.0.2",), names[(i * 7) % nodes]))
        slices.append(EndpointSlice("default", f"s{i:05d}-1", f"s{i:05d}", eps))
    return View(config, tuple(svcs), tuple(Node(n) for n in names), tuple(slices)), small


def best(runs: int, fn: Callable[[], object]) -> float:
    out = float("inf")
    for _ in range(runs):
        start = time.process_time()
        fn()
        out = min(out, time.process_time() - start)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500x20,2000x50", help="SERVICESxNODES,...")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"ironlb explain benchmark, {platform.machine()}, Python {platform.python_version()}")
    print("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"{'services':>9} {'nodes':>6} {'explain':>9} {'render':>8} {'what-if':>9}")
    for size in args.sizes.split(","):
        s, n = (int(x) for x in size.split("x"))
        v, small = view(s, n)
        result = explain(v)
        assert len(result["services"]) == s
        outcome = what_if(v, small)
        assert sum(outcome["summary"].values()) == s
        t_explain = best(args.runs, lambda v=v: explain(v))
        t_render = best(args.runs, lambda r=result: render(r))
        t_what = best(args.runs, lambda v=v, c=small: what_if(v, c))
        summary = ", ".join(f"{k} {v}" for k, v in sorted(outcome["summary"].items()))
        print(f"{s:>9} {n:>6} {t_explain * 1000:>7.0f}ms {t_render * 1000:>6.0f}ms {t_what * 1000:>7.0f}ms  ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
