"""The demo's failover measurement: kill the announcing node and time the client's move to the new one."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ironlb.lab.cluster import VIP, ClientProbe, StandaloneCluster


@dataclass
class FailoverResult:
    dead: str
    new: str | None = None
    total_ms: float | None = None  # kill -> the client's first HTTP answer from the new node
    detect_ms: float | None = None  # kill -> the new node logs the membership change (ms-resolution log clock)
    announce_ms: float | None = None  # kill -> the new node's status file announces the IP
    garp_ms: float | None = None  # kill -> the client sees an ARP packet from the new node's MAC for the IP
    failed: int = 0  # client attempts that failed meanwhile
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def measure_failover(
    cluster: StandaloneCluster, probe: ClientProbe, ip: str = VIP, timeout: float = 10.0
) -> FailoverResult:
    """Kill the node announcing ``ip`` (link down + kill -9) and time the client's move to the new announcer.

    The cluster must be in a steady state: one announcer, answering the probe.
    """
    dead = cluster.wait_steady(ip, timeout=5)
    if dead is None:
        return FailoverResult(dead="?", error=f"not steady: announcers of {ip}: {cluster.announcers(ip)}")
    result = FailoverResult(dead=dead)
    wall0 = time.time()
    t0 = cluster.kill(dead)
    # Poll the survivors' status files closely: that is when the new node decided to announce.
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        now_announcing = cluster.announcers(ip)
        if now_announcing:
            result.new = now_announcing[0]
            result.announce_ms = (time.monotonic() - t0) * 1000
            break
        time.sleep(0.002)
    if result.new is None:
        result.error = f"no node took over {ip} within {timeout} s"
        return result
    answer = probe.wait_answer(result.new, t0, timeout=max(0.5, deadline - time.monotonic()))
    if answer is None:
        result.error = f"the client got no HTTP answer from {result.new} within {timeout} s"
        return result
    result.total_ms = (answer["t1"] - t0) * 1000
    new_mac = cluster.lan.node(result.new).mac.lower()
    events = probe.snapshot()
    garp = next((e for e in events if e.get("ev") == "arp" and e["t"] > t0 and e.get("mac") == new_mac), None)
    if garp is not None:
        result.garp_ms = (garp["t"] - t0) * 1000
    result.failed = sum(1 for e in events if e.get("ev") == "http" and not e.get("ok") and t0 < e["t1"] <= answer["t1"])
    detected = cluster.log_time(result.new, r"members alive: ", wall0)
    if detected is not None:
        result.detect_ms = (detected - wall0) * 1000
    return result


def restore(cluster: StandaloneCluster, node: str, probe: ClientProbe, ip: str = VIP, timeout: float = 60.0) -> bool:
    """Revive ``node`` and wait for the steady state: it announces ``ip`` again and the client reaches it.

    The deadline includes starting ``ironlb run``, which takes many seconds on a loaded machine."""
    cluster.revive(node)
    if cluster.wait_steady(ip, timeout) != node:
        return False
    return probe.wait_answer(node, time.monotonic(), timeout) is not None


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]
