"""One BGP session in a namespace whose dial crosses the router's on purpose, for ``test_collision_frr.py``.

Started as ``python -m tests.bgp.collision_proc '<json>'`` (``config``: :func:`speaker_proc.make_config` fields,
``listen``: the address to accept the router's connections on, port 179). The program plays the listener: it
holds the router's connection until it is asked for a round, so every round is a connection collision.

``{"cmd": "round"}``: take the router's next connection, start a new session (it dials the router at once) and
hand it the router's connection as soon as that dial is connected, as the speaker's listener would if the
router's connection came then (the session is still setting its own connection up, before its OPEN); answers ``{"round": {...}}`` once the session is
Established with no second connection left (further connections of the router go to the session, as from the
speaker's listener), or ``{"round": {"error": ...}}``. ``{"cmd": "stop"}``: drop the
session's connection (a bare TCP close: the router's start timer stays at its minimum) and close it; answers
``{"stopped": true}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
from typing import Any

from ironlb.bgp.session import BGPSession
from tests.bgp.speaker_proc import make_config
from tests.support.jsonchild import emit, serve

ROUND_TIMEOUT = 30.0


class Rounds:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.config = make_config(raw["config"])
        self.server = socket.create_server((raw["listen"], 179), family=socket.AF_INET)
        self.server.setblocking(False)
        self.session: BGPSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.forwarder: asyncio.Task[None] | None = None

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def round(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(ROUND_TIMEOUT):
                conn, _ = await loop.sock_accept(self.server)
                session = self.session = BGPSession(self.config)
                session.start()
                while session._link is None:  # our dial is connecting: FRR's connection comes once it is up
                    await asyncio.sleep(0.0001)
                session.accept(conn)
                crossed = session._candidate is not None  # our dial was up: two connections to settle
                self.forwarder = loop.create_task(self.forward(session))
                while not (session.is_established and session._candidate is None):
                    await asyncio.sleep(0.005)
        except TimeoutError:
            emit({"round": {"error": f"not established alone within {ROUND_TIMEOUT}s"}})
            return
        counters = session.counters
        emit({"round": {
            "established": counters.established_transitions,
            "crossed": crossed,
            "collisions": session.collisions,
            "inbound": session.fsm.inbound,
            "notifications_received": counters.notifications_received,
        }})  # fmt: skip

    async def forward(self, session: BGPSession) -> None:
        """After the crossing, the router's further connections go to the session, as the speaker's listener's do."""
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self.server)
            session.accept(conn)

    async def stop(self) -> None:
        if self.forwarder is not None:
            self.forwarder.cancel()
            self.forwarder = None
        session, self.session = self.session, None
        if session is not None:
            session.drop_connection("round over")
            await session.close("round over")
        emit({"stopped": True})


async def main() -> None:
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s.%(msecs)03d %(message)s",
                        datefmt="%H:%M:%S")
    rounds = Rounds(json.loads(sys.argv[1]))

    def handle(cmd: dict[str, Any]) -> dict[str, Any] | None:
        if cmd["cmd"] == "round":
            rounds.spawn(rounds.round())
        elif cmd["cmd"] == "stop":
            rounds.spawn(rounds.stop())
        return None

    await serve(handle)
    await rounds.stop()


if __name__ == "__main__":
    asyncio.run(main())
