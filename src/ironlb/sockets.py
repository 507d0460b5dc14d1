"""Socket options the protocol shells share (Layer 2 packet sockets, the membership's UDP sockets).

Here rather than in one of them because protocol packages do not import each other.
"""

from __future__ import annotations

import socket
from typing import Final

__all__ = ["SO_RCVBUFFORCE", "set_receive_buffer"]

SO_RCVBUFFORCE: Final = getattr(socket, "SO_RCVBUFFORCE", 33)
"""Linux's SO_RCVBUFFORCE (33): a receive queue past ``net.core.rmem_max``, with CAP_NET_ADMIN."""


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for ``size`` bytes of receive queue (past ``net.core.rmem_max`` with CAP_NET_ADMIN); what was granted."""
    for option in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            break
        except OSError:
            continue
    granted: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return granted
