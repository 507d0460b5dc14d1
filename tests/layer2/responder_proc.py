"""Helper process for the netns tests: runs a Responder in the current namespace.

Started with ``ip netns exec NS python -m tests.layer2.responder_proc [options]``. It reads one
JSON command per line on stdin and answers one JSON line on stdout:
``{"cmd": "set", "announced": {"10.0.0.1": "ALL" | ["eth0"]}}``,
``{"cmd": "metrics"}``, ``{"cmd": "interfaces"}``, ``{"cmd": "quit"}``; for hand-overs
``{"cmd": "release", "hand_over": [ip, ...], "timeout": s}``, ``{"cmd": "releasing"}`` (how many IPs are still
handed over) and ``{"cmd": "stall", "until": path}``: answers ``{"stalling": true}``, then holds the event loop
(as a busy or descheduled process does: no frame is read) until ``path`` exists, at most 60 s, then ``{"ok": true}``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from ironlb.layer2.metrics import GRATUITOUS_SENT, REQUESTS_RECEIVED, RESPONSES_SENT, Layer2Metrics
from ironlb.layer2.responder import ALL, AllInterfaces, Responder
from tests.support.jsonchild import emit, serve


def _handle(responder: Responder, metrics: Layer2Metrics, cmd: dict[str, Any]) -> dict[str, Any]:
    if cmd["cmd"] == "set":
        wanted: dict[str, list[str] | AllInterfaces] = {
            ip: ALL if sel == "ALL" else list(sel) for ip, sel in cmd["announced"].items()
        }
        responder.set_announced(wanted)  # type: ignore[arg-type]
        return {"ok": True}
    if cmd["cmd"] == "release":
        responder.release(cmd["hand_over"], float(cmd["timeout"]))
        return {"ok": True}
    if cmd["cmd"] == "releasing":
        return {"releasing": len(responder.releasing)}
    if cmd["cmd"] == "stall":
        emit({"stalling": True})
        end = time.monotonic() + 60
        while not Path(cmd["until"]).exists() and time.monotonic() < end:
            time.sleep(0.01)
        return {"ok": True}
    if cmd["cmd"] == "metrics":
        return {
            name: {ip: metrics.value(name, ip) for ip in cmd.get("ips", [])}
            for name in (REQUESTS_RECEIVED, RESPONSES_SENT, GRATUITOUS_SENT)
        }
    if cmd["cmd"] == "interfaces":
        return {
            "interfaces": [
                {"name": i.name, "arp": i.arp, "ndp": i.ndp, "link_local": str(i.link_local)}
                for i in responder.interfaces
            ]
        }
    return {"error": f"unknown command {cmd['cmd']!r}"}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gratuitous-interval", type=float, default=1.1)
    parser.add_argument("--gratuitous-duration", type=float, default=5.0)
    parser.add_argument("--rescan-interval", type=float, default=10.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    metrics = Layer2Metrics(CollectorRegistry())
    async with Responder(
        gratuitous_interval=args.gratuitous_interval,
        gratuitous_duration=args.gratuitous_duration,
        rescan_interval=args.rescan_interval,
        metrics=metrics,
    ) as responder:
        await serve(lambda cmd: _handle(responder, metrics, cmd), stop=("quit",))


if __name__ == "__main__":
    asyncio.run(main())
