"""SpeakerBFD, the bfd_factory given to BGPSpeaker: BFD failures become on_down(reason); bad profiles never break BGP."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address

import pytest

from ironlb.bfd.service import BFDManager
from ironlb.bfd.speaker import SpeakerBFD
from ironlb.bfd.wire import BFDState, ControlPacket
from ironlb.bgp.config import PeerConfig
from ironlb.config.types import BFDProfile
from tests.bfd.test_bfd_service import free_udp_ports, wait_for
from tests.support.clock import virtual_clock

FAST = BFDProfile(name="fast", receive_interval=30, transmit_interval=30, detect_multiplier=3)


@dataclass(frozen=True)
class Request:
    profile: BFDProfile
    config: PeerConfig
    on_down: Callable[[str], None]
    multihop: bool = False


@virtual_clock
async def test_failure_calls_on_down_and_close_removes_the_session() -> None:
    pa, pb = free_udp_ports(2)
    manager = BFDManager(single_hop_port=pa, peer_single_hop_port=pb)
    await manager.start()
    downs: list[str] = []
    seen: list[tuple[str, bool]] = []
    try:
        factory = SpeakerBFD(manager, observer=lambda peer, up: seen.append((peer, up)))
        config = PeerConfig(my_asn=64512, peer_asn=64513, peer_address=ip_address("127.0.0.1"))
        handle = factory(Request(FAST, config, downs.append))
        assert handle.handle is not None
        discr = handle.handle.session.local_discr
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
            s.sendto(
                ControlPacket(
                    state=BFDState.INIT, my_discriminator=5, your_discriminator=discr, desired_min_tx=30_000
                ).encode(),
                ("127.0.0.1", pa),
            )
            await wait_for(lambda: seen == [("127.0.0.1", True)], 1.0)
        # Silence: 3 x 30 ms later the speaker is told to drop the BGP session.
        await wait_for(lambda: downs != [], 1.0)
        assert downs == ["BFD control detection expired"]
        await handle.close()
        await handle.close()
        assert manager.peers() == []
    finally:
        manager.close()


@virtual_clock
async def test_refused_profile_runs_bgp_without_bfd(caplog: pytest.LogCaptureFixture) -> None:
    manager = BFDManager(single_hop_port=free_udp_ports(1)[0])
    await manager.start()
    try:
        config = PeerConfig(my_asn=64512, peer_asn=64513, peer_address=ip_address("127.0.0.1"))
        with caplog.at_level(logging.ERROR):
            handle = SpeakerBFD(manager)(Request(BFDProfile(name="e", detect_multiplier=0), config, lambda _r: None))
        assert handle.handle is None and manager.peers() == []
        assert "invalid detect multiplier" in caplog.text
        await asyncio.wait_for(handle.close(), 1.0)
    finally:
        manager.close()
