"""The neighbours' sockets are read at the ticks, not per datagram, and a datagram counts from when it arrived.

Real UDP sockets on 127.0.0.1 and the real clock; the heartbeat interval is long (5 s) so no tick falls inside
the test's windows unless the test wakes the service itself.
"""

from __future__ import annotations

import asyncio
import threading
import time

from tests.support.udp import member_pair
from tests.support.waits import wait_until_async

from ironlb.membership import Event, MemberDown, Membership, MembershipConfig, MembershipService
from ironlb.membership.service import MAX_PEER_READS
from ironlb.membership.wire import MIN_DATAGRAM

SECRET = b"tick-reads-test-secret-0123456789"
SLOW = MembershipConfig(interval=5.0, dead_timeout=15.0, sync_interval=5.0)


class Recording(Membership):
    """A core that notes the time each datagram was given with, and when it was given."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.received: list[tuple[float, float]] = []  # (time given to the core, time of the call)

    def datagram_received(self, data: bytes, addr: object, now: float) -> list:  # type: ignore[type-arg]
        self.received.append((now, time.monotonic()))
        return super().datagram_received(data, addr, now)


async def test_a_heartbeat_waits_for_the_tick_and_counts_from_its_arrival() -> None:
    main_a, sock_b, members = member_pair()
    core = Recording("a", SECRET, members, SLOW)
    svc = MembershipService(core, sock=main_a)
    try:
        async with svc:
            await asyncio.sleep(0.05)  # the first tick has run; the next is due in 5 s
            assert svc.peer_addresses == frozenset({members["b"]})
            t0 = time.monotonic()
            sock_b.sendto(b"\0" * (MIN_DATAGRAM + 40), members["a"])  # from b's member address: b's own queue
            t1 = time.monotonic()
            await asyncio.sleep(0.3)
            assert core.received == []  # no wake-up for it: it waits in b's queue for the tick
            svc._wake.set()  # what the tick's timer would do
            await wait_until_async(lambda: core.received, 5.0, "the tick to read b's datagram")
            (given, called) = core.received[0]
            assert called > t1 + 0.25
            assert t0 - 0.001 <= given <= t1 + 0.001  # the kernel's arrival stamp, not the time it was read
    finally:
        sock_b.close()


async def test_a_flood_on_a_member_queue_is_read_a_bounded_batch_per_tick_and_counted() -> None:
    main_a, sock_b, members = member_pair()
    svc = MembershipService(Membership("a", SECRET, members, SLOW), sock=main_a)
    try:
        await svc.start()  # its task has not run yet: nothing drains but the calls below
        flood = MAX_PEER_READS + 50
        for _ in range(flood):
            sock_b.sendto(b"x", members["a"])  # too short for any message, from b's address and port
        svc._drain_peers()
        assert svc.rejected["undersized"] == MAX_PEER_READS  # one tick reads at most this many
        svc._drain_peers()
        assert svc.rejected["undersized"] == flood
        svc._drain_peers()
        assert svc.rejected["undersized"] == flood
    finally:
        await svc.stop(leave=False)
        sock_b.close()


async def test_notices_and_leaves_go_from_a_port_of_their_own() -> None:
    """So they land in the receivers' main queue, read at once, not in a member queue read at the next tick."""
    main_a, sock_b, members = member_pair()
    sock_b.setblocking(False)
    svc = MembershipService(Membership("a", SECRET, members, SLOW), sock=main_a)
    await svc.start()
    await asyncio.sleep(0.05)  # the first tick: a hello to b
    port = svc.urgent_port
    assert port is not None and port != members["a"][1]
    await svc.stop()  # sends the LEAVEs
    sources = set()
    while True:
        try:
            _data, source = sock_b.recvfrom(65536)
        except BlockingIOError:
            break
        sources.add(source)
    sock_b.close()
    assert ("127.0.0.1", members["a"][1]) in sources  # the first tick's heartbeat (hello)
    assert ("127.0.0.1", port) in sources  # the LEAVE


async def test_each_timed_tick_reports_how_late_it_ran() -> None:
    """``on_late``: the fast process's loop-lag figure, from the ticks rather than from a timer of its own."""
    main_a, sock_b, members = member_pair()
    lates: list[float] = []
    svc = MembershipService(Membership("a", SECRET, members, MembershipConfig()), sock=main_a, on_late=lates.append)
    try:
        async with svc:
            await wait_until_async(lambda: len(lates) >= 3, 5.0, "three timed ticks")
        assert all(late > -0.001 for late in lates)  # a timer runs at or after its deadline
    finally:
        sock_b.close()


async def test_a_flooded_member_queue_is_read_on_between_ticks() -> None:
    """Junk sent from a member's address and port: read batch after batch as the loop turns, not one per tick
    (ticks are 30 s apart here), so the queue does not overflow and drop that member's real heartbeats."""
    main_a, sock_b, members = member_pair()
    config = MembershipConfig(interval=30.0, dead_timeout=90.0, sync_interval=30.0)
    svc = MembershipService(Membership("a", SECRET, members, config), sock=main_a)
    try:
        async with svc:
            await asyncio.sleep(0.05)  # the first tick has run; the next is due in 30 s
            flood = MAX_PEER_READS + 100  # two batches, within what the queue holds (no drops)
            for _ in range(flood):
                sock_b.sendto(b"x", members["a"])
            svc._drain_peers()  # what the next tick does first
            await wait_until_async(lambda: svc.rejected["undersized"] == flood, 2.0, "the whole flood read")
    finally:
        sock_b.close()


async def test_over_ipv6_too() -> None:
    """Heartbeats on the member port into the neighbour's own queue, notices from the second port: on ::1."""
    sock_a, sock_b, members = member_pair("::1")
    socks = [sock_a, sock_b]
    seen: list[Event] = []
    services = [MembershipService(Membership(n, SECRET, members, MembershipConfig()), sock=s,
                                  on_event=seen.append if n == "a" else None)
                for n, s in zip("ab", socks, strict=True)]  # fmt: skip
    for svc in services:
        await svc.start()
    try:
        assert all(svc.urgent_port is not None for svc in services)
        await wait_until_async(lambda: all(svc.alive() == {"a", "b"} for svc in services), 5.0, "a and b to meet")
        await services[1].stop()  # its LEAVE, from its second port
        await wait_until_async(lambda: MemberDown("b", "left") in seen, 5.0, "a to see b's LEAVE")
    finally:
        for svc in services:
            await svc.stop(leave=False)


class StuckDeadline(Membership):
    """A core whose next deadline stays in the past (a bug): the service must still yield between ticks."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.ticks = 0

    def tick(self, now: float) -> tuple[list, list]:  # type: ignore[type-arg]
        self.ticks += 1
        return super().tick(now)

    def next_deadline(self) -> float:
        return 0.0


def test_a_deadline_stuck_in_the_past_does_not_starve_the_loop() -> None:
    """Run on a thread of its own, so that a regression (a loop that never yields) fails the test, not hangs it."""
    main_a, sock_b, members = member_pair()
    core = StuckDeadline("a", SECRET, members, SLOW)
    ran: list[float] = []

    async def scenario() -> None:
        async with MembershipService(core, sock=main_a):

            async def other() -> None:
                for _ in range(20):
                    await asyncio.sleep(0.005)
                    ran.append(time.monotonic())

            await other()  # never finishes if the service spins without yielding

    runner = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    try:
        runner.start()
        runner.join(30.0)
        assert not runner.is_alive(), "the membership loop spun without yielding"
        assert len(ran) == 20
        assert core.ticks > 1  # the service went on ticking meanwhile, at most once per MIN_SLEEP
    finally:
        sock_b.close()
