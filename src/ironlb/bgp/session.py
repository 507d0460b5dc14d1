"""asyncio shell around the sans-I/O :class:`~ironlb.bgp.fsm.BGPStateMachine`.

It owns everything the FSM must not: the socket (TCP MD5, source bind, TTL,
DSCP), the dial with its timeout and bounded exponential backoff, and the
single timer handle derived from :meth:`BGPStateMachine.next_deadline`.  It runs on
the caller's event loop, no threads; every wait has a timeout or is
cancellable through :meth:`BGPSession.close`.

A burst (a peer sending a full table) is decoded :data:`FEED_BYTES` at a time with a
turn of the event loop in between, so one peer cannot stall the other sessions or
anything else on the loop; past :data:`PAUSE_BACKLOG` undecoded bytes the socket
stops reading and TCP flow control pushes back on the peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import fields
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from .config import PeerConfig
from .errors import CeaseSubcode
from .fsm import (
    BGPState,
    BGPStateMachine,
    Counters,
    Established,
    Event,
    KeepaliveAwaited,
    OpenReceived,
    RoutesUnsendable,
    RouteTable,
    SessionDown,
    Sibling,
    settle_collision,
)
from .unnumbered import LinkPeerFinder
from .wire import Address

log = logging.getLogger(__name__)

TCP_MD5SIG = 14
"""linux/tcp.h; not exported by the socket module."""
_TCP_MD5SIG_MAXKEYLEN = 80
_IPTOS_PREC_INTERNETCONTROL = 0xC0
TTL_MULTIHOP = 255
TTL_SINGLE_HOP = 1
FEED_BYTES = 16 * 1024
"""Received bytes handed to the FSM between two turns of the loop: four max-size UPDATEs, a few ms of decoding."""
PAUSE_BACKLOG = 1024 * 1024
"""Undecoded bytes past which the socket stops reading until half of them are decoded."""


def tcp_md5sig(peer: Address, key: bytes) -> bytes:
    """``struct tcp_md5sig`` for ``setsockopt(IPPROTO_TCP, TCP_MD5SIG)``.

    Layout: sockaddr_storage (128), u8 flags, u8 prefixlen, u16 keylen,
    i32 ifindex, u8 key[80].  An empty key removes the signature.
    """
    if len(key) > _TCP_MD5SIG_MAXKEYLEN:
        raise ValueError("TCP MD5 key longer than 80 bytes")
    if isinstance(peer, IPv4Address):
        sa = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + peer.packed
    else:
        scope = int(peer.scope_id) if peer.scope_id and peer.scope_id.isdigit() else 0
        sa = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + peer.packed + struct.pack("=I", scope)
    sa = sa.ljust(128, b"\0")
    return sa + struct.pack("=BBHi", 0, 0, len(key), 0) + key.ljust(_TCP_MD5SIG_MAXKEYLEN, b"\0")


COLLISION_LINGER = 1.0
"""Seconds a connection closed by a collision waits for the peer to close its end (we half-close ours) before it
is aborted; the surviving connection sends its KEEPALIVE once the loser is gone."""
STABLE_SESSION = 1.0
"""Seconds Established after which a drop is redialled at once; a session that drops sooner waits (no tight flap)."""


def backoff_delay(attempt: int, cap: float, jitter: float = 0.0) -> float:
    """MetalLB's reconnect schedule: 0, then 1 s doubling, never above ``cap``.

    ``jitter`` in [0, 1) takes that fraction off the delay: the caller draws it at random so that speakers whose
    sessions dropped together (a router reboot, a rollout) do not redial in lockstep.
    """
    if attempt <= 0:
        return 0.0
    return float(min(cap, 2.0 ** min(attempt - 1, 32))) * (1.0 - min(max(jitter, 0.0), 0.99))


def apply_options(sock: socket.socket, config: PeerConfig) -> None:
    """TTL (1 for a single-hop eBGP peer, 255 for multihop) and DSCP CS6, on a dialled or an accepted socket."""
    v6 = sock.family == socket.AF_INET6
    ttl = None
    if config.ebgp_multihop:
        ttl = TTL_MULTIHOP
    elif config.static_ibgp is False:
        ttl = TTL_SINGLE_HOP
    if v6:
        if ttl is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, _IPTOS_PREC_INTERNETCONTROL)
    else:
        if ttl is not None:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _IPTOS_PREC_INTERNETCONTROL)


def make_socket(config: PeerConfig, peer: Address | None = None) -> socket.socket:
    """A non-blocking TCP socket with MD5, TTL, DSCP and source address applied before connect.

    ``peer``: the address to dial when it is not ``config.peer_address`` (an unnumbered peer's link-local one).
    """
    peer = config.peer_address if peer is None else peer
    v6 = isinstance(peer, IPv6Address)
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if config.password:
            sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, tcp_md5sig(peer, config.password.encode()))
        apply_options(sock, config)
        if config.source_address is not None:
            sock.bind((str(config.source_address), 0))
    except BaseException:
        sock.close()
        raise
    return sock


class _Protocol(asyncio.Protocol):
    """Forwards transport callbacks to the owning :class:`_Link`."""

    def __init__(self, link: _Link, on_made: Callable[[asyncio.Transport], None]) -> None:
        self._link = link
        self._on_made = on_made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio calls this before any data_received: the FSM sends its OPEN before it can see the peer's.
        assert isinstance(transport, asyncio.Transport)
        self._on_made(transport)

    def data_received(self, data: bytes) -> None:
        self._link.on_data(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._link.closed.done():
            self._link.closed.set_result(f"connection lost: {exc}" if exc else "connection closed")


class _Link:
    """One TCP connection of a session and the FSM speaking on it.

    A session has one, or two while a connection collision (RFC 4271 section 6.8) is being settled: the one it
    runs (the primary) and a candidate the peer opened. Each decodes, times and writes for its own FSM.
    """

    def __init__(self, session: BGPSession, fsm: BGPStateMachine, *, inbound: bool) -> None:
        self.session = session
        self.fsm = fsm
        fsm.hold_open = True  # our KEEPALIVE waits until a possible collision is settled
        fsm.inbound = inbound  # who opened it is known before its OPEN goes out (a pending collision's side)
        self.inbound = inbound
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.established = False
        self.established_at = 0.0
        self.dropped = False  # cut by drop_connection: the path was declared dead, so no redial at once
        """Loop time of this connection's Established."""
        self.shutting = False
        self.down = False
        """The FSM left the session (SessionDown): what is left is closing TCP."""
        self.linger = False
        """Closed by a collision: half-close and wait (at most :data:`COLLISION_LINGER`) for the peer's close."""
        self.held: list[Event] = []
        """A candidate's events kept for the session until it becomes the primary (its Established, say)."""
        self._backlog = bytearray()
        self._drain: asyncio.Task[None] | None = None
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None

    @property
    def label(self) -> str:
        return self.session.config.label + (" (inbound)" if self.inbound else "")

    async def run(self, sock: socket.socket) -> None:
        """Open ``sock`` (the FSM sends its OPEN) and serve it until it closes."""
        if await self._open(sock):
            await self._serve()

    async def _open(self, sock: socket.socket) -> bool:
        loop = asyncio.get_running_loop()
        # Any lookup happens before the transport exists: once it does, the peer's OPEN may arrive at any moment
        # and must find the FSM past connection_made.
        try:
            local = ip_address(sock.getsockname()[0])
            peer = ip_address(sock.getpeername()[0])
            if self.inbound:
                # A single-hop eBGP peer must be on a connected network: our TTL-1 packets would die on the way
                # back, leaving the peer with a half-open session that blocks its next ones (the peer's own
                # collision check). Refused while the socket still has the default TTL, so the peer sees the close.
                config = self.session.config
                if config.static_ibgp is False and not config.ebgp_multihop and await on_link(peer) is False:
                    log.info("BGP %s: refused: the peer is not on a connected network and ebgpMultiHop is off",
                             self.label)
                    sock.close()
                    self.fsm.connection_failed()
                    return False
                apply_options(sock, config)
            beside = await self.session._beside(local)
        except OSError as exc:
            sock.close()
            self.fsm.connection_failed()
            log.info("BGP connection to %s failed: %s", self.label, exc)
            return False
        if not self.shutting and not await self.session._behind_confirmed(self):
            self.session.collisions += 1
            log.info("BGP %s: connection collision: closing the %s connection", self.session.config.label,
                     "inbound" if self.inbound else "outbound")
            sock.close()
            self.fsm.connection_failed()
            return False

        def made(transport: asyncio.Transport) -> None:
            self.transport = transport
            if self.shutting:  # given up while the transport was being made (the other connection won)
                self.close_transport()
                return
            self.fsm.connection_made(local, peer, loop.time(), beside=beside, inbound=self.inbound)
            self.flush()
            self._reschedule()

        try:
            await loop.create_connection(lambda: _Protocol(self, made), sock=sock)
        except OSError as exc:
            sock.close()
            self.fsm.connection_failed()
            log.info("BGP connection to %s failed: %s", self.label, exc)
            return False
        return True

    async def _serve(self) -> None:
        transport = self.transport
        try:
            reason = await self.closed
            if self._drain is not None:  # what arrived before the close is decoded first (a NOTIFICATION, say)
                await asyncio.wait({self._drain})
            self.session._dispatch(self, self.fsm.connection_lost(reason))
        finally:
            if self._drain is not None:
                self._drain.cancel()
                self._drain = None
            self._backlog.clear()
            self._paused = False
            self._cancel_timer()
            if self._linger_timer is not None:
                self._linger_timer.cancel()
                self._linger_timer = None
            self.transport = None
            if transport is not None:
                transport.close()

    def shut(self, reason: str, *, subcode: int, graceful_restart: bool = False, linger: bool = False) -> None:
        """Close on our initiative: the FSM's NOTIFICATION (if any) goes out, then TCP closes (``linger``: once the
        peer closed its end too, or :data:`COLLISION_LINGER` passed)."""
        self.shutting = True
        self.linger = linger
        events = self.fsm.close(reason, subcode=subcode, graceful_restart=graceful_restart)
        self.flush()
        self.session._dispatch(self, events)
        self.close_transport()

    def close_transport(self) -> None:
        """Close TCP after what is buffered (our NOTIFICATION); a lingering link half-closes and waits for the
        peer's close, so the other connection's KEEPALIVE goes out once the peer is done with this one."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not (self.linger and transport.can_write_eof()):
            transport.close()
            return
        transport.write_eof()
        if self._linger_timer is None:
            self._linger_timer = asyncio.get_running_loop().call_later(COLLISION_LINGER, self.abort)

    def abort(self) -> bool:
        """Drop TCP without a word; False when there was no open connection."""
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.abort()
        return True

    # ------------------------------------------------------------------ transport and timer callbacks

    def on_data(self, data: bytes) -> None:
        """Small reads are decoded at once; a burst goes to the backlog, decoded in slices by :meth:`_drain_backlog`."""
        if not self._backlog and self._drain is None and len(data) <= FEED_BYTES:
            self._feed(data)
            return
        self._backlog += data
        if len(self._backlog) > PAUSE_BACKLOG and self.transport is not None and not self._paused:
            self.transport.pause_reading()
            self._paused = True
        if self._drain is None:
            loop = asyncio.get_running_loop()
            self._drain = loop.create_task(self._drain_backlog(), name=f"bgp-rx-{self.label}")

    async def _drain_backlog(self) -> None:
        try:
            while self._backlog:
                chunk = bytes(self._backlog[:FEED_BYTES])
                del self._backlog[:FEED_BYTES]
                self._feed(chunk)
                await asyncio.sleep(0)  # the loop's turn: timers, other peers, the fast path's reports
                if self._paused and len(self._backlog) <= PAUSE_BACKLOG // 2:
                    self._paused = False
                    if self.transport is not None:
                        self.transport.resume_reading()
        finally:
            if self._drain is asyncio.current_task():
                self._drain = None

    def _feed(self, data: bytes) -> None:
        self._step("processing received data", lambda now: self.fsm.data_received(data, now))

    def _on_timer(self) -> None:
        self._timer = None
        self._step("running timers", self.fsm.timer)

    def _step(self, what: str, step: Callable[[float], list[Event]]) -> None:
        """One input to the core at the loop's time: send what it wrote, report its events, re-arm its timer."""
        try:
            events = step(asyncio.get_running_loop().time())
        except Exception:
            self._internal_error(what)
            return
        self.flush()
        self.session._dispatch(self, events)
        self._reschedule()

    def _internal_error(self, what: str) -> None:
        """A bug must not leave a half-working session: log it and drop the connection (it will redial)."""
        log.exception("BGP session %s: internal error while %s", self.label, what)
        self.abort()

    def flush(self) -> None:
        data = self.fsm.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _reschedule(self) -> None:
        self._cancel_timer()
        deadline = self.fsm.next_deadline()
        if deadline is not None and self.transport is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)


class BGPSession:
    """One peer's BGP session on the running event loop.

    ``on_event`` is called synchronously with every FSM event (Established,
    SessionDown, ...); it must not block.  Routes set with :meth:`set_routes`
    survive reconnects: after each new Established they are all sent again.

    Connections come from our dial (never for a ``passive`` peer) or from :meth:`accept` (the speaker's
    listener hands over the peer's). An inbound connection that finds us without one is taken at once (a dial or
    backoff in progress is dropped); one that finds a connection of ours runs beside it as a candidate until
    :func:`~ironlb.bgp.fsm.resolve_collision` closes one of the two with cease 7, and a candidate left standing
    becomes the session's connection. At most one candidate at a time: another inbound connection is closed.
    """

    def __init__(self, config: PeerConfig, *, on_event: Callable[[Event], None] | None = None) -> None:
        self.config = config
        self.fsm = BGPStateMachine(config)
        """The FSM of the session's connection (replaced when a candidate connection takes over)."""
        self._on_event = on_event
        self._task: asyncio.Task[None] | None = None
        self._link: _Link | None = None
        self._candidate: _Link | None = None
        self._inbound: socket.socket | None = None
        self._inbound_ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._established = asyncio.Event()
        self.connect_attempts = 0
        self.inbound_connections = 0
        self.collisions = 0
        self._change: asyncio.Future[None] | None = None
        self.link_peer = LinkPeerFinder(config.interface) if config.interface else None
        """Unnumbered peering: finds the neighbour on ``config.interface`` and advertises us there."""

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> BGPState:
        """The FSM state."""
        return self.fsm.state

    @property
    def counters(self) -> Counters:
        """Message counters for metrics."""
        return self.fsm.counters

    @property
    def is_established(self) -> bool:
        """True while the session is Established."""
        return self.fsm.is_established

    def start(self) -> None:
        """Begin connecting (or, for a passive peer, waiting for the peer) in a background task (idempotent)."""
        if self._task is None or self._task.done():
            self._stop.clear()
            if self.link_peer is not None:
                self.link_peer.start()
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"bgp-{self.config.label}")

    def set_routes(self, routes: RouteTable) -> None:
        """Replace the desired Adj-RIB-Out; changes go out at once when Established."""
        for link in (self._link, self._candidate):
            if link is not None and link.fsm is not self.fsm:
                self._dispatch(link, link.fsm.set_routes(routes))
                link.flush()
        events = self.fsm.set_routes(routes)
        if self._link is not None:
            self._link.flush()
        self._dispatch(self._link, events)

    async def wait_established(self, timeout: float | None = None) -> None:
        """Wait until Established (raises TimeoutError)."""
        async with asyncio.timeout(timeout):
            await self._established.wait()

    def accept(self, sock: socket.socket) -> None:
        """Take over ``sock``, a TCP connection the peer opened to us (the caller matched its address).

        Closed at once when the session is stopped or already settling a collision.
        """
        self.inbound_connections += 1
        try:
            sock.setblocking(False)
        except OSError as exc:
            log.info("BGP %s: inbound connection refused: %s", self.config.label, exc)
            sock.close()
            return
        if self._stop.is_set() or self._task is None or self._task.done() or self._candidate is not None:
            log.info("BGP %s: inbound connection refused (%s)", self.config.label,
                     "a collision is being settled" if self._candidate is not None else "session stopped")
            sock.close()
            return
        if self._link is None:
            if self._inbound is not None:
                self._inbound.close()
            self._inbound = sock
            self._inbound_ready.set()
            return
        log.info("BGP %s: inbound connection while ours is %s: settling the collision",
                 self.config.label, self.fsm.state.value)
        link = _Link(self, BGPStateMachine(self.config), inbound=True)
        link.fsm.set_routes(self.fsm.desired)
        self._candidate = link
        link.task = asyncio.get_running_loop().create_task(self._drive(link, sock), name=f"bgp-in-{link.label}")

    def drop_connection(self, reason: str = "connection dropped") -> None:
        """Abort the current TCP connection without a NOTIFICATION (e.g. BFD saw the path die); it redials.

        Nothing is sent because the peer is presumed unreachable; the supervisor sees the connection lost and
        goes through its backoff, even after a stable session: redialling at once through a path BFD has just
        declared dead would bring the routes back for nothing. The peer may still connect to us at any time.
        A no-op while not connected.
        """
        for link in (self._candidate, self._link):
            if link is not None and link.abort():
                link.dropped = True
                log.info("BGP session %s: dropping connection: %s", link.label, reason)

    async def close(
        self,
        reason: str = "",
        *,
        graceful_restart: bool = False,
        subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
        timeout: float = 5.0,
    ) -> None:
        """Stop for good: NOTIFICATION cease (or, for a graceful restart, a bare TCP close)."""
        self._stop.set()
        if self._inbound is not None:
            self._inbound.close()
            self._inbound = None
        candidate = self._candidate
        if candidate is not None:
            candidate.shut(reason, subcode=subcode)
        if self._link is not None:
            self._link.shut(reason, subcode=subcode, graceful_restart=graceful_restart)
        tasks = {t for t in (self._task, candidate.task if candidate else None) if t is not None and not t.done()}
        if tasks:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.wait(tasks)
            except TimeoutError:
                for t in tasks:
                    t.cancel()
                await asyncio.wait(tasks)
        if self.link_peer is not None:
            await self.link_peer.close()

    # ------------------------------------------------------------------ supervisor

    async def _run(self) -> None:
        """Dial (or wait for the peer), run the connection, again: at once after a stable session dropped, else
        with jittered backoff."""
        attempt = 0
        while not self._stop.is_set():
            link = self._candidate
            if link is not None:
                # The connection we ran is gone and the peer's is still up: it carries on as the session's.
                self._candidate = None
                self._adopt(link)
            else:
                sock, inbound = await self._next_socket(attempt)
                if sock is None:
                    attempt += 1
                    continue
                link = _Link(self, self.fsm, inbound=inbound)
                self._link = link
                link.task = asyncio.get_running_loop().create_task(self._drive(link, sock), name=f"bgp-{link.label}")
                late = self._take_inbound()
                if late is not None:  # came while our dial completed: it is the collision's other side
                    self.accept(late)
            assert link.task is not None
            try:
                await asyncio.shield(link.task)
            except asyncio.CancelledError:
                link.task.cancel()
                raise
            finally:
                self._link = None
            if not link.established:
                attempt += 1
            else:  # a session that was up: redial at once (the peer restarted, we were frozen past the hold time)
                up_for = asyncio.get_running_loop().time() - link.established_at
                stable = up_for >= STABLE_SESSION
                # One we cut (BFD down) waits the backoff, growing while it keeps failing; one the peer or the
                # network cut is redialled at once when it had been up long enough.
                flapped = attempt + 1 if link.dropped else 1
                attempt = (1 if link.dropped else 0) if stable else flapped

    async def _drive(self, link: _Link, sock: socket.socket) -> None:
        try:
            if self._stop.is_set():
                link.shutting = True
            await link.run(sock)
        finally:
            if self._candidate is link:
                self._candidate = None
            self._changed()

    def _changed(self) -> None:
        """A connection came up, went down or is gone: wake :meth:`_behind_confirmed`."""
        waiter, self._change = self._change, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _behind_confirmed(self, link: _Link) -> bool:
        """Before ``link`` sends its OPEN: while the other connection has sent its KEEPALIVE (it was confirmed
        before ``link`` was known) and waits for the peer's, wait. False when it came up (``link`` is closed
        unopened: an OPEN on it would let the peer compare identifiers against a connection it may have just
        established); True when it went down or there is none."""
        while True:
            other = self._candidate if link is self._link else self._link
            if other is None or other is link or self._sibling(other) is not Sibling.OPEN:
                return True
            if other.fsm.is_established:
                return False
            if not other.fsm.confirmed:
                return True
            if self._change is None:
                self._change = asyncio.get_running_loop().create_future()
            await self._change

    def _adopt(self, link: _Link) -> None:
        """A candidate becomes the session's connection: its FSM (with the counters of both) is the session's."""
        merged = Counters(**{f.name: getattr(self.fsm.counters, f.name) + getattr(link.fsm.counters, f.name)
                             for f in fields(Counters)})
        link.fsm.counters = merged
        self.fsm = link.fsm
        self._link = link
        log.info("BGP %s: the peer's connection carries the session (%s)", self.config.label, link.fsm.state.value)
        held, link.held = link.held, []
        self._dispatch(link, held)

    def _take_inbound(self) -> socket.socket | None:
        sock, self._inbound = self._inbound, None
        self._inbound_ready.clear()
        return sock

    async def _wait(self, timeout: float | None, *also: Awaitable[object]) -> set[asyncio.Future[object]]:
        """Until stopped, an inbound connection waits, one of ``also`` is done, or ``timeout`` seconds passed."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._stop.wait()),
                                            asyncio.ensure_future(self._inbound_ready.wait())]
        others = [asyncio.ensure_future(a) for a in also]
        try:
            done, _ = await asyncio.wait([*waits, *others], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return done

    async def _next_socket(self, attempt: int) -> tuple[socket.socket | None, bool]:
        """The next connection: the peer's as soon as it comes, else (unless passive) ours after the backoff."""
        if self.config.passive:
            self.fsm.passive_open()
            while self._inbound is None and not self._stop.is_set():
                await self._wait(None)
            return self._take_inbound(), True
        delay = backoff_delay(attempt, self.config.connect_time, random.uniform(0.0, 0.5))
        if delay > 0 and self._inbound is None:
            await self._wait(delay)
        if self._stop.is_set():
            return None, False
        if self._inbound is not None:
            return self._take_inbound(), True
        self.fsm.connection_started()
        self.connect_attempts += 1
        dial = asyncio.ensure_future(self._connect())
        try:
            await self._wait(None, dial)
        except asyncio.CancelledError:
            dial.cancel()
            raise
        if not dial.done():
            dial.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError, TimeoutError):
                (await dial).close()
            if self._stop.is_set():
                return None, False
            return self._take_inbound(), True
        try:
            return dial.result(), False
        except (OSError, TimeoutError) as exc:
            self.fsm.connection_failed()
            log.info("BGP connect to %s failed: %s", self.config.label, exc or type(exc).__name__)
            return None, False

    async def _connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        cfg = self.config
        peer: Address = cfg.peer_address
        dest: tuple[str, int] | tuple[str, int, int, int] = (str(peer), cfg.peer_port)
        if self.link_peer is not None:
            link_local, ifindex = await self.link_peer.peer(cfg.connect_timeout)
            peer = IPv6Address(f"{link_local}%{ifindex}")
            dest = (str(link_local), cfg.peer_port, 0, ifindex)
        sock = make_socket(cfg, peer)
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                await loop.sock_connect(sock, dest)
        except BaseException:
            sock.close()
            raise
        return sock

    async def _beside(self, local: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address | None:
        """For a session that carries both families: the next hop of the family the connection is not in."""
        if len(self.config.families) < 2:
            return None
        if self.config.interface:
            # Unnumbered: the session runs over link-local addresses, IPv4 goes with an IPv6 next hop (RFC 8950),
            # and the global IPv6 address of the interface, if any, is the first of the two next hops.
            return None if self.config.next_hop_ipv6 is not None else await address_beside(local, 6)
        if isinstance(local, IPv6Address) and local.ipv4_mapped is not None:
            local = local.ipv4_mapped
        want = 6 if local.version == 4 else 4
        if (self.config.next_hop_ipv6 if want == 6 else self.config.next_hop_ipv4) is not None:
            return None
        return await address_beside(local, want)

    # ------------------------------------------------------------------ events

    def _dispatch(self, link: _Link | None, events: list[Event]) -> None:
        for event in events:
            if link is not None and isinstance(event, Established):
                link.established = True
                link.established_at = asyncio.get_running_loop().time()
            if isinstance(event, Established | SessionDown):
                self._changed()
            if link is not None and link is self._candidate:
                self._candidate_event(link, event)
                continue
            self._log(event)
            if isinstance(event, SessionDown):
                self._established.clear()
                if link is not None:
                    # close() still sends what is buffered, i.e. our NOTIFICATION.
                    link.down = True
                    link.close_transport()
            elif self.fsm.is_established:
                self._established.set()
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception:
                    log.exception("BGP event handler failed for %s", self.config.label)
            if isinstance(event, OpenReceived) and link is not None:
                self._settle(link)
            elif isinstance(event, KeepaliveAwaited) and link is not None:
                self._settle_soon(link)

    def _candidate_event(self, link: _Link, event: Event) -> None:
        if isinstance(event, OpenReceived):
            self._settle(link)
        elif isinstance(event, KeepaliveAwaited):
            self._settle_soon(link)
        elif isinstance(event, SessionDown):
            log.info("BGP %s: closed: %s", link.label, event.reason)
            link.down = True
            link.close_transport()
        else:
            link.held.append(event)
            primary = self._link
            if isinstance(event, Established) and primary is not None and self._sibling(primary) in (
                Sibling.PENDING, Sibling.OPEN
            ) and not primary.fsm.is_established:
                # Up before ours heard the peer's OPEN: the peer kept this one, ours gives way.
                self.collisions += 1
                primary.shut("connection collision", subcode=CeaseSubcode.CONNECTION_COLLISION, linger=True)

    def _settle(self, new: _Link) -> None:
        """RFC 4271 section 6.8, once ``new`` has the peer's OPEN (:func:`settle_collision`): close the losing
        connection with cease 7; ``new``, if it stands, sends its KEEPALIVE and reads on once no other connection
        to the peer is left."""
        other = self._candidate if new is self._link else self._link
        if other is new:
            other = None
        sibling = self._sibling(other)
        settlement = settle_collision(new.fsm, other.fsm if other is not None else None, sibling)
        if other is not None and settlement.close is not None:
            loser = new if settlement.close is new.fsm else other
            self.collisions += 1
            log.info("BGP %s: connection collision: closing the %s connection", self.config.label,
                     "inbound" if loser.inbound else "outbound")
            loser.shut("connection collision", subcode=CeaseSubcode.CONNECTION_COLLISION, linger=True)
        if new.shutting:
            return
        if settlement.confirm_now or other is None or other.task is None or other.task.done():
            self._confirm(new)
            return
        other.task.add_done_callback(lambda _: self._confirm(new))

    def _settle_soon(self, link: _Link) -> None:
        """Settle again after the peer's KEEPALIVE that ours waited for, one turn of the loop later: a connection
        of the peer's that our listener has ready (it came before that KEEPALIVE) reaches :meth:`accept` first,
        and is settled before our KEEPALIVE goes out."""
        asyncio.get_running_loop().call_soon(self._settle, link)

    @staticmethod
    def _sibling(other: _Link | None) -> Sibling:
        """How far the other connection to the peer is, for :func:`settle_collision`."""
        if other is None or (other.task is not None and other.task.done()) or other.closed.done():
            return Sibling.NONE
        if other.shutting or other.down:
            return Sibling.CLOSING
        if other.fsm.state in (BGPState.OPEN_SENT, BGPState.OPEN_CONFIRM, BGPState.ESTABLISHED):
            return Sibling.OPEN
        return Sibling.PENDING

    def _confirm(self, link: _Link) -> None:
        """``link`` stands: its KEEPALIVE goes out and what the peer sent after its OPEN is read."""
        if link.shutting or link.down or link.closed.done():
            return
        events = link.fsm.confirm_open(asyncio.get_running_loop().time())
        link.flush()
        self._dispatch(link, events)
        link._reschedule()

    def _log(self, event: Event) -> None:
        """The FSM reports, the shell logs (the sans-I/O core has no logger)."""
        label = self.config.label
        if isinstance(event, Established):
            log.info("BGP session to %s established (peer AS %d, hold %ds)", label, event.peer_asn, event.hold_time)
        elif isinstance(event, SessionDown):
            log.info("BGP session to %s down: %s", label, event.reason)
        elif isinstance(event, RoutesUnsendable):
            log.warning("BGP %s: %d prefixes have attributes too large to send", label, len(event.prefixes))


__all__ = ["BGPSession", "apply_options", "backoff_delay", "make_socket", "tcp_md5sig"]


def address_beside_in(
    links: Sequence[Mapping[str, Any]], local: IPv4Address | IPv6Address, version: int
) -> IPv4Address | IPv6Address | None:
    """The first global address of ``version`` on the interface holding ``local``, from ``ip -j addr`` output."""
    family = "inet6" if version == 6 else "inet"
    for link in links:
        infos = link.get("addr_info") or []
        if not any(_same(info.get("local"), local) for info in infos):
            continue
        for info in infos:
            if info.get("family") != family:
                continue
            with contextlib.suppress(ValueError):
                addr = ip_address(str(info.get("local", "")))
                if not addr.is_link_local and not addr.is_loopback:
                    return addr
    return None


def _same(text: object, address: IPv4Address | IPv6Address) -> bool:
    try:
        return ip_address(str(text).split("%")[0]) == address
    except ValueError:
        return False


async def on_link(peer: IPv4Address | IPv6Address, timeout: float = 2.0) -> bool | None:
    """Whether this host reaches ``peer`` without a gateway (``ip -j route get``); None when the lookup fails."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "ip", "-j", "route", "get", str(peer), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        routes = json.loads(out or b"[]")
    except (OSError, TimeoutError, ValueError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None
    if not isinstance(routes, list) or not routes or not isinstance(routes[0], dict):
        return None
    return "gateway" not in routes[0]


async def address_beside(local: IPv4Address | IPv6Address, version: int, timeout: float = 2.0
                         ) -> IPv4Address | IPv6Address | None:
    """:func:`address_beside_in` on this host's addresses (``ip -j addr``); None when the lookup fails."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "ip", "-j", "addr", "show", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        links = json.loads(out or b"[]")
    except (OSError, TimeoutError, ValueError):
        return None
    return address_beside_in(links, local, version) if isinstance(links, list) else None
