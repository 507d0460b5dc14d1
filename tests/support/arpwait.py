"""The client's ARP prober for the announce benchmarks: ``python tests/support/arpwait.py IP [--interval S]``.

Run inside the client namespace, it sends a raw ARP request for IP every INTERVAL until a reply comes, printing
``{"ev": "ready"}`` once its socket is open, then ``{"ev": "arp", "t", "mac"}`` (``time.monotonic()``, one clock
for the whole machine) or ``{"ev": "timeout"}``. With ``--listen S`` it goes on for S seconds instead, printing
one ``arp`` line for each MAC the first time it answers or announces IP (a reply, or a gratuitous ARP sent for IP),
then ``{"ev": "done"}``: several MACs for one IP are a split brain. It imports only the stdlib and
:mod:`ironlb.lab.probe`.
"""

from __future__ import annotations

import argparse
import fcntl
import select
import socket
import struct
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ironlb.lab.probe import arp_socket, emit, parse_arp


def _iface_info(iface: str) -> tuple[bytes, bytes]:
    mac = bytes.fromhex(Path(f"/sys/class/net/{iface}/address").read_text().strip().replace(":", ""))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", iface.encode()[:15]))  # SIOCGIFADDR
    return mac, packed[20:24]


def _arp_request(src_mac: bytes, src_ip: bytes, target: str) -> bytes:
    return (
        b"\xff" * 6 + src_mac + b"\x08\x06"
        + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src_mac + src_ip + b"\x00" * 6 + socket.inet_aton(target)
    )  # fmt: skip




def _asking(ip: str, interval: float, duration: float, iface: str) -> Iterator[tuple[int, str, str, str]]:
    """Say ``ready``, then send an ARP request for ``ip`` every ``interval`` for ``duration`` seconds, yielding each
    ARP frame heard meanwhile as (operation, sender MAC, sender IP, target IP)."""
    src_mac, src_ip = _iface_info(iface)
    sock = arp_socket(iface)
    request = _arp_request(src_mac, src_ip, ip)
    emit({"ev": "ready", "t": time.monotonic()})
    deadline = time.monotonic() + duration
    next_send = time.monotonic()
    while (now := time.monotonic()) < deadline:
        if now >= next_send:
            sock.send(request)
            next_send = now + interval
        readable, _, _ = select.select([sock], [], [], max(0.0, min(next_send, deadline) - time.monotonic()))
        while readable:
            try:
                frame = sock.recv(2048)
            except BlockingIOError:
                break
            parsed = parse_arp(frame)
            if parsed:
                yield parsed


def _arp_wait(ip: str, interval: float, timeout: float, iface: str) -> int:
    """Send an ARP request for ``ip`` every ``interval`` until a reply comes; print it."""
    for op, mac, sender, _ in _asking(ip, interval, timeout, iface):
        if op == 2 and sender == ip:
            emit({"ev": "arp", "t": time.monotonic(), "mac": mac})
            return 0
    emit({"ev": "timeout", "t": time.monotonic()})
    return 1


def _arp_listen(ip: str, interval: float, duration: float, iface: str) -> int:
    """Send an ARP request for ``ip`` every ``interval`` for ``duration`` seconds; print each MAC that claims it."""
    seen: set[str] = set()
    for op, mac, sender, _ in _asking(ip, interval, duration, iface):
        if sender == ip and mac not in seen and mac != "00:00:00:00:00:00":
            seen.add(mac)
            emit({"ev": "arp", "t": time.monotonic(), "mac": mac, "op": op})
    emit({"ev": "done", "t": time.monotonic()})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arpwait.py", description="ARP requests every INTERVAL until a reply")
    parser.add_argument("ip")
    parser.add_argument("--interval", type=float, default=0.002)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--iface", default="eth0")
    parser.add_argument("--listen", type=float, metavar="S", help="go on for S seconds, printing every MAC that claims IP")
    args = parser.parse_args(argv)
    if args.listen is not None:
        return _arp_listen(args.ip, args.interval, args.listen, args.iface)
    return _arp_wait(args.ip, args.interval, args.timeout, args.iface)


if __name__ == "__main__":
    sys.exit(main())
