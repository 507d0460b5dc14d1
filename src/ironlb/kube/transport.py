"""The Kubernetes client's HTTP/1.1 transport: httpx's public transport interface over asyncio streams and h11.

httpx2's own transport is httpcore2, whose package imports HTTP/2 (h2, hpack), the anyio backend and a synchronous
stack beside the asynchronous one whatever is used: 35-50 ms of CPU on creating the client, a tenth of `ironlb
speaker`'s start-up (issue 16). The client speaks HTTP/1.1 to one apiserver; this is all of that: TLS, a bounded
pool of keep-alive connections, the connect/read/write/pool timeouts httpx hands down, and bodies streamed (watches).
Errors are httpx's (``httpx.ConnectError``, ``ReadTimeout``, ``RemoteProtocolError``...), so callers see no change.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import cast

import h11
import httpx2 as httpx

READ_SIZE = 64 * 1024
MAX_HEADERS = 64 * 1024  # h11's bound on a response's status line and headers
Origin = tuple[str, str, int]
SocketOption = tuple[int, int, int]


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADERS)

    @property
    def reusable(self) -> bool:
        return self.h11.our_state is h11.IDLE and not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()

    async def send(self, *events: h11.Event, timeout: float | None) -> None:
        for event in events:
            try:
                data = self.h11.send(event)
            except h11.LocalProtocolError as err:  # e.g. a header value with a newline
                raise httpx.LocalProtocolError(str(err)) from err
            if data:
                self.writer.write(data)
        try:
            async with asyncio.timeout(timeout):
                await self.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("timed out writing the request") from None
        except OSError as err:
            raise httpx.WriteError(str(err) or type(err).__name__) from err

    async def next_event(self, timeout: float | None) -> h11.Event | type[h11.PAUSED]:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as err:
                raise httpx.RemoteProtocolError(str(err)) from err
            if event is not h11.NEED_DATA:
                if isinstance(event, h11.ConnectionClosed):
                    raise httpx.RemoteProtocolError("the server closed the connection")
                return cast("h11.Event | type[h11.PAUSED]", event)
            try:
                async with asyncio.timeout(timeout):
                    data = await self.reader.read(READ_SIZE)
            except TimeoutError:
                raise httpx.ReadTimeout("timed out reading the response") from None
            except OSError as err:
                raise httpx.ReadError(str(err) or type(err).__name__) from err
            try:
                self.h11.receive_data(data)
            except h11.RemoteProtocolError as err:
                raise httpx.RemoteProtocolError(str(err)) from err


class _Body(httpx.AsyncByteStream):
    """A response body read as it arrives; the connection goes back to the pool once it has been read to its end."""

    def __init__(self, transport: Transport, origin: Origin, conn: _Connection, timeout: float | None) -> None:
        self._transport = transport
        self._origin = origin
        self._conn: _Connection | None = conn
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            raise httpx.StreamClosed()
        while True:
            event = await conn.next_event(self._timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._release(keep=True)
                return

    def _release(self, *, keep: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._transport._release(self._origin, conn, keep=keep)

    async def aclose(self) -> None:
        self._release(keep=False)  # not read to its end: the connection cannot carry another request


class Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 (``http`` and ``https``), at most ``max_connections`` open at once, idle ones kept for reuse."""

    def __init__(
        self, ssl_context: ssl.SSLContext, *, max_connections: int = 32, socket_options: Sequence[SocketOption] = ()
    ) -> None:
        self._ssl = ssl_context
        self._slots = asyncio.Semaphore(max(1, max_connections))
        self._socket_options = tuple(socket_options)
        self._idle: dict[Origin, list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection free in time") from None
        try:
            body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
            conn = self._take_idle(origin) or await self._connect(origin, timeouts.get("connect"))
            try:
                response = await self._exchange(conn, request, body, timeouts)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            self._slots.release()
            raise
        status, headers, reason, version = response
        return httpx.Response(
            status, headers=headers, stream=_Body(self, origin, conn, timeouts.get("read")),
            extensions={"http_version": version, "reason_phrase": reason},
        )  # fmt: skip

    async def _exchange(
        self, conn: _Connection, request: httpx.Request, body: bytes, timeouts: dict[str, float | None]
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bytes]:
        target = request.url.raw_path
        head = h11.Request(method=request.method.encode(), target=target, headers=list(request.headers.raw))
        events: list[h11.Event] = [head]
        if body:
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        await conn.send(*events, timeout=timeouts.get("write"))
        while True:
            event = await conn.next_event(timeouts.get("read"))
            if isinstance(event, h11.Response):
                headers = list(event.headers.raw_items())
                return event.status_code, headers, bytes(event.reason), b"HTTP/" + event.http_version
            # informational (1xx) answers: the final one follows

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.reusable:
                return conn
            conn.close()
        return None

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        tls = self._ssl if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls is not None else None, limit=READ_SIZE
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as err:  # refused, unreachable, TLS (ssl.SSLError is an OSError)
            raise httpx.ConnectError(str(err) or type(err).__name__) from err
        sock = writer.get_extra_info("socket")
        if sock is not None:
            for level, option, value in self._socket_options:
                with contextlib.suppress(OSError):
                    sock.setsockopt(level, option, value)
        return _Connection(reader, writer)

    def _release(self, origin: Origin, conn: _Connection, *, keep: bool) -> None:
        self._slots.release()
        if keep and conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
            try:
                conn.h11.start_next_cycle()
            except h11.LocalProtocolError:
                conn.close()
                return
            self._idle.setdefault(origin, []).append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()


__all__ = ["Transport"]
