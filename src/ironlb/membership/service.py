"""Asyncio shell around the sans-I/O ``Membership`` core.

One UDP socket, one task. The task calls ``Membership.tick`` and then sleeps
until ``next_deadline()``; an incoming datagram that makes something due
earlier (an immediate reply, say) wakes it. No threads. Events go to an
optional ``on_event`` callback and an optional ``asyncio.Queue``; ``on_change``
is called once per batch with the new alive set and quorum flag, which is what
a speaker needs to recompute which IPs it announces. Callback exceptions are
logged and swallowed: a buggy consumer must not stop liveness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from ironlb.membership.fsm import (
    DEFAULT_PORT,
    Address,
    Datagram,
    Event,
    Membership,
)

__all__ = ["MembershipService"]

log = logging.getLogger(__name__)

OnChange = Callable[[frozenset[str], bool], None]
OnEvent = Callable[[Event], None]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, service: MembershipService) -> None:
        self._service = service
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._service._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable from a dead peer and the like: expected, not fatal.
        log.debug("membership socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class MembershipService:
    """Run a ``Membership`` on a UDP socket.

    ``bind``: local address; by default this node's entry in the member list,
    else ``("0.0.0.0", 7946)``. ``sock``: an already bound UDP socket to use
    instead (tests pass port-0 sockets). ``clock``: monotonic seconds.
    """

    def __init__(
        self,
        membership: Membership,
        *,
        bind: Address | None = None,
        sock: socket.socket | None = None,
        on_event: OnEvent | None = None,
        on_change: OnChange | None = None,
        queue: asyncio.Queue[Event] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._core = membership
        self._bind = bind or membership.own_address or ("0.0.0.0", DEFAULT_PORT)
        self._sock = sock
        self._on_event = on_event
        self._on_change = on_change
        self._queue = queue
        self._clock = clock
        self._transport: asyncio.DatagramTransport | None = None
        self._proto: _Protocol | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._sleep_until = 0.0
        self._reported: tuple[frozenset[str], bool] = (membership.alive(), membership.has_quorum())

    @property
    def membership(self) -> Membership:
        return self._core

    @property
    def local_address(self) -> Address | None:
        """The bound (host, port), once started."""
        if self._transport is None:
            return None
        name = self._transport.get_extra_info("sockname")
        return (str(name[0]), int(name[1]))

    def alive(self) -> frozenset[str]:
        return self._core.alive()

    def has_quorum(self) -> bool:
        return self._core.has_quorum()

    async def start(self) -> None:
        """Open the socket and start heartbeating."""
        if self._task is not None:
            raise RuntimeError("already started")
        loop = asyncio.get_running_loop()
        if self._sock is not None:
            transport, proto = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=self._sock)
        else:
            transport, proto = await loop.create_datagram_endpoint(lambda: _Protocol(self), local_addr=self._bind)
        self._transport, self._proto = transport, proto
        self._task = asyncio.create_task(self._run(), name=f"membership-{self._core.node}")

    async def stop(self, *, leave: bool = True) -> None:
        """Stop; with ``leave`` (the default) first send the signed LEAVE.

        ``leave=False`` is a crash as far as the peers can tell: they notice
        after ``dead_timeout``.
        """
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        transport, self._transport = self._transport, None
        if transport is None:
            return
        if leave:
            self._send(transport, self._core.leave(self._clock()))
        transport.close()  # flushes what is still buffered
        if self._proto is not None:
            await self._proto.closed  # the port is free again when stop() returns
            self._proto = None

    async def __aenter__(self) -> MembershipService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def set_members(self, members: Mapping[str, tuple[str, int]]) -> None:
        """Change the member list at run time; new members are greeted at once."""
        self._dispatch(self._core.set_members(members))
        self._wake.set()

    # --------------------------------------------------------------- internals

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            transport = self._transport
            if transport is None:
                return
            datagrams, events = self._core.tick(self._clock())
            self._send(transport, datagrams)
            self._dispatch(events)
            self._sleep_until = self._core.next_deadline()
            delay = self._sleep_until - self._clock()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()

    def _on_datagram(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        events = self._core.datagram_received(data, addr, self._clock())
        self._dispatch(events)
        if self._core.next_deadline() < self._sleep_until:
            self._wake.set()

    @staticmethod
    def _send(transport: asyncio.DatagramTransport, datagrams: list[Datagram]) -> None:
        for d in datagrams:
            try:
                transport.sendto(d.data, d.addr)
            except OSError as exc:  # e.g. no route; the peer will simply time out
                log.debug("membership send to %s %s failed: %s", d.dest, d.addr, exc)

    def _dispatch(self, events: list[Event]) -> None:
        if not events:
            return
        for event in events:
            log.info("membership %s: %s", self._core.node, event)
            if self._queue is not None:
                self._queue.put_nowait(event)
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception:
                    log.exception("membership on_event callback failed")
        state = (self._core.alive(), self._core.has_quorum())
        if state != self._reported:
            self._reported = state
            if self._on_change is not None:
                try:
                    self._on_change(*state)
                except Exception:
                    log.exception("membership on_change callback failed")
