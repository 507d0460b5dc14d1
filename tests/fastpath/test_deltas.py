"""What crosses the channel to the fast process is what changed, and the fast process rebuilds the whole from it."""

from __future__ import annotations

import random
import socket
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from ironlb.fastproc.channel import Decoder, encode
from ironlb.fastproc.child import FastChild
from ironlb.fastproc.parent import FastProcess, FastProcessOptions, RemoteResponder
from ironlb.layer2 import ALL, AllInterfaces
from ironlb.layer2.metrics import REQUESTS_RECEIVED, RESPONSES_SENT, Layer2Metrics


class _Capture(FastProcess):
    """A FastProcess that keeps what it would send (no child)."""

    def __init__(self) -> None:
        super().__init__(FastProcessOptions())
        self.sent: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.sent.append(Decoder().feed(encode(message))[0])  # through the real framing


async def test_the_child_rebuilds_every_decision_from_the_deltas() -> None:
    rng = random.Random(7)
    process = _Capture()
    responder = RemoteResponder(process)
    ours, theirs = socket.socketpair()
    try:
        child = FastChild(theirs)  # no responder started: only its copy of the decision is looked at
        ips = [f"10.0.0.{i}" for i in range(1, 40)]
        for _ in range(200):
            choices: list[list[str] | AllInterfaces] = [ALL, ["eth0"], ["eth1", "eth0"]]
            decision: dict[str | IPv4Address | IPv6Address, list[str] | AllInterfaces] = {
                ip: rng.choice(choices) for ip in rng.sample(ips, rng.randrange(30))
            }
            hand_over = set(rng.sample(ips, rng.randrange(10))) - decision.keys()
            responder.set_announced(decision, hand_over)
            message = process.sent[-1]
            assert "layer2" not in message  # never the whole set again
            child._handle(message, 0.0)
            want = {
                str(ip): (() if isinstance(ifs, AllInterfaces) else tuple(sorted(ifs))) for ip, ifs in decision.items()
            }
            assert child._decided == want
            assert child.guard.decision == want
            assert child._hand_over == hand_over
        responder.set_announced({ip: ALL for ip in ips[:3]})
        responder.set_announced({ip: ALL for ip in ips[:3]})
        assert process.sent[-1]["set"] == {} and process.sent[-1]["drop"] == []  # nothing changed: nothing sent
    finally:
        ours.close()
        theirs.close()


def test_layer2_metrics_travel_as_changes() -> None:
    fast, heavy = Layer2Metrics(None), Layer2Metrics(None)
    for i in range(1000):
        fast.request_received(f"10.0.{i // 250}.{i % 250}")
    heavy.update(fast.take_changes())
    assert heavy.snapshot() == fast.snapshot()
    assert fast.take_changes() == {}  # idle: nothing to send
    fast.response_sent("10.0.0.1")
    fast.request_received("10.0.0.1")
    changes = fast.take_changes()
    assert changes == {REQUESTS_RECEIVED: {"10.0.0.1": 2.0}, RESPONSES_SENT: {"10.0.0.1": 1.0}}
    heavy.update(changes)
    assert heavy.snapshot() == fast.snapshot()
