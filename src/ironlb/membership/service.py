"""Asyncio shell around the sans-I/O ``Membership`` core.

One UDP socket, one task, one event loop: in ``ironlb run`` and ``ironlb speaker`` that loop is the fast path
(``ironlb.fastpath``), which nothing heavy shares. The task calls ``Membership.tick`` and then sleeps until
``next_deadline()``; an incoming datagram that makes something due earlier (an immediate reply, say) wakes it.
Events go to an optional ``on_event`` callback and an optional ``asyncio.Queue``; ``on_change`` is called once
per batch with the new alive set and quorum flag (and once more when the core settles), which is what a speaker
needs to recompute which IPs it announces. Callback exceptions are logged and swallowed: a buggy consumer must not
stop liveness. :attr:`MembershipService.view` is an immutable snapshot other threads may read.

Hostile input: the socket's receive buffer is sized for bursts (:data:`RECEIVE_BUFFER`, what the kernel granted
is logged and kept in ``receive_buffer``) so a flood does not crowd out real heartbeats, the socket is drained in
batches (no event-loop round trip per datagram), and a datagram whose size no valid message has, or that comes
from an address no member has, is dropped and counted before any parsing or HMAC work (``rejected``). Rejecting
costs no allocation (one read buffer) and no address parsing (the verdict per source address is remembered).
Members send from the address they bind, which is their configured one, so the address check costs a legitimate
member nothing; a spoofed member address still meets the HMAC.

Known peers get a queue of their own: besides the bound socket, one UDP socket per neighbour (the members this
node exchanges heartbeats with: every member in a full mesh, at most ``2 * rings`` above it) is bound to the same
address and connected to that member's address. They share the port through ``SO_REUSEPORT``, set on the main
socket only after its bind, and never ``SO_REUSEADDR``: the kernel then lets a socket join the port only if it
asks for ``SO_REUSEPORT`` too and belongs to the same effective UID, so another user's process cannot bind the port
(not even to the wildcard address) and steal datagrams, and a second ironlb, which binds without it, still gets
"address in use". Only neighbours: at 1,000 members a socket per member would be 1,000 descriptors (the
default limit is 1,024) and 1,000 reads per tick, for members whose only datagrams are rare notices and syncs,
which the main socket takes. The kernel delivers a datagram to the socket that matches it best, so a member's heartbeats
land in its own small queue and everything else (junk, strangers, a member sending from another address) in the
main one. A flood then neither pushes heartbeats out of a full buffer nor queues them behind thousands of junk
datagrams. Junk still reaches this process and is counted as before.

The neighbours' sockets are read at the ticks only, not when a datagram arrives: the task drains every one that
holds something (one ``poll``, then each ready socket until it is empty, at most :data:`MAX_PEER_READS`) just
before each ``tick`` (and again as soon as the loop turns while one is flooded, its member's address spoofed),
so a heartbeat that arrived in time is counted before the tick decides who is dead. Eight
neighbours send 80 heartbeats a second; read as they come, each woke the process (an event-loop round and a
context switch per datagram, most of a node's steady-state CPU); read at the ticks (at least one per
``interval``), they cost about ten wake-ups a second. The kernel stamps each datagram when it arrives
(``SO_TIMESTAMPNS``) and the core is given that time, not the time of the read: expiry (``dead_timeout`` after
the last heartbeat) and echo freshness are what they were when every datagram was read at once, so detection
does not get a tick slower. The main socket stays event-driven: in the steady state it receives nothing (only
non-neighbours' death notices, LEAVEs and table syncs, which must not wait) and under a flood it is read in
batches of :data:`MAX_READS_PER_WAKEUP`. For the same reason this node sends its NOTICEs and LEAVEs (rare, and
urgent: a death, a clean stop) from a second socket, on the same address but another port (:attr:`urgent_port`):
they land in the receivers' main queue, read at once, rather than in the queue of their sender that a receiver
reads at its next tick. Heartbeats go from the member port, to the neighbours' own queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from ipaddress import ip_address

from ironlb.membership.config import DEFAULT_PORT, Address
from ironlb.membership.events import Datagram, Event
from ironlb.membership.fsm import Membership
from ironlb.membership.hold import HoldOffer
from ironlb.membership.view import MembershipView
from ironlb.membership.wire import MAX_DATAGRAM, MIN_DATAGRAM, MsgType
from ironlb.sockets import set_receive_buffer

__all__ = ["RECEIVE_BUFFER", "MembershipService", "MembershipView"]

log = logging.getLogger(__name__)

OnChange = Callable[[frozenset[str], bool], None]
OnEvent = Callable[[Event], None]
OnLate = Callable[[float], None]
_State = tuple[
    frozenset[str],
    bool,
    bool,
    frozenset[str],
    frozenset[tuple[str, int, bool]],
    frozenset[tuple[str, Address]],
    frozenset[tuple[str, int]],
]
"""What a view is made of (alive, quorum, settled, held; the size of each stand-in share): a change is reported."""

RECEIVE_BUFFER = 4 * 1024 * 1024
"""Bytes of socket receive buffer asked for: a burst of junk must not push real heartbeats out."""
MAX_READS_PER_WAKEUP = 64
"""Datagrams read per readiness event before the loop gets a turn (ARP answers share it)."""
PEER_RECEIVE_BUFFER = 256 * 1024
"""Receive buffer of each member's own socket: one member sends a few datagrams per interval."""
MAX_PEER_READS = 256
"""Datagrams read from one member's socket per wakeup or tick (more only if someone spoofs that member)."""
MAX_REMEMBERED_HOSTS = 1024
"""Source addresses whose verdict (member or not) is remembered; forgotten all at once past this."""
SO_TIMESTAMPNS = 35
"""Linux's SO_TIMESTAMPNS (also its control message type): the kernel's receive time of each datagram."""
_TIMESPEC = struct.Struct("@ll")  # struct timespec: seconds and nanoseconds, C longs
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)
_HEARTBEAT = MsgType.HEARTBEAT.value  # the type byte (offset 3) of a heartbeat on the wire
URGENT_RECEIVE_BUFFER = 4096
"""The NOTICE/LEAVE socket only sends: what anyone sends to its port is never read, so its queue is kept tiny."""


MIN_SLEEP = 0.001
"""Seconds the loop waits at least between two ticks: it always yields to the reads and the rest of the loop."""


class MembershipService:
    """Run a ``Membership`` on a UDP socket.

    ``bind``: local address; by default this node's entry in the member list,
    else ``("0.0.0.0", 7946)``. ``sock``: an already bound UDP socket to use
    instead (tests pass port-0 sockets). ``clock``: monotonic seconds. ``on_late``: called after each tick
    the timer woke with how late it ran (seconds past the deadline): the loop's lag, without a timer of its own.
    """

    def __init__(
        self,
        membership: Membership,
        *,
        bind: Address | None = None,
        sock: socket.socket | None = None,
        on_event: OnEvent | None = None,
        on_change: OnChange | None = None,
        queue: asyncio.Queue[Event] | None = None,
        clock: Callable[[], float] = time.monotonic,
        receive_buffer: int = RECEIVE_BUFFER,
        on_late: OnLate | None = None,
    ) -> None:
        self._core = membership
        self._bind = bind or membership.own_address or ("0.0.0.0", DEFAULT_PORT)
        self._given_sock = sock
        self._sock: socket.socket | None = None
        self._urgent: socket.socket | None = None  # sends NOTICEs and LEAVEs (see the module doc)
        self._on_event = on_event
        self._on_change = on_change
        self._on_late = on_late  # how late each timed tick ran, in seconds (the loop's own lag)
        self._queue = queue
        self._clock = clock
        self._receive_buffer_wanted = receive_buffer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._sleep_until = 0.0
        self._reported: _State = self._state()
        self.view = self._make_view()
        """The latest :class:`MembershipView`; replaced (never mutated) on every change."""
        self.rejected: Counter[str] = Counter()
        """Datagrams dropped here before the core saw them, by reason (the core counts its own)."""
        self.receive_buffer = 0
        """Receive buffer bytes the kernel granted (0 until started)."""
        self._hosts = self._member_hosts()
        self._peer_socks: dict[Address, socket.socket] = {}  # member address -> socket connected to it
        self._peer_fds: dict[int, socket.socket] = {}  # the same sockets by descriptor, for _ready
        self._ready = select.poll()  # which member sockets hold something: one system call before each tick
        self._buffer = bytearray(MAX_DATAGRAM + 1)  # every datagram is read here: junk costs no allocation
        self._view = memoryview(self._buffer)
        self._host_known: dict[str, bool] = {}  # source address as received -> a member's? (bounded)
        self._last_drain = -float("inf")  # clock time of the previous drain of the member sockets
        self._drain_soon = False  # a flooded member queue's next batch is scheduled

    @property
    def membership(self) -> Membership:
        return self._core

    @property
    def local_address(self) -> Address | None:
        """The bound (host, port), once started."""
        if self._sock is None:
            return None
        name = self._sock.getsockname()
        return (str(name[0]), int(name[1]))

    def alive(self) -> frozenset[str]:
        return self._core.alive()

    def has_quorum(self) -> bool:
        return self._core.has_quorum()

    def rejections(self) -> Counter[str]:
        """Every dropped datagram by reason: cheap drops here plus the core's."""
        return self.rejected + self._core.rejected

    async def start(self) -> None:
        """Open the socket and start heartbeating."""
        if self._task is not None:
            raise RuntimeError("already started")
        loop = asyncio.get_running_loop()
        sock = self._given_sock
        if sock is None:
            family = socket.AF_INET6 if ":" in self._bind[0] else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind(self._bind)
            except OSError:
                sock.close()
                raise
        sock.setblocking(False)
        self.receive_buffer = set_receive_buffer(sock, self._receive_buffer_wanted)
        log.info(
            "membership %s: receive buffer %d bytes (asked for %d)",
            self._core.node, self.receive_buffer, self._receive_buffer_wanted,
        )  # fmt: skip
        self._sock, self._loop = sock, loop
        self._urgent = _urgent_socket(sock)
        loop.add_reader(sock.fileno(), self._on_readable)
        self._sync_peer_sockets()
        self._task = asyncio.create_task(self._run(), name=f"membership-{self._core.node}")

    async def stop(self, *, leave: bool = True, hold: HoldOffer | None = None) -> None:
        """Stop; with ``leave`` (the default) first send the signed LEAVE.

        ``leave=False`` is a crash as far as the peers can tell: they notice
        after ``dead_timeout``. ``hold``: a restart, the LEAVE asks the others to
        keep this node's IPs in place (``ironlb.membership.hold``).
        """
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._close_peer_sockets()
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock.fileno())
        if leave:
            self._send(sock, self._core.leave(self._clock(), hold))
        sock.close()  # the port is free again when stop() returns
        urgent, self._urgent = self._urgent, None
        if urgent is not None:
            urgent.close()

    async def __aenter__(self) -> MembershipService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def set_members(self, members: Mapping[str, tuple[str, int]]) -> None:
        """Change the member list at run time; new members are greeted at once."""
        events = self._core.set_members(members)
        self._hosts = self._member_hosts()
        self._host_known.clear()
        self._sync_peer_sockets()
        self._dispatch(events, force=True)
        self._wake.set()

    def end_hold(self, name: str) -> None:
        """The node of held member ``name`` stopped answering: it is dead now (``Membership.end_hold``)."""
        self._dispatch(self._core.end_hold(name, self._clock()), force=True)
        self._wake.set()

    # --------------------------------------------------------------- internals

    def _member_hosts(self) -> frozenset[str]:
        hosts = {_normal(host) for host, _port in self._core.members().values()}
        own = self._core.own_address
        if own is not None:
            hosts.add(_normal(own[0]))
        return frozenset(hosts)

    def _known(self, host: str) -> bool:
        """Is ``host`` (as the socket spells it) a member's address? Remembered: parsing costs a flood dearly."""
        known = self._host_known.get(host)
        if known is None:
            if len(self._host_known) >= MAX_REMEMBERED_HOSTS:
                self._host_known.clear()
            known = self._host_known[host] = host in self._hosts or _normal(host) in self._hosts
        return known

    def _state(self) -> _State:
        held = self._core.held()
        shares = frozenset(
            (name, len(member.ips), member.complete) for name, member in held.items() if member.ips or member.share
        )
        unlisted = frozenset(self._core.unlisted_holds().items())
        kept = frozenset(
            (name, len(ips)) for name, member in held.items() if member.relayed and (ips := member.kept()) is not None
        )
        return (
            self._core.alive(), self._core.has_quorum(), self._core.settled(), frozenset(held), shares, unlisted, kept
        )  # fmt: skip

    def _make_view(self) -> MembershipView:
        alive, quorum, settled, held, shares, unlisted, known = self._reported
        holds = self._core.held()
        standing_in = {
            name: frozenset(str(ip) for ip in holds[name].ips)
            for name, _, complete in shares
            if complete and name in holds
        }
        # A share in several datagrams not all here; and, while settling, a hold relayed to us whose stand-ins have
        # not all told us their shares yet (they come within a round trip of each other): decided once they have.
        pending = frozenset(name for name, _, complete in shares if not complete) | frozenset(
            name for name, member in holds.items() if not settled and member.relayed and member.kept() is None
        )
        kept = {name: frozenset(str(ip) for ip in holds[name].kept() or ()) for name, _ in known if name in holds}
        members = dict(self._core.members())
        return MembershipView(
            alive, quorum, settled, members, held, standing_in, unlisted=dict(unlisted), kept=kept, pending=pending
        )

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            sock = self._sock
            if sock is None:
                return
            self._drain_peers()  # what members sent before now counts before the tick expires anyone
            was_settled = self._reported[2]
            datagrams, events = self._core.tick(self._clock())
            self._send(sock, datagrams)
            self._dispatch(events, force=was_settled != self._core.settled())
            self._sleep_until = self._core.next_deadline()
            # Always wait a little, even for a deadline already past: a deadline that stays in the past (a core
            # bug) must not spin this loop without yielding, starving the reads (at real-time priority, the core).
            delay = self._sleep_until - self._clock()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, MIN_SLEEP)):
                    await self._wake.wait()
            if delay > 0 and self._on_late is not None and not self._wake.is_set():
                self._on_late(self._clock() - self._sleep_until)  # a timer, and how late the loop ran it

    def _on_readable(self) -> None:
        """Drain a batch from the main socket (strangers, junk, members not on their own socket)."""
        if self._sock is not None:
            self._drain(self._sock, MAX_READS_PER_WAKEUP)

    def _drain(self, sock: socket.socket, budget: int) -> None:
        """Read up to ``budget`` datagrams; sizes no message can have and strangers are dropped before the core."""
        for _ in range(budget):
            try:
                size, addr = sock.recvfrom_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP unreachable from a dead peer and the like: expected, not fatal
                log.debug("membership socket error: %s", exc)
                continue
            if size > MAX_DATAGRAM:
                self.rejected["oversized"] += 1
                continue
            if size < MIN_DATAGRAM:
                self.rejected["undersized"] += 1
                continue
            if not self._known(addr[0]):
                self.rejected["unknown_address"] += 1
                continue
            self._on_datagram(bytes(self._view[:size]), addr)

    def _drain_peers(self) -> None:
        """Read the member sockets that hold something (asked in one ``poll``, not one failed read per member).

        Each datagram is handed to the core with the time it arrived (the kernel's stamp, on this service's
        clock), kept between the previous drain and now: a clock step cannot put it outside what is possible.
        """
        ready = self._ready.poll(0)
        now = self._clock()
        floor, self._last_drain = self._last_drain, now
        if not ready:
            return
        offset = time.time() - now  # the kernel stamps on the wall clock: this converts them to ours
        flooded = False
        for fd, _mask in ready:
            sock = self._peer_fds.get(fd)
            if sock is not None:
                flooded |= self._drain_peer(sock, now, max(floor, now - 2 * self._core.config.dead_timeout), offset)
        if flooded and not self._drain_soon and self._loop is not None:
            # Someone floods a member's own queue (its address spoofed): read on as the loop turns, not only at
            # the ticks, or the queue overflows and drops that member's real heartbeats with the junk.
            self._drain_soon = True
            self._loop.call_soon(self._drain_again)

    def _drain_again(self) -> None:
        """A flooded member queue's next batch, between ticks; the tick is brought forward if one is due."""
        self._drain_soon = False
        if self._sock is None:
            return
        self._drain_peers()
        if self._core.next_deadline() < self._sleep_until:
            self._wake.set()

    def _drain_peer(self, sock: socket.socket, now: float, floor: float, offset: float) -> bool:
        """Read up to :data:`MAX_PEER_READS` datagrams from one member's socket, each at its arrival time.

        True when that budget ran out: more may be waiting.
        """
        for _ in range(MAX_PEER_READS):
            try:
                size, ancillary, _flags, addr = sock.recvmsg_into([self._buffer], _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:  # ICMP unreachable from a dead peer and the like: expected, not fatal
                log.debug("membership socket error: %s", exc)
                continue
            if size > MAX_DATAGRAM or size < MIN_DATAGRAM:
                self.rejected["oversized" if size > MAX_DATAGRAM else "undersized"] += 1
                continue
            at = now
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                    at = min(max(seconds + nanoseconds * 1e-9 - offset, floor), now)
            self._on_datagram(bytes(self._view[:size]), addr, at, wake=False)
        return True

    @property
    def peer_addresses(self) -> frozenset[Address]:
        """The member addresses that have a socket of their own (the neighbours'), as normalised."""
        return frozenset(self._peer_socks)

    def _sync_peer_sockets(self) -> None:
        """One socket per neighbour address, connected to it: open the missing ones, close those of the others."""
        main, loop = self._sock, self._loop
        if main is None or loop is None:
            return
        own = self._core.own_address
        members = self._core.members()
        wanted = {
            (_normal(host), port)
            for host, port in (members[name] for name in self._core.neighbours())
            if own is None or (_normal(host), port) != (_normal(own[0]), own[1])
        }
        for addr in set(self._peer_socks) - wanted:
            self._close_peer(addr)
        if wanted - set(self._peer_socks):
            # Only now may other sockets share the port: ours (same UID, SO_REUSEPORT), no other user's.
            with contextlib.suppress(OSError):
                main.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        for addr in sorted(wanted - set(self._peer_socks)):
            sock = _connected_socket(main, addr)
            if sock is None:
                continue  # its datagrams simply arrive on the main socket
            self._peer_socks[addr] = sock
            self._peer_fds[sock.fileno()] = sock
            self._ready.register(sock.fileno(), select.POLLIN)  # read at the ticks: no reader in the loop

    def _close_peer(self, addr: Address) -> None:
        sock = self._peer_socks.pop(addr)
        self._peer_fds.pop(sock.fileno(), None)
        with contextlib.suppress(KeyError):
            self._ready.unregister(sock.fileno())
        sock.close()

    def _close_peer_sockets(self) -> None:
        for addr in list(self._peer_socks):
            self._close_peer(addr)

    def _on_datagram(self, data: bytes, addr: tuple[str, int], at: float | None = None, *, wake: bool = True) -> None:
        """One datagram for the core, received at ``at`` (now by default); ``wake``: re-plan the task's sleep."""
        was_settled = self._reported[2]
        events = self._core.datagram_received(data, addr, self._clock() if at is None else at)
        # While settling, a HOLDS may name a held member our list lacks (``unlisted``): no event, a new view.
        self._dispatch(events, force=not (was_settled and self._core.settled()))
        if wake and self._core.next_deadline() < self._sleep_until:
            self._wake.set()

    @property
    def urgent_port(self) -> int | None:
        """The port NOTICEs and LEAVEs go from (None: from the member port, as heartbeats)."""
        return None if self._urgent is None else int(self._urgent.getsockname()[1])

    def _send(self, sock: socket.socket, datagrams: list[Datagram]) -> None:
        urgent = self._urgent or sock
        for d in datagrams:
            try:
                (sock if d.data[3] == _HEARTBEAT else urgent).sendto(d.data, d.addr)
            except OSError as exc:  # e.g. no route, or a full send buffer; the peer will simply time out
                log.debug("membership send to %s %s failed: %s", d.dest, d.addr, exc)

    def _dispatch(self, events: list[Event], *, force: bool = False) -> None:
        if not events and not force:
            return
        for event in events:
            log.info("membership %s: %s", self._core.node, event)
            if self._queue is not None:
                self._queue.put_nowait(event)
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception:
                    log.exception("membership on_event callback failed")
        state = self._state()
        members_changed = self.view.members != self._core.members()
        if state == self._reported and not members_changed:
            return
        self._reported = state
        self.view = self._make_view()
        if self._on_change is not None:
            try:
                self._on_change(state[0], state[1])
            except Exception:
                log.exception("membership on_change callback failed")


def _connected_socket(main: socket.socket, addr: Address) -> socket.socket | None:
    """A UDP socket on ``main``'s local address, connected to ``addr``; None if the kernel refuses."""
    host, port = addr
    if main.family == socket.AF_INET6 and ":" not in host:
        host = f"::ffff:{host}"
    elif main.family == socket.AF_INET and ":" in host:
        return None
    sock = socket.socket(main.family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setblocking(False)
        sock.bind(main.getsockname())
        sock.connect((host, port))
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PEER_RECEIVE_BUFFER)
        if sys.platform == "linux":  # elsewhere a datagram counts as received when it is read
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError as exc:
        log.debug("membership: no socket of its own for %s:%d: %s", host, port, exc)
        sock.close()
        return None
    return sock


def _urgent_socket(main: socket.socket) -> socket.socket | None:
    """A UDP socket on ``main``'s address and a port of its own, to send from only; None if the kernel refuses."""
    sock = socket.socket(main.family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, URGENT_RECEIVE_BUFFER)
        name = main.getsockname()
        sock.bind((name[0], 0, *name[2:]))  # IPv6: the same flow info and scope (a link-local address needs it)
    except OSError as exc:
        log.debug("membership: notices go from the member port: %s", exc)
        sock.close()
        return None
    return sock


def _normal(host: str) -> str:
    """One spelling per address: no zone, IPv4-mapped IPv6 as IPv4, compressed IPv6."""
    try:
        addr = ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped if mapped is not None else addr)
