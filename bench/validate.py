"""How long ``ironlb validate`` (load + build) takes for many IPAddressPools: the overlap and duplicate checks
must stay O(n log n) (issue 9: 10,000 pools in under 1 s).

Usage: ``.venv/bin/python -m bench.validate [--pools 1000,3000,10000] [--runs 3]``. Pure CPU, no root. The pools
are /28s of 10.0.0.0/8 in shuffled order, plus one IPv6 /124 each (so both families are indexed), one
L2Advertisement and one BGPAdvertisement selecting all of them; a last pool overlaps the first, so the error path
is measured too. Prints the best CPU time of ``--runs`` for reading the objects (``load_objects``) and for
validation (``build``); CPU time rather than wall time, because the machine may be shared.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import platform
import random
import sys
import time

from ironlb.config import ConfigError, build, load_objects
from ironlb.runtime import tune_gc


def pools(n: int, *, overlap: bool) -> list[dict[str, object]]:
    rng = random.Random(n)
    order = list(range(n))
    rng.shuffle(order)
    out: list[dict[str, object]] = []
    for i in order:
        v4 = ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.0.0.0")) + 16 * i)
        v6 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("fd00::")) + 16 * i)
        out.append({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": f"pool-{i:05d}", "namespace": "metallb-system"},
            "spec": {"addresses": [f"{v4}/28", f"{v6}/124"]},
        })  # fmt: skip
    if overlap:
        out.append({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "overlapping", "namespace": "metallb-system"},
            "spec": {"addresses": ["10.0.0.0/8"]},
        })  # fmt: skip
    for kind in ("L2Advertisement", "BGPAdvertisement"):
        out.append({"apiVersion": "metallb.io/v1beta1", "kind": kind, "metadata": {"name": "all"}, "spec": {}})
    return out


def best(runs: int, fn: object) -> float:
    """Best CPU time of this process over ``runs`` (CPU, not wall: the machine may be shared)."""
    times = []
    for _ in range(runs):
        started = time.process_time()
        fn()  # type: ignore[operator]
        times.append(time.process_time() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", default="1000,3000,10000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"ironlb validate benchmark, {platform.machine()}, Python {platform.python_version()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'GC':>8} {'pools':>7} {'load':>9} {'build':>9} {'build (1 overlap)':>18}")
    for n in (int(x) for x in args.pools.split(",")):
        measure(n, args.runs, "default")
    tune_gc()  # what ironlb run, controller and speaker do at start (ironlb.runtime)
    for n in (int(x) for x in args.pools.split(",")):
        measure(n, args.runs, "tuned")
    return 0


def measure(n: int, runs: int, gc_mode: str) -> None:
    objects = pools(n, overlap=False)
    bad = pools(n, overlap=True)
    load = best(runs, lambda: load_objects(objects))
    resources = load_objects(objects)
    bad_resources = load_objects(bad)
    valid = best(runs, lambda: build(resources))

    def invalid() -> None:
        try:
            build(bad_resources)
        except ConfigError:
            return
        raise AssertionError("the overlapping pool was not reported")

    failing = best(runs, invalid)
    print(f"{gc_mode:>8} {n:>7} {load * 1000:>7.0f}ms {valid * 1000:>7.0f}ms {failing * 1000:>16.0f}ms")


if __name__ == "__main__":
    sys.exit(main())
