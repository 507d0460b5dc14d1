"""An in-process BGP peer on 127.0.0.1 for speaker tests: our own FSM on the passive side, plus a RIB.

It records the Adj-RIB-In it receives (prefix -> decoded UpdateMessage) and counts connections, so tests can
check what the speaker manager sends and that sessions are not reset, without namespaces or root.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, ip_address

from ironlb.bgp.config import PeerConfig
from ironlb.bgp.fsm import BGPStateMachine
from ironlb.bgp.wire import MessageType, Network, UpdateMessage, decode_message, split_messages


class LoopbackPeer:
    def __init__(self, my_asn: int = 64513, peer_asn: int = 64512, *, graceful_restart: bool = False) -> None:
        self.my_asn = my_asn
        self.peer_asn = peer_asn
        self.graceful_restart = graceful_restart
        self.rib: dict[Network, UpdateMessage] = {}
        self.connections = 0
        self.notifications: list[tuple[int, int]] = []
        self.closed_without_notification = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.established = asyncio.Event()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        loop = asyncio.get_running_loop()
        cfg = PeerConfig(
            my_asn=self.my_asn,
            peer_asn=self.peer_asn,
            peer_address=ip_address("127.0.0.1"),
            router_id=IPv4Address("2.2.2.2"),
            hold_time=30,
            graceful_restart=self.graceful_restart,
        )
        fsm = BGPStateMachine(cfg)
        fsm.connection_made(ip_address("127.0.0.1"), ip_address("127.0.0.1"), loop.time())
        writer.write(fsm.data_to_send())
        buf = bytearray()
        got_notification = False
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                buf += data
                for raw in split_messages(buf):
                    if raw[18] == MessageType.UPDATE and fsm.negotiated is not None:
                        self._record(decode_message(raw, four_octet_as=fsm.negotiated.four_octet_as))
                    elif raw[18] == MessageType.NOTIFICATION:
                        got_notification = True
                        self.notifications.append((raw[19], raw[20]))
                    fsm.data_received(raw, loop.time())
                    if fsm.is_established:
                        self.established.set()
                writer.write(fsm.data_to_send())
        except (ConnectionError, OSError):
            pass
        finally:
            if not got_notification:
                self.closed_without_notification += 1
            self.established.clear()
            writer.close()

    def _record(self, msg: object) -> None:
        assert isinstance(msg, UpdateMessage)
        for p in msg.withdrawn:
            self.rib.pop(p, None)
        if msg.mp_unreach is not None:
            for p in msg.mp_unreach.withdrawn:
                self.rib.pop(p, None)
        for p in msg.nlri:
            self.rib[p] = msg
        if msg.mp_reach is not None:
            for p in msg.mp_reach.nlri:
                self.rib[p] = msg
