"""Integration: 16 real UDP services on 127.0.0.1, above ``full_mesh_max`` so each watches only its ring
neighbours, on a virtual loop clock (tests/support/clock.py): times are asserted on the services' own clock."""

from __future__ import annotations

import asyncio
import socket

from tests.support.clock import virtual_clock
from tests.support.waits import wait_until_async

from ironlb.membership import Event, MemberDown, Membership, MembershipConfig, MembershipService

SECRET = b"integration-test-secret-0123456789"
CFG = MembershipConfig()
NAMES = [f"node-{i:02d}" for i in range(16)]
# Event-loop scheduling on a loaded CI machine adds latency the protocol cannot see; a non-watcher also waits
# for the watchers' notice and a quarter interval before it recomputes.
SLACK = 0.1 + CFG.interval / 4


@virtual_clock
async def test_sixteen_services_on_rings_detect_crash_and_leave() -> None:
    clock = asyncio.get_running_loop().time
    socks = {}
    for n in NAMES:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks[n] = s
    members = {n: ("127.0.0.1", s.getsockname()[1]) for n, s in socks.items()}
    events: dict[str, list[tuple[float, Event]]] = {n: [] for n in NAMES}
    services = {
        n: MembershipService(
            Membership(n, SECRET, members, CFG),
            sock=socks[n],
            on_event=lambda e, n=n: events[n].append((clock(), e)),  # type: ignore[misc]
            clock=clock,
        )
        for n in NAMES
    }
    for svc in services.values():
        await svc.start()
    try:
        everyone = frozenset(NAMES)
        await wait_until_async(lambda: all(s.alive() == everyone for s in services.values()), 5.0,
                               "16 services to converge")
        assert all(len(s.membership.neighbours()) <= 2 * CFG.rings for s in services.values())
        assert all(s.has_quorum() for s in services.values())

        victim = NAMES[5]
        t0 = clock()
        await services.pop(victim).stop(leave=False)  # a crash: no LEAVE
        rest = everyone - {victim}
        await wait_until_async(lambda: all(s.alive() == rest for s in services.values()), 3.0,
                               f"everyone to drop {victim}")
        for n in services:
            downs = [t for t, e in events[n] if t >= t0 and e == MemberDown(victim, "timeout")]
            assert downs and downs[0] - t0 <= CFG.dead_timeout + SLACK, (n, downs)

        leaver = NAMES[11]
        t1 = clock()
        await services.pop(leaver).stop()  # sends LEAVE to every member
        rest -= {leaver}
        await wait_until_async(lambda: all(s.alive() == rest for s in services.values()), 3.0,
                               f"everyone to drop {leaver}")
        for n in services:
            downs = [t for t, e in events[n] if t >= t1 and e == MemberDown(leaver, "left")]
            assert downs and downs[0] - t1 <= SLACK, (n, downs)
    finally:
        for svc in services.values():
            await svc.stop(leave=False)
