"""Membership at scale: N simulated speakers on a simulated clock, in one process.

Every node is a real ``Membership`` core (HMAC, echo freshness, notices,
table sync); only the network and the clock are simulated (0.5-1 ms one-way
latency). For each N it prints:

- startup: simulated time until every node reports the same, complete alive set;
- steady state: per-node CPU in the core (measured with ``perf_counter`` around
  every ``tick`` and ``datagram_received`` call) and datagrams/s in+out, plus
  the syscall cost of those datagrams measured on a real UDP socket here;
- crashes: detection time at every live node (p50/p95/max) and the time until
  every node agrees the victim is gone;
- a partition of 1/3 (random members, and a contiguous block of names): how
  many of the minority withdraw (lose quorum) and how fast, how many of the
  majority keep quorum, and the time to heal.

Usage: python bench/membership_scale.py [--quick] [N ...]     (default 10 100 300 1000)
``--quick``: a shorter steady-state window, 3 crashes and only the random partition
(for N=1000 on a busy machine; the simulated times are the same).
CPU figures depend on the machine and its load; the simulated times do not.
"""

from __future__ import annotations

import random
import socket
import statistics
import sys
import time

from ironlb.membership import MemberDown, MembershipConfig, QuorumChanged
from ironlb.membership.simulation import SimNet

SECRET = b"bench-secret-0123456789abcdef0123"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def syscall_cost(size: int = 140, rounds: int = 20000) -> float:
    """Seconds of sendto + recvfrom per datagram on loopback (non-blocking, as the shell does)."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    b.setblocking(False)
    dest = b.getsockname()
    payload = b"x" * size
    t0 = time.process_time()
    for _ in range(rounds):
        a.sendto(payload, dest)
        b.recvfrom(2048)
    spent = time.process_time() - t0
    a.close()
    b.close()
    # One datagram costs one send at its sender and one receive at its receiver.
    return spent / rounds / 2


def per_datagram(n: int, steps: int = 400) -> tuple[float, float]:
    """(datagrams/s, CPU seconds per datagram) of one node exchanging heartbeats with its neighbours only.

    No cold start of N cores, so it runs at any N: it shows whether the work per datagram grows with the member
    count (the full mesh's did). The node's table knows only its neighbours, so it also sends table syncs.
    """
    from ironlb.membership import Membership

    names = [f"node-{i:04d}" for i in range(n)]
    members = {m: (f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 7946) for i, m in enumerate(names)}
    me = Membership(names[0], SECRET, members, incarnation=1)
    nodes = {
        names[0]: me,
        **{m: Membership(m, SECRET, members, incarnation=2 + i) for i, m in enumerate(me.neighbours())},
    }
    now, cpu, count = 0.0, 0.0, 0
    for _ in range(steps):
        now += 0.025
        for node in nodes.values():
            t = time.thread_time()
            out, _events = node.tick(now)
            if node is me:
                cpu += time.thread_time() - t
                count += len(out)
            for d in out:
                dest = nodes.get(d.dest)
                if dest is None:
                    continue
                t = time.thread_time()
                dest.datagram_received(d.data, None, now + 0.0005)
                dest.next_deadline()
                if dest is me:
                    cpu += time.thread_time() - t
                    count += 1
    return count / (steps * 0.025), cpu / max(1, count)


def run(n: int, per_dg: float, rng: random.Random, quick: bool = False) -> None:
    cfg = MembershipConfig()
    names = [f"node-{i:04d}" for i in range(n)]
    t0 = time.perf_counter()
    sim = SimNet(names, SECRET, cfg, start_spread=0.2, seed=n)
    everyone = frozenset(names)
    startup = sim.run_until(lambda: sim.agree(expected=everyone), 20.0, step=0.05)
    print(f"\n== N={n}  (mode: {'full mesh' if n <= cfg.full_mesh_max else f'{cfg.rings} rings'})")
    rate, cost = per_datagram(n)
    print(f"one node with its neighbours only: {rate:.0f} datagrams/s, {1e6 * cost:.1f} us of core CPU per datagram")
    print(f"startup: every node agrees on all {n} after {startup:.2f} s simulated (starts spread over 0.2 s)")

    # Steady state.
    sim.run(1.0)
    for st in sim.stats.values():
        st.cpu, st.sent, st.received, st.bytes_sent = 0.0, 0, 0, 0
    span = 2.0 if quick else 5.0
    sim.run(span)
    cpu = [st.cpu / span for st in sim.stats.values()]
    dgs = [(st.sent + st.received) / span for st in sim.stats.values()]
    size = sum(st.bytes_sent for st in sim.stats.values()) / max(1, sum(st.sent for st in sim.stats.values()))
    total = [c + d * per_dg for c, d in zip(cpu, dgs, strict=True)]
    print(
        f"steady state per node: core CPU mean {100 * statistics.mean(cpu):.2f} % max {100 * max(cpu):.2f} %; "
        f"datagrams in+out mean {statistics.mean(dgs):.0f}/s max {max(dgs):.0f}/s ({size:.0f} B average); "
        f"core+syscalls mean {100 * statistics.mean(total):.2f} % max {100 * max(total):.2f} %"
    )

    # Crashes, one at a time, at a random phase of the heartbeat.
    samples: list[float] = []
    agree_times: list[float] = []
    crashes = 3 if quick else 5
    for _ in range(crashes):
        sim.run(rng.uniform(0, cfg.interval))
        victim = rng.choice(sim.live())
        t_crash = sim.now
        sim.crash(victim)
        rest = everyone - {victim}
        agree = sim.run_until(lambda rest=rest: sim.agree(expected=rest), 3.0, step=0.005)  # type: ignore[misc]
        sim.run(0.5)
        for name in sim.live():
            t = sim.first(name, lambda e, v=victim: isinstance(e, MemberDown) and e.name == v, since=t_crash)
            if t is not None:
                samples.append(t - t_crash)
        agree_times.append(agree if agree is not None else float("inf"))
        sim.restart(victim)
        sim.run_until(lambda: sim.agree(expected=everyone), 5.0, step=0.05)
        sim.run(0.5)
    print(
        f"crash detection ({crashes} crashes, {len(samples)} observations): p50 {1000 * pct(samples, 0.5):.0f} ms "
        f"p95 {1000 * pct(samples, 0.95):.0f} ms max {1000 * max(samples):.0f} ms; "
        f"every node agrees after max {1000 * max(agree_times):.0f} ms"
    )

    # Partitions of 1/3.
    for shape in ("random",) if quick else ("random", "contiguous"):
        order = list(names)
        if shape == "random":
            rng.shuffle(order)
        else:
            start = rng.randrange(n)
            order = order[start:] + order[:start]
        minority, majority = order[: n // 3], order[n // 3 :]
        t_cut = sim.now
        sim.partition(minority, majority)
        sim.run(2.0)
        lost = [
            t - t_cut
            for name in minority
            if (t := sim.first(name, lambda e: isinstance(e, QuorumChanged) and not e.has_quorum, since=t_cut))
            is not None
        ]
        withdrawn = sum(not sim.nodes[m].has_quorum() for m in minority)
        kept = [m for m in majority if sim.nodes[m].has_quorum()]
        agreed = sim.agree(kept) if kept else False
        alive_size = len(sim.nodes[kept[0]].alive()) if kept else 0
        t_heal = sim.now
        sim.heal()
        healed = sim.run_until(
            lambda: sim.agree(expected=everyone) and all(m.has_quorum() for m in sim.nodes.values()), 10.0, step=0.05
        )
        quorum_note = (
            f"withdrawal after p50 {1000 * pct(lost, 0.5):.0f} ms max {1000 * max(lost):.0f} ms" if lost else ""
        )
        heal_note = f"{healed:.2f} s" if healed is not None else "not within 10 s"
        print(
            f"partition 1/3 ({shape}): minority {withdrawn}/{len(minority)} withdrew, {quorum_note}; "
            f"majority {len(kept)}/{len(majority)} kept quorum (agreeing: {agreed}, alive set {alive_size}); "
            f"healed (all agree, all quorum) after {heal_note}"
        )
        del t_heal
    print(f"(wall time {time.perf_counter() - t0:.0f} s)")


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    sizes = [int(a) for a in sys.argv[1:] if a != "--quick"] or [10, 100, 300, 1000]
    per_dg = syscall_cost()
    print(f"syscall cost measured here: {1e6 * per_dg:.1f} us per datagram (send at one end, receive at the other)")
    rng = random.Random(7)
    for n in sizes:
        run(n, per_dg, rng, quick)


if __name__ == "__main__":
    main()
