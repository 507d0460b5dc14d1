"""Settling of a starting node (issue 9) on the simulated network: how long until it may announce, and whether it
claimed what it should not meanwhile. Exact simulated times (``SimNet``: 0.5-1 ms one-way latency), no load.

Scenarios: a node alone; a cold start of 3 and 16 nodes (all within 50 ms), also with one member down, and with
the third of 3 nodes 10 ms before the others' dead timeout has passed; a node
rejoining 3 or 16 live nodes, rejoining while another member is dead, and rejoining while the datagrams of one
owner to it are lost for 500 ms; the third of 3 nodes 550 ms after the others (they announced without it); a node
rejoining 16 while its neighbours' first one or three table syncs to it are lost. Per scenario: from the starting node's boot to ``settled()`` (the last one, for a
cold start), and, until 0.5 s after that, for how long (5 ms steps) a starting node that may announce (quorum and
settled) won over its own alive set an IP that the true live set gives another node (the wrong claim), and for
how long two nodes claimed one IP (the others keep the IPs a joiner wins until they count it: a joiner taking
its own IPs back overlaps them for about a round trip, which the Layer 2 responder's give-back on a claim ends).

Run from the repository root: ``python -m bench.settle``; with another checkout's core, to compare:
``PYTHONPATH=DIR/src python -m bench.settle``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable

from ironlb.membership.simulation import SimNet
from ironlb.membership.wire import MsgType, decode

SECRET = b"bench-settle-bench-settle-32byte"
IPS = [f"10.0.{i // 256}.{i % 256}" for i in range(128)]
STEP = 0.005


@functools.cache
def won(node: str, alive: frozenset[str]) -> frozenset[str]:
    return frozenset(
        ip for ip in IPS if min(alive, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest()) == node
    )


def wrong(sim: SimNet, starting: Iterable[str], live: Iterable[str]) -> tuple[bool, bool]:
    """Does a ``starting`` node claim an IP that is not its own over ``live``; do two nodes claim one?"""
    truth = frozenset(live)
    owned: set[str] = set()
    foreign = double = False
    for n in truth:
        m = sim.nodes[n]
        if not (m.settled() and m.has_quorum()):
            continue
        mine = won(n, m.alive())
        foreign |= n in starting and bool(mine - won(n, truth))
        double |= bool(mine & owned)
        owned |= mine
    return foreign, double


def watch(sim: SimNet, nodes: list[str], live: list[str], limit: float = 3.0) -> tuple[float | None, int, int]:
    """Run until every one of ``nodes`` has settled (at most ``limit`` s) and 0.5 s more: the time it took to
    settle, and the wrong moments meanwhile."""
    start, bad, double, took = sim.now, 0, 0, None
    while sim.now - start < limit and (took is None or sim.now - start < took + 0.5):
        if took is None and all(sim.nodes[n].settled() for n in nodes):
            took = sim.now - start
        sim.run(STEP)
        foreign, two = wrong(sim, nodes, live)
        bad, double = bad + foreign, double + two
    return took, bad, double


def names(n: int) -> list[str]:
    return [f"n{i:02d}" for i in range(n)]


def steady(n: int) -> SimNet:
    sim = SimNet(names(n), SECRET)
    sim.run(2.0)
    return sim


def alone() -> tuple[float | None, int, int]:
    sim = SimNet(["solo"], SECRET)
    return watch(sim, ["solo"], ["solo"])


def cold(n: int, down: int = 0) -> tuple[float | None, int, int]:
    sim = SimNet(names(n), SECRET, start_spread=0.05, seed=n)
    gone = names(n)[n - down :]
    sim.crash(*gone)
    live = [x for x in names(n) if x not in gone]
    took, bad, double = watch(sim, live, live)
    return (None if took is None else max(took - 0.05, 0.0)), bad, double  # from the last boot (within 50 ms)


def staggered() -> tuple[float | None, int, int]:
    """Two nodes start together, the third 10 ms before their dead timeout has passed (processes of a cold start
    come up seconds apart on a busy machine): from the first two's start."""
    sim = SimNet(names(3), SECRET, jitter=0.0)
    sim.crash(names(3)[2])
    sim.run(sim.config.dead_timeout - 0.01)
    sim.restart(names(3)[2])
    took, bad, double = watch(sim, names(3), names(3))
    return (None if took is None else took + sim.config.dead_timeout - 0.01), bad, double


def late(after: float) -> tuple[float | None, int, int]:
    """Two nodes start together, settle without the third and announce; the third starts ``after`` seconds later
    (more than a dead timeout: a cold start on a busy machine) and takes its IPs over: from its start."""
    sim = SimNet(names(3), SECRET)
    sim.crash(names(3)[2])
    sim.run(after)
    sim.restart(names(3)[2])
    return watch(sim, [names(3)[2]], names(3))


def lose_syncs(sim: SimNet, joiner: str, first: int) -> None:
    """Drop the first ``first`` table syncs (NOTICEs, one burst at one moment) each member sends ``joiner``."""
    bursts: dict[str, list[float]] = {}

    def drop(src: str, dest: str, data: bytes) -> bool:
        if dest != joiner or decode(data, [SECRET]).type is not MsgType.NOTICE:
            return False
        times = bursts.setdefault(src, [])
        if not times or times[-1] != sim.now:
            times.append(sim.now)
        return len(times) <= first

    sim.drop = drop


def rejoin(
    n: int, dead: bool = False, lossy: bool = False, lost_syncs: int = 0, joiner: int = 1
) -> tuple[float | None, int, int]:
    """``joiner`` rejoins (by index; n01 has 5 ring neighbours of 16, n07 has 8: a quorum with itself)."""
    sim = steady(n)
    everyone = names(n)
    live = everyone
    if dead:
        sim.crash(everyone[-1])
        sim.run(2.0)
        live = everyone[:-1]
    joiner_name = everyone[joiner]
    if lossy:
        until = sim.now + 0.5
        sim.drop = lambda s, d, _data: s == everyone[0] and d == joiner_name and sim.now < until
    if lost_syncs:
        lose_syncs(sim, joiner_name, lost_syncs)
    sim.restart(joiner_name)
    return watch(sim, [joiner_name], live)


SCENARIOS: dict[str, Callable[[], tuple[float | None, int, int]]] = {
    "a node alone": alone,
    "cold start, 3 nodes": lambda: cold(3),
    "cold start, 3 nodes, 1 down": lambda: cold(3, 1),
    "cold start, 16 nodes (rings)": lambda: cold(16),
    "cold start, 3 nodes, the third 340 ms after the others": staggered,
    "rejoin 3 live nodes": lambda: rejoin(3),
    "rejoin, another member dead": lambda: rejoin(3, dead=True),
    "rejoin, an owner's datagrams lost 500 ms": lambda: rejoin(3, lossy=True),
    "rejoin 16 live nodes (rings)": lambda: rejoin(16),
    "cold start, 3 nodes, the third 550 ms after the others": lambda: late(0.55),
    "rejoin 16 nodes (rings), each neighbour's first table sync lost": lambda: rejoin(16, lost_syncs=1, joiner=7),
    "rejoin 16 nodes (rings), each neighbour's first 3 table syncs lost": lambda: rejoin(16, lost_syncs=3, joiner=7),
}


def main() -> int:
    print("| scenario | settled after | a starting node claims another's IP | two nodes claim one IP |")
    print("|---|---|---|---|")
    for name, scenario in SCENARIOS.items():
        took, bad, double = scenario()
        shown = "never (3 s)" if took is None else f"{took * 1000:.0f} ms"
        print(f"| {name} | {shown} | {bad * STEP * 1000:.0f} ms | {double * STEP * 1000:.0f} ms |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
