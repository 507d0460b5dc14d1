"""Layer 2 benchmark: failover time and announce latency of ``ironlb run`` on a 3-node LAN in network namespaces.

- **Failover**: kill the node announcing the seed Service's IP as a machine dies (its ``eth0`` down and its
  ``ironlb run`` killed with -9); the time until the client's traffic (a new TCP connection and an HTTP GET every
  10 ms, 200 ms timeout each) is answered by the new node. The dead node is revived between trials and the IP
  returns to it (the election is stateless), so every trial starts from the same steady state.
- **Announce latency**: a Service asking for a free IP is written into the state directory; the time until the
  client's ARP request (a raw request every 2 ms) is answered. The Service is removed between trials.
- **Planned hand-over** (``--handover-trials``): the announcing node gets SIGTERM and, once its ``ironlb run`` has
  exited, goes away (its ``eth0`` down: a drained node powering off); then it comes back (link up, started again)
  and takes the IP back once settled. For both halves: the longest time the client went without an HTTP answer
  (a new connection every 10 ms) and without an ARP reply (``arping`` every 10 ms), and when the new owner's
  gratuitous ARP reached the client against when the old owner's process exited.

Also reported per failover: when the new node logged the membership change (detection), when its status file
announced the IP, and when the client saw its gratuitous ARP. Needs root, ``ip`` and ``arping``.
Run from the repository root: ``python -m bench.l2_failover [--trials 20] [--announce-trials 20] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.support.announce import AnnounceResult, measure_announce
from tests.support.cluster_run import cluster_run, exit_with, unwind_on_sigterm
from tests.support.waits import WaitTimeout, wait_until

from ironlb.lab.cluster import VIP, ClientProbe, StandaloneCluster
from ironlb.lab.failover import FailoverResult, measure_failover, percentile, restore
from ironlb.lab.lan import build_lan, start_http_servers
from ironlb.lab.netns import netns_available

TARGETS = {"failover p50": 500.0, "failover p95": 1000.0, "announce p50": 200.0}


def stats(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values),
        "min": min(values),
    }


def fmt(s: dict[str, float]) -> str:
    if not s.get("n"):
        return "no data"
    return f"p50 {s['p50']:6.1f} ms   p95 {s['p95']:6.1f} ms   max {s['max']:6.1f} ms   min {s['min']:6.1f} ms   (n={s['n']:.0f})"


def ms(v: float | None) -> str:
    """A trial's figure in ms, or a dash when it was not measured."""
    return f"{v:6.1f}" if v is not None else "     -"


def wait_steady(cluster: StandaloneCluster, probe: ClientProbe, settle: float) -> None:
    """Until one node announces the VIP and answers the client's probe, then ``settle`` s more."""
    owner = cluster.wait_steady(VIP, timeout=15)
    if owner is None or probe.wait_answer(owner, time.monotonic(), 10) is None:
        raise RuntimeError(f"no steady state: announcers {cluster.announcers(VIP)}")
    time.sleep(settle)


def failover_trials(cluster: StandaloneCluster, trials: int, settle: float) -> list[FailoverResult]:
    results: list[FailoverResult] = []
    with cluster.probe(VIP) as probe:
        if not probe.wait_ready():
            raise RuntimeError("client probe did not start")
        wait_steady(cluster, probe, settle)
        print("failover trials (ms from kill: detect = new node logs the death, announce = its status file, "
              "garp = client sees its ARP, total = client's first HTTP answer from it)")
        for trial in range(1, trials + 1):
            r = measure_failover(cluster, probe)
            results.append(r)
            print(f"  {trial:3d}: {r.dead} -> {r.new or '?'}  detect {ms(r.detect_ms)}  announce {ms(r.announce_ms)}"
                  f"  garp {ms(r.garp_ms)}  total {ms(r.total_ms)}  failed requests {r.failed}"
                  + (f"  ERROR {r.error}" if r.error else ""), flush=True)
            if not restore(cluster, r.dead, probe):
                raise RuntimeError(f"{r.dead} did not take {VIP} back")
            time.sleep(settle)
    return results


def announce_trials(cluster: StandaloneCluster, trials: int, ip: str, settle: float) -> list[AnnounceResult]:
    results: list[AnnounceResult] = []
    print(f"announce trials (ms from the Service file written to the client's first ARP answer for {ip})")
    for trial in range(1, trials + 1):
        name = f"bench-announce-{trial}"
        r = measure_announce(cluster, name, ip)
        results.append(r)
        shown = f"{r.arp_ms:6.1f}" if r.arp_ms is not None else "     -"
        print(f"  {trial:3d}: {shown} ms by {r.node or '?'}" + (f"  ERROR {r.error}" if r.error else ""), flush=True)
        cluster.remove_manifest(f"{name}.yaml")
        try:
            wait_until(lambda: not cluster.announcers(ip), 5, f"{ip} withdrawn", interval=0.02)
        except WaitTimeout:
            raise RuntimeError(f"{ip} still announced after its Service was removed") from None
        time.sleep(settle)
    return results


@dataclass
class HandoverResult:
    owner: str
    successor: str | None = None
    claim_ms: float | None = None  # SIGTERM -> the client sees the successor's gratuitous ARP
    exit_ms: float | None = None  # SIGTERM -> the old owner's process has exited (then its link goes down)
    http_gap_ms: float | None = None  # longest stretch without an HTTP answer, SIGTERM -> 0.5 s after the move
    arp_gap_ms: float | None = None  # longest stretch without an ARP reply, same window
    failed: int = 0  # HTTP attempts that failed in that window
    back_claim_ms: float | None = None  # restart -> the client sees the returning owner's gratuitous ARP
    back_http_gap_ms: float | None = None  # longest stretch without an HTTP answer, restart -> steady + 0.5 s
    back_arp_gap_ms: float | None = None
    error: str | None = None


def longest_gap(times: Sequence[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] without one of ``times``, in ms."""
    points = [start, *sorted(t for t in times if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(points)) * 1000


def measure_handover(cluster: StandaloneCluster, probe: ClientProbe) -> HandoverResult:
    """SIGTERM the announcer, take its node away once it exited, bring it back; the client's view of both."""
    owner = cluster.wait_steady(VIP, timeout=10)
    if owner is None:
        return HandoverResult("?", error=f"not steady: announcers {cluster.announcers(VIP)}")
    r = HandoverResult(owner)
    owner_mac = cluster.lan.node(owner).mac.lower()
    t0 = time.monotonic()
    proc = cluster.procs[owner]
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        r.error = "the old owner did not exit within 30 s"
        return r
    t_exit = time.monotonic()
    cluster.link(owner, up=False)
    r.exit_ms = (t_exit - t0) * 1000
    successor = cluster.wait_single_announcer(VIP, timeout=10, exclude=(owner,))
    if successor is None:
        r.error = "no successor announces the IP"
        return r
    r.successor = successor
    answer = probe.wait_answer(successor, t0, 10)
    if answer is None:
        r.error = f"no HTTP answer from {successor}"
        return r
    end = answer["t1"] + 0.5
    time.sleep(max(0.0, end - time.monotonic()) + 0.05)
    events = probe.snapshot()
    mac = cluster.lan.node(successor).mac.lower()
    claim = next((e for e in events if e.get("ev") == "arp" and e["t"] > t0 and e["mac"] == mac), None)
    r.claim_ms = (claim["t"] - t0) * 1000 if claim is not None else None
    oks = [e["t1"] for e in events if e.get("ev") == "http" and e.get("ok")]
    replies = [e["t"] for e in events if e.get("ev") == "arp" and e.get("op") == 2]
    r.http_gap_ms = longest_gap(oks, t0, end)
    r.arp_gap_ms = longest_gap(replies, t0, end)
    r.failed = sum(1 for e in events if e.get("ev") == "http" and not e.get("ok") and t0 < e["t1"] <= end)

    # It comes back and takes the IP back once settled.
    cluster.link(owner, up=True)
    t1 = time.monotonic()
    cluster.start(owner)
    try:
        wait_until(lambda: cluster.steady(VIP) == owner, 60, f"{owner} back", interval=0.01)
    except WaitTimeout:
        r.error = f"{owner} did not take {VIP} back"
        return r
    answer = probe.wait_answer(owner, t1, 10)
    if answer is None:
        r.error = f"no HTTP answer from {owner} after its restart"
        return r
    end = answer["t1"] + 0.5
    time.sleep(max(0.0, end - time.monotonic()) + 0.05)
    events = probe.snapshot()
    claim = next((e for e in events if e.get("ev") == "arp" and e["t"] > t1 and e["mac"] == owner_mac), None)
    r.back_claim_ms = (claim["t"] - t1) * 1000 if claim is not None else None
    oks = [e["t1"] for e in events if e.get("ev") == "http" and e.get("ok")]
    replies = [e["t"] for e in events if e.get("ev") == "arp" and e.get("op") == 2]
    r.back_http_gap_ms = longest_gap(oks, t1, end)
    r.back_arp_gap_ms = longest_gap(replies, t1, end)
    return r


def handover_trials(cluster: StandaloneCluster, trials: int, settle: float) -> list[HandoverResult]:
    results: list[HandoverResult] = []
    with cluster.probe(VIP) as probe:
        if not probe.wait_ready():
            raise RuntimeError("client probe did not start")
        arping = cluster.lan.lab.popen(
            cluster.client_ns, ["arping", "-q", "-i", "eth0", "-W", "0.01", "-c", "1000000", VIP],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_steady(cluster, probe, settle)
            print("planned hand-over trials (ms; stop: from SIGTERM, the old node's link down once it exited; "
                  "back: from its restart; gap = longest stretch without an answer at the client)")
            for trial in range(1, trials + 1):
                r = measure_handover(cluster, probe)
                results.append(r)
                print(f"  {trial:3d}: {r.owner} -> {r.successor or '?'}  successor's GARP {ms(r.claim_ms)}"
                      f"  old exits {ms(r.exit_ms)}  gap http {ms(r.http_gap_ms)} arp {ms(r.arp_gap_ms)}"
                      f"  failed {r.failed} | back: GARP {ms(r.back_claim_ms)}  gap http {ms(r.back_http_gap_ms)}"
                      f" arp {ms(r.back_arp_gap_ms)}" + (f"  ERROR {r.error}" if r.error else ""), flush=True)
                if r.error:
                    break
                time.sleep(settle)
        finally:
            arping.terminate()
            arping.wait(timeout=5)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=20, help="failover trials (default %(default)s)")
    parser.add_argument("--announce-trials", type=int, default=20, help="announce trials (default %(default)s)")
    parser.add_argument("--handover-trials", type=int, default=10, help="planned hand-over trials (default %(default)s)")
    parser.add_argument("--handover-timeout", type=float, default=None,
                        help="passed to ironlb run (0: no hand-over, the baseline); default: ironlb's")
    parser.add_argument("--ml-interval", type=float, default=0.1, help="membership heartbeat, s (ironlb's default)")
    parser.add_argument("--ml-dead-timeout", type=float, default=0.35, help="membership dead timeout, s (default)")
    parser.add_argument("--settle", type=float, default=1.0, help="pause between trials, s")
    parser.add_argument("--json", type=Path, help="also write all results here")
    parser.add_argument("--prefix", default=None, help="namespace prefix (default ilbbench + random hex)")
    args = parser.parse_args(argv)

    reason = netns_available()
    if reason is None and shutil.which("arping") is None:
        reason = "needs arping"
    if reason:
        print(f"l2_failover: {reason}", file=sys.stderr)
        return 2

    unwind_on_sigterm()
    prefix = args.prefix or f"ilbbench{secrets.token_hex(3)}"
    started = datetime.now(UTC)
    print(f"ironlb Layer 2 benchmark, {started:%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{platform.machine()}, {os.cpu_count()} cores, kernel {platform.release()}, Python {platform.python_version()}")
    print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"membership: heartbeat {args.ml_interval * 1000:.0f} ms, dead timeout {args.ml_dead_timeout * 1000:.0f} ms")
    with cluster_run(prefix, tail=20) as run:
        lan = build_lan(run.lab)
        start_http_servers(lan)
        extra = ("--handover-timeout", str(args.handover_timeout)) if args.handover_timeout is not None else ()
        run.cluster = cluster = StandaloneCluster(
            lan, run.workdir, ml_interval=args.ml_interval, ml_dead_timeout=args.ml_dead_timeout, extra_args=extra
        )
        cluster.apply_seed()
        cluster.start_all()
        fo = failover_trials(cluster, args.trials, args.settle)
        an = announce_trials(cluster, args.announce_trials, "192.168.1.241", args.settle / 2)
        ho = handover_trials(cluster, args.handover_trials, args.settle)

    print("load average at end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    summary: dict[str, dict[str, float]] = {
        "failover total": stats([r.total_ms for r in fo if r.total_ms is not None]),
        "failover detect": stats([r.detect_ms for r in fo if r.detect_ms is not None]),
        "failover announce": stats([r.announce_ms for r in fo if r.announce_ms is not None]),
        "failover garp": stats([r.garp_ms for r in fo if r.garp_ms is not None]),
        "announce arp": stats([r.arp_ms for r in an if r.arp_ms is not None]),
        "handover http gap": stats([r.http_gap_ms for r in ho if r.http_gap_ms is not None]),
        "handover arp gap": stats([r.arp_gap_ms for r in ho if r.arp_gap_ms is not None]),
        "handover GARP": stats([r.claim_ms for r in ho if r.claim_ms is not None]),
        "handover exit": stats([r.exit_ms for r in ho if r.exit_ms is not None]),
        "back http gap": stats([r.back_http_gap_ms for r in ho if r.back_http_gap_ms is not None]),
        "back arp gap": stats([r.back_arp_gap_ms for r in ho if r.back_arp_gap_ms is not None]),
    }
    errors = [r.error for r in fo if r.error] + [r.error for r in an if r.error] + [r.error for r in ho if r.error]
    print("\nsummary")
    for key, s in summary.items():
        print(f"  {key:<20} {fmt(s)}")
    checks = {
        "failover p50": summary["failover total"].get("p50"),
        "failover p95": summary["failover total"].get("p95"),
        "announce p50": summary["announce arp"].get("p50"),
    }
    ok = not errors
    for key, value in checks.items():
        met = value is not None and value < TARGETS[key]
        ok = ok and met
        shown = f"{value:.1f} ms" if value is not None else "-"
        print(f"  target {key} < {TARGETS[key]:.0f} ms: {shown} {'met' if met else 'MISSED'}")
    if errors:
        print(f"  {len(errors)} trial(s) failed: {errors}")
    if args.json:
        args.json.write_text(json.dumps({
            "date": started.isoformat(), "summary": summary,
            "failover": [asdict(r) for r in fo], "announce": [asdict(r) for r in an],
            "handover": [asdict(r) for r in ho],
        }, indent=2) + "\n")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    exit_with("l2_failover", main)

