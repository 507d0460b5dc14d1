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
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from .config import PeerConfig
from .errors import CeaseSubcode
from .fsm import BGPState, BGPStateMachine, Counters, Established, Event, RoutesUnsendable, RouteTable, SessionDown
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


def make_socket(config: PeerConfig) -> socket.socket:
    """A non-blocking TCP socket with MD5, TTL, DSCP and source address applied before connect."""
    v6 = isinstance(config.peer_address, IPv6Address)
    sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if config.password:
            sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, tcp_md5sig(config.peer_address, config.password.encode()))
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
        if config.source_address is not None:
            sock.bind((str(config.source_address), 0))
    except BaseException:
        sock.close()
        raise
    return sock


class _Protocol(asyncio.Protocol):
    """Forwards transport callbacks to the owning BGPSession."""

    def __init__(self, owner: BGPSession, closed: asyncio.Future[str], on_made: Callable[[asyncio.Transport], None]
                 ) -> None:
        self._owner = owner
        self._closed = closed
        self._on_made = on_made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio calls this before any data_received: the FSM sends its OPEN before it can see the peer's.
        assert isinstance(transport, asyncio.Transport)
        self._on_made(transport)

    def data_received(self, data: bytes) -> None:
        self._owner._on_data(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(f"connection lost: {exc}" if exc else "connection closed")


class BGPSession:
    """One peer's BGP session on the running event loop.

    ``on_event`` is called synchronously with every FSM event (Established,
    SessionDown, ...); it must not block.  Routes set with :meth:`set_routes`
    survive reconnects: after each new Established they are all sent again.
    """

    def __init__(self, config: PeerConfig, *, on_event: Callable[[Event], None] | None = None) -> None:
        self.config = config
        self.fsm = BGPStateMachine(config)
        self._on_event = on_event
        self._task: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stop = asyncio.Event()
        self._established = asyncio.Event()
        self._closed_fut: asyncio.Future[str] | None = None
        self._backlog = bytearray()
        self._drain: asyncio.Task[None] | None = None
        self._paused = False
        self.connect_attempts = 0
        self._established_at: float | None = None  # loop time of the latest Established

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
        """Begin connecting in a background task (idempotent)."""
        if self._task is None or self._task.done():
            self._stop.clear()
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"bgp-{self.config.label}")

    def set_routes(self, routes: RouteTable) -> None:
        """Replace the desired Adj-RIB-Out; changes go out at once when Established."""
        events = self.fsm.set_routes(routes)
        self._flush()
        self._dispatch(events)

    async def wait_established(self, timeout: float | None = None) -> None:
        """Wait until Established (raises TimeoutError)."""
        async with asyncio.timeout(timeout):
            await self._established.wait()

    def drop_connection(self, reason: str = "connection dropped") -> None:
        """Abort the current TCP connection without a NOTIFICATION (e.g. BFD saw the path die); it redials.

        Nothing is sent because the peer is presumed unreachable; the supervisor sees the connection lost and
        goes through its usual backoff. A no-op while not connected.
        """
        if self._transport is not None and not self._transport.is_closing():
            log.info("BGP session %s: dropping connection: %s", self.config.label, reason)
            self._transport.abort()

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
        if self._transport is not None:
            events = self.fsm.close(reason, subcode=subcode, graceful_restart=graceful_restart)
            self._flush()
            self._dispatch(events)
            self._transport.close()
        task = self._task
        if task is not None and not task.done():
            if self._transport is None:
                # Backoff wait or dial in progress: nothing to flush, stop right away.
                task.cancel()
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.wait({task})
            except TimeoutError:
                task.cancel()
                await asyncio.wait({task})
        self._cancel_timer()

    # ------------------------------------------------------------------ supervisor

    async def _run(self) -> None:
        """Dial, run the connection, redial: at once after a stable session dropped, else with jittered backoff."""
        attempt = 0
        while not self._stop.is_set():
            delay = backoff_delay(attempt, self.config.connect_time, random.uniform(0.0, 0.5))
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stop.wait()
                if self._stop.is_set():
                    break
            self.fsm.connection_started()
            self.connect_attempts += 1
            try:
                sock = await self._connect()
            except (OSError, TimeoutError) as exc:
                self.fsm.connection_failed()
                log.info("BGP connect to %s failed: %s", self.config.label, exc or type(exc).__name__)
                attempt += 1
                continue
            up_for = await self._run_connection(sock)
            if up_for is None:
                attempt += 1
            else:  # a session that was up: redial at once (the peer restarted, we were frozen past the hold time)
                attempt = 0 if up_for >= STABLE_SESSION else 1

    async def _connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        sock = make_socket(self.config)
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                await loop.sock_connect(sock, (str(self.config.peer_address), self.config.peer_port))
        except BaseException:
            sock.close()
            raise
        return sock

    async def _beside(self, local: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address | None:
        """For a session that carries both families: the next hop of the family the connection is not in."""
        if len(self.config.families) < 2:
            return None
        if isinstance(local, IPv6Address) and local.ipv4_mapped is not None:
            local = local.ipv4_mapped
        want = 6 if local.version == 4 else 4
        if (self.config.next_hop_ipv6 if want == 6 else self.config.next_hop_ipv4) is not None:
            return None
        return await address_beside(local, want)

    async def _run_connection(self, sock: socket.socket) -> float | None:
        """Run one TCP connection to its end: how long it was Established (None: it never was)."""
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[str] = loop.create_future()
        # Any lookup happens before the transport exists: once it does, the peer's OPEN may arrive at any moment
        # and must find the FSM past connection_made.
        try:
            local = ip_address(sock.getsockname()[0])
            peer = ip_address(sock.getpeername()[0])
            beside = await self._beside(local)
        except OSError as exc:
            sock.close()
            self.fsm.connection_failed()
            log.info("BGP connection to %s failed: %s", self.config.label, exc)
            return None
        before = self.fsm.counters.established_transitions

        def made(transport: asyncio.Transport) -> None:
            self._transport = transport
            self.fsm.connection_made(local, peer, loop.time(), beside=beside)
            self._flush()
            self._reschedule()

        try:
            transport, _proto = await loop.create_connection(lambda: _Protocol(self, closed, made), sock=sock)
        except OSError as exc:
            sock.close()
            self.fsm.connection_failed()
            log.info("BGP connection to %s failed: %s", self.config.label, exc)
            return None
        assert isinstance(transport, asyncio.Transport)
        self._closed_fut = closed
        try:
            if self._stop.is_set():
                self._dispatch(self.fsm.close("shutting down"))
                self._flush()
                transport.close()
            reason = await closed
            if self._drain is not None:  # what arrived before the close is decoded first (a NOTIFICATION, say)
                await asyncio.wait({self._drain})
            self._dispatch(self.fsm.connection_lost(reason))
        except OSError as exc:
            self._dispatch(self.fsm.connection_lost(f"socket error: {exc}"))
        finally:
            if self._drain is not None:
                self._drain.cancel()
                self._drain = None
            self._backlog.clear()
            self._paused = False
            self._cancel_timer()
            self._transport = None
            self._closed_fut = None
            transport.close()
        if self.fsm.counters.established_transitions == before or self._established_at is None:
            return None
        return loop.time() - self._established_at

    # ------------------------------------------------------------------ callbacks

    def _on_data(self, data: bytes) -> None:
        """Small reads are decoded at once; a burst goes to the backlog, decoded in slices by :meth:`_drain_backlog`."""
        if not self._backlog and self._drain is None and len(data) <= FEED_BYTES:
            self._feed(data)
            return
        self._backlog += data
        if len(self._backlog) > PAUSE_BACKLOG and self._transport is not None and not self._paused:
            self._transport.pause_reading()
            self._paused = True
        if self._drain is None:
            loop = asyncio.get_running_loop()
            self._drain = loop.create_task(self._drain_backlog(), name=f"bgp-rx-{self.config.label}")

    async def _drain_backlog(self) -> None:
        try:
            while self._backlog:
                chunk = bytes(self._backlog[:FEED_BYTES])
                del self._backlog[:FEED_BYTES]
                self._feed(chunk)
                await asyncio.sleep(0)  # the loop's turn: timers, other peers, the fast path's reports
                if self._paused and len(self._backlog) <= PAUSE_BACKLOG // 2:
                    self._paused = False
                    if self._transport is not None:
                        self._transport.resume_reading()
        finally:
            if self._drain is asyncio.current_task():
                self._drain = None

    def _feed(self, data: bytes) -> None:
        try:
            events = self.fsm.data_received(data, asyncio.get_running_loop().time())
        except Exception:
            self._internal_error("processing received data")
            return
        self._flush()
        self._dispatch(events)
        self._reschedule()

    def _on_timer(self) -> None:
        self._timer = None
        try:
            events = self.fsm.timer(asyncio.get_running_loop().time())
        except Exception:
            self._internal_error("running timers")
            return
        self._flush()
        self._dispatch(events)
        self._reschedule()

    def _internal_error(self, what: str) -> None:
        """A bug must not leave a half-working session: log it and drop the connection (it will redial)."""
        log.exception("BGP session %s: internal error while %s", self.config.label, what)
        if self._transport is not None:
            self._transport.abort()

    def _flush(self) -> None:
        data = self.fsm.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            self._log(event)
            if isinstance(event, SessionDown):
                self._established.clear()
                if self._transport is not None:
                    # close() still sends what is buffered, i.e. our NOTIFICATION.
                    self._transport.close()
            elif self.fsm.is_established:
                if isinstance(event, Established):
                    self._established_at = asyncio.get_running_loop().time()
                self._established.set()
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception:
                    log.exception("BGP event handler failed for %s", self.config.label)

    def _log(self, event: Event) -> None:
        """The FSM reports, the shell logs (the sans-I/O core has no logger)."""
        label = self.config.label
        if isinstance(event, Established):
            log.info("BGP session to %s established (peer AS %d, hold %ds)", label, event.peer_asn, event.hold_time)
        elif isinstance(event, SessionDown):
            log.info("BGP session to %s down: %s", label, event.reason)
        elif isinstance(event, RoutesUnsendable):
            log.warning("BGP %s: %d prefixes have attributes too large to send", label, len(event.prefixes))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _reschedule(self) -> None:
        self._cancel_timer()
        deadline = self.fsm.next_deadline()
        if deadline is not None and self._transport is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)


__all__ = ["BGPSession", "backoff_delay", "make_socket", "tcp_md5sig"]


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
