"""The lab client's probe program, ``python -m ironlb.lab.probe probe|get|paths|answers ...`` in a lab namespace.

``probe`` opens a TCP connection and sends an HTTP GET to the service IP every few milliseconds, sniffs ARP for it,
and streams what it sees as JSON lines with ``time.monotonic()`` timestamps (one clock for the whole machine, so
they compare with the parent's); ``get`` is one such GET. ``paths`` runs on a router instead: which node each of
those connections was forwarded to, and every change of the routing table, so that a failed attempt can be traced
to its path; ``answers`` on a node: which of them it answered. Stdlib only, so it starts fast. The parent side is
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
from collections.abc import Iterator, Sequence
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


async def _connected(sock: socket.socket) -> None:
    """Wait for a non-blocking connect() in progress to finish; raise its error."""
    loop = asyncio.get_running_loop()
    writable: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not writable.done():
            writable.set_result(None)

    loop.add_writer(sock.fileno(), ready)
    try:
        await writable
    finally:
        loop.remove_writer(sock.fileno())
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


async def http_attempt(ip: str, port: int, timeout: float) -> dict[str, Any]:
    """One HTTP GET on a new connection. Besides the answer, the event says where a failure happened (``stage``:
    ``connect`` before the handshake completed, ``read`` after it) and the connection's local port (``sport``),
    which :func:`paths` reports too, so an attempt can be matched with the node the router sent it to."""
    t0 = time.monotonic()
    event: dict[str, Any] = {"ev": "http", "t0": t0}
    writer: asyncio.StreamWriter | None = None
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    stage = "connect"
    try:
        async with asyncio.timeout(timeout):
            try:
                sock.connect((ip, port))  # the kernel picks the local port here, before any answer
                in_progress = False
            except BlockingIOError:
                in_progress = True
            event["sport"] = sock.getsockname()[1]
            if in_progress:
                await _connected(sock)
            event["tc"] = time.monotonic()
            stage = "read"
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(f"GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode())
            data = await reader.read()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        event.update(ok=status == 200, status=status, body=body.decode(errors="replace"))
    except TimeoutError:
        event.update(ok=False, err="timeout", stage=stage)
    except OSError as exc:
        event.update(ok=False, err=exc.strerror or type(exc).__name__, stage=stage)
    finally:
        if writer is not None:
            writer.close()
        else:
            sock.close()
    event["t1"] = time.monotonic()
    return event


async def _probe(ip: str, port: int, interval: float, timeout: float, iface: str) -> None:
    loop = asyncio.get_running_loop()
    stop = _stop_event(loop)
    sock = arp_socket(iface)

    def on_arp() -> None:
        for frame, _ in _queued(sock, 2048):
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


PACKET_HOST, PACKET_OUTGOING = 0, 4  # sll_pkttype of a frame addressed to us / one we sent
RTMGRP_IPV4_ROUTE = 0x40
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
RTA_DST, RTA_GATEWAY, RTA_MULTIPATH = 1, 5, 9
TCP_SYN, TCP_ACK = 0x02, 0x10


def parse_tcp4(frame: bytes) -> tuple[str, str, str, int, int, int] | None:
    """(destination MAC, source IP, destination IP, source port, destination port, TCP flags) of an Ethernet IPv4
    TCP frame."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ihl = (frame[14] & 0x0F) * 4
    tcp = 14 + ihl
    if ihl < 20 or len(frame) < tcp + 14:
        return None
    sport, dport = struct.unpack("!HH", frame[tcp:tcp + 4])
    return mac_str(frame[0:6]), socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34]), sport, dport, \
        frame[tcp + 13]


def parse_route_messages(data: bytes) -> list[dict[str, Any]]:
    """rtnetlink RTM_NEWROUTE/RTM_DELROUTE messages -> ``{"op", "dst", "via"}`` (IPv4; ``via``: every gateway of a
    multipath route, or its one gateway). Truncated or malformed parts end the parse."""
    out: list[dict[str, Any]] = []
    off = 0
    while off + 16 <= len(data):
        length, mtype = struct.unpack_from("=IH", data, off)
        if length < 16 or off + length > len(data):
            break
        if mtype in (RTM_NEWROUTE, RTM_DELROUTE) and length >= 28 and data[off + 16] == socket.AF_INET:
            dst_len = data[off + 17]
            dst, via = "0.0.0.0", []
            for atype, value in _rtattrs(data[off + 28:off + length]):
                if atype == RTA_DST and len(value) == 4:
                    dst = socket.inet_ntoa(value)
                elif atype == RTA_GATEWAY and len(value) == 4:
                    via.append(socket.inet_ntoa(value))
                elif atype == RTA_MULTIPATH:
                    nh = 0
                    while nh + 8 <= len(value):
                        nh_len = struct.unpack_from("=H", value, nh)[0]
                        if nh_len < 8 or nh + nh_len > len(value):
                            break
                        via += [socket.inet_ntoa(v) for t, v in _rtattrs(value[nh + 8:nh + nh_len])
                                if t == RTA_GATEWAY and len(v) == 4]
                        nh += nh_len
            out.append({"op": "new" if mtype == RTM_NEWROUTE else "del", "dst": f"{dst}/{dst_len}", "via": via})
        off += (length + 3) & ~3
    return out


def _rtattrs(data: bytes) -> list[tuple[int, bytes]]:
    attrs, off = [], 0
    while off + 4 <= len(data):
        length, atype = struct.unpack_from("=HH", data, off)
        if length < 4 or off + length > len(data):
            break
        attrs.append((atype & 0x3FFF, data[off + 4:off + length]))
        off += (length + 3) & ~3
    return attrs


def _sniffer(iface: str) -> socket.socket:
    """Every frame ``iface`` receives and sends. ETH_P_ALL: a socket bound to one protocol is not given the frames
    this host sends. A large buffer, so that a sniffer starved of CPU for a while loses no frame."""
    pkt = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    pkt.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    pkt.bind((iface, ETH_P_ALL))
    pkt.setblocking(False)
    return pkt


def _stop_event(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    """Set on SIGTERM, SIGINT or the end of stdin."""
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 4096) else None)
    return stop


def _queued(sock: socket.socket, size: int) -> Iterator[tuple[bytes, Any]]:
    """What the non-blocking ``sock`` holds now, (datagram, address) at a time, until a read would block."""
    while True:
        try:
            yield sock.recvfrom(size)
        except BlockingIOError:
            return


def _tcp_frames(pkt: socket.socket) -> Iterator[tuple[tuple[str, str, str, int, int, int], int]]:
    """The TCP/IPv4 frames queued on the sniffer ``pkt`` now, each parsed (:func:`parse_tcp4`) with its packet
    type (``PACKET_HOST``: came in, ``PACKET_OUTGOING``: went out)."""
    for frame, addr in _queued(pkt, 256):
        parsed = parse_tcp4(frame)
        if parsed is not None:
            yield parsed, addr[2]


async def _expire_until(stop: asyncio.Event, waiting: dict[tuple[str, int], float], ev: str) -> None:
    """Say ``ready``, then until ``stop``: every connection of ``waiting`` (service IP, client port -> when its SYN
    came in) still there 0.5 s after its SYN is dropped from it and emitted as ``ev``."""
    emit({"ev": "ready", "t": time.monotonic()})
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
        now = time.monotonic()
        for key, t in list(waiting.items()):
            if now - t > 0.5:
                del waiting[key]
                emit({"ev": ev, "t": t, "ip": key[0], "sport": key[1]})


async def _answers(ips: set[str], port: int, iface: str) -> None:
    """On a node: each SYN to ``ips`` that came in and got its SYN-ACK out of the same interface (``answered``) or
    none within 0.5 s (``unanswered``), so that a lost connection is placed before the node, inside it or after it;
    at the end, ``count``."""
    loop = asyncio.get_running_loop()
    stop = _stop_event(loop)
    pkt = _sniffer(iface)
    pending: dict[tuple[str, int], float] = {}  # (service IP, client port) -> when its SYN came in
    counts = {"syns": 0, "answered": 0}

    def on_packet() -> None:
        for (_, src, dst, sport, dport, flags), kind in _tcp_frames(pkt):
            if kind == PACKET_HOST and dst in ips and dport == port and flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
                counts["syns"] += 1
                pending.setdefault((dst, sport), time.monotonic())
            elif (kind == PACKET_OUTGOING and src in ips and sport == port and flags & TCP_SYN
                  and pending.pop((src, dport), None) is not None):
                counts["answered"] += 1
                emit({"ev": "answered", "t": time.monotonic(), "ip": src, "sport": dport})

    loop.add_reader(pkt.fileno(), on_packet)
    await _expire_until(stop, pending, "unanswered")
    emit({"ev": "count", "t": time.monotonic(), **counts})
    pkt.close()


async def _paths(ips: set[str], port: int, iface: str) -> None:
    """On a router: which next hop each connection to ``ips`` was forwarded to, and the routing table's changes.

    Emits ``syn`` (a forwarded SYN: its destination MAC is the node chosen), ``moved`` (a later packet of the same
    connection forwarded to another MAC), ``unforwarded`` (a SYN that came in and was not forwarded within 0.5 s)
    and ``route`` (an IPv4 route added, changed or deleted, with its gateways)."""
    loop = asyncio.get_running_loop()
    stop = _stop_event(loop)
    pkt = _sniffer(iface)
    rt = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    rt.bind((0, RTMGRP_IPV4_ROUTE))
    rt.setblocking(False)
    flows: dict[tuple[str, int], str] = {}  # (service IP, client port) -> the MAC its packets were last sent to
    incoming: dict[tuple[str, int], float] = {}  # SYNs received, not forwarded yet

    def on_packet() -> None:
        for (mac, _, ip, sport, dport, flags), kind in _tcp_frames(pkt):
            if ip not in ips or dport != port:
                continue
            key = (ip, sport)
            syn = flags & (TCP_SYN | TCP_ACK) == TCP_SYN
            if kind == PACKET_HOST and syn:
                incoming.setdefault(key, time.monotonic())
            elif kind == PACKET_OUTGOING:
                if syn:
                    incoming.pop(key, None)
                    flows[key] = mac
                    emit({"ev": "syn", "t": time.monotonic(), "ip": ip, "sport": sport, "mac": mac})
                elif flows.get(key, mac) != mac:
                    emit({"ev": "moved", "t": time.monotonic(), "ip": ip, "sport": sport, "mac": mac,
                          "from": flows[key]})
                    flows[key] = mac

    def on_route() -> None:
        for data, _ in _queued(rt, 65536):
            for route in parse_route_messages(data):
                emit({"ev": "route", "t": time.monotonic(), **route})

    loop.add_reader(pkt.fileno(), on_packet)
    loop.add_reader(rt.fileno(), on_route)
    await _expire_until(stop, incoming, "unforwarded")
    pkt.close()
    rt.close()


def probe_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ironlb.lab.probe", description="the lab client's probes")
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("probe", help="HTTP GET every INTERVAL and ARP sniffing, as JSON lines, until stdin closes")
    p.add_argument("ip")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--timeout", type=float, default=0.2)
    p.add_argument("--iface", default="eth0")
    p = sub.add_parser("paths", help="on a router: the next hop of each connection to the IPs, and route changes, "
                                     "as JSON lines, until stdin closes")
    p.add_argument("ips", nargs="+")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--iface", default="eth0")
    p = sub.add_parser("answers", help="on a node: the SYNs to the IPs it got and did not answer, as JSON lines, "
                                       "until stdin closes")
    p.add_argument("ips", nargs="+")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--iface", default="eth0")
    p = sub.add_parser("get", help="one HTTP GET, as a JSON line")
    p.add_argument("ip")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.mode == "probe":
        asyncio.run(_probe(args.ip, args.port, args.interval, args.timeout, args.iface))
        return 0
    if args.mode == "paths":
        asyncio.run(_paths(set(args.ips), args.port, args.iface))
        return 0
    if args.mode == "answers":
        asyncio.run(_answers(set(args.ips), args.port, args.iface))
        return 0
    event = asyncio.run(http_attempt(args.ip, args.port, args.timeout))
    event["ms"] = round((event["t1"] - event["t0"]) * 1000, 2)
    emit(event)
    return 0 if event["ok"] else 1


if __name__ == "__main__":
    sys.exit(probe_main())
