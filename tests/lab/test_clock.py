"""The virtual clock: sleeps take no real time, timers fire in order and a hair late, real I/O is not overtaken."""

from __future__ import annotations

import asyncio
import socket
import time

from tests.support.clock import LATENESS, virtual_clock


@virtual_clock
async def test_an_hour_passes_at_once_and_timers_keep_their_order() -> None:
    loop = asyncio.get_running_loop()
    fired: list[tuple[str, float]] = []
    start, real0 = loop.time(), time.monotonic()
    loop.call_later(2.0, lambda: fired.append(("b", loop.time() - start)))
    loop.call_later(1.0, lambda: fired.append(("a", loop.time() - start)))
    await asyncio.sleep(3600)
    assert time.monotonic() - real0 < 5
    assert [name for name, _ in fired] == ["a", "b"]
    assert 1.0 < fired[0][1] < 1.0 + 10 * LATENESS and 2.0 < fired[1][1] < 2.0 + 10 * LATENESS
    assert loop.time() - start > 3600


@virtual_clock
async def test_a_loopback_datagram_beats_a_later_timer() -> None:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Receiver(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"ping", ("127.0.0.1", port))
        start = loop.time()
        assert await asyncio.wait_for(got, timeout=1.0) == b"ping"
        assert loop.time() - start < 1.0
    finally:
        transport.close()
