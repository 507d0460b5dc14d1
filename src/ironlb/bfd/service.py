"""asyncio shell around the sans-I/O :class:`~ironlb.bfd.fsm.BFDStateMachine`: sockets, timers, demultiplexing.

Sockets (RFC 5881 single hop, RFC 5883 multi-hop)
    * one listening UDP socket per address family and kind, opened on the first
      peer that needs it: port 3784 (single hop) or 4784 (multi-hop), with
      ``IP_RECVTTL`` / ``IPV6_RECVHOPLIMIT`` so every packet's TTL is checked by
      the session (single hop: exactly 255, GTSM; multi-hop: ``minimum_ttl`` or more);
    * one sending socket per session, bound to ``local_addr`` (if given) and a
      source port picked at random in 49152-65535, unique among our sessions,
      sending with TTL / hop limit 255 and DSCP CS6.

Demultiplexing: by Your Discriminator (and the packet must come from the
session's peer address, over the session's kind of listener); when Your
Discriminator is 0, by (peer address, single hop / multi-hop). Hence at most one
session per (peer address, multihop); ``local_addr`` only selects the source.

No threads: the listeners are driven by ``loop.add_reader`` (at most
:data:`MAX_READS_PER_WAKEUP` datagrams per wakeup) and each session by one
``loop.call_at`` timer derived from :meth:`BFDStateMachine.next_deadline`. Nothing
blocks; :meth:`BFDManager.close` is synchronous work bounded by the number of
sessions.

Echo function (BFDProfile ``echoMode``; IPv4 single hop only): see :mod:`ironlb.bfd.echo`. Echo packets
go out through one AF_PACKET socket per interface, opened on first use, to the MAC of the peer's entry in the
kernel's neighbour table (looked up when echo starts, and again after each Down); the returns are read from
that socket and matched to a session by the discriminator in the payload, its source and destination (our
address) and a TTL of at least 254. The peer's echo packets are the kernel's to forward back: Required Min Echo
RX is advertised only when IPv4 forwarding is on.

Hooking the BGP speaker (a BFD Down must take the BGP session down at once).
The ready-made glue is :class:`ironlb.bfd.speaker.SpeakerBFD`, a ``bfd_factory``
for ``ironlb.bgp.speaker.BGPSpeaker``, which calls ``BGPSession.drop_connection``
on a failure. Directly::

    bfd = BFDManager(metrics=BFDMetrics(registry))
    await bfd.start()
    handle = bfd.add_peer(peer_ip, source_ip_or_None, profile, multihop=peer.ebgp_multihop,
                          on_change=lambda up: up or bgp_session.drop_connection("BFD down"))
    ...
    bfd.remove_peer(handle)   # when the BGP peer goes away (sends AdminDown first)
    bfd.close()               # at shutdown

``on_change`` is called on the event loop, synchronously, and must not block.
``on_change(True)`` when the session reaches Up; ``on_change(False)`` when an Up
session fails: detection time expired (diag 1) or the peer signalled Down
(diag 3). On ``False`` the BGP session must be dropped at once (abort the TCP
connection, let it redial with its backoff) instead of waiting for the hold
timer; ``BGPSession.close(reason, subcode=BFD_DOWN_CEASE_SUBCODE)`` (Cease
"BFD Down", RFC 9384) followed by a new session also works.

Not reported as failures: the peer going AdminDown (RFC 5882 §3.2: an
administrative action, not a path failure; the BGP session is left alone), and
a session reset by the peer (``SessionDown.remote_reset``: a Down from a new
remote session, or a Down with diag 3/7 while we were Up). FRR's bfdd does
exactly that when bgpd re-registers the session right after the BGP session
comes up; packets still arrive, so the path works, and reporting it would reset
every new BGP session once. Such a reset is reported only if the session is not
Up again within ``restart_grace`` (:data:`RESTART_GRACE`, 3 s) or 3 detection
times, whichever is longer. Trade-off: FRR also resets its session that way
right after it detected a failure itself (one-way loss: our packets lost, its
packets arriving); then FRR has already sent Cease/BFD Down over BGP, and our
own detection timer still covers a path that is dead both ways. The callback reports changes only ("BFD says the
path works", starting from unknown): no False before the first True, no repeated
True. ``remove_peer`` sends AdminDown to the peer first, so removing BFD from a
BGPPeer does not make the router drop its BGP session.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from ironlb.config.bfdprofile import BFDProfile

from .echo import EchoLink, Neighbour, ipv4_forwarding, lookup_neighbour, source_address
from .fsm import BFDAuth, BFDStateMachine, Event, SessionConfig, SessionCounters, SessionDown, SessionUp
from .metrics import (
    CONTROL_PACKET_INPUT,
    CONTROL_PACKET_OUTPUT,
    ECHO_PACKET_INPUT,
    ECHO_PACKET_OUTPUT,
    SESSION_DOWN_EVENTS,
    SESSION_UP_EVENTS,
    ZEBRA_NOTIFICATIONS,
    BFDMetrics,
)
from .wire import AuthType, BFDPacketError, BFDState, Diag, decode, decode_echo, echo_ipv4_datagram, parse_echo_ipv4

log = logging.getLogger(__name__)

IPAddress = IPv4Address | IPv6Address

SINGLE_HOP_PORT = 3784
MULTI_HOP_PORT = 4784
SOURCE_PORT_MIN = 49152
SOURCE_PORT_MAX = 65535
TX_TTL = 255
MAX_READS_PER_WAKEUP = 64
RESTART_GRACE = 3.0
"""Seconds a peer that reset its session (``SessionDown.remote_reset``) has to come back Up before we report it."""
BFD_DOWN_CEASE_SUBCODE = 10
"""BGP Cease NOTIFICATION subcode "BFD Down" (RFC 9384), for the speaker's close()."""

# linux/in.h; the socket module does not export them all.
IP_RECVTTL = 12
_IP_TTL = socket.IP_TTL
_IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
_IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)
_DSCP_CS6 = 0xC0
_ANC_BUFSIZE = socket.CMSG_SPACE(4) * 4
_RECV_BUFSIZE = 2048


def received_ttl(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The TTL (IPv4) or hop limit (IPv6) from ``recvmsg`` ancillary data, None if absent."""
    for level, kind, data in ancdata:
        if len(data) < 4:
            continue
        if (level, kind) in ((socket.IPPROTO_IP, _IP_TTL), (socket.IPPROTO_IPV6, _IPV6_HOPLIMIT)):
            value: int = struct.unpack("=i", data[:4])[0]
            return value
    return None


def profile_auth(profile: BFDProfile) -> BFDAuth | None:
    """The session authentication of a BFDProfile (ironlb's ``ironlb.io/bfd-auth-secret`` annotation)."""
    a = profile.auth
    if a is None:
        return None
    kind = AuthType.KEYED_SHA1 if a.type == "keyed-sha1" else AuthType.METICULOUS_KEYED_SHA1
    return BFDAuth(kind, a.key_id, a.password.encode())


def _host(addr: IPAddress) -> str:
    return str(addr)


def _unscoped(host: str) -> IPAddress:
    return ip_address(host.split("%", 1)[0])


@dataclass(frozen=True)
class SessionInfo:
    """A snapshot of one session, e.g. for ``ironlb`` status output."""

    peer: str
    local: str | None
    multihop: bool
    state: BFDState
    remote_state: BFDState
    local_diag: int
    remote_diag: int
    local_discriminator: int
    remote_discriminator: int
    transmit_interval_ms: float
    detection_time_ms: float
    counters: SessionCounters


class BFDPeerHandle:
    """What :meth:`BFDManager.add_peer` returns: pass it to ``remove_peer`` / ``update_peer``; read ``state``."""

    def __init__(
        self,
        peer: IPAddress,
        local: IPAddress | None,
        multihop: bool,
        session: BFDStateMachine,
        sock: socket.socket,
        dest_port: int,
        on_change: Callable[[bool], None] | None,
    ) -> None:
        self.peer = peer
        self.local = local
        self.multihop = multihop
        self.session = session
        self._sock = sock
        self._dest = (_host(peer), dest_port)
        self._on_change = on_change
        self._reported: bool | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False
        # Echo function: our source address and the peer's interface + MAC, looked up when echo starts.
        self.auth: BFDAuth | None = None
        """The authentication given to add_peer (else the profile's is used)."""
        self.echo_source: IPv4Address | None = None
        self.echo_neighbour: Neighbour | None = None
        self._echo_ident = 0

    @property
    def label(self) -> str:
        """The ``peer`` label of the metrics: the peer's IP address."""
        return str(self.peer)

    @property
    def state(self) -> BFDState:
        return self.session.state

    @property
    def is_up(self) -> bool:
        return self.session.is_up

    def info(self) -> SessionInfo:
        s = self.session
        return SessionInfo(
            peer=str(self.peer),
            local=str(self.local) if self.local is not None else None,
            multihop=self.multihop,
            state=s.state,
            remote_state=s.remote.state,
            local_diag=int(s.local_diag),
            remote_diag=s.remote.diag,
            local_discriminator=s.local_discr,
            remote_discriminator=s.remote.discr,
            transmit_interval_ms=s.transmit_interval_us() / 1000,
            detection_time_ms=s.detection_time() * 1000,
            counters=SessionCounters(**vars(s.counters)),
        )

    def __repr__(self) -> str:
        kind = "multihop" if self.multihop else "single-hop"
        return f"<BFDPeerHandle {self.peer} {kind} {self.state.name}>"


class BFDManager:
    """All BFD sessions of a process, on the running event loop.

    ``single_hop_port`` / ``multi_hop_port`` are the ports we listen on and
    ``peer_single_hop_port`` / ``peer_multi_hop_port`` the ones we send to (all
    default to the RFC ports; tests override them to run two managers on
    loopback). ``jitter`` is passed to every session (tests). ``metrics=None``
    keeps no metrics. ``restart_grace``: see the module docstring. ``forwarding()`` says whether this host
    loops the peer's echo packets back (IPv4 forwarding on; tests override it).
    """

    def __init__(
        self,
        *,
        metrics: BFDMetrics | None = None,
        single_hop_port: int = SINGLE_HOP_PORT,
        multi_hop_port: int = MULTI_HOP_PORT,
        peer_single_hop_port: int | None = None,
        peer_multi_hop_port: int | None = None,
        jitter: Callable[[], float] | None = None,
        restart_grace: float = RESTART_GRACE,
        forwarding: Callable[[], bool] = ipv4_forwarding,
    ) -> None:
        self.metrics = metrics
        self._forwarding = forwarding
        self._echo_links: dict[str, EchoLink] = {}
        self.restart_grace = restart_grace
        self._listen_ports = {False: single_hop_port, True: multi_hop_port}
        self._dest_ports = {
            False: peer_single_hop_port if peer_single_hop_port is not None else single_hop_port,
            True: peer_multi_hop_port if peer_multi_hop_port is not None else multi_hop_port,
        }
        self._jitter = jitter
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: dict[tuple[int, bool], socket.socket] = {}
        self._by_discr: dict[int, BFDPeerHandle] = {}
        self._by_addr: dict[tuple[IPAddress, bool], BFDPeerHandle] = {}
        self._rng = random.SystemRandom()
        self.dropped = 0
        """Datagrams discarded before reaching a session (malformed, unknown discriminator or peer)."""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind to the running loop. Listening sockets open with the first peer of each family and kind."""
        self.bind(asyncio.get_running_loop())

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """:meth:`start` for a caller that is not a coroutine but runs on ``loop`` (the fast process creates its
        manager at its first BFD request, from a reader callback)."""
        self._loop = loop

    async def __aenter__(self) -> BFDManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Send AdminDown on every session, then close every socket. Idempotent."""
        for handle in list(self._by_discr.values()):
            self.remove_peer(handle)
        loop = self._loop
        for sock in self._listeners.values():
            if loop is not None and not loop.is_closed():
                loop.remove_reader(sock.fileno())
            sock.close()
        self._listeners.clear()
        for link in self._echo_links.values():
            link.close(loop.remove_reader if loop is not None and not loop.is_closed() else lambda _fd: None)
        self._echo_links.clear()

    # ------------------------------------------------------------------ peers

    def _session_config(
        self, profile: BFDProfile, peer: IPAddress, multihop: bool, auth: BFDAuth | None
    ) -> SessionConfig:
        """The session's parameters; echo only on IPv4 single hop, and looped back only when we forward IPv4."""
        ipv4 = peer.version == 4
        if profile.echo_mode and not ipv4:
            log.warning("BFD peer %s: echo mode is IPv4 only; control packets only on this session", peer)
        return SessionConfig.from_profile(
            profile,
            multihop=multihop,
            echo_transmit=ipv4,
            echo_receive=ipv4 and profile.echo_mode and not multihop and self._forwarding(),
            auth=auth if auth is not None else profile_auth(profile),
        )

    def add_peer(
        self,
        peer_addr: IPAddress | str,
        local_addr: IPAddress | str | None,
        profile: BFDProfile,
        *,
        multihop: bool = False,
        on_change: Callable[[bool], None] | None = None,
        auth: BFDAuth | None = None,
    ) -> BFDPeerHandle:
        """Start a session with ``peer_addr`` (active unless the profile is passive).

        ``auth``: Keyed SHA1 authentication of the session (none by default).
        Raises :class:`~ironlb.bfd.fsm.BFDConfigError` for out-of-range values, ``ValueError`` when a session with the
        same peer address and kind exists, ``OSError`` when a socket cannot be opened.
        """
        loop = self._require_loop()
        peer = _unscoped(str(peer_addr))
        local = _unscoped(str(local_addr)) if local_addr is not None else None
        if local is not None and local.version != peer.version:
            raise ValueError(f"local address {local} and peer {peer} are of different families")
        config = self._session_config(profile, peer, multihop, auth)
        if (peer, multihop) in self._by_addr:
            raise ValueError(f"a {'multi-hop' if multihop else 'single-hop'} BFD session with {peer} already exists")
        family = socket.AF_INET6 if peer.version == 6 else socket.AF_INET
        self._ensure_listener(family, multihop)
        discr = self._new_discriminator()
        sock = self._open_tx_socket(family, local)
        session = self._new_session(config, discr)
        # Keep the scope (e.g. fe80::1%eth0) for sending.
        handle = BFDPeerHandle(peer, local, multihop, session, sock, self._dest_ports[multihop], on_change)
        handle.auth = auth
        handle._dest = (str(peer_addr), self._dest_ports[multihop])
        self._by_discr[discr] = handle
        self._by_addr[(peer, multihop)] = handle
        if self.metrics is not None:
            self.metrics.add_peer(handle.label)
        log.info(
            "BFD session with %s (%s) started, discriminator %d", peer, "multi-hop" if multihop else "single hop", discr
        )
        self._after_input(handle, [], loop.time())
        return handle

    def update_peer(self, handle: BFDPeerHandle, profile: BFDProfile) -> None:
        """Apply a changed BFDProfile (timing changes of an Up session go through a Poll sequence)."""
        if handle.closed:
            return
        now = self._require_loop().time()
        config = self._session_config(profile, handle.peer, handle.multihop, handle.auth)
        self._after_input(handle, handle.session.reconfigure(config, now), now)

    def remove_peer(self, handle: BFDPeerHandle) -> None:
        """Stop a session: one AdminDown packet to the peer, then close its socket. Idempotent."""
        if handle.closed:
            return
        handle.closed = True
        if handle._timer is not None:
            handle._timer.cancel()
            handle._timer = None
        loop = self._loop
        if loop is not None and not loop.is_closed():
            handle.session.admin_down(loop.time())
            self._flush(handle)
        handle._sock.close()
        self._by_discr.pop(handle.session.local_discr, None)
        self._by_addr.pop((handle.peer, handle.multihop), None)
        if self.metrics is not None:
            self.metrics.remove(handle.label)

    def admin_down(self, handle: BFDPeerHandle) -> None:
        """Put a session in AdminDown (the peer is told; no ``on_change(False)`` is reported for it)."""
        now = self._require_loop().time()
        self._after_input(handle, handle.session.admin_down(now), now, admin=True)

    def admin_up(self, handle: BFDPeerHandle) -> None:
        """Leave AdminDown."""
        now = self._require_loop().time()
        self._after_input(handle, handle.session.admin_up(now), now)

    def peers(self) -> list[BFDPeerHandle]:
        """The live sessions' handles."""
        return list(self._by_discr.values())

    def sessions(self) -> list[SessionInfo]:
        """Snapshots of every live session."""
        return [h.info() for h in self._by_discr.values()]

    # ------------------------------------------------------------------ sockets

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("BFDManager.start() was not awaited")
        return self._loop

    def _new_session(self, config: SessionConfig, discr: int) -> BFDStateMachine:
        seq = self._rng.getrandbits(32)  # bfd.XmitAuthSeq starts at random (RFC 5880 §6.8.1)
        if self._jitter is not None:
            return BFDStateMachine(config, discr, jitter=self._jitter, auth_seq=seq)
        return BFDStateMachine(config, discr, auth_seq=seq)

    def _new_discriminator(self) -> int:
        for _ in range(1000):
            discr = self._rng.randint(1, 0xFFFFFFFF)
            if discr not in self._by_discr:
                return discr
        raise RuntimeError("no free BFD discriminator")  # pragma: no cover - 2^32 values

    def _ensure_listener(self, family: int, multihop: bool) -> None:
        if (family, multihop) in self._listeners:
            return
        loop = self._require_loop()
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVHOPLIMIT, 1)
                sock.bind(("::", self._listen_ports[multihop]))
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
                sock.bind(("0.0.0.0", self._listen_ports[multihop]))
            loop.add_reader(sock.fileno(), self._on_readable, sock, multihop)
        except BaseException:
            sock.close()
            raise
        self._listeners[(family, multihop)] = sock

    def _open_tx_socket(self, family: int, local: IPAddress | None) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, TX_TTL)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, _DSCP_CS6)
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, TX_TTL)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _DSCP_CS6)
            used = {h._sock.getsockname()[1] for h in self._by_discr.values()}
            host = str(local) if local is not None else ("::" if family == socket.AF_INET6 else "0.0.0.0")
            for _ in range(128):
                port = self._rng.randint(SOURCE_PORT_MIN, SOURCE_PORT_MAX)
                if port in used:
                    continue
                try:
                    sock.bind((host, port))
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
            else:
                raise OSError(errno.EADDRINUSE, "no free BFD source port in 49152-65535")
        except BaseException:
            sock.close()
            raise
        return sock

    def _on_readable(self, sock: socket.socket, multihop: bool) -> None:
        loop = self._loop
        if loop is None:
            return
        for _ in range(MAX_READS_PER_WAKEUP):
            try:
                data, ancdata, _flags, addr = sock.recvmsg(_RECV_BUFSIZE, _ANC_BUFSIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("BFD receive error: %s", exc)
                return
            self._datagram(data, received_ttl(ancdata), addr[0], multihop, loop.time())

    def _datagram(self, data: bytes, ttl: int | None, src_host: str, multihop: bool, now: float) -> None:
        try:
            pkt = decode(data)
            src = _unscoped(src_host)
        except (BFDPacketError, ValueError) as exc:
            self.dropped += 1
            log.debug("BFD packet from %s dropped: %s", src_host, exc)
            return
        if pkt.your_discriminator:
            handle = self._by_discr.get(pkt.your_discriminator)
            if handle is not None and (handle.peer != src or handle.multihop != multihop):
                handle = None
        else:
            handle = self._by_addr.get((src, multihop))
        if handle is None:
            self.dropped += 1
            log.debug("BFD packet from %s matches no session (your discriminator %d)", src, pkt.your_discriminator)
            return
        log.debug("BFD from %s ttl %s: %s", src, ttl, pkt)
        before = handle.session.counters.control_in
        try:
            events = handle.session.packet_received(pkt, now, ttl=ttl)
        except Exception:
            self._internal_error(handle, "processing a packet")
            return
        if self.metrics is not None:
            self.metrics.inc(CONTROL_PACKET_INPUT, handle.label, handle.session.counters.control_in - before)
        self._after_input(handle, events, now)

    # ------------------------------------------------------------------ session plumbing

    def _after_input(self, handle: BFDPeerHandle, events: list[Event], now: float, *, admin: bool = False) -> None:
        self._flush(handle)
        self._dispatch(handle, events, admin=admin)
        self._reschedule(handle)

    def _flush(self, handle: BFDPeerHandle) -> None:
        echoes = handle.session.outgoing_echo()
        if echoes:
            self._send_echoes(handle, [e.encode() for e in echoes])
        for pkt in handle.session.outgoing():
            try:
                handle._sock.sendto(pkt.encode(), handle._dest)
            except OSError as exc:  # EPERM from a firewall, ENETUNREACH, a full buffer: BFD is lossy anyway
                log.debug("BFD send to %s failed: %s", handle.peer, exc)
                continue
            if self.metrics is not None:
                self.metrics.inc(CONTROL_PACKET_OUTPUT, handle.label)

    # ------------------------------------------------------------------ echo

    def _send_echoes(self, handle: BFDPeerHandle, payloads: list[bytes]) -> None:
        """Send echo packets through the peer's MAC. One that cannot be sent is lost, as on a broken path: the
        session then goes Down with diag 2, and the neighbour is looked up again when echo restarts."""
        if handle.echo_source is None:
            local = handle.local if isinstance(handle.local, IPv4Address) else None
            peer4 = handle.peer if isinstance(handle.peer, IPv4Address) else None
            handle.echo_source = local or (source_address(peer4) if peer4 is not None else None)
        if handle.echo_neighbour is None and isinstance(handle.peer, IPv4Address):
            handle.echo_neighbour = lookup_neighbour(handle.peer)
        source, neighbour = handle.echo_source, handle.echo_neighbour
        if source is None or neighbour is None:
            log.debug("BFD echo to %s not sent: no source address or neighbour entry", handle.peer)
            return
        link = self._echo_link(neighbour.ifname)
        if link is None:
            return
        for payload in payloads:
            handle._echo_ident = (handle._echo_ident + 1) & 0xFFFF
            sent = link.send(echo_ipv4_datagram(source.packed, payload, ident=handle._echo_ident), neighbour.mac)
            if sent and self.metrics is not None:
                self.metrics.inc(ECHO_PACKET_OUTPUT, handle.label)

    def _echo_link(self, ifname: str) -> EchoLink | None:
        link = self._echo_links.get(ifname)
        if link is None:
            loop = self._require_loop()
            try:
                link = EchoLink(ifname, lambda data: self._echo_datagram(data, loop.time()), loop.add_reader)
            except OSError as exc:
                log.warning("BFD echo socket on %s cannot be opened (%s); echo packets are not sent", ifname, exc)
                return None
            self._echo_links[ifname] = link
        return link

    def _echo_datagram(self, data: bytes, now: float) -> None:
        """A datagram to UDP 3785 with our payload length: one of our echo packets, back from the peer?"""
        try:
            datagram = parse_echo_ipv4(data)
            pkt = decode_echo(datagram.payload)
        except BFDPacketError as exc:
            log.debug("BFD echo datagram dropped: %s", exc)
            return
        handle = self._by_discr.get(pkt.discriminator)
        source = handle.echo_source if handle is not None else None
        # Ours: from and to our address, and forwarded by one router at most (we send with TTL 255).
        if (
            handle is None
            or source is None
            or datagram.source != source.packed
            or datagram.destination != source.packed
            or datagram.ttl < TX_TTL - 1
        ):
            log.debug("BFD echo datagram for discriminator %d matches no session", pkt.discriminator)
            return
        before = handle.session.counters.echo_in
        events = handle.session.echo_received(pkt, now)
        if self.metrics is not None and handle.session.counters.echo_in > before:
            self.metrics.inc(ECHO_PACKET_INPUT, handle.label)
        self._after_input(handle, events, now)

    # ------------------------------------------------------------------ events

    def _dispatch(self, handle: BFDPeerHandle, events: list[Event], *, admin: bool = False) -> None:
        for event in events:
            if isinstance(event, SessionUp):
                log.info("BFD session with %s is up", handle.peer)
                if self.metrics is not None:
                    self.metrics.set_up(handle.label, True)
                    self.metrics.inc(SESSION_UP_EVENTS, handle.label)
                self._notify(handle, True)
            elif isinstance(event, SessionDown):
                handle.echo_neighbour = None  # looked up again when echo restarts (the peer's MAC may change)
                try:
                    reason = Diag(event.diag).name
                except ValueError:
                    reason = f"diag {event.diag}"
                log.info("BFD session with %s is down: %s", handle.peer, reason.lower().replace("_", " "))
                if self.metrics is not None:
                    self.metrics.set_up(handle.label, False)
                    self.metrics.inc(SESSION_DOWN_EVENTS, handle.label)
                if event.remote_reset and not admin:
                    self._reset_grace(handle)
                elif not event.remote_admin_down and not admin:
                    self._notify(handle, False)

    def _reset_grace(self, handle: BFDPeerHandle) -> None:
        """The peer reset its session: report a failure only if it is not Up again within the grace time."""
        grace = max(self.restart_grace, 3 * handle.session.detection_time())
        log.info("BFD peer %s reset its session; waiting up to %.1f s for it to come back", handle.peer, grace)

        def check() -> None:
            if not handle.closed and not handle.is_up:
                self._notify(handle, False)

        self._require_loop().call_later(grace, check)

    def _notify(self, handle: BFDPeerHandle, up: bool) -> None:
        if handle._on_change is None or handle._reported is up or (not up and handle._reported is None):
            return
        handle._reported = up
        if self.metrics is not None:
            self.metrics.inc(ZEBRA_NOTIFICATIONS, handle.label)
        try:
            handle._on_change(up)
        except Exception:
            log.exception("BFD on_change callback failed for %s", handle.peer)

    def _reschedule(self, handle: BFDPeerHandle) -> None:
        if handle._timer is not None:
            handle._timer.cancel()
            handle._timer = None
        if handle.closed:
            return
        deadline = handle.session.next_deadline()
        if deadline is not None:
            handle._timer = self._require_loop().call_at(deadline, self._on_timer, handle)

    def _on_timer(self, handle: BFDPeerHandle) -> None:
        handle._timer = None
        if handle.closed:
            return
        loop = self._require_loop()
        try:
            events = handle.session.timer(loop.time())
        except Exception:
            self._internal_error(handle, "running timers")
            return
        self._after_input(handle, events, loop.time())

    def _internal_error(self, handle: BFDPeerHandle, what: str) -> None:
        """A bug must not leave a wedged session (or a hot timer loop): report it down and start it afresh."""
        log.exception("BFD session %s: internal error while %s; restarting the session", handle.peer, what)
        old = handle.session
        handle.session = self._new_session(old.config, old.local_discr)
        if self.metrics is not None and old.is_up:
            self.metrics.set_up(handle.label, False)
            self.metrics.inc(SESSION_DOWN_EVENTS, handle.label)
        self._notify(handle, False)
        self._reschedule(handle)


__all__ = [
    "BFD_DOWN_CEASE_SUBCODE",
    "MULTI_HOP_PORT",
    "SINGLE_HOP_PORT",
    "BFDManager",
    "BFDPeerHandle",
    "SessionInfo",
    "received_ttl",
]
