"""Runs one BGPSession inside a network namespace for the netns tests.

Started as ``ip netns exec NS python -m tests.bgp.speaker_proc '<json config>'``.  It prints
JSON lines (``{"ready": true}``, then one per FSM event) and obeys JSON-line
commands on stdin: ``{"cmd": "routes", "routes": {prefix: {...}}}``,
``{"cmd": "close"}``.  EOF on stdin also closes the session.
"""

from __future__ import annotations

import asyncio
import json
import sys
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

from ironlb.bgp.attributes import Attributes, parse_community, parse_large_community
from ironlb.bgp.config import PeerConfig
from ironlb.bgp.fsm import Established, Event, NotificationReceived, SessionDown
from ironlb.bgp.session import BGPSession
from ironlb.bgp.wire import Network
from tests.support.jsonchild import emit, serve


def on_event(event: Event) -> None:
    if isinstance(event, Established):
        emit({"event": "established", "hold": event.hold_time, "gr": event.graceful_restart})
    elif isinstance(event, SessionDown):
        emit({"event": "down", "reason": event.reason})
    elif isinstance(event, NotificationReceived):
        emit({"event": "notification", "code": event.code, "subcode": event.subcode})


def parse_routes(spec: dict[str, dict[str, Any]]) -> dict[Network, Attributes]:
    return {
        ip_network(prefix): Attributes(
            local_pref=a.get("local_pref"),
            communities=tuple(parse_community(c) for c in a.get("communities", [])),
            large_communities=tuple(parse_large_community(c) for c in a.get("large", [])),
        )
        for prefix, a in spec.items()
    }


def make_config(raw: dict[str, Any]) -> PeerConfig:
    kw = dict(raw)
    kw["peer_address"] = ip_address(kw["peer_address"])
    for key, cls in (("router_id", IPv4Address), ("next_hop_ipv6", IPv6Address), ("next_hop_ipv4", IPv4Address)):
        if kw.get(key):
            kw[key] = cls(kw[key])
    if kw.get("source_address"):
        kw["source_address"] = ip_address(kw["source_address"])
    return PeerConfig(**kw)


async def main() -> None:
    session = BGPSession(make_config(json.loads(sys.argv[1])), on_event=on_event)
    session.start()

    def handle(cmd: dict[str, Any]) -> dict[str, Any] | None:
        if cmd["cmd"] != "routes":
            return None
        session.set_routes(parse_routes(cmd["routes"]))
        return {"ok": True}

    await serve(handle)
    await session.close("test finished")
    emit({"closed": True})


if __name__ == "__main__":
    asyncio.run(main())
