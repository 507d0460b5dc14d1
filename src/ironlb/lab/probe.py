"""The lab client's probe program, run as ``python -m ironlb.lab.probe probe|get ...`` inside the client namespace.

``probe`` opens a TCP connection and sends an HTTP GET to the service IP every few milliseconds, sniffs ARP for it,
and streams what it sees as JSON lines with ``time.monotonic()`` timestamps (one clock for the whole machine, so
they compare with the parent's); ``get`` is one such GET. Stdlib only, so it starts fast. The parent side is
:class:`ironlb.lab.cluster.ClientProbe`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any

ETH_P_ARP = 0x0806
ETH_P_ALL = 0x0003


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def arp_socket(iface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    sock.bind((iface, ETH_P_ARP))
    sock.setblocking(False)
    return sock


def parse_arp(frame: bytes) -> tuple[int, str, str, str] | None:
    """(op, sender MAC, sender IP, target IP) of an Ethernet ARP frame."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    op = struct.unpack("!H", frame[20:22])[0]
    return op, mac_str(frame[22:28]), socket.inet_ntoa(frame[28:32]), socket.inet_ntoa(frame[38:42])


async def http_attempt(ip: str, port: int, timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    event: dict[str, Any] = {"ev": "http", "t0": t0}
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(ip, port)
            writer.write(f"GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode())
            data = await reader.read()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        event.update(ok=status == 200, status=status, body=body.decode(errors="replace"))
    except TimeoutError:
        event.update(ok=False, err="timeout")
    except OSError as exc:
        event.update(ok=False, err=exc.strerror or type(exc).__name__)
    finally:
        if writer is not None:
            writer.close()
    event["t1"] = time.monotonic()
    return event


async def _probe(ip: str, port: int, interval: float, timeout: float, iface: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 4096) else None)
    sock = arp_socket(iface)

    def on_arp() -> None:
        while True:
            try:
                frame = sock.recv(2048)
            except BlockingIOError:
                return
            parsed = parse_arp(frame)
            if parsed and parsed[2] == ip:
                emit({"ev": "arp", "t": time.monotonic(), "op": parsed[0], "mac": parsed[1], "tip": parsed[3]})

    loop.add_reader(sock.fileno(), on_arp)
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        emit(await http_attempt(ip, port, timeout))

    emit({"ev": "ready", "t": time.monotonic()})
    next_at = time.monotonic()
    while not stop.is_set():
        task = loop.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        next_at += interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
    for task in list(tasks):
        task.cancel()
    sock.close()


def probe_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ironlb.lab.probe", description="the lab client's probes")
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("probe", help="HTTP GET every INTERVAL and ARP sniffing, as JSON lines, until stdin closes")
    p.add_argument("ip")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--timeout", type=float, default=0.2)
    p.add_argument("--iface", default="eth0")
    p = sub.add_parser("get", help="one HTTP GET, as a JSON line")
    p.add_argument("ip")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.mode == "probe":
        asyncio.run(_probe(args.ip, args.port, args.interval, args.timeout, args.iface))
        return 0
    event = asyncio.run(http_attempt(args.ip, args.port, args.timeout))
    event["ms"] = round((event["t1"] - event["t0"]) * 1000, 2)
    emit(event)
    return 0 if event["ok"] else 1


if __name__ == "__main__":
    sys.exit(probe_main())
