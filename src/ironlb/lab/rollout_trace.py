"""Attribution of a rollout's failed attempts (:func:`ironlb.lab.kube_demo.measure_rollout`): which node the router
sent each connection to (``ironlb.lab.probe paths``), and whether that node's pod was restarting at that moment.

Pure functions over the events and samples the measurement collected, so that they are tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Window = tuple[float, float]  # (start, end), seconds on the probe's clock (time.monotonic())

# A SYN seen at the router belongs to the attempt whose start precedes it by at most this much (the attempt's own
# connect() call, on a loaded machine), and never to an attempt started after it.
SYN_SLACK_S = 0.05


def disturbed_windows(samples: Sequence[tuple[float, Mapping[str, tuple[int, bool]]]]) -> dict[str, list[Window]]:
    """Per node, the periods in which its pods were not as at the first sample.

    ``samples``: (time, {node: (ready pods, pods not ready or being deleted)}) in time order, for the pods of the
    restarted workload. A node is disturbed in a sample when it has a pod not ready or being deleted, or fewer
    ready pods than at first. A period runs from the last undisturbed sample before it to the first one after it
    (to the last sample when it never ends), so it covers the restart whatever the sampling missed in between.
    """
    out: dict[str, list[Window]] = {}
    if not samples:
        return out
    first = samples[0][1]
    nodes = sorted({n for _, s in samples for n in s})
    for node in nodes:
        start: float | None = None
        last_quiet = samples[0][0]
        for t, state in samples:
            ready, unsettled = state.get(node, (0, False))
            disturbed = unsettled or ready < first.get(node, (0, False))[0]
            if disturbed and start is None:
                start = last_quiet
            elif not disturbed:
                if start is not None:
                    out.setdefault(node, []).append((start, t))
                    start = None
                last_quiet = t
        if start is not None:
            out.setdefault(node, []).append((start, samples[-1][0]))
    return out


@dataclass
class PathIndex:
    """The router's ``paths`` events, indexed by connection (service IP, client port)."""

    syns: dict[tuple[str, int], list[tuple[float, str]]] = field(default_factory=dict)  # -> [(t, MAC)]
    moves: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    routes: list[dict[str, Any]] = field(default_factory=list)
    # The nodes' ``answers`` events: SYNs that came in and were answered (a SYN-ACK went out) or not.
    answered: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    unanswered: dict[tuple[str, int], list[float]] = field(default_factory=dict)

    @classmethod
    def of(cls, events: Sequence[Mapping[str, Any]]) -> PathIndex:
        index = cls()
        for e in events:
            kind = e.get("ev")
            if kind == "syn":
                index.syns.setdefault((str(e["ip"]), int(e["sport"])), []).append((float(e["t"]), str(e["mac"])))
            elif kind == "moved":
                index.moves.setdefault((str(e["ip"]), int(e["sport"])), []).append(float(e["t"]))
            elif kind == "route":
                index.routes.append(dict(e))
            elif kind in ("answered", "unanswered"):
                at = index.answered if kind == "answered" else index.unanswered
                at.setdefault((str(e["ip"]), int(e["sport"])), []).append(float(e["t"]))
        return index

    def mac_of(self, ip: str, attempt: Mapping[str, Any]) -> str | None:
        """The MAC the router forwarded this attempt's first SYN to (None: no SYN of it reached the router)."""
        if "sport" not in attempt:
            return None
        t0, t1 = float(attempt["t0"]), float(attempt.get("t1", attempt["t0"]))
        for t, mac in self.syns.get((ip, int(attempt["sport"])), []):
            if t0 - SYN_SLACK_S <= t <= t1 + SYN_SLACK_S:
                return mac
        return None

    def at_node(self, ip: str, attempt: Mapping[str, Any]) -> str:
        """What the node did with this attempt's SYN: ``answered`` (its SYN-ACK went out: lost after the node),
        ``unanswered`` (lost inside the node) or ``not seen`` (it never arrived, or the nodes were not traced)."""
        if "sport" in attempt:
            key = (ip, int(attempt["sport"]))
            t0, t1 = float(attempt["t0"]), float(attempt.get("t1", attempt["t0"]))
            for kind, at in (("answered", self.answered), ("unanswered", self.unanswered)):
                if any(t0 - SYN_SLACK_S <= t <= t1 + SYN_SLACK_S for t in at.get(key, [])):
                    return kind
        return "not seen"

    def moved(self, ip: str, attempt: Mapping[str, Any]) -> bool:
        """Did a packet of this attempt's connection go to another node than its SYN?"""
        if "sport" not in attempt:
            return False
        t0, t1 = float(attempt["t0"]), float(attempt.get("t1", attempt["t0"]))
        return any(t0 <= t <= t1 + SYN_SLACK_S for t in self.moves.get((ip, int(attempt["sport"])), []))


def in_windows(t: float, windows: Sequence[Window]) -> bool:
    return any(a <= t <= b for a, b in windows)


@dataclass
class Attribution:
    """A rollout's attempts split by path: through a node while its pods were restarting, or not."""

    failures: list[dict[str, Any]] = field(default_factory=list)  # each failed attempt, traced
    restarting: list[int] = field(default_factory=lambda: [0, 0])  # [attempts, failed] through a restarting node
    elsewhere: list[int] = field(default_factory=lambda: [0, 0])  # [attempts, failed] through another node
    untraced: list[int] = field(default_factory=lambda: [0, 0])  # [attempts, failed] with no SYN at the router
    by_node: dict[str, list[int]] = field(default_factory=dict)  # node -> [attempts, failed] through it


def attribute(attempts: Mapping[str, Sequence[Mapping[str, Any]]], paths: PathIndex, node_of: Mapping[str, str],
              windows: Mapping[str, Sequence[Window]], t_ref: float) -> Attribution:
    """Split ``attempts`` (service IP -> the probe's ``http`` events) by the node the router chose for each and
    whether that node was in one of its ``windows`` at the attempt's start; every failure is listed with its time
    (seconds after ``t_ref``), error, stage, node, what that node did with its SYN, whether its connection moved,
    and whether its node was restarting.
    """
    out = Attribution()
    for ip, events in attempts.items():
        for e in events:
            mac = paths.mac_of(ip, e)
            node = node_of.get(mac, mac) if mac is not None else None
            restarting = node is not None and in_windows(float(e["t0"]), windows.get(node, ()))
            bucket = out.untraced if node is None else out.restarting if restarting else out.elsewhere
            per_node = out.by_node.setdefault(node, [0, 0]) if node is not None else [0, 0]
            bucket[0] += 1
            per_node[0] += 1
            if e.get("ok"):
                continue
            bucket[1] += 1
            per_node[1] += 1
            out.failures.append({
                "ip": ip, "t": round(float(e["t0"]) - t_ref, 3), "ms": round((float(e["t1"]) - float(e["t0"])) * 1000),
                "err": e.get("err", f"HTTP {e.get('status')}"), "stage": e.get("stage"), "node": node,
                "at_node": paths.at_node(ip, e), "moved": paths.moved(ip, e), "restarting": restarting,
            })  # fmt: skip
    out.failures.sort(key=lambda f: float(f["t"]))
    return out
