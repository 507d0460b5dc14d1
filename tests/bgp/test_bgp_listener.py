"""Inbound connections over real loopback TCP: two ironlb sessions that dial each other (a connection collision,
RFC 4271 section 6.8, every time), a passive session, a stranger, and an inbound connection that never speaks,
the last three through :class:`BGPListener`.

Each side listens on its own loopback address (127.0.0.1 and 127.0.0.2) on one free port, as two nodes would on
179, and dials the other's.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import IPv4Address, ip_address
from typing import Any

import pytest

from ironlb.bgp.config import PeerConfig
from ironlb.bgp.fsm import BGPState
from ironlb.bgp.listener import BGPListener, peer_of
from ironlb.bgp.session import BGPSession
from ironlb.bgp.wire import NotificationMessage, OpenMessage, decode_message, split_messages
from tests.support.waits import wait_until_async

A, B = ip_address("127.0.0.1"), ip_address("127.0.0.2")


def shared_port() -> int:
    """A port free on both loopback addresses."""
    for _ in range(50):
        with socket.socket() as s1, socket.socket() as s2:
            s1.bind((str(A), 0))
            port = int(s1.getsockname()[1])
            try:
                s2.bind((str(B), port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")


def side_config(me: Any, other: Any, port: int, router_id: str, **kw: Any) -> PeerConfig:
    asn = {A: 64512, B: 64513}
    return PeerConfig(
        my_asn=asn[me], peer_asn=asn[other], peer_address=other, peer_port=port, source_address=me,
        router_id=IPv4Address(router_id), connect_time=1.0, hold_time=30, **kw,
    )  # fmt: skip


@asynccontextmanager
async def side(config: PeerConfig, port: int) -> AsyncIterator[tuple[BGPSession, BGPListener]]:
    """A session and the listener that hands it its peer's connections, on ``config.source_address``."""
    session = BGPSession(config)
    listener = BGPListener(lambda peer, local: peer_of({"x": session}, peer, local), port=port,
                           host4=str(config.source_address), host6=None)  # fmt: skip
    assert listener.start() == []
    try:
        yield session, listener
    finally:
        await listener.close()
        await session.close("test over")


async def until(cond: Any, what: str, timeout: float = 10.0) -> None:
    await wait_until_async(cond, timeout, what, interval=0.02)


def surviving_connection(session: BGPSession) -> tuple[Any, Any]:
    """(local, peer) socket address of the session's TCP connection."""
    link = session._link
    assert link is not None and link.transport is not None
    return link.transport.get_extra_info("sockname"), link.transport.get_extra_info("peername")


def accept_now(server: socket.socket) -> socket.socket:
    server.setblocking(False)
    conn, _ = server.accept()
    return conn


@pytest.mark.parametrize(("a_id", "b_id"), [("1.1.1.1", "2.2.2.2"), ("2.2.2.2", "1.1.1.1"), ("5.5.5.5", "5.5.5.5")])
def test_crossing_dials_keep_the_connection_of_the_higher_identifier(a_id: str, b_id: str) -> None:
    """Both dials complete before either side hands over the other's connection (the test plays the listener, so
    the crossing happens every time, whatever the load): one connection is left, the same on both sides, the one
    dialled by the higher identifier (equal: the higher AS), and it came up once."""

    async def main() -> None:
        port = shared_port()
        with socket.create_server((str(A), port)) as server_a, socket.create_server((str(B), port)) as server_b:
            a = BGPSession(side_config(A, B, port, a_id))
            b = BGPSession(side_config(B, A, port, b_id))
            try:
                a.start()
                b.start()
                await until(lambda: a._link is not None and b._link is not None, "both dials connected")
                a.accept(accept_now(server_a))  # B's dial, beside A's own connection
                b.accept(accept_now(server_b))
                await until(lambda: a.is_established and b.is_established, "both sides established")
                # The first side to decide closes the loser with cease 7; the other may learn it from that NOTIFICATION.
                assert a.collisions + b.collisions >= 1
                a_conn, b_conn = surviving_connection(a), surviving_connection(b)
                assert a_conn == (b_conn[1], b_conn[0])
                b_kept = IPv4Address(b_id) > IPv4Address(a_id) or (a_id == b_id and 64513 > 64512)
                assert a.fsm.inbound is b_kept and b.fsm.inbound is not b_kept
                assert a_conn[1 if b_kept else 0][1] != port  # the dialling side's end is an ephemeral port
                assert a.counters.established_transitions == b.counters.established_transitions == 1
            finally:
                await a.close("test over")
                await b.close("test over")

    asyncio.run(main())


def test_passive_session_never_dials_and_takes_the_peers_connection() -> None:
    async def main() -> None:
        port = shared_port()
        async with side(side_config(A, B, port, "1.1.1.1", passive=True), port) as (a, _), side(
            side_config(B, A, port, "2.2.2.2"), port
        ) as (b, b_listener):
            a.start()
            await until(lambda: a.state is BGPState.ACTIVE, "the passive session waiting")
            b.start()
            await until(lambda: a.is_established and b.is_established, "both sides established")
            assert a.connect_attempts == 0 and a.fsm.inbound and not b.fsm.inbound
            assert a.collisions == b.collisions == 0

    asyncio.run(main())


def test_a_connection_from_no_configured_peer_is_closed() -> None:
    async def main() -> None:
        port = shared_port()
        async with side(side_config(A, B, port, "1.1.1.1", passive=True), port) as (a, listener):
            a.start()
            reader, writer = await asyncio.open_connection(str(A), port, local_addr=("127.0.0.3", 0))
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed without a word
            writer.close()
            assert listener.refused == 1 and a.inbound_connections == 0 and a.state is BGPState.ACTIVE

    asyncio.run(main())


def test_a_silent_inbound_connection_is_closed_after_inbound_open_time() -> None:
    async def main() -> None:
        port = shared_port()
        config = side_config(A, B, port, "1.1.1.1", passive=True, inbound_open_time=0.5)
        async with side(config, port) as (a, _):
            a.start()
            reader, writer = await asyncio.open_connection(str(A), port, local_addr=(str(B), 0))
            data = await asyncio.wait_for(reader.read(), 20)  # our OPEN, then the hold-timer NOTIFICATION, then EOF
            writer.close()
            msgs = [decode_message(m) for m in split_messages(bytearray(data))]
            assert isinstance(msgs[0], OpenMessage)
            assert isinstance(msgs[-1], NotificationMessage) and msgs[-1].code == 4
            await until(lambda: a.state is BGPState.ACTIVE, "the passive session waiting again")

    asyncio.run(main())
