"""UDP sockets for the membership tests that drive two members over loopback."""

from __future__ import annotations

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
