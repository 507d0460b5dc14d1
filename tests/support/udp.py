"""UDP sockets for the membership tests that drive two members over loopback."""

from __future__ import annotations

import os
import socket


def member_pair(host: str = "127.0.0.1") -> tuple[socket.socket, socket.socket, dict[str, tuple[str, int]]]:
    """Two UDP sockets bound to free ports on ``host`` (IPv4 or IPv6), for members ``a`` and ``b``, and the
    members map that names them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = []
    for _ in range(2):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((host, 0))
        socks.append(s)
    members = {name: (host, s.getsockname()[1]) for name, s in zip("ab", socks, strict=True)}
    return socks[0], socks[1], members


def receive_drops(sock: socket.socket) -> int:
    """Datagrams the kernel dropped because ``sock``'s receive queue was full (the ``drops`` column of Linux's
    /proc/net/udp or udp6, found by the socket's inode): an exact count, whatever the timing."""
    inode = os.fstat(sock.fileno()).st_ino
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table, encoding="ascii") as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if int(fields[9]) == inode:
                    return int(fields[12])
    raise LookupError(f"UDP socket with inode {inode} not in /proc/net/udp or udp6")
