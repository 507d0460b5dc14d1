"""Inbound BGP connections: the speaker listens on the BGP port and hands each connection to its peer's session.

A router configured to connect to the node (a ``passive`` peer on our side), or dialling while we dial it
(a connection collision, RFC 4271 section 6.8), needs someone to accept on port 179. One listening socket per
family (IPv4, IPv6-only); a connection from an address that is no configured peer is closed at once, so a port
scan costs one accept and one close. TCP MD5 keys of the peers with a password are set on the listening sockets
(the kernel then drops unsigned SYNs from those addresses, as it does on a dialled socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv6Address, ip_address

from .config import BGP_PORT
from .session import TCP_MD5SIG, BGPSession, tcp_md5sig
from .wire import Address

log = logging.getLogger(__name__)

BACKLOG = 16
ACCEPT_ERROR_PAUSE = 0.2
"""Seconds to wait after a failing accept (out of file descriptors, say) before the next one."""

Lookup = Callable[[Address, Address], BGPSession | None]


def _unmap(addr: Address) -> Address:
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class BGPListener:
    """Accepts on ``port`` and calls ``lookup(peer, local)`` for the session of each connection.

    ``host4``/``host6``: the addresses to bind (None: not that family); every address by default.
    """

    def __init__(
        self, lookup: Lookup, *, port: int = BGP_PORT, host4: str | None = "0.0.0.0", host6: str | None = "::"
    ) -> None:
        self.port = port
        self._lookup = lookup
        binds = ((socket.AF_INET, host4), (socket.AF_INET6, host6))
        self._binds = [(family, host) for family, host in binds if host is not None]
        self._socks: dict[int, socket.socket] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._keys: dict[Address, bytes] = {}
        self.refused = 0
        """Connections closed because they came from no configured peer."""

    @property
    def listening(self) -> bool:
        """True while at least one family's socket is bound."""
        return bool(self._socks)

    def start(self) -> list[str]:
        """Bind what is not bound yet; returns the errors (an empty list when both families listen)."""
        errors = []
        for family, host in self._binds:
            if family in self._socks:
                continue
            try:
                sock = _listening_socket(family, host, self.port)
            except OSError as exc:
                errors.append(f"[{host}]:{self.port}: {exc.strerror or exc}")
                continue
            self._socks[family] = sock
            for addr, key in self._keys.items():
                self._set_key(sock, addr, key)
            task = asyncio.get_running_loop().create_task(self._accept_loop(sock), name=f"bgp-listen-{host}")
            self._tasks.append(task)
        return errors

    def set_keys(self, keys: Mapping[Address, str]) -> None:
        """The TCP MD5 password of each peer address that has one (earlier keys not in ``keys`` are removed)."""
        wanted = {_unmap(a): k.encode() for a, k in keys.items() if k}
        for addr in set(self._keys) - set(wanted):
            for sock in self._socks.values():
                self._set_key(sock, addr, b"")
        for addr, key in wanted.items():
            if self._keys.get(addr) != key:
                for sock in self._socks.values():
                    self._set_key(sock, addr, key)
        self._keys = wanted

    @staticmethod
    def _set_key(sock: socket.socket, addr: Address, key: bytes) -> None:
        if (sock.family == socket.AF_INET) != isinstance(addr, IPv4Address):
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, tcp_md5sig(addr, key))
        except OSError as exc:
            if key:  # removing a key that is not there fails with ENOENT: nothing to say
                log.warning("BGP listener: cannot set the TCP MD5 key for %s: %s", addr, exc)

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, raddr = await loop.sock_accept(sock)
            except OSError as exc:
                log.warning("BGP listener: accept failed: %s", exc)
                await asyncio.sleep(ACCEPT_ERROR_PAUSE)
                continue
            try:
                peer = _unmap(ip_address(str(raddr[0]).split("%")[0]))
                local = _unmap(ip_address(str(conn.getsockname()[0]).split("%")[0]))
                session = self._lookup(peer, local)
            except (OSError, ValueError) as exc:
                log.info("BGP listener: dropping a connection: %s", exc)
                conn.close()
                continue
            if session is None:
                self.refused += 1
                log.debug("BGP listener: connection from %s, which is no configured peer: closed", peer)
                conn.close()
                continue
            log.info("BGP listener: connection from %s to %s", peer, local)
            session.accept(conn)

    async def close(self) -> None:
        """Stop accepting and close the listening sockets."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()


def _listening_socket(family: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def peer_of(sessions: Mapping[str, BGPSession], peer: Address, local: Address) -> BGPSession | None:
    """The session whose peer address is ``peer`` (and whose source address, if set, is ``local``)."""
    for session in sessions.values():
        cfg = session.config
        if _unmap(cfg.peer_address) != peer:
            continue
        if cfg.source_address is not None and _unmap(cfg.source_address) != local:
            continue
        return session
    return None


__all__ = ["BGP_PORT", "BGPListener", "Lookup", "peer_of"]
