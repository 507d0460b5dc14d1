"""Integration: three real UDP services on 127.0.0.1 with the default timings, on a virtual loop clock
(tests/support/clock.py): detection times are asserted on the services' own clock, whatever the machine's load."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from ipaddress import IPv4Address

import pytest
from tests.support.clock import virtual_clock
from tests.support.waits import wait_until_async

from ironlb.membership import (
    Event,
    HoldOffer,
    MemberDown,
    Membership,
    MembershipConfig,
    MembershipService,
    MemberUp,
    QuorumChanged,
)
from ironlb.membership.hold import HeldLink

SECRET = b"integration-test-secret-0123456789"
CFG = MembershipConfig()
NAMES = ["a", "b", "c"]
# Event-loop scheduling on a loaded CI machine adds latency the protocol cannot see.
SLACK = 0.1


class Cluster:
    def __init__(self) -> None:
        socks = {}
        for n in NAMES:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks[n] = s
        self.members = {n: ("127.0.0.1", s.getsockname()[1]) for n, s in socks.items()}
        self.events: dict[str, list[tuple[float, Event]]] = {n: [] for n in NAMES}
        self.changes: dict[str, list[tuple[frozenset[str], bool]]] = {n: [] for n in NAMES}
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.clock = asyncio.get_running_loop().time
        self.services = {
            n: MembershipService(
                Membership(n, SECRET, self.members, CFG),
                sock=socks[n],
                on_event=lambda e, n=n: self.events[n].append((self.clock(), e)),  # type: ignore[misc]
                on_change=lambda alive, q, n=n: self.changes[n].append((alive, q)),  # type: ignore[misc]
                queue=self.queue if n == "a" else None,
                clock=self.clock,
            )
            for n in NAMES
        }

    async def wait_for(self, node: str, event: Event, since: float, timeout: float = 2.0) -> float:
        """The time ``node`` saw ``event`` (at or after ``since``)."""

        def seen() -> float | None:
            return next((t for t, e in self.events[node] if t >= since and e == event), None)

        return await wait_until_async(seen, timeout, lambda: f"{node} to see {event}: {self.events[node]}",
                                      interval=0.002)


@contextlib.asynccontextmanager
async def running_cluster() -> AsyncIterator[Cluster]:
    """Three services started on the test's loop (the virtual clock's), converged and settled (a starting node
    settles once the peers it hears count it too: one heartbeat after it sees them all)."""
    c = Cluster()
    for s in c.services.values():
        await s.start()
    try:
        await wait_until_async(
            lambda: all(s.alive() == set(NAMES) and s.membership.settled() for s in c.services.values()), 2.0,
            "the cluster to converge and settle",
        )  # fmt: skip
        yield c
    finally:
        for s in c.services.values():
            await s.stop(leave=False)


@virtual_clock
async def test_converges_and_reports() -> None:
    async with running_cluster() as cluster:
        a = cluster.services["a"]
        assert a.has_quorum() and a.membership.settled()
        assert a.local_address == cluster.members["a"]
        assert cluster.changes["a"][-1] == (frozenset(NAMES), True)
        queued = []
        while not cluster.queue.empty():
            queued.append(cluster.queue.get_nowait())
        assert {e.name for e in queued if isinstance(e, MemberUp)} == {"b", "c"}
        assert QuorumChanged(True, 2, 3) in queued


@virtual_clock
async def test_crash_detected_within_dead_timeout() -> None:
    async with running_cluster() as cluster:
        t0 = cluster.clock()
        await cluster.services["c"].stop(leave=False)  # a crash: no LEAVE
        for n in "ab":
            t = await cluster.wait_for(n, MemberDown("c", "timeout"), t0)
            assert CFG.dead_timeout - CFG.interval - 0.02 <= t - t0 <= CFG.dead_timeout + SLACK, t - t0
            assert cluster.services[n].alive() == {"a", "b"}
            assert cluster.services[n].has_quorum()
            assert cluster.changes[n][-1] == (frozenset("ab"), True)


@virtual_clock
async def test_clean_stop_is_immediate() -> None:
    async with running_cluster() as cluster:
        t0 = cluster.clock()
        await cluster.services["c"].stop()  # sends LEAVE
        for n in "ab":
            t = await cluster.wait_for(n, MemberDown("c", "left"), t0)
            assert t - t0 < 0.05, t - t0


@virtual_clock
async def test_lone_survivor_loses_quorum() -> None:
    async with running_cluster() as cluster:
        t0 = cluster.clock()
        await cluster.services["b"].stop(leave=False)
        await cluster.services["c"].stop(leave=False)
        t = await cluster.wait_for("a", QuorumChanged(False, 1, 3), t0)
        assert t - t0 <= CFG.dead_timeout + SLACK
        assert cluster.changes["a"][-1] == (frozenset("a"), False)


@virtual_clock
async def test_restart_is_accepted() -> None:
    async with running_cluster() as cluster:
        await cluster.services["c"].stop(leave=False)
        t0 = cluster.clock()
        new = Membership("c", SECRET, cluster.members, CFG)
        svc = MembershipService(new, clock=cluster.clock)  # binds to its member address
        cluster.services["c"] = svc
        await svc.start()
        t = await cluster.wait_for("a", MemberUp("c", new.incarnation), t0)
        assert t - t0 < 0.3
        while svc.alive() != set(NAMES):
            assert cluster.clock() - t0 < 0.3, svc.alive()
            await asyncio.sleep(0.002)


@virtual_clock
async def test_set_members_at_run_time() -> None:
    async with running_cluster() as cluster:
        a = cluster.services["a"]
        a.set_members({n: cluster.members[n] for n in "ab"})
        assert a.alive() == {"a", "b"}
        assert cluster.events["a"][-1][1] == MemberDown("c", "removed")
        t0 = cluster.clock()
        a.set_members(cluster.members)
        await cluster.wait_for("a", MemberUp("c", cluster.services["c"].membership.incarnation), t0)


@virtual_clock
async def test_context_manager_and_double_start() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    svc = MembershipService(Membership("solo", SECRET, {}), sock=s)
    async with svc:
        assert svc.alive() == {"solo"} and svc.has_quorum()
        with pytest.raises(RuntimeError):
            await svc.start()
    assert svc.membership.left and svc.local_address is None
    await svc.stop()  # idempotent


@virtual_clock
async def test_a_hold_leave_names_the_held_member_in_the_view_until_it_ends() -> None:
    """``MembershipView.held`` (what the fast process sends the main process, whose decision keeps a held member
    only on the IPs it had): set by a hold LEAVE, with ``on_change`` although the alive set stays; cleared when
    the hold ends (here: H passes, then the member counts as left)."""
    async with running_cluster() as cluster:
        t0 = cluster.clock()
        before = {n: len(cluster.changes[n]) for n in "ab"}
        offer = HoldOffer(0.5, (HeldLink(bytes(6), IPv4Address("127.0.0.3")),), {"a": [IPv4Address("10.0.0.1")]})
        await cluster.services["c"].stop(hold=offer)
        for n in "ab":
            service = cluster.services[n]
            await wait_until_async(lambda s=service: s.view.held == {"c"}, 1.0, f"{n} holding c")  # type: ignore[misc]
            assert service.view.alive == set(NAMES)
            assert [alive for alive, _q in cluster.changes[n][before[n]:]][:1] == [frozenset(NAMES)], "on_change"
        assert cluster.services["a"].view.standing_in == {"c": {"10.0.0.1"}}, "what a starting node goes by"
        assert cluster.services["b"].view.standing_in == {}
        await cluster.wait_for("a", MemberDown("c", "left"), t0, timeout=2.0)
        assert cluster.services["a"].view.held == frozenset()
        assert cluster.services["a"].view.standing_in == {}
        assert cluster.services["a"].view.alive == {"a", "b"}
