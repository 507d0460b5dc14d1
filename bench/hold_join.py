"""A member that starts during another's restart hold, on the simulated network: how long until it settles, whether
it holds the restarting member then, and for how long it claims an IP the held member keeps (it took those it wins
as after a crash before the holds were relayed, HOLDS). Exact simulated times (``SimNet``: 0.5-1 ms one-way
latency), no load.

Scenarios: 3 and 16 nodes (rings); the joiner's speaker down as the hold began (so it never got the LEAVE), or a
crash and restart of a member the hold named no stand-in; in the 16-node case the held member is the joiner's ring
neighbour or not. Per scenario: from the joiner's boot to ``settled()``; whether the held member is in its alive
set and its holds then; and, until 1 s after it settled, for how long (5 ms steps) it claimed (quorum and settled)
an IP that the held member wins over the others' alive set.

Run from the repository root: ``python -m bench.hold_join``; with another checkout's core, to compare:
``PYTHONPATH=DIR/src python -m bench.hold_join``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from ipaddress import IPv4Address

from ironlb.membership.hold import HeldLink, HoldOffer
from ironlb.membership.simulation import SimNet

SECRET = b"bench-holdjoin-bench-holdjoin-32"
IPS = [f"10.0.{i // 256}.{i % 256}" for i in range(1024)]
STEP = 0.005
LINK = HeldLink(bytes.fromhex("02aabbccdd03"), IPv4Address("192.168.1.13"))


def winner(alive: frozenset[str], ip: str) -> str:
    return min(alive, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())


def names(n: int) -> list[str]:
    return [f"n{i:02d}" for i in range(n)]


def scenario(n: int, *, neighbour: bool, down_before: bool) -> tuple[float | None, bool, float]:
    sim = SimNet(names(n), SECRET)
    sim.run(2.0)
    joiner = names(n)[1]
    ring = sim.nodes[joiner].neighbours()
    held = next(m for m in names(n) if m != joiner and (m in ring) == neighbour)
    others = [m for m in names(n) if m not in (joiner, held)]
    if down_before:
        sim.crash(joiner)
        sim.run(1.0)
    owned = [ip for ip in IPS if winner(frozenset(names(n)), ip) == held]
    stand_in: dict[str, list[IPv4Address]] = {}
    for ip in owned:  # each IP's next live candidate stands in (the joiner, when it is up, is none)
        rest = frozenset(m for m in names(n) if m != held and (m != joiner or not down_before))
        stand_in.setdefault(winner(rest, ip), []).append(IPv4Address(ip))
    if not down_before:
        stand_in.pop(joiner, None)
        stand_in.setdefault(others[0], []).extend(IPv4Address(ip) for ip in owned if winner(
            frozenset(m for m in names(n) if m != held), ip) == joiner)  # fmt: skip
    sim.leave(held, HoldOffer(20.0, (LINK,), stand_in))
    sim.run(0.5)
    sim.restart(joiner)
    start, took, claimed = sim.now, None, 0
    while sim.now - start < 3.0 and (took is None or sim.now - start < took + 1.0):
        core = sim.nodes[joiner]
        if took is None and core.settled():
            took = sim.now - start
        if core.settled() and core.has_quorum():
            claimed += any(winner(core.alive(), ip) == joiner for ip in owned)
        sim.run(STEP)
    core = sim.nodes[joiner]
    return took, held in core.alive() and held in core.held(), claimed * STEP


SCENARIOS: dict[str, Callable[[], tuple[float | None, bool, float]]] = {
    "3 nodes, the joiner down as the hold began": lambda: scenario(3, neighbour=True, down_before=True),
    "3 nodes, a member named no stand-in restarts": lambda: scenario(3, neighbour=True, down_before=False),
    "16 nodes (rings), held node a ring neighbour": lambda: scenario(16, neighbour=True, down_before=True),
    "16 nodes (rings), held node no neighbour": lambda: scenario(16, neighbour=False, down_before=True),
}


def main() -> int:
    print("| scenario | settled after | holds the restarting member | claims one of its IPs |")
    print("|---|---|---|---|")
    for name, run in SCENARIOS.items():
        took, holds, claimed = run()
        shown = "never (3 s)" if took is None else f"{took * 1000:.0f} ms"
        print(f"| {name} | {shown} | {'yes' if holds else 'no'} | {claimed * 1000:.0f} ms |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
