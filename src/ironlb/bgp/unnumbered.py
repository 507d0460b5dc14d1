"""The socket half of unnumbered BGP: Router Solicitations/Advertisements on one interface.

:class:`LinkPeerFinder` runs :class:`~ironlb.bgp.linkpeer.LinkPeerState` on a raw ICMPv6 socket bound to the
interface (only types 133/134 pass the kernel filter, hop limit checked from ancillary data), sends our RAs to
ff02::1 and hands :class:`~ironlb.bgp.session.BGPSession` the neighbour's link-local address and the interface
index to dial it with. An interface that does not exist (yet) is retried every :data:`REOPEN_DELAY` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import socket
import struct
from ipaddress import IPv6Address, ip_address
from pathlib import Path

from .linkpeer import RA_INTERVAL, LinkPeerState

log = logging.getLogger(__name__)

ICMP6_FILTER = 1
"""linux/icmpv6.h, option at level IPPROTO_ICMPV6; a set bit blocks that type."""
ALL_NODES = "ff02::1"
ALL_ROUTERS = "ff02::2"
REOPEN_DELAY = 2.0
_PASS = (133, 134)
_CMSG_SPACE = socket.CMSG_SPACE(4)


def icmp6_filter(passed: tuple[int, ...] = _PASS) -> bytes:
    """``struct icmp6_filter`` blocking every ICMPv6 type but ``passed``."""
    words = [0xFFFFFFFF] * 8
    for kind in passed:
        words[kind >> 5] &= ~(1 << (kind & 31))
    return struct.pack("=8I", *words)


def _mac(interface: str) -> bytes | None:
    try:
        text = Path(f"/sys/class/net/{interface}/address").read_text().strip()
        mac = bytes.fromhex(text.replace(":", ""))
    except (OSError, ValueError):
        return None
    return mac if len(mac) == 6 else None


def open_nd_socket(interface: str) -> tuple[socket.socket, int]:
    """A non-blocking raw ICMPv6 socket on ``interface`` for RS/RA, and the interface index (OSError if absent)."""
    ifindex = socket.if_nametoindex(interface)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, icmp6_filter())
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        with contextlib.suppress(OSError):  # RSs go to all-routers; without the group only RAs are heard
            mreq = socket.inet_pton(socket.AF_INET6, ALL_ROUTERS) + struct.pack("@I", ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    except BaseException:
        sock.close()
        raise
    return sock, ifindex


async def neighbour_routers(interface: str, timeout: float = 2.0) -> list[dict[str, object]]:
    """``ip -j -6 neigh show dev IF`` ([] when it fails): the routers the kernel already heard."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "ip",
            "-j",
            "-6",
            "neigh",
            "show",
            "dev",
            interface,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        entries = json.loads(out or b"[]")
    except (OSError, TimeoutError, ValueError):
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


class LinkPeerFinder:
    """The neighbour on one interface, found and kept on the running event loop until :meth:`close`."""

    def __init__(self, interface: str, *, interval: float = RA_INTERVAL) -> None:
        self.interface = interface
        self.state = LinkPeerState(interval=interval)
        self._sock: socket.socket | None = None
        self._ifindex = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._heard = asyncio.Event()
        self._warned = False
        self._gone = False

    def start(self) -> None:
        """Open the socket and advertise in a background task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"bgp-nd-{self.interface}")

    async def peer(self, timeout: float) -> tuple[IPv6Address, int]:
        """The neighbour's link-local address and the interface index; TimeoutError if none is heard in time."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    address = self.state.peer()
                    if address is not None and self._ifindex:
                        return address, self._ifindex
                    self._heard.clear()
                    await self._heard.wait()
        except TimeoutError:
            raise TimeoutError(f"no router heard on {self.interface} in {timeout:g}s") from None

    async def close(self) -> None:
        """Stop advertising and close the socket."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._close_socket()

    # ------------------------------------------------------------------ internals

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._sock, self._ifindex = open_nd_socket(self.interface)
            except OSError as exc:
                if not self._warned:
                    log.warning("unnumbered BGP on %s: cannot listen for routers: %s", self.interface, exc)
                    self._warned = True
                await asyncio.sleep(REOPEN_DELAY)
                continue
            self._warned = False
            self._gone = False
            self.state.mac = _mac(self.interface)
            self.state.neighbour_table(await neighbour_routers(self.interface), loop.time())
            loop.add_reader(self._sock, self._on_readable)
            self._send(self.state.start(loop.time()))
            self._heard.set()
            try:
                await self._tick()
            except OSError as exc:
                log.info("unnumbered BGP on %s: %s; reopening", self.interface, exc)
            finally:
                self._close_socket()
            await asyncio.sleep(REOPEN_DELAY)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self._sock is not None:
            deadline = self.state.next_deadline()
            delay = None if deadline is None else max(0.0, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()
            self._send(self.state.timer(loop.time()))
            if self._gone:
                raise OSError(errno.ENODEV, f"{self.interface} went away")

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        loop = asyncio.get_running_loop()
        for _ in range(64):  # bounded per wake-up: a flood cannot starve the loop
            try:
                data, ancdata, _flags, addr = sock.recvmsg(1500, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.info("unnumbered BGP on %s: receive failed: %s", self.interface, exc)
                return
            hop_limit = None
            for level, kind, value in ancdata:
                if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
                    hop_limit = struct.unpack("=i", value[:4])[0]
            try:
                source = ip_address(str(addr[0]).split("%")[0])
            except ValueError:
                continue
            if not isinstance(source, IPv6Address):
                continue
            before = self.state.peer()
            self._send(self.state.received(source, hop_limit, data, loop.time()))
            if self.state.peer() != before:
                log.info("unnumbered BGP on %s: router %s heard", self.interface, self.state.peer())
                self._heard.set()

    def _send(self, messages: list[bytes]) -> None:
        sock = self._sock
        if sock is None:
            return
        for data in messages:
            try:
                sock.sendto(data, (ALL_NODES, 0, 0, self._ifindex))
            except (BlockingIOError, InterruptedError):
                pass  # one RA lost; the next interval sends another
            except OSError as exc:
                log.debug("unnumbered BGP on %s: send failed: %s", self.interface, exc)
                if exc.errno in (errno.ENODEV, errno.ENXIO):
                    self._gone = True  # deleted (perhaps to come back with a new index): reopen
                    self._wake.set()

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                asyncio.get_running_loop().remove_reader(sock)
            sock.close()


__all__ = ["LinkPeerFinder", "icmp6_filter", "neighbour_routers", "open_nd_socket"]
