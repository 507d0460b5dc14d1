"""A BFDManager, alone or behind a BGPSpeaker, in a network namespace, for the netns tests and the bench.

Started as ``ip netns exec NS python -m tests.bfd.bfd_proc '<json>'`` with ``{"peer": ip, "local": ip|null,
"profile": {BFDProfile fields}, "multihop": bool, "bgp": {...} | absent}``. Without ``bgp`` it runs one BFD
session through :meth:`BFDManager.add_peer`. With ``bgp`` (``{"my_asn", "peer_asn", "router_id", "hold_time",
"routes": [prefix, ...]}``) it runs :class:`~ironlb.bgp.speaker.BGPSpeaker` with one peer naming the profile, and
BFD plugged in through :class:`~ironlb.bfd.speaker.SpeakerBFD`: the real speaker integration.

Prints JSON lines: ``{"ready": true}``, ``{"bfd": true|false, "t": monotonic, "diag": n, "remote_diag": n}``, ``{"bgp": "established"|"down",
"t": ...}`` and, on ``{"cmd": "info"}``, ``{"info": {...}}``. ``{"cmd": "close"}`` or EOF on stdin stops it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from dataclasses import asdict
from ipaddress import ip_network
from typing import Any

from prometheus_client import CollectorRegistry

from ironlb.bfd import BFDManager, BFDMetrics, BFDPeerHandle
from ironlb.bfd.fsm import BFDAuth
from ironlb.bfd.speaker import SpeakerBFD
from ironlb.bfd.wire import AuthType
from ironlb.bgp.attributes import Attributes
from ironlb.bgp.fsm import Established, Event, SessionDown
from ironlb.bgp.metrics import BGPMetrics
from ironlb.bgp.speaker import BGPSpeaker
from ironlb.config.types import BFDProfile, Peer
from tests.support.jsonchild import emit, serve


def on_bgp_event(name: str, event: Event) -> None:
    if isinstance(event, Established):
        emit({"bgp": "established", "t": time.monotonic()})
    elif isinstance(event, SessionDown):
        emit({"bgp": "down", "reason": event.reason, "t": time.monotonic()})


SESSIONS: list[BFDManager] = []


def on_bfd(up: bool) -> None:
    """The callback's value, with the session's diagnostics at that moment (the local one says why it went Down)."""
    line: dict[str, Any] = {"bfd": up, "t": time.monotonic()}
    handles = SESSIONS[0].peers() if SESSIONS else []
    if handles:
        line["diag"] = int(handles[0].session.local_diag)
        line["remote_diag"] = handles[0].session.remote.diag
    emit(line)


async def main() -> None:
    cfg = json.loads(sys.argv[1])
    if cfg.get("log"):
        logging.basicConfig(filename=cfg["log"], level=logging.DEBUG, format="%(created).3f %(name)s %(message)s")
    profile = BFDProfile.from_dict(cfg["profile"])
    manager = BFDManager(metrics=BFDMetrics(None))
    await manager.start()
    SESSIONS.append(manager)
    speaker: BGPSpeaker | None = None
    if cfg.get("bgp"):
        b = cfg["bgp"]
        speaker = BGPSpeaker(
            "node",
            metrics=BGPMetrics(CollectorRegistry()),
            bfd_factory=SpeakerBFD(manager, observer=lambda _peer, up: on_bfd(up)),
            on_event=on_bgp_event,
        )
        peer = Peer(
            name="router",
            my_asn=b["my_asn"],
            peer_asn=b["peer_asn"],
            address=cfg["peer"],
            source_address=cfg.get("local") or "",
            hold_time=b.get("hold_time", 90),
            connect_time=b.get("connect_time", 2),
            router_id=b.get("router_id", ""),
            bfd_profile=profile.name,
            ebgp_multihop=cfg.get("multihop", False),
        )
        routes = {ip_network(p): Attributes() for p in b.get("routes", [])}
        await speaker.update([peer], {peer.name: routes}, bfd_profiles=[profile])
    else:
        auth = None
        if cfg.get("auth"):  # {"type": 4|5, "key_id": n, "key": hex}: the test makes the key up
            a = cfg["auth"]
            auth = BFDAuth(AuthType(a["type"]), a["key_id"], bytes.fromhex(a["key"]))
        manager.add_peer(
            cfg["peer"], cfg.get("local"), profile, multihop=cfg.get("multihop", False), on_change=on_bfd, auth=auth
        )

    def handle(cmd: dict[str, Any]) -> dict[str, Any] | None:
        if cmd["cmd"] != "info":
            return None
        handles: list[BFDPeerHandle] = manager.peers()
        info: dict[str, Any] = {}
        if handles:
            info = asdict(handles[0].info())
            info["state"] = handles[0].state.name
            info["remote_state"] = handles[0].session.remote.state.name
        return {"info": info}

    await serve(handle)
    if speaker is not None:
        await speaker.close(graceful_restart=False)
    manager.close()
    emit({"closed": True})


if __name__ == "__main__":
    asyncio.run(main())
