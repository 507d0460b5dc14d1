"""A peer sending a full table at once does not hold the event loop: the burst is decoded in slices."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv4Network

from ironlb.bgp.session import FEED_BYTES, BGPSession
from ironlb.bgp.wire import UpdateMessage, encode_update

from .test_bgp_session import FakePeer, speaker, until

PREFIXES_PER_UPDATE = 800  # 5 bytes each: a message close to the 4096-byte maximum


def full_table(messages: int) -> bytes:
    out = bytearray()
    for m in range(messages):
        base = (10 << 24) + m * PREFIXES_PER_UPDATE
        nlri = tuple(IPv4Network((base + i, 32)) for i in range(PREFIXES_PER_UPDATE))
        out += encode_update(
            UpdateMessage(nlri=nlri, origin=0, as_path=((2, (64513,)),), next_hop=IPv4Address("127.0.0.1")),
            four_octet_as=True,
        )
    return bytes(out)


async def test_a_burst_of_updates_is_decoded_with_turns_of_the_loop_between_slices() -> None:
    messages = 300
    burst = full_table(messages)  # built before the session exists: no hold timer runs meanwhile
    peer = FakePeer()
    port = await peer.start()
    s = BGPSession(speaker(port, hold_time=90))
    s.start()
    seen: set[int] = set()  # UPDATE counts another task saw: one per turn of the loop it got
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            seen.add(s.counters.updates_received)
            await asyncio.sleep(0)

    try:
        await s.wait_established(30)
        assert len(burst) > 64 * FEED_BYTES
        before = s.counters.updates_received
        tick = asyncio.get_running_loop().create_task(ticker())
        transport = peer.connections[-1].transport
        assert transport is not None
        transport.write(burst)
        await until(lambda: s.counters.updates_received - before >= messages, 120)
        stop.set()
        await tick
        # Other tasks ran between slices of FEED_BYTES (about 4 UPDATEs), not only between socket reads of up
        # to 256 KiB (about 64): they saw many intermediate counts.
        during = {n for n in seen if before < n < before + messages}
        assert len(during) >= messages // 16, sorted(during)
        assert s.is_established
    finally:
        stop.set()
        await s.close("test over")
        await peer.stop()
