"""A minimal asyncio HTTP server for ``/metrics``, ``/healthz`` and ``/readyz``.

prometheus_client's own server runs in a thread; the project runs everything on one event loop, so this serves
the same exposition text from a task. It reads one request per connection, with a timeout, and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 5.0


class HealthServer:
    """Serves the registry and health probes; ``ready`` decides ``/readyz``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        registry: CollectorRegistry = REGISTRY,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.host, self.port = host, port
        self._registry = registry
        self._ready = ready
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("metrics and health on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _respond(self, path: str) -> tuple[int, str, bytes]:
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path in ("/healthz", "/livez"):
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            ok = self._ready()
            return (200 if ok else 503), "text/plain", b"ok\n" if ok else b"not ready\n"
        return 404, "text/plain", b"not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            parts = head.split(b"\r\n", 1)[0].split()
            path = parts[1].decode("latin-1").split("?", 1)[0] if len(parts) >= 2 else "/"
            if parts and parts[0] != b"GET":
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            else:
                status, ctype, body = self._respond(path)
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode() + body
            )
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), REQUEST_TIMEOUT)


def parse_address(text: str, default_port: int) -> tuple[str, int] | None:
    """``host:port``, ``:port`` or ``port``; empty disables."""
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep:
        return "0.0.0.0", int(text)
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port or default_port)
