"""The asyncio shell on loopback: two managers talking to each other over real UDP sockets (no root needed).

The tests run on a virtual loop clock (tests/support/clock.py): detection times and grace periods are asserted
exactly, whatever the load of the machine."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ironlb.bfd.fsm import BFDConfigError
from ironlb.bfd.metrics import (
    CONTROL_PACKET_INPUT,
    CONTROL_PACKET_OUTPUT,
    SESSION_DOWN_EVENTS,
    SESSION_UP,
    SESSION_UP_EVENTS,
    ZEBRA_NOTIFICATIONS,
    BFDMetrics,
)
from ironlb.bfd.service import SOURCE_PORT_MAX, SOURCE_PORT_MIN, BFDManager, received_ttl
from ironlb.bfd.wire import BFDState, ControlPacket
from ironlb.config.types import BFDProfile
from tests.support.clock import virtual_clock
from tests.support.waits import wait_until_async

A, B = "127.0.0.1", "127.0.0.2"
# 200 ms x 3, not BFD's fastest: these tests check behaviour, and a loaded machine must not make a session flap.
# Detection times are measured in bench/bfd_failover.py.
FAST = BFDProfile(name="fast", receive_interval=200, transmit_interval=200, detect_multiplier=3)


def free_udp_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("0.0.0.0", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Pair:
    def __init__(self) -> None:
        pa, pb, ma, mb = free_udp_ports(4)
        self.reg_a, self.reg_b = CollectorRegistry(), CollectorRegistry()
        self.a = BFDManager(
            metrics=BFDMetrics(self.reg_a),
            single_hop_port=pa,
            peer_single_hop_port=pb,
            multi_hop_port=ma,
            peer_multi_hop_port=mb,
        )
        self.b = BFDManager(
            metrics=BFDMetrics(self.reg_b),
            single_hop_port=pb,
            peer_single_hop_port=pa,
            multi_hop_port=mb,
            peer_multi_hop_port=ma,
        )
        self.changes_a: list[tuple[float, bool]] = []
        self.changes_b: list[tuple[float, bool]] = []

    async def start(self, profile: BFDProfile = FAST, multihop: bool = False) -> None:
        await self.a.start()
        await self.b.start()
        loop = asyncio.get_running_loop()
        self.ha = self.a.add_peer(
            B, A, profile, multihop=multihop, on_change=lambda up: self.changes_a.append((loop.time(), up))
        )
        self.hb = self.b.add_peer(
            A, B, profile, multihop=multihop, on_change=lambda up: self.changes_b.append((loop.time(), up))
        )

    def close(self) -> None:
        self.a.close()
        self.b.close()


async def wait_for(cond: Callable[[], object], timeout: float) -> None:
    """The loop-clock wait of these tests: polls every 5 ms of the (virtual) clock."""
    await wait_until_async(cond, timeout, "the BFD condition", interval=0.005)


@pytest.mark.parametrize("multihop", [False, True])
@virtual_clock
async def test_up_then_silent_peer_detected(multihop: bool) -> None:
    p = Pair()
    try:
        await p.start(multihop=multihop)
        await wait_for(lambda: p.ha.is_up and p.hb.is_up, 10.0)
        assert [up for _, up in p.changes_a] == [True] and [up for _, up in p.changes_b] == [True]
        sport = p.ha._sock.getsockname()[1]
        assert SOURCE_PORT_MIN <= sport <= SOURCE_PORT_MAX
        assert p.ha._sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 255
        info = p.a.sessions()[0]
        assert info.state is BFDState.UP and info.transmit_interval_ms == 200 and info.detection_time_ms == 600
        await asyncio.sleep(1.5)  # past the Poll sequence that ends slow start
        # Silence b without telling a (a crashed process would do the same).
        p.b._flush = lambda handle: handle.session.outgoing() and None  # type: ignore[method-assign]
        t0 = asyncio.get_running_loop().time()
        await wait_for(lambda: any(not up for _, up in p.changes_a), 10.0)
        elapsed = p.changes_a[-1][0] - t0
        assert 0 < elapsed < 5, elapsed  # detected after the silence began (3 x 200 ms after the last packet)
        assert p.ha.state is BFDState.DOWN
        m = p.a.metrics
        assert m is not None
        assert m.value(SESSION_UP, B) == 0.0
        assert m.value(SESSION_UP_EVENTS, B) == 1.0 and m.value(SESSION_DOWN_EVENTS, B) == 1.0
        assert m.value(ZEBRA_NOTIFICATIONS, B) == 2.0
        assert (m.value(CONTROL_PACKET_INPUT, B) or 0) > 5 and (m.value(CONTROL_PACKET_OUTPUT, B) or 0) > 5
    finally:
        p.close()


@virtual_clock
async def test_remove_peer_sends_admin_down_without_failure_callback() -> None:
    p = Pair()
    try:
        await p.start()
        await wait_for(lambda: p.ha.is_up and p.hb.is_up, 10.0)
        p.b.remove_peer(p.hb)
        await wait_for(lambda: p.ha.state is BFDState.DOWN, 10.0)
        assert p.ha.session.remote.state is BFDState.ADMIN_DOWN
        assert [up for _, up in p.changes_a] == [True]  # AdminDown is not a path failure (RFC 5882 §3.2)
        assert p.b.peers() == []
        assert p.b.metrics is not None and p.b.metrics.value(SESSION_UP, A) is None
        p.b.remove_peer(p.hb)  # idempotent
    finally:
        p.close()


@virtual_clock
async def test_metrics_exposition_names() -> None:
    p = Pair()
    try:
        await p.start()
        await wait_for(lambda: p.ha.is_up, 10.0)
        text = generate_latest(p.reg_a).decode()
        for name in (
            "metallb_bfd_session_up",
            "metallb_bfd_control_packet_input",
            "metallb_bfd_control_packet_output",
            "metallb_bfd_echo_packet_input",
            "metallb_bfd_echo_packet_output",
            "metallb_bfd_session_up_events",
            "metallb_bfd_session_down_events",
        ):
            assert f'{name}{{peer="{B}"}}' in text, name
        assert "_total" not in text
        assert f'metallb_bfd_session_up{{peer="{B}"}} 1.0' in text
        assert "# TYPE metallb_bfd_session_up gauge" in text
    finally:
        p.close()


@virtual_clock
async def test_api_errors() -> None:
    m = BFDManager(single_hop_port=free_udp_ports(1)[0])
    with pytest.raises(RuntimeError):
        m.add_peer(B, None, FAST)
    await m.start()
    try:
        with pytest.raises(BFDConfigError, match="invalid detect multiplier"):
            m.add_peer(B, None, BFDProfile(name="bad", detect_multiplier=0))
        h = m.add_peer(B, None, FAST)
        with pytest.raises(ValueError, match="already exists"):
            m.add_peer(B, A, FAST)
        with pytest.raises(ValueError, match="different families"):
            m.add_peer("::1", A, FAST)
        m.update_peer(h, BFDProfile(name="slow", transmit_interval=500))
        assert h.session.config.transmit_interval == 500
    finally:
        m.close()
    assert m.peers() == []


@virtual_clock
async def test_bad_ttl_and_garbage_are_dropped() -> None:
    port = free_udp_ports(1)[0]
    m = BFDManager(single_hop_port=port, peer_single_hop_port=free_udp_ports(1)[0])
    await m.start()
    try:
        h = m.add_peer(A, None, FAST)
        pkt = ControlPacket(state=BFDState.DOWN, my_discriminator=77).encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64)  # not 255: GTSM drops it
            s.sendto(pkt, (A, port))
            s.sendto(b"\x00garbage", (A, port))
            await wait_for(lambda: h.session.counters.dropped == 1 and m.dropped == 1, 10.0)
            assert h.state is BFDState.DOWN
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
            s.sendto(pkt, (A, port))
            await wait_for(lambda: h.state is BFDState.INIT, 10.0)
    finally:
        m.close()


def test_received_ttl_parsing() -> None:
    four = struct.pack("=i", 255)
    assert received_ttl([(socket.IPPROTO_IP, socket.IP_TTL, four)]) == 255
    assert received_ttl([(socket.IPPROTO_IPV6, 52, struct.pack("=i", 7))]) == 7
    assert received_ttl([]) is None


@virtual_clock
async def test_remote_reset_waits_for_grace_then_reports() -> None:
    pa, pb = free_udp_ports(2)
    m = BFDManager(single_hop_port=pa, peer_single_hop_port=pb, restart_grace=2.0)
    await m.start()
    changes: list[bool] = []
    try:
        h = m.add_peer(A, None, FAST, on_change=changes.append)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
            s.sendto(
                ControlPacket(
                    state=BFDState.INIT, my_discriminator=77, your_discriminator=h.session.local_discr, detect_mult=50
                ).encode(),
                (A, pa),
            )
            await wait_for(lambda: changes == [True], 10.0)
            # The peer deletes its session the FRR way (Down, diag 3): no failure reported at once...
            s.sendto(
                ControlPacket(
                    state=BFDState.DOWN,
                    my_discriminator=77,
                    your_discriminator=h.session.local_discr,
                    diag=3,
                    detect_mult=3,  # grace = max(restart_grace, 3 x detection time) = max(2 s, 3 x 3 x 200 ms)
                    desired_min_tx=10_000,
                ).encode(),
                (A, pa),
            )
            await wait_for(lambda: h.state is not BFDState.UP, 10.0)
            await asyncio.sleep(0.1)
            assert changes == [True]
            # ... but it never comes back: reported after the grace time.
            await wait_for(lambda: changes == [True, False], 10.0)
    finally:
        m.close()
