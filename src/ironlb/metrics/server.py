"""A minimal asyncio HTTP server for ``/metrics``, ``/healthz`` and ``/readyz``.

prometheus_client's own server runs in a thread; the project runs everything on one event loop, so this serves
the same exposition text from a task. It reads one request per connection, with a timeout, and closes.

With ``ssl_context`` it serves HTTPS, and with ``authorize`` each ``/metrics`` request's bearer token is checked
first (:mod:`ironlb.metrics.secure`: 401 without a valid token, 403 without the permission). ``serve_metrics``
false keeps ``/metrics`` off a port (the plain probe port, when metrics are secure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ironlb.metrics.export import DEFAULT_REGISTRY, DefaultRegistry, default_registry

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 5.0
MAX_HEAD = 32 * 1024  # request line and headers; a longer head is dropped
REASONS = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           503: "Service Unavailable"}  # fmt: skip

MAX_TOKEN = 16 * 1024  # longer than any ServiceAccount or OIDC token

# A bearer token (None: no Authorization header) -> the status to answer, 200 to serve.
Authorizer = Callable[[str | None], Awaitable[int]]


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, None without one."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN:
        return None
    return token


class HealthServer:
    """Serves the registry and health probes; ``ready`` decides ``/readyz``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        registry: CollectorRegistry | DefaultRegistry = DEFAULT_REGISTRY,
        ready: Callable[[], bool] = lambda: True,
        ssl_context: ssl.SSLContext | None = None,
        authorize: Authorizer | None = None,
        serve_metrics: bool = True,
    ) -> None:
        self.host, self.port = host, port
        self._registry = registry
        self._ready = ready
        self._ssl = ssl_context
        self._authorize = authorize
        self._serve_metrics = serve_metrics
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, ssl=self._ssl, limit=MAX_HEAD,
            ssl_handshake_timeout=REQUEST_TIMEOUT if self._ssl else None,
        )  # fmt: skip
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        scheme = "https" if self._ssl else "http"
        what = "metrics and health" if self._serve_metrics else "health"
        log.info("%s on %s://%s:%d", what, scheme, self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _respond(self, path: str, authorization: str | None) -> tuple[int, str, bytes]:
        if path == "/metrics" and self._serve_metrics:
            if self._authorize is not None:
                status = await self._authorize(bearer_token(authorization))
                if status != 200:
                    return status, "text/plain", REASONS.get(status, "error").lower().encode() + b"\n"
            from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

            registry = default_registry() if self._registry is DEFAULT_REGISTRY else self._registry
            return 200, CONTENT_TYPE_LATEST, generate_latest(registry)
        if path in ("/healthz", "/livez"):
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            ok = self._ready()
            return (200 if ok else 503), "text/plain", b"ok\n" if ok else b"not ready\n"
        return 404, "text/plain", b"not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            lines = head.split(b"\r\n")
            parts = lines[0].split()
            path = parts[1].decode("latin-1").split("?", 1)[0] if len(parts) >= 2 else "/"
            authorization = None
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if sep and name.strip().lower() == b"authorization":
                    authorization = value.decode("latin-1").strip()
            if parts and parts[0] != b"GET":
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            else:
                status, ctype, body = await self._respond(path, authorization)
            reason = REASONS.get(status, "Error")
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode() + body
            )
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError):
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
