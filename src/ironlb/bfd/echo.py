"""I/O of the BFD echo function (RFC 5880 §6.4, RFC 5881 §4) for IPv4 single-hop sessions.

An echo packet goes out from and to our own address, handed straight to the peer's MAC through an AF_PACKET
socket, so that the peer's kernel routes it back to us (FRR's bfdd sends its own echo packets the same way).
It comes back with a source address that is ours: the IP stack drops such a packet as a martian (unless
``accept_local``), so the return is read from the same packet socket, which sees it before the IP stack. A
classic BPF filter keeps everything but UDP to port 3785 carrying our 12-byte payload out of Python.

The peer's echo packets are looped back by our kernel's forwarding, not by this process: a session advertises
a nonzero Required Min Echo RX only when IPv4 forwarding is on (:func:`ipv4_forwarding`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Final

from .wire import ECHO_LEN, ECHO_PORT

log = logging.getLogger(__name__)

ETH_P_IP: Final = 0x0800
SOL_PACKET: Final = 263
PACKET_OUTGOING: Final = 4
PACKET_IGNORE_OUTGOING: Final = 23
SO_ATTACH_FILTER: Final = 26
MAX_READS_PER_WAKEUP: Final = 64
_RECV_SIZE: Final = 2048
_ARP_TABLE_MAX: Final = 4 * 1024 * 1024
"""Bytes of /proc/net/arp read at most (bounded input, whatever the size of the neighbour table)."""


def echo_filter() -> bytes:
    """Classic BPF over the IPv4 header (SOCK_DGRAM): unfragmented UDP to port 3785 whose payload's length byte
    is ours (12). An optimisation only: :func:`~ironlb.bfd.wire.parse_echo_ipv4` still checks everything."""
    insns = [
        (0x30, 0, 0, 9),  # ldb [9]               protocol
        (0x15, 0, 8, socket.IPPROTO_UDP),  # jeq UDP else drop
        (0x28, 0, 0, 6),  # ldh [6]               flags + fragment offset
        (0x45, 6, 0, 0x3FFF),  # jset MF|offset: drop
        (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf)      header length
        (0x48, 0, 0, 2),  # ldh [x+2]             UDP destination port
        (0x15, 0, 3, ECHO_PORT),  # jeq 3785 else drop
        (0x50, 0, 0, 9),  # ldb [x+9]             payload byte 1: length
        (0x15, 0, 1, ECHO_LEN),  # jeq 12 else drop
        (0x06, 0, 0, _RECV_SIZE),  # accept
        (0x06, 0, 0, 0),  # drop
    ]
    return b"".join(struct.pack("HBBI", *insn) for insn in insns)


def _attach_filter(sock: socket.socket, program: bytes) -> None:
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HP", len(program) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


@dataclass(frozen=True)
class Neighbour:
    """Where an echo packet for a peer goes: the interface and the peer's MAC (6 bytes)."""

    ifname: str
    mac: bytes


def parse_arp_table(text: str, peer: IPv4Address) -> Neighbour | None:
    """The complete (flag 0x2) entry of ``peer`` in /proc/net/arp text, None when there is none."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6 or fields[0] != str(peer):
            continue
        try:
            flags = int(fields[2], 16)
            mac = bytes.fromhex(fields[3].replace(":", ""))
        except ValueError:
            continue
        if flags & 0x2 and len(mac) == 6 and any(mac):
            return Neighbour(fields[5], mac)
    return None


def lookup_neighbour(peer: IPv4Address, path: Path = Path("/proc/net/arp")) -> Neighbour | None:
    """The kernel's neighbour entry of ``peer`` (known once control packets flowed), None if absent."""
    try:
        with path.open("rb") as f:
            text = f.read(_ARP_TABLE_MAX).decode("ascii", "replace")
    except OSError:
        return None
    return parse_arp_table(text, peer)


def ipv4_forwarding(path: Path = Path("/proc/sys/net/ipv4/ip_forward")) -> bool:
    """True when this host forwards IPv4, i.e. loops the peer's echo packets back to it."""
    try:
        return path.read_text(encoding="ascii").strip() == "1"
    except OSError:
        return False


def source_address(peer: IPv4Address) -> IPv4Address | None:
    """The address the kernel would send from to ``peer`` (connect() on a UDP socket sends nothing)."""
    with contextlib.suppress(OSError, ValueError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((str(peer), ECHO_PORT))
        return IPv4Address(s.getsockname()[0])
    return None


EchoHandler = Callable[[bytes], None]


class EchoLink:
    """One AF_PACKET socket on one interface for echo packets, read by the event loop."""

    def __init__(self, ifname: str, handler: EchoHandler, add_reader: Callable[..., object]) -> None:
        self.ifname = ifname
        self._handler = handler
        # Protocol 0 at creation: nothing is queued before the filter is attached and the socket is bound.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # kernel < 4.20: outgoing copies are skipped in _on_readable
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            _attach_filter(sock, echo_filter())
            sock.bind((ifname, ETH_P_IP))
            add_reader(sock.fileno(), self._on_readable)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def send(self, datagram: bytes, mac: bytes) -> bool:
        """Send one IPv4 datagram to ``mac`` on this interface; False if the kernel refused it."""
        try:
            self.sock.sendto(datagram, (self.ifname, ETH_P_IP, 0, 0, mac))
        except OSError as exc:
            log.debug("BFD echo send on %s failed: %s", self.ifname, exc)
            return False
        return True

    def _on_readable(self) -> None:
        for _ in range(MAX_READS_PER_WAKEUP):
            try:
                data, addr = self.sock.recvfrom(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ENETDOWN when the link goes away
                log.debug("BFD echo receive on %s failed: %s", self.ifname, exc)
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            self._handler(data)

    def close(self, remove_reader: Callable[[int], object]) -> None:
        with contextlib.suppress(ValueError, OSError):
            remove_reader(self.sock.fileno())
        self.sock.close()


__all__ = [
    "EchoLink",
    "Neighbour",
    "echo_filter",
    "ipv4_forwarding",
    "lookup_neighbour",
    "parse_arp_table",
    "source_address",
]
