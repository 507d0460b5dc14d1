"""What ``ironlb run``'s own metrics say about failure detection and the fast path, on a 3-node LAN in network
namespaces (default membership timers: 100 ms heartbeats, 350 ms dead timeout; the fast process in use).

A watcher node (node2) is scraped (``/metrics`` inside its namespace) while the other two die in turn as machines do
(``eth0`` down, ``ironlb run`` killed with -9) and come back. Each death adds one observation to the watcher's
``ironlb_membership_detection_seconds`` (its last heartbeat from the dead node to the declaration); the difference
of ``_sum`` across one death is that death's detection time. At the end, the watcher's
``ironlb_fastpath_loop_lag_seconds`` over the whole run, as bucket counts and quantiles (the upper bound of the
bucket the quantile falls in). Needs root, ``ip`` and ``arping``.
Run from the repository root: ``python -m bench.fastpath_metrics [--trials 10]``.
"""

from __future__ import annotations

import argparse
import os
import sys

from prometheus_client.parser import text_string_to_metric_families
from tests.support.cluster_run import cluster_run
from tests.support.waits import STARTING, wait_until

from ironlb.lab.cluster import StandaloneCluster
from ironlb.lab.failover import percentile
from ironlb.lab.lan import build_lan
from ironlb.lab.netns import netns_available

WATCHER = "node2"
FETCH = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9120/metrics', timeout=5).read().decode())"

Page = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(cluster: StandaloneCluster, node: str) -> Page:
    text = cluster.lan.lab.run(cluster.lan.node(node).netns, [sys.executable, "-c", FETCH]).stdout
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def get(page: Page, name: str, **labels: str) -> float:
    return page.get((name, tuple(sorted(labels.items()))), 0.0)


def buckets(page: Page, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram, in order."""
    out = [(float(dict(labels)["le"]), v) for (n, labels), v in page.items() if n == f"{name}_bucket"]
    return sorted(out)


def quantile_bound(page: Page, name: str, q: float) -> float:
    """The upper bound of the bucket holding quantile ``q`` (Prometheus's buckets do not say more)."""
    hist = buckets(page, name)
    total = hist[-1][1] if hist else 0.0
    for bound, count in hist:
        if count >= q * total:
            return bound
    return float("inf")


def counted(cluster: StandaloneCluster, before: float) -> Page | None:
    """The watcher's page once it counts more detections than ``before``."""
    page = scrape(cluster, WATCHER)
    return page if get(page, "ironlb_membership_detection_seconds_count") > before else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    reason = netns_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    print(f"load average at start: {os.getloadavg()}")
    with cluster_run("ilbfm") as run:
        cluster = run.cluster = StandaloneCluster(build_lan(run.lab), run.workdir)
        cluster.apply_seed()
        cluster.start_all()
        wait_until(cluster.converged, 120, "the nodes to converge")
        wait_until(lambda: get(scrape(cluster, WATCHER), "ironlb_membership_alive_members") == 3, 60,
                   "the watcher's metrics to show 3 alive", retry=STARTING)  # fmt: skip
        detections: list[float] = []
        victims = [n for n in cluster.node_names if n != WATCHER]
        for trial in range(args.trials):
            victim = victims[trial % len(victims)]
            before = scrape(cluster, WATCHER)
            count0 = get(before, "ironlb_membership_detection_seconds_count")
            sum0 = get(before, "ironlb_membership_detection_seconds_sum")
            cluster.kill(victim)
            after = wait_until(lambda c=count0: counted(cluster, c), 30, f"the watcher to count {victim}'s death",
                               retry=STARTING)
            added = get(after, "ironlb_membership_detection_seconds_count") - count0
            took = get(after, "ironlb_membership_detection_seconds_sum") - sum0
            if added == 1:
                detections.append(took * 1000)
            print(f"  {trial + 1:3d}: {victim} killed: {added:.0f} detection(s), {took * 1000:.1f} ms", flush=True)
            cluster.revive(victim)
            wait_until(cluster.converged, 120, f"{victim} back")
        page = scrape(cluster, WATCHER)
        print(f"detection (ms, from the watcher's histogram, one death each): n={len(detections)}"
              + (f"  p50 {percentile(detections, 50):.1f}  max {max(detections):.1f}  min {min(detections):.1f}"
                 if detections else ""))  # fmt: skip
        print("detection buckets (le s: cumulative):",
              "  ".join(f"{b:g}:{c:.0f}" for b, c in buckets(page, "ironlb_membership_detection_seconds")))
        lag = "ironlb_fastpath_loop_lag_seconds"
        count = get(page, f"{lag}_count")
        print(f"fast process loop lag over the run: n={count:.0f}  mean {get(page, f'{lag}_sum') / max(count, 1) * 1000:.2f} ms"
              f"  p50 <= {quantile_bound(page, lag, 0.5) * 1000:g} ms  p99 <= {quantile_bound(page, lag, 0.99) * 1000:g} ms"
              f"  max bucket <= {quantile_bound(page, lag, 1.0) * 1000:g} ms")  # fmt: skip
        print("loop lag buckets (le s: cumulative):", "  ".join(f"{b:g}:{c:.0f}" for b, c in buckets(page, lag)))
        print(f"stalls {get(page, 'ironlb_membership_stalls_total'):.0f}; load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
