"""Member-failure detection times (``ironlb_membership_detection_seconds``), on the core's simulated clock."""

from __future__ import annotations

import math

import pytest

from ironlb.histogram import DETECTION_BUCKETS, LOOP_LAG_BUCKETS, Histogram
from ironlb.membership import Membership, MembershipConfig

SECRET = b"detection-secret-0123456789abcdef"
CFG = MembershipConfig()  # 100 ms heartbeats, 350 ms dead timeout
STEP = 0.005


class Lan:
    """Three cores on a lossless LAN with one STEP of latency, on a simulated clock."""

    def __init__(self, names: str = "abc") -> None:
        self.members = {n: (f"192.0.2.{i + 1}", 7946) for i, n in enumerate(names)}
        self.nodes = {n: Membership(n, SECRET, self.members, CFG, incarnation=100 + i) for i, n in enumerate(names)}
        self.now = 0.0
        self.crashed: set[str] = set()
        self.paused: set[str] = set()
        self.inflight: list[tuple[str, str, bytes]] = []
        self.by_addr = {a: n for n, a in self.members.items()}

    def run(self, duration: float) -> None:
        end = self.now + duration
        while self.now < end - 1e-9:
            self.now = round(self.now + STEP, 9)
            due, self.inflight = [d for d in self.inflight if d[1] not in self.paused], [
                d for d in self.inflight if d[1] in self.paused]
            for src, dest, data in due:
                if dest not in self.crashed:
                    self.nodes[dest].datagram_received(data, self.members[src], self.now)
            for name, node in self.nodes.items():
                if name not in self.crashed and name not in self.paused:
                    out, _ = node.tick(self.now)
                    self.inflight += [(name, self.by_addr[d.addr], d.data) for d in out]

    def leave(self, name: str) -> None:
        self.inflight += [(name, self.by_addr[d.addr], d.data) for d in self.nodes[name].leave(self.now)]


def converged(names: str) -> Lan:
    sim = Lan(names)
    sim.run(0.5)
    assert all(node.alive() == set(names) for node in sim.nodes.values())
    return sim


def test_a_crash_is_one_detection_of_about_the_dead_timeout() -> None:
    sim = converged("abc")
    sim.crashed.add("c")
    sim.run(1.0)
    for n in "ab":
        hist = sim.nodes[n].detections
        assert hist.count == 1
        # From c's last heartbeat to the timeout: the dead timeout, plus at most one tick.
        assert CFG.dead_timeout <= hist.sum <= CFG.dead_timeout + STEP + 1e-9
    assert sim.nodes["c"].detections.count == 0


def test_a_leave_is_no_detection() -> None:
    sim = converged("abc")
    sim.leave("c")
    sim.crashed.add("c")
    sim.run(1.0)
    assert sim.nodes["a"].detections.count == 0 and sim.nodes["b"].detections.count == 0


def test_a_stalled_node_detects_later_and_says_how_much_later() -> None:
    """A late tick grants the members one more dead timeout: the detection time shows it."""
    sim = converged("abc")
    sim.crashed.add("c")
    sim.paused.add("a")
    sim.run(0.2)  # a's loop is blocked for 200 ms, c crashed meanwhile
    sim.paused.clear()
    sim.run(1.0)
    a = sim.nodes["a"]
    assert a.stalls == 1 and a.detections.count == 1 and a.detections.sum > CFG.dead_timeout + 0.1


def test_histogram_buckets_and_snapshots() -> None:
    hist = Histogram((0.1, 0.5))
    for value in (0.05, 0.1, 0.3, 2.0, -1.0, math.nan):
        hist.observe(value)
    assert hist.count == 5 and hist.sum == pytest.approx(2.45)
    assert hist.cumulative() == [("0.1", 3), ("0.5", 4), ("+Inf", 5)]
    again = Histogram.from_snapshot(hist.snapshot())
    assert again.cumulative() == hist.cumulative() and again.sum == hist.sum
    other = Histogram((0.1, 0.5))
    other.observe(0.2)
    again.merge(other)
    assert again.cumulative() == [("0.1", 3), ("0.5", 5), ("+Inf", 6)]
    with pytest.raises(ValueError, match="different buckets"):
        again.merge(Histogram(DETECTION_BUCKETS))
    assert Histogram(LOOP_LAG_BUCKETS).cumulative()[-1] == ("+Inf", 0)


@pytest.mark.parametrize("snapshot", [
    {}, {"bounds": [0.1], "counts": [1], "sum": 0.0}, {"bounds": [0.2, 0.1], "counts": [0, 0, 0], "sum": 0},
    {"bounds": [0.1], "counts": [-1, 0], "sum": 0}, {"bounds": [0.1], "counts": [0, 0], "sum": "nan"},
    {"bounds": list(range(1, 100)), "counts": [0] * 100, "sum": 0}, {"bounds": "x", "counts": [], "sum": 0},
    {"bounds": [math.inf], "counts": [0, 0], "sum": 0}, {"bounds": [0.1], "counts": None, "sum": 0},
])  # fmt: skip
def test_a_bad_snapshot_is_refused_with_a_reason(snapshot: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Histogram.from_snapshot(snapshot)
