"""Two in-memory FSMs wired back to back, with simulated time."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address
from typing import Any

from ironlb.bgp.config import PeerConfig
from ironlb.bgp.fsm import BGPStateMachine, Event
from ironlb.bgp.wire import Message, decode_message, split_messages

A_ADDR = ip_address("10.0.0.1")
B_ADDR = ip_address("10.0.0.2")


def config(my_asn: int = 64512, peer_asn: Any = 64513, **kw: Any) -> PeerConfig:
    """A PeerConfig with test defaults."""
    kw.setdefault("peer_address", B_ADDR)
    kw.setdefault("router_id", IPv4Address("1.1.1.1"))
    return PeerConfig(my_asn=my_asn, peer_asn=peer_asn, **kw)


@dataclass
class Side:
    """One FSM plus everything it emitted."""

    fsm: BGPStateMachine
    events: list[Event] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    """Every message this side wrote, as raw bytes."""
    four_octet_as: bool = True

    def messages(self) -> list[Message]:
        return [decode_message(m, four_octet_as=self.four_octet_as) for m in self.sent]

    def events_of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class Pair:
    """A (the speaker under test) and B (a peer, also our FSM) over a fake TCP link."""

    def __init__(self, a: PeerConfig, b: PeerConfig, now: float = 1000.0) -> None:
        self.a = Side(BGPStateMachine(a))
        self.b = Side(BGPStateMachine(b))
        self.now = now
        self._buf = {id(self.a): bytearray(), id(self.b): bytearray()}

    def connect(self) -> None:
        self.a.fsm.connection_made(A_ADDR, B_ADDR, self.now)
        self.b.fsm.connection_made(B_ADDR, A_ADDR, self.now)
        self.pump()

    def _collect(self, side: Side) -> bytes:
        data = side.fsm.data_to_send()
        if data:
            buf = self._buf[id(side)]
            buf += data
            side.sent.extend(split_messages(buf))
        return data

    def pump(self) -> None:
        """Deliver bytes both ways until neither side has anything to say."""
        for _ in range(10_000):
            da = self._collect(self.a)
            db = self._collect(self.b)
            if not da and not db:
                return
            if da:
                self.b.events.extend(self.b.fsm.data_received(da, self.now))
            if db:
                self.a.events.extend(self.a.fsm.data_received(db, self.now))
        raise AssertionError("pump did not settle")

    def advance(self, seconds: float, *, b_silent: bool = False) -> None:
        """Move simulated time, firing timers in deadline order.

        With ``b_silent`` B neither runs timers nor gets anything delivered to A (a dead peer);
        what A sends is still delivered to B.
        """
        end = self.now + seconds
        while True:
            cands = [self.a.fsm.next_deadline()] + ([] if b_silent else [self.b.fsm.next_deadline()])
            deadlines = [d for d in cands if d is not None]
            nxt = min(deadlines) if deadlines else None
            if nxt is None or nxt > end:
                break
            self.now = nxt
            self.a.events.extend(self.a.fsm.timer(self.now))
            if b_silent:
                da = self._collect(self.a)
                if da:
                    self.b.events.extend(self.b.fsm.data_received(da, self.now))
                self._collect(self.b)
            else:
                self.b.events.extend(self.b.fsm.timer(self.now))
                self.pump()
        self.now = end
