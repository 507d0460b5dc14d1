"""The BGP manager: Peer -> PeerConfig, session reuse, routes, status, metrics, shutdown, BFD hook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from ipaddress import IPv4Address, ip_address, ip_network

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from ironlb.bgp.attributes import Attributes
from ironlb.bgp.config import DynamicASN
from ironlb.bgp.metrics import BGPMetrics
from ironlb.bgp.speaker import BFDRequest, BGPSpeaker, peer_config
from ironlb.bgp.wire import IPV4_UNICAST, IPV6_UNICAST
from ironlb.cluster.labels import LabelSelector
from ironlb.config.types import BFDProfile, Peer
from tests.bgp.loopback_peer import LoopbackPeer
from tests.support.waits import wait_until_async

P1 = ip_network("192.0.2.1/32")
P2 = ip_network("192.0.2.0/24")


def test_peer_config_defaults_and_conversion() -> None:
    peer = Peer("r1", my_asn=64512, peer_asn=64513, address="10.0.0.1")
    cfg = peer_config(peer, "n1")
    assert cfg.hold_time == 90 and cfg.keepalive_time is None and cfg.connect_time == 120
    assert cfg.peer_address == ip_address("10.0.0.1") and cfg.peer_port == 179
    assert cfg.families == {IPV4_UNICAST} and cfg.router_id is None and cfg.node_name == "n1"
    assert cfg.password is None and not cfg.graceful_restart and cfg.name == "r1"
    full = Peer(
        "r2",
        my_asn=4200000001,
        dynamic_asn="external",
        address="fd00::1",
        port=1790,
        hold_time=9.0,
        keepalive_time=3.0,
        connect_time=5.0,
        router_id="1.2.3.4",
        password="s3cret",
        source_address="fd00::2",
        ebgp_multihop=True,
        enable_graceful_restart=True,
        dual_stack_address_family=True,
    )
    cfg = peer_config(full, "n1")
    assert cfg.peer_asn is DynamicASN.EXTERNAL and cfg.my_asn == 4200000001
    assert (cfg.hold_time, cfg.keepalive_time, cfg.connect_time) == (9, 3.0, 5.0)
    assert cfg.router_id == IPv4Address("1.2.3.4") and cfg.password == "s3cret"
    assert cfg.source_address == ip_address("fd00::2") and cfg.ebgp_multihop and cfg.graceful_restart
    assert cfg.families == {IPV4_UNICAST, IPV6_UNICAST} and cfg.label == "[fd00::1]:1790"
    # MetalLB allows keepalive == hold; the FSM then derives hold/3.
    assert peer_config(replace(full, keepalive_time=9.0), "n1").keepalive_time is None
    assert peer_config(replace(full, hold_time=0.0, keepalive_time=0.0), "n1").hold_time == 0


def test_unnumbered_peer_carries_both_families_over_the_interface() -> None:
    cfg = peer_config(Peer("r1", my_asn=1, peer_asn=2, interface="eth0"), "n1")
    assert cfg.interface == "eth0" and cfg.families == {IPV4_UNICAST, IPV6_UNICAST}
    assert cfg.label == "eth0:179"
    with pytest.raises(ValueError, match="longer than 15 bytes"):
        peer_config(Peer("r1", my_asn=1, peer_asn=2, interface="x" * 16), "n1")
    with pytest.raises(ValueError, match="neither peerAddress nor interface"):
        peer_config(Peer("r1", my_asn=1, peer_asn=2), "n1")


@pytest.fixture
async def router() -> AsyncIterator[LoopbackPeer]:
    peer = LoopbackPeer(graceful_restart=True)
    await peer.start()
    yield peer
    await peer.stop()


def lo_peer(router: LoopbackPeer, name: str = "r1", **kw: object) -> Peer:
    kw.setdefault("connect_time", 1.0)
    return Peer(name, my_asn=64512, peer_asn=64513, address="127.0.0.1", port=router.port, **kw)  # type: ignore[arg-type]


async def until(cond: Callable[[], object], timeout: float = 5.0) -> None:
    await wait_until_async(cond, timeout, "the speaker condition")


async def test_routes_status_metrics_and_withdrawal(router: LoopbackPeer) -> None:
    registry = CollectorRegistry()
    speaker = BGPSpeaker("n1", metrics=BGPMetrics(registry))
    peer = lo_peer(router)
    try:
        await speaker.update([peer], {"r1": {P1: Attributes(None, (65000 << 16 | 1,), ((1, 2, 3),))}})
        await until(lambda: P1 in router.rib)
        msg = router.rib[P1]
        assert msg.communities == (65000 << 16 | 1,) and msg.large_communities == ((1, 2, 3),)
        assert speaker.status() == [{"peer": "r1", "prefix": "192.0.2.1/32", "state": "advertised"}]
        assert speaker.peer_states() == [{"peer": "r1", "address": f"127.0.0.1:{router.port}", "state": "Established"}]
        label = f'peer="127.0.0.1:{router.port}"'
        text = generate_latest(registry).decode()
        assert f"metallb_bgp_session_up{{{label}}} 1.0" in text
        assert f"metallb_bgp_announced_prefixes_total{{{label}}} 1.0" in text
        assert f"metallb_bgp_pending_prefixes_total{{{label}}} 0.0" in text
        assert f"metallb_bgp_updates_total{{{label}}}" in text
        # Replace the table: one announcement, one withdrawal, same session.
        await speaker.update([peer], {"r1": {P2: Attributes()}})
        await until(lambda: set(router.rib) == {P2})
        await speaker.update([peer], {})
        await until(lambda: not router.rib)
        assert router.connections == 1 and speaker.sessions_created == 1
    finally:
        await speaker.close(graceful_restart=False)
    # A closed session's series are gone.
    assert "metallb_bgp_session_up{" not in generate_latest(registry).decode()
    await until(lambda: router.notifications == [(6, 2)])


async def test_identical_peer_keeps_its_session_changed_peer_is_replaced(router: LoopbackPeer) -> None:
    speaker = BGPSpeaker("n1", metrics=BGPMetrics(None))
    peer = lo_peer(router)
    try:
        await speaker.update([peer], {"r1": {P1: Attributes()}})
        await until(lambda: P1 in router.rib)
        first = speaker.sessions["r1"]
        for i in range(50):  # a burst of unrelated changes: routes only
            await speaker.update(
                [lo_peer(router)], {"r1": {P1: Attributes(), ip_network(f"198.51.100.{i}/32"): Attributes()}}
            )
        assert speaker.sessions["r1"] is first and router.connections == 1
        await speaker.update([lo_peer(router, hold_time=30.0)], {"r1": {P1: Attributes()}})
        assert speaker.sessions["r1"] is not first and speaker.sessions_created == 2
        await until(lambda: router.connections == 2 and P1 in router.rib)
        assert router.notifications == [(6, 2)]
    finally:
        await speaker.close(graceful_restart=False)


async def test_node_selectors_drop_the_session(router: LoopbackPeer) -> None:
    speaker = BGPSpeaker("n1", metrics=BGPMetrics(None))
    peer = lo_peer(router, node_selectors=(LabelSelector((("zone", "a"),)),))
    try:
        await speaker.update([peer], {"r1": {P1: Attributes()}}, node_labels={"zone": "a"})
        await until(lambda: P1 in router.rib)
        await speaker.update([peer], {"r1": {P1: Attributes()}}, node_labels={"zone": "b"})
        assert speaker.sessions == {}
        await until(lambda: not router.established.is_set())
    finally:
        await speaker.close()


async def test_status_before_established_shows_the_fsm_state() -> None:
    speaker = BGPSpeaker("n1", metrics=BGPMetrics(None))
    # Nobody listens on this port: the session stays in Connect/Active.
    peer = Peer("r1", my_asn=64512, peer_asn=64513, address="127.0.0.1", port=1, connect_time=1.0)
    try:
        await speaker.update([peer], {"r1": {P1: Attributes()}})
        await asyncio.sleep(0.05)
        (entry,) = speaker.status()
        assert entry["state"] in ("Idle", "Connect", "Active")
    finally:
        await speaker.close()


async def test_graceful_shutdown_sends_no_notification(router: LoopbackPeer) -> None:
    speaker = BGPSpeaker("n1", metrics=BGPMetrics(None))
    await speaker.update([lo_peer(router, enable_graceful_restart=True)], {"r1": {P1: Attributes()}})
    await until(lambda: P1 in router.rib)
    await speaker.close(graceful_restart=True)
    await until(lambda: router.closed_without_notification == 1)
    assert router.notifications == []


async def test_graceful_shutdown_without_gr_configured_sends_cease(router: LoopbackPeer) -> None:
    speaker = BGPSpeaker("n1", metrics=BGPMetrics(None))
    await speaker.update([lo_peer(router)], {"r1": {P1: Attributes()}})
    await until(lambda: P1 in router.rib)
    await speaker.close(graceful_restart=True)
    await until(lambda: router.notifications == [(6, 2)])


class FakeBFD:
    def __init__(self, request: BFDRequest) -> None:
        self.request = request
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def test_bfd_hook(router: LoopbackPeer) -> None:
    made: list[FakeBFD] = []

    def factory(req: BFDRequest) -> FakeBFD:
        made.append(FakeBFD(req))
        return made[-1]

    speaker = BGPSpeaker("n1", metrics=BGPMetrics(None), bfd_factory=factory)
    fast = BFDProfile("fast", receive_interval=100, transmit_interval=100)
    peer = lo_peer(router, bfd_profile="fast")
    try:
        await speaker.update([peer], {"r1": {P1: Attributes()}}, bfd_profiles=[fast])
        await until(lambda: P1 in router.rib)
        assert len(made) == 1 and made[0].request.profile == fast and made[0].request.peer == peer
        # Profile values change: new BFD handle, same BGP session.
        session = speaker.sessions["r1"]
        await speaker.update([peer], {"r1": {P1: Attributes()}}, bfd_profiles=[replace(fast, detect_multiplier=5)])
        assert len(made) == 2 and made[0].closed and speaker.sessions["r1"] is session
        # BFD down: the TCP connection is dropped at once, and the session comes back by itself.
        made[1].request.on_down("detection time expired")
        await until(lambda: router.connections == 2 and P1 in router.rib)
        assert router.notifications == []
    finally:
        await speaker.close(graceful_restart=False)
    assert made[1].closed
