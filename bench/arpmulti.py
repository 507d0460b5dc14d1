"""The client's ARP prober for many IPs at once: ``python -m bench.arpmulti [--interval S] [--max-pps N]``.

Run inside the client namespace. IPs to watch arrive on stdin, one per line, as their Services are created; each
pending IP gets an ARP request every INTERVAL (all pending IPs together at most MAX_PPS requests a second: the
flood is bounded), until its first reply, printed as ``{"ev": "arp", "ip", "t", "mac", "kind", "asked"}`` (``t``:
the kernel's receive time stamp on the ``time.monotonic()`` clock, one clock for the whole machine; ``kind``:
``reply`` to a request, or ``garp`` for a gratuitous ARP, which a client with a cache entry also takes; ``asked``:
when the last request for that IP went out, or null). ``{"ev": "ready"}`` once the socket is open; ``{"ev":
"stats", ...}`` (requests sent, the busiest second's rate, frames the kernel dropped at this socket, the longest
an answer waited to be read) then ``{"ev": "done"}`` when stdin is closed and nothing is pending, or ``{"ev":
"timeout", "pending": N}`` after TIMEOUT seconds of no progress.

The requests go round robin (the IP asked longest ago first), so with more pending IPs than MAX_PPS x INTERVAL
each is asked every ``pending / MAX_PPS`` seconds: that, not the responder, bounds how soon a reply can come. The
socket's receive queue is made large (16 MiB) and ignores this host's own requests, so a burst of gratuitous ARPs
from a take-over is not dropped while the loop sends.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Sequence

from tests.support.arpwait import _arp_request, _iface_info

from ironlb.lab.probe import arp_socket, emit, parse_arp

SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_IGNORE_OUTGOING = 23
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35  # also the control message's type
RECEIVE_BUFFER = 16 << 20


def _tune(sock: socket.socket) -> None:
    """A receive queue that holds a take-over's gratuitous ARPs; our own requests not queued back to us."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    with contextlib.suppress(OSError):
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def _recv_stamped(sock: socket.socket, offset: float) -> tuple[bytes, float]:
    """One frame and when the kernel received it, on the ``time.monotonic()`` clock (``offset``: realtime minus
    monotonic), so the time stamp leaves out how late this process read it (on a loaded machine, seconds)."""
    frame, ancdata, _flags, _addr = sock.recvmsg(2048, socket.CMSG_SPACE(16))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return frame, sec + nsec / 1e9 - offset
    return frame, time.monotonic()


def _drops(sock: socket.socket) -> int:
    """Frames the kernel dropped at this socket since the last call (its queue was full)."""
    try:
        _, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    except OSError:
        return -1
    return int(drops)


def probe(interval: float, max_pps: int, timeout: float, iface: str) -> int:
    src_mac, src_ip = _iface_info(iface)
    sock = arp_socket(iface)
    _tune(sock)
    _drops(sock)
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    pending: dict[str, float] = {}  # ip -> when its last request went out (0: none yet)
    queue: collections.deque[tuple[float, str]] = collections.deque()  # (due, ip), due times in order
    requests: dict[str, bytes] = {}
    buffer = b""
    eof = False
    emit({"ev": "ready", "t": time.monotonic()})
    last_progress = time.monotonic()
    budget = float(max_pps)
    refilled = time.monotonic()
    sent = 0
    first_sent = last_sent = 0.0
    per_second: collections.Counter[int] = collections.Counter()
    drops = 0
    answers = {"reply": 0, "garp": 0}
    offset = time.time() - time.monotonic()
    late: list[float] = []  # how long after the kernel's receipt this loop read each answer
    while not (eof and not pending):
        now = time.monotonic()
        if now - last_progress > timeout:
            emit({"ev": "timeout", "t": now, "pending": len(pending)})
            return 1
        budget = min(float(max_pps), budget + (now - refilled) * max_pps)
        refilled = now
        while queue and budget >= 1 and queue[0][0] <= now:
            _, ip = queue.popleft()
            if ip not in pending:
                continue  # answered meanwhile
            sock.send(requests[ip])
            pending[ip] = now
            queue.append((now + interval, ip))
            budget -= 1
            sent += 1
            first_sent = first_sent or now
            last_sent = now
            per_second[int(now)] += 1
        while queue and queue[0][1] not in pending:
            queue.popleft()
        due = queue[0][0] if queue else now + 0.05
        if budget < 1:
            due = max(due, now + (1 - budget) / max_pps)
        wait = max(0.0, min(due, now + 0.05) - time.monotonic())
        readable, _, _ = select.select([sock] + ([] if eof else [stdin]), [], [], wait)
        if stdin in readable:
            chunk = os.read(stdin, 65536)
            if not chunk:
                eof = True
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                ip = line.decode().strip()
                if ip and ip not in requests:
                    requests[ip] = _arp_request(src_mac, src_ip, ip)
                    pending[ip] = 0.0
                    queue.appendleft((0.0, ip))
                    last_progress = time.monotonic()
        if sock in readable:
            while True:
                try:
                    frame, stamp = _recv_stamped(sock, offset)
                except BlockingIOError:
                    break
                parsed = parse_arp(frame)
                if parsed and parsed[0] == 2 and parsed[2] in pending:
                    asked = pending.pop(parsed[2])
                    last_progress = time.monotonic()
                    late.append(last_progress - stamp)
                    kind = "garp" if parsed[3] == parsed[2] else "reply"
                    answers[kind] += 1
                    emit({"ev": "arp", "ip": parsed[2], "t": stamp, "mac": parsed[1], "kind": kind,
                          "asked": asked or None})  # fmt: skip
            dropped = _drops(sock)
            drops += max(dropped, 0)
    emit({"ev": "stats", "t": time.monotonic(), "sent": sent, "first_sent": first_sent or None,
          "last_sent": last_sent or None, "peak_pps": max(per_second.values(), default=0), "dropped": drops,
          "answers": answers, "read_late_max": max(late, default=0.0)})  # fmt: skip
    emit({"ev": "done", "t": time.monotonic()})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arpmulti.py", description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--max-pps", type=int, default=5000)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--iface", default="eth0")
    args = parser.parse_args(argv)
    return probe(args.interval, args.max_pps, args.timeout, args.iface)


if __name__ == "__main__":
    sys.exit(main())
