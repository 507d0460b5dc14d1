"""Allocator benchmark: 100,000 Services across pools that include an IPv6 /64 and an IPv4 /8.

Phase 1 allocates every Service from scratch; phase 2 re-converges them as a restarted controller does (a new
allocator, Services carrying their ingress, sorted by ingress count). Prints wall time and the process's peak
RSS after each phase. Run from the repository root: ``python -m bench.ipam [--services N]``.
"""

from __future__ import annotations

import argparse
import ipaddress
import resource
import time
from dataclasses import replace

from ironlb.cluster.objects import Service, ServicePort
from ironlb.config.types import Config, Pool
from ironlb.ipam.allocator import Allocator
from ironlb.ipam.converge import converge
from ironlb.runtime import tune_gc


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pools() -> Config:
    def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(text)

    return Config(
        pools=(
            Pool("a-small", (net("192.168.10.0/30"),)),
            Pool("b-v4-slash8", (net("10.0.0.0/8"),), avoid_buggy_ips=True),
            Pool("c-v6-slash64", (net("2001:db8:1::/64"),)),
            Pool("d-dual", (net("172.16.0.0/16"), net("2001:db8:2::/64"))),
        )
    )


def services(n: int) -> list[Service]:
    out = []
    tcp = (ServicePort("TCP", 80), ServicePort("TCP", 443))
    for i in range(n):
        kind = i % 4
        if kind == 0:
            ips, policy = ("10.96.0.1",), "SingleStack"
        elif kind == 1:
            ips, policy = ("fd00::1",), "SingleStack"
        elif kind == 2:
            ips, policy = ("10.96.0.1", "fd00::1"), "RequireDualStack"
        else:
            ips, policy = ("10.96.0.1",), "SingleStack"
        out.append(
            Service(
                namespace=f"ns{i % 50}", name=f"svc-{i}", type="LoadBalancer", cluster_ips=ips,
                ip_family_policy=policy, ports=tcp, creation_timestamp=f"{i:09d}",
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=100_000)
    args = parser.parse_args()
    cfg = pools()
    svcs = services(args.services)
    print(f"services: {len(svcs)}; pools: " + ", ".join(f"{p.name} {[str(c) for c in p.cidrs]}" for p in cfg.pools))

    tune_gc()  # as the controller does once its caches are loaded
    allocator = Allocator(cfg)
    t0 = time.perf_counter()
    results = [converge(allocator, s) for s in svcs]
    t1 = time.perf_counter()
    failed = sum(1 for r in results if not r.ok)
    print(f"phase 1 allocate:   {t1 - t0:.3f} s  ({len(svcs) / (t1 - t0):,.0f} services/s), failed {failed}, "
          f"peak RSS {peak_rss_mb():.0f} MB")

    restarted = [replace(s, ingress=r.ingress) for s, r in zip(svcs, results, strict=True)]
    restarted.sort(key=lambda s: (-len(s.ingress), s.creation_timestamp, s.namespace, s.name))
    del allocator
    tune_gc()
    allocator = Allocator(cfg)
    t0 = time.perf_counter()
    again = [converge(allocator, s) for s in restarted]
    t1 = time.perf_counter()
    moved = sum(1 for s, r in zip(restarted, again, strict=True) if s.ingress != r.ingress)
    print(f"phase 2 reconverge: {t1 - t0:.3f} s  ({len(svcs) / (t1 - t0):,.0f} services/s), IPs moved {moved}, "
          f"peak RSS {peak_rss_mb():.0f} MB")
    for p in cfg.pools:
        c = allocator.counters(p.name)
        print(f"  pool {p.name}: assigned v4 {c.assigned_ipv4} v6 {c.assigned_ipv6}, "
              f"available v4 {c.available_ipv4} v6 {c.available_ipv6}")


if __name__ == "__main__":
    main()
