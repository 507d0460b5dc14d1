"""The client's ARP prober for many IPs at once: ``python -m bench.arpmulti [--interval S] [--max-pps N]``.

Run inside the client namespace. IPs to watch arrive on stdin, one per line, as their Services are created; each
pending IP gets an ARP request every INTERVAL (all pending IPs together at most MAX_PPS requests a second: the
flood is bounded), until its first reply, printed as ``{"ev": "arp", "ip", "t", "mac"}`` (``time.monotonic()``:
one clock for the whole machine). ``{"ev": "ready"}`` once the socket is open; ``{"ev": "done"}`` when stdin is
closed and nothing is pending, or ``{"ev": "timeout", "pending": N}`` after TIMEOUT seconds of no progress.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import time
from collections.abc import Sequence

from tests.support.arpwait import _arp_request, _iface_info

from ironlb.lab.probe import arp_socket, emit, parse_arp


def probe(interval: float, max_pps: int, timeout: float, iface: str) -> int:
    src_mac, src_ip = _iface_info(iface)
    sock = arp_socket(iface)
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    pending: dict[str, float] = {}  # ip -> next send time
    requests: dict[str, bytes] = {}
    buffer = b""
    eof = False
    emit({"ev": "ready", "t": time.monotonic()})
    last_progress = time.monotonic()
    budget = float(max_pps)
    refilled = time.monotonic()
    while not (eof and not pending):
        now = time.monotonic()
        if now - last_progress > timeout:
            emit({"ev": "timeout", "t": now, "pending": len(pending)})
            return 1
        budget = min(float(max_pps), budget + (now - refilled) * max_pps)
        refilled = now
        for ip, due in pending.items():
            if budget < 1:
                break
            if due <= now:
                sock.send(requests[ip])
                pending[ip] = now + interval
                budget -= 1
        wait = max(0.0, min((min(pending.values()) if pending else now + 0.05), now + 0.05) - time.monotonic())
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
                    last_progress = time.monotonic()
        if sock in readable:
            while True:
                try:
                    frame = sock.recv(2048)
                except BlockingIOError:
                    break
                parsed = parse_arp(frame)
                if parsed and parsed[0] == 2 and parsed[2] in pending:
                    del pending[parsed[2]]
                    last_progress = time.monotonic()
                    emit({"ev": "arp", "ip": parsed[2], "t": last_progress, "mac": parsed[1]})
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
