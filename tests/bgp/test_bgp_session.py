"""The asyncio shell over real loopback TCP, against an in-process passive peer built on the same FSM."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import IPv4Address, IPv4Network, ip_address
from typing import Any

import pytest

from ironlb.bgp.attributes import Attributes
from ironlb.bgp.config import PeerConfig
from ironlb.bgp.fsm import BGPState, BGPStateMachine, Established, Event, NotificationReceived, SessionDown
from ironlb.bgp.session import STABLE_SESSION, TCP_MD5SIG, BGPSession, backoff_delay, tcp_md5sig
from ironlb.bgp.wire import UpdateMessage, decode_message, split_messages
from tests.support.clock import virtual_clock
from tests.support.waits import wait_until_async

LOOP = ip_address("127.0.0.1")


class PeerProtocol(asyncio.Protocol):
    """A passive BGP peer: runs our FSM on the accepted socket (the FSM does not care who dialled)."""

    def __init__(self, peer: FakePeer) -> None:
        self.peer = peer
        self.fsm = BGPStateMachine(peer.config)
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer.connections.append(self)
        self.fsm.connection_made(LOOP, LOOP, asyncio.get_running_loop().time())
        transport.write(self.fsm.data_to_send())

    def data_received(self, data: bytes) -> None:
        was_established = self.fsm.state is BGPState.ESTABLISHED
        self.buf += data
        for raw in split_messages(self.buf):
            self.peer.received.append(decode_message(raw))
        events = self.fsm.data_received(data, asyncio.get_running_loop().time())
        self.peer.events.extend(events)
        out = self.fsm.data_to_send()
        assert self.transport is not None
        if self.peer.silent_after_open and was_established:
            return
        if out:
            self.transport.write(out)
        if any(isinstance(e, SessionDown) for e in events):
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.peer.events.extend(self.fsm.connection_lost("connection closed by peer"))


class FakePeer:
    def __init__(
        self, *, password: str | None = None, silent_after_open: bool = False, graceful_restart: bool = False
    ) -> None:
        self.config = PeerConfig(
            my_asn=64513,
            peer_asn=64512,
            peer_address=LOOP,
            router_id=IPv4Address("2.2.2.2"),
            hold_time=3600,
            graceful_restart=graceful_restart,
        )
        self.password = password
        self.silent_after_open = silent_after_open
        self.connections: list[PeerProtocol] = []
        self.received: list[Any] = []
        self.events: list[Event] = []
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self, port: int = 0) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.password:
            sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, tcp_md5sig(LOOP, self.password.encode()))
        sock.bind(("127.0.0.1", port))
        self.server = await asyncio.get_running_loop().create_server(lambda: PeerProtocol(self), sock=sock)
        self.port = sock.getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for c in self.connections:
                if c.transport is not None:
                    c.transport.abort()
            await self.server.wait_closed()

    def updates(self) -> list[UpdateMessage]:
        return [m for m in self.received if isinstance(m, UpdateMessage)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def speaker(port: int, **kw: Any) -> PeerConfig:
    kw.setdefault("router_id", IPv4Address("1.1.1.1"))
    kw.setdefault("connect_time", 2.0)
    return PeerConfig(my_asn=64512, peer_asn=64513, peer_address=LOOP, peer_port=port, **kw)


async def until(cond: Any, timeout: float = 5.0) -> None:
    await wait_until_async(cond, timeout, "the session condition", interval=0.05)


def test_backoff_schedule() -> None:
    assert [backoff_delay(n, 120) for n in range(10)] == [0, 1, 2, 4, 8, 16, 32, 64, 120, 120]
    assert backoff_delay(10_000, 5) == 5


def test_backoff_jitter_takes_a_fraction_off_and_never_delays_the_first_dial() -> None:
    assert backoff_delay(0, 120, 0.4) == 0
    assert backoff_delay(3, 120, 0.5) == 2.0
    assert backoff_delay(20, 120, 0.25) == 90.0
    assert 0 < backoff_delay(1, 120, 5.0) < 0.1 and backoff_delay(1, 120, -1.0) == 1.0  # out of range: clamped


@asynccontextmanager
async def stable_session() -> AsyncIterator[tuple[FakePeer, BGPSession]]:
    """A session to a fake peer, Established for longer than STABLE_SESSION; closed afterwards."""
    peer = FakePeer()
    port = await peer.start()
    s = BGPSession(speaker(port))
    s.start()
    try:
        await s.wait_established(5)
        await asyncio.sleep(STABLE_SESSION + 1)
        yield peer, s
    finally:
        await s.close()
        await peer.stop()


@virtual_clock  # the schedule on the loop's clock: the immediate redial tells apart from the >= 0.5 s backoff
async def test_a_stable_session_that_drops_is_redialled_at_once_a_flapping_one_after_a_backoff() -> None:
    loop = asyncio.get_running_loop()
    async with stable_session() as (peer, s):
        first = peer.connections[0].transport
        assert first is not None
        dropped = loop.time()
        first.abort()  # the peer restarted (or froze us out): redial at once
        await until(lambda: len(peer.connections) == 2 and s.is_established)
        assert loop.time() - dropped < 0.5, loop.time() - dropped
        second = peer.connections[1].transport
        assert second is not None
        dropped = loop.time()
        second.abort()  # down again straight after coming up: a flap waits out the jittered backoff
        await until(lambda: len(peer.connections) == 3)
        assert loop.time() - dropped >= 0.5, loop.time() - dropped


@virtual_clock
async def test_a_session_we_drop_because_bfd_went_down_waits_the_backoff_even_when_it_was_stable() -> None:
    """BFD declared the path dead: redialling at once would bring the routes back through it for a moment."""
    loop = asyncio.get_running_loop()
    async with stable_session() as (peer, s):
        dropped = loop.time()
        s.drop_connection("BFD down: test")
        await until(lambda: len(peer.connections) == 2 and s.is_established)
        assert loop.time() - dropped >= 0.5, loop.time() - dropped
        await asyncio.sleep(STABLE_SESSION + 1)
        first = peer.connections[1].transport
        assert first is not None
        dropped = loop.time()
        first.abort()  # the peer's own drop after that: at once again
        await until(lambda: len(peer.connections) == 3 and s.is_established)
        assert loop.time() - dropped < 0.5, loop.time() - dropped


def test_md5sig_struct_layout() -> None:
    raw = tcp_md5sig(IPv4Address("192.0.2.1"), b"secret")
    assert len(raw) == 216
    assert struct.unpack("=H", raw[:2])[0] == socket.AF_INET
    assert raw[4:8] == bytes([192, 0, 2, 1])
    assert struct.unpack("=BBHi", raw[128:136]) == (0, 0, 6, 0)
    assert raw[136:142] == b"secret"
    raw6 = tcp_md5sig(ip_address("fd00::1"), b"k")  # type: ignore[arg-type]
    assert struct.unpack("=H", raw6[:2])[0] == socket.AF_INET6 and raw6[8:24] == ip_address("fd00::1").packed


async def test_establish_advertise_and_close() -> None:
    peer = FakePeer()
    port = await peer.start()
    events: list[Event] = []
    s = BGPSession(speaker(port, hold_time=9), on_event=events.append)
    s.set_routes({IPv4Network("192.0.2.1/32"): Attributes(communities=(7,))})
    s.start()
    try:
        await s.wait_established(5)
        assert any(isinstance(e, Established) for e in events)
        await until(lambda: len(peer.updates()) >= 1)
        u = peer.updates()[0]
        assert u.nlri == (IPv4Network("192.0.2.1/32"),) and u.next_hop == LOOP and u.communities == (7,)
        s.set_routes({IPv4Network("192.0.2.2/32"): Attributes()})
        await until(lambda: any(m.withdrawn for m in peer.updates()))
        assert s.fsm.prefixes_announced == 1 and s.counters.updates_sent >= 3
    finally:
        await s.close("test over")
        await until(lambda: any(isinstance(e, NotificationReceived) for e in peer.events))
        await peer.stop()
    note = next(e for e in peer.events if isinstance(e, NotificationReceived))
    assert (note.code, note.subcode) == (6, 2)
    assert s.state is BGPState.IDLE


async def test_retries_until_peer_listens_then_reconnects_after_drop() -> None:
    port = free_port()
    s = BGPSession(speaker(port))
    s.set_routes({IPv4Network("192.0.2.9/32"): Attributes()})
    s.start()
    peer = FakePeer()
    try:
        await until(lambda: s.connect_attempts >= 1)  # nobody listens yet: it tries, and keeps trying
        assert not s.is_established
        await peer.start(port)
        await s.wait_established(5)
        await until(lambda: len(peer.updates()) == 1)
        # Peer vanishes: the shell notices, reconnects and re-advertises everything.
        first = peer.connections[0]
        assert first.transport is not None
        first.transport.abort()
        await until(lambda: len(peer.connections) == 2 and s.is_established, timeout=8)
        await until(lambda: len(peer.updates()) == 2)
        assert peer.updates()[1].nlri == (IPv4Network("192.0.2.9/32"),)
    finally:
        await s.close()
        await peer.stop()


@virtual_clock  # the 3 s hold time passes on the loop's clock: exact, and no 3 s of real waiting
async def test_hold_timer_expiry_closes_with_4_0_and_reconnects() -> None:
    peer = FakePeer(silent_after_open=True)
    port = await peer.start()
    downs: list[SessionDown] = []

    def on_event(e: Event) -> None:
        if isinstance(e, SessionDown):
            downs.append(e)

    s = BGPSession(speaker(port, hold_time=3), on_event=on_event)
    s.start()
    try:
        await s.wait_established(5)
        await until(lambda: bool(downs), timeout=6)
        assert downs[0].notification_sent is not None
        assert (downs[0].notification_sent.code, downs[0].notification_sent.subcode) == (4, 0)
        await until(lambda: len(peer.connections) >= 2, timeout=5)
    finally:
        await s.close()
        await peer.stop()


async def test_tcp_md5() -> None:
    peer = FakePeer(password="s3cret")
    port = await peer.start()
    good = BGPSession(speaker(port, password="s3cret"))
    good.start()
    try:
        await good.wait_established(5)
    finally:
        await good.close()
    bad = BGPSession(speaker(port, password="wrong", connect_timeout=1.0))
    bad.start()
    try:
        with pytest.raises(TimeoutError):
            await bad.wait_established(1.5)
    finally:
        await bad.close()
        await peer.stop()


async def test_graceful_restart_close_sends_no_notification() -> None:
    peer = FakePeer(graceful_restart=True)
    port = await peer.start()
    s = BGPSession(speaker(port, graceful_restart=True))
    s.start()
    try:
        await s.wait_established(5)
        await until(lambda: any(m.end_of_rib() for m in peer.updates()))
        await s.close("restarting", graceful_restart=True)
        await until(lambda: any(isinstance(e, SessionDown) for e in peer.events))
        down = next(e for e in peer.events if isinstance(e, SessionDown))
        assert down.notification_received is None and "closed" in down.reason
        assert not any(isinstance(e, NotificationReceived) for e in peer.events)
    finally:
        await peer.stop()


async def test_close_while_connecting_is_prompt() -> None:
    s = BGPSession(speaker(free_port()))
    s.start()
    await asyncio.sleep(0.1)
    async with asyncio.timeout(2):
        await s.close()


def test_address_beside_the_session_address() -> None:
    """The next hop of the other family on a dual-stack session: a global address on the same interface."""
    from ipaddress import ip_address

    from ironlb.bgp.session import address_beside_in

    links = [
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"}, {"family": "inet6", "local": "::1"}]},
        {"ifname": "eth0", "addr_info": [
            {"family": "inet", "local": "192.0.2.5"},
            {"family": "inet6", "local": "fe80::1"},
            {"family": "inet6", "local": "fd00::5"},
        ]},
        {"ifname": "eth1", "addr_info": [{"family": "inet6", "local": "fd01::5"}, {"family": "inet6", "local": "fe80::2"}]},
    ]
    assert address_beside_in(links, ip_address("192.0.2.5"), 6) == ip_address("fd00::5")  # link-local skipped
    assert address_beside_in(links, ip_address("fd00::5"), 4) == ip_address("192.0.2.5")
    assert address_beside_in(links, ip_address("fd01::5"), 4) is None
    assert address_beside_in(links, ip_address("127.0.0.1"), 6) is None  # loopback is never a next hop
    assert address_beside_in(links, ip_address("198.51.100.1"), 6) is None
