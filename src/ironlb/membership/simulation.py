"""A simulated network of ``Membership`` cores: one process, one simulated clock.

Used by the unit tests and by ``bench/membership_scale.py`` to check the
protocol's properties at sizes no test machine could run as processes. It is
event driven (a heap of deliveries and ticks), so a node costs nothing while
it has nothing to do, as with the asyncio shell: each node is ticked at its
``next_deadline()``, and again after a datagram makes something due earlier.

Faults: ``crash`` (silent), ``leave`` (signed LEAVE, or a restart hold), ``restart`` (new
incarnation), ``partition`` (groups that cannot reach each other),
``block`` (one direction of one link), random loss, ``freeze`` (a
process that does not run for a while: what arrives meanwhile waits in its
socket and is read, as the shell does, before its late tick) and ``hold``
(the network delivers nothing for a while, then everything it held).
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ironlb.membership.config import Address, MembershipConfig
from ironlb.membership.events import Datagram, Event
from ironlb.membership.fsm import Membership
from ironlb.membership.hold import HoldOffer

__all__ = ["NodeStats", "SimNet"]


@dataclass(slots=True)
class NodeStats:
    """Work done by one node: CPU seconds in the core and datagrams in and out."""

    cpu: float = 0.0
    sent: int = 0
    received: int = 0
    bytes_sent: int = 0


@dataclass
class SimNet:
    """``n`` nodes named ``node-0000``... (or ``names``) on a simulated LAN.

    ``latency`` is one-way, plus up to ``jitter`` uniformly; ``loss`` drops
    that fraction of datagrams. ``measure`` names the nodes whose CPU time is
    measured (all by default; measuring costs a little itself).
    """

    names: list[str]
    secret: bytes
    config: MembershipConfig = field(default_factory=MembershipConfig)
    latency: float = 0.0005
    jitter: float = 0.0005
    loss: float = 0.0
    seed: int = 1
    measure: set[str] | None = None
    start_spread: float = 0.0
    record: bool = False
    drop: Callable[[str, str, bytes], bool] | None = None
    """Called with (src, dest, data) for each datagram: True drops it."""

    def __post_init__(self) -> None:
        self.now = 0.0
        self.rng = random.Random(self.seed)
        self.members: dict[str, Address] = {
            n: (f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 7946) for i, n in enumerate(self.names)
        }
        self.by_addr = {a: n for n, a in self.members.items()}
        self.nodes: dict[str, Membership] = {}
        self.stats: dict[str, NodeStats] = {n: NodeStats() for n in self.names}
        self.events: list[tuple[float, str, Event]] = []
        self.crashed: set[str] = set()
        self.group: dict[str, int] = {}
        self.blocked: set[tuple[str, str]] = set()
        self.frozen: dict[str, float] = {}
        """Node -> when it runs again (``freeze``)."""
        self.held_until = -math.inf
        """Nothing is delivered before this time (``hold``)."""
        self.log: list[tuple[float, str, str, bytes]] = []
        """(time, src, dest, data) of every datagram sent, when ``record`` is set."""
        self._heap: list[tuple[float, int, int, str, bytes, str]] = []
        self._seq = 0
        self._wake: dict[str, float] = {}
        self._inc = 1000
        self._boot_at: dict[str, float] = {}
        for name in self.names:
            self._boot(name, self.rng.uniform(0, self.start_spread))

    # ------------------------------------------------------------- controls

    def _boot(self, name: str, at: float) -> None:
        self._inc += 1
        self.nodes[name] = Membership(name, self.secret, self.members, self.config, incarnation=self._inc)
        self._boot_at[name] = self.now + at  # its socket does not exist before then
        self._wake.pop(name, None)
        self._schedule_tick(name, self.now + at)

    def crash(self, *names: str) -> None:
        self.crashed.update(names)

    def restart(self, name: str) -> None:
        self.crashed.discard(name)
        self._boot(name, 0.0)

    def leave(self, name: str, hold: HoldOffer | None = None) -> None:
        self._send(name, self.nodes[name].leave(self.now, hold))
        self.crashed.add(name)

    def freeze(self, duration: float, *names: str) -> None:
        """``names`` (all nodes by default) do not run for ``duration`` seconds from now: a stalled process, or a
        whole machine. Datagrams sent to them meanwhile are read when they run again, before their tick."""
        for name in names or tuple(self.names):
            self.frozen[name] = max(self.frozen.get(name, 0.0), self.now + duration)

    def hold(self, duration: float) -> None:
        """The network delivers nothing for ``duration`` seconds from now, then all it held (a stalled switch)."""
        self.held_until = max(self.held_until, self.now + duration)

    def partition(self, *groups: Iterable[str]) -> None:
        """Nodes in different groups cannot reach each other; nodes in none reach all."""
        self.group = {n: i for i, g in enumerate(groups) for n in g}

    def heal(self) -> None:
        self.group = {}
        self.blocked = set()

    def deliver(self, dest: str, data: bytes, src: str) -> list[Event]:
        """Hand ``data`` to ``dest`` now, as if ``src`` had sent it (replays, forgeries)."""
        events = self.nodes[dest].datagram_received(data, self.members[src], self.now)
        self.events += [(self.now, dest, e) for e in events]
        self._schedule_tick(dest, max(self.nodes[dest].next_deadline(), self.now))
        return events

    def reachable(self, src: str, dest: str) -> bool:
        if (src, dest) in self.blocked:
            return False
        gs, gd = self.group.get(src), self.group.get(dest)
        return gs is None or gd is None or gs == gd

    # ---------------------------------------------------------------- running

    def _schedule_tick(self, name: str, at: float) -> None:
        current = self._wake.get(name, math.inf)
        if at < current:
            self._wake[name] = at
            self._seq += 1
            heapq.heappush(self._heap, (at, self._seq, 0, name, b"", ""))

    def _send(self, src: str, datagrams: list[Datagram]) -> None:
        st = self.stats[src]
        for data, addr, dest in datagrams:
            st.sent += 1
            st.bytes_sent += len(data)
            if self.record:
                self.log.append((self.now, src, dest, data))
            if self.by_addr.get(addr) != dest:
                raise AssertionError(f"{src} sent a datagram for {dest} to {addr}")
            if self.loss and self.rng.random() < self.loss:
                continue
            if not self.reachable(src, dest) or (self.drop is not None and self.drop(src, dest, data)):
                continue
            self._seq += 1
            at = self.now + self.latency + (self.rng.random() * self.jitter if self.jitter else 0.0)
            at = max(at, self.held_until)
            heapq.heappush(self._heap, (at, self._seq, 1, dest, data, src))

    def _measured(self, name: str) -> bool:
        return self.measure is None or name in self.measure

    def run(self, duration: float) -> None:
        """Advance the simulated clock by ``duration`` seconds."""
        end = self.now + duration
        heap = self._heap
        while heap and heap[0][0] <= end:
            at, _seq, kind, name, data, src = heapq.heappop(heap)
            self.now = max(self.now, at)
            if name in self.crashed or (kind == 1 and self._boot_at[name] > at):
                continue
            until = self.frozen.get(name, 0.0)
            if at < until:  # not running: handled when it runs again, what it received before its tick
                if kind == 0:
                    if self._wake.get(name) != at:
                        continue
                    self._wake[name] = until + 1e-9
                self._seq += 1
                heapq.heappush(heap, (until + (1e-9 if kind == 0 else 0.0), self._seq, kind, name, data, src))
                continue
            node = self.nodes[name]
            timed = self._measured(name)
            if kind == 0:
                if self._wake.get(name) != at:
                    continue  # superseded by an earlier wake-up
                del self._wake[name]
                t0 = time.thread_time() if timed else 0.0
                out, events = node.tick(self.now)
                if timed:
                    self.stats[name].cpu += time.thread_time() - t0
            else:
                self.stats[name].received += 1
                t0 = time.thread_time() if timed else 0.0
                events = node.datagram_received(data, self.members[src], self.now)
                out = []
                if timed:
                    self.stats[name].cpu += time.thread_time() - t0
            if events:
                self.events += [(self.now, name, e) for e in events]
            if out:
                self._send(name, out)
            nd = node.next_deadline()
            if kind == 0:
                nd = max(nd, self.now + 1e-4)
            self._schedule_tick(name, max(nd, self.now))
        self.now = end

    # ---------------------------------------------------------------- queries

    def live(self) -> list[str]:
        return [n for n in self.names if n not in self.crashed]

    def agree(self, names: Iterable[str] | None = None, expected: frozenset[str] | None = None) -> bool:
        """Do all ``names`` (the live nodes by default) report the same alive set (``expected``)?"""
        names = list(self.live() if names is None else names)
        want = expected if expected is not None else self.nodes[names[0]].alive()
        return all(self.nodes[n].alive() == want for n in names)

    def first(self, node: str, pred: object, since: float = 0.0) -> float | None:
        for t, n, e in self.events:
            if n == node and t >= since and callable(pred) and pred(e):
                return t
        return None

    def run_until(self, cond: object, limit: float, step: float = 0.01) -> float | None:
        """Run in ``step`` increments until ``cond()`` holds; the time it took, or None."""
        start = self.now
        while self.now - start < limit:
            if callable(cond) and cond():
                return self.now - start
            self.run(step)
        return self.now - start if callable(cond) and cond() else None

    def members_map(self) -> Mapping[str, Address]:
        return self.members
