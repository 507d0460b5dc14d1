"""Joining nodes of ``ironlb run`` (issue 9): time to the first Layer 2 answer, and who answers meanwhile.

Three nodes of ``ironlb run`` on a netns LAN with the default membership timings (100 ms interval, 350 ms dead
timeout), the seed Service (192.168.1.240: node3 wins it, node1 is next) and a Service pinned to 192.168.1.241
(node1 wins it). The client sends an ARP request for each IP every 5 ms and records every MAC that answers or
announces it. Each scenario runs ``--runs`` times:

- ``cold``: the three nodes started at once (a cold start of the whole cluster). Figure: from the start to the
  client's first ARP answer for .240, and the MACs seen for .240 over ``--listen`` seconds (one expected).
- ``join``: node1 dies (its link down, ``kill -9``; a SIGTERM would hold its IPs in place) and, once .241 has
  moved, comes back (link up, started again) while the others run. Figure: from its start to its own
  MAC answering .241 (what node1 wins), and the MACs seen for .240 meanwhile (node3's only: node1 must not claim
  the IP of an owner it has not heard yet).

Process start-up dominates these times on a loaded machine, so each is also given from the answering node's
membership start (its log line, wall clock; the part settling can change). Each node's own figure (its log's
``first Layer 2 announcement``, process start to announcement) is printed when the checkout logs it. ``--base DIR`` also runs the checkout DIR's ``ironlb run`` (its ``src`` first on the path),
interleaved with this one. Needs root, ``ip`` and namespaces. Run from the repository root:
``python -m bench.join [--runs 5] [--listen 15] [--base DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.announce import ARPWAIT, pinned_service

from bench.startup import figures
from ironlb.lab.cluster import StandaloneCluster
from ironlb.lab.failover import percentile
from ironlb.lab.lan import build_lan
from ironlb.lab.netns import NetnsLab
from ironlb.lab.waits import wait_until

OWNED = "192.168.1.240"  # node3 wins it, node1 next
JOINER_IP = "192.168.1.241"  # node1 wins it
JOINER = "node1"
OWNER = "node3"
MARK = {"first Layer 2 announcement": "l2"}


class Cluster(StandaloneCluster):
    """The lab cluster, optionally running another checkout's ``src``."""

    src: str | None = None

    def command(self, node: str) -> list[str]:
        cmd = super().command(node)
        return cmd if self.src is None else ["env", f"PYTHONPATH={self.src}", *cmd]


@dataclass
class Run:
    to_answer: float | None = None  # s from the start to the client's first answer (cold: .240; join: node1's .241)
    after_membership: float | None = None  # s from that node's membership start (its log) to that answer
    macs: list[str] = field(default_factory=list)  # every MAC that claimed .240 meanwhile
    own: dict[str, float] = field(default_factory=dict)  # node -> its log's process start -> first L2 announcement
    started: dict[str, float] = field(default_factory=dict)  # node -> its membership start, s after the start
    firsts: list[tuple[float, str]] = field(default_factory=list)  # (s after the start, node) of each first claim


MEMBERSHIP_STARTED = r"membership node\d: receive buffer"


def wall(mono: float) -> float:
    """``time.monotonic()`` reading as wall-clock time (the nodes' logs have wall-clock timestamps)."""
    return time.time() - (time.monotonic() - mono)


def after_membership(c: Cluster, node: str, answered: float, since: float) -> float | None:
    """From ``node``'s membership start (its log line, at or after wall time ``since``) to ``answered`` (wall)."""
    started = c.log_time(node, MEMBERSHIP_STARTED, since)
    return None if started is None else answered - started


@contextmanager
def listening(c: Cluster, ip: str, seconds: float) -> Iterator[subprocess.Popen[str]]:
    cmd = [sys.executable, str(ARPWAIT), ip, "--interval", "0.005", "--listen", str(seconds)]
    proc = c.lan.lab.popen(c.client_ns, cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    if '"ready"' not in proc.stdout.readline():
        raise RuntimeError(f"ARP listener for {ip} did not start")
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def claims(proc: subprocess.Popen[str]) -> list[tuple[float, str]]:
    """(time, MAC) of each MAC's first claim, once the listener is done."""
    assert proc.stdout is not None
    out = []
    for line in proc.stdout:
        event = json.loads(line)
        if event["ev"] == "arp":
            out.append((float(event["t"]), str(event["mac"])))
    proc.wait()
    return out


def node_figures(c: Cluster, nodes: list[str]) -> dict[str, float]:
    out = {}
    for node in nodes:
        got = figures(c.log(node), MARK)
        if "l2" in got:
            out[node] = got["l2"][0]
    return out


def cold(c: Cluster, listen: float) -> Run:
    c.apply_seed()
    c.write_manifest("pinned.yaml", pinned_service("pinned", JOINER_IP))
    with listening(c, OWNED, listen) as owned:
        t0, since = time.monotonic(), time.time()
        c.start_all()
        seen = claims(owned)
    wait_until(lambda: c.announcers(OWNED) == [OWNER] and c.announcers(JOINER_IP) == [JOINER], 60, "steady")
    run = Run(macs=[mac for _, mac in seen], own=node_figures(c, c.node_names))
    for node in c.node_names:
        at = c.log_time(node, MEMBERSHIP_STARTED, since)
        if at is not None:
            run.started[node] = round(at - since, 3)
    run.firsts = [(round(t - t0, 3), c.node_of_mac(m) or m) for t, m in seen]
    if seen:
        run.to_answer = seen[0][0] - t0
        first = c.node_of_mac(seen[0][1])
        if first is not None:
            run.after_membership = after_membership(c, first, wall(seen[0][0]), since)
    return run


def join(c: Cluster, listen: float) -> Run:
    mac = c.lan.node(JOINER).mac.lower()
    c.kill(JOINER)
    offset = len(c.log(JOINER))
    wait_until(lambda: bool(set(c.announcers(JOINER_IP)) - {JOINER}), 20, "the IP moved")
    with listening(c, OWNED, listen) as owned, listening(c, JOINER_IP, listen) as own:
        t0, since = time.monotonic(), time.time()
        c.revive(JOINER)
        seen = claims(owned)
        mine = [t for t, m in claims(own) if m == mac]
    wait_until(lambda: c.announcers(JOINER_IP) == [JOINER], 60, f"{JOINER} announces {JOINER_IP}")
    got = figures(c.log(JOINER)[offset:], MARK)
    run = Run(macs=[m for _, m in seen], own={JOINER: got["l2"][0]} if "l2" in got else {})
    if mine:
        run.to_answer = mine[0] - t0
        run.after_membership = after_membership(c, JOINER, wall(mine[0]), since)
    return run


def trial(src: str | None, listen: float) -> tuple[Run, Run]:
    lab = NetnsLab(f"j{os.getpid() % 10000}", die_with_us=True)
    try:
        lan = build_lan(lab)
        with tempfile.TemporaryDirectory(prefix="ironlb-join-") as tmp:
            c = Cluster(lan, Path(tmp))
            c.src = src
            try:
                first = cold(c, listen)
                second = join(c, listen)
            finally:
                c.close()
        return first, second
    finally:
        lab.cleanup()


def summary(name: str, runs: list[Run], macs_of: dict[str, str]) -> None:
    times = [r.to_answer * 1000 for r in runs if r.to_answer is not None]
    membership = [r.after_membership * 1000 for r in runs if r.after_membership is not None]
    owns = [t * 1000 for r in runs for t in r.own.values()]
    split = [sorted(macs_of.get(m, m) for m in r.macs) for r in runs if len(set(r.macs)) != 1]
    line = f"  {name}: client's first answer p50 {percentile(times, 50):.0f} ms (min {min(times):.0f}, max " \
           f"{max(times):.0f})" if times else f"  {name}: no answer"  # fmt: skip
    if membership:
        line += f"; from that node's membership start p50 {percentile(membership, 50):.0f} ms " \
                f"(min {min(membership):.0f}, max {max(membership):.0f})"  # fmt: skip
    if owns:
        line += f"; nodes' first L2 announcement after process start p50 {percentile(owns, 50):.0f} ms " \
                f"(min {min(owns):.0f}, max {max(owns):.0f})"  # fmt: skip
    line += f"; runs where .240 was claimed by more than one MAC: {len(split)}/{len(runs)} {split or ''}"
    print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--listen", type=float, default=15.0, help="seconds the client records claims per scenario")
    parser.add_argument("--base", metavar="DIR", help="also run the checkout DIR's ironlb (its src/), interleaved")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean the namespaces up on a kill too
    sources: dict[str, str | None] = {"": None, **({" (base)": os.path.join(args.base, "src")} if args.base else {})}
    results: dict[str, tuple[list[Run], list[Run]]] = {tag: ([], []) for tag in sources}
    macs_of = {f"02:00:00:00:00:{11 + i:02x}": f"node{i + 1}" for i in range(3)}
    for i in range(args.runs):
        for tag, src in sources.items():
            c_run, j_run = trial(src, args.listen)
            results[tag][0].append(c_run)
            results[tag][1].append(j_run)
            print(f"  {i + 1}{tag}: cold {c_run}, join {j_run}", flush=True)
    print(f"3 nodes, {args.runs} runs, load average {os.getloadavg()[0]:.1f}")
    for tag, (cold_runs, join_runs) in results.items():
        summary(f"cold start{tag}", cold_runs, macs_of)
        summary(f"node1 joins{tag}", join_runs, macs_of)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
