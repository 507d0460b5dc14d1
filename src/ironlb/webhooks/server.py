"""The webhook HTTPS server (MetalLB's paths, on :9443) and :func:`serve_webhooks`, which the controller runs.

One asyncio task per connection, HTTP/1.1 with keep-alive (the apiserver reuses connections; HTTP/2 is not offered,
as MetalLB does not without ``--webhook-http2``). The paths are MetalLB's:

- ``/validate-metallb-io-<version>-<kind>`` (six of them): AdmissionReview in, AdmissionReview out
  (:mod:`ironlb.webhooks.validate`); the existing objects come from a :data:`Lister`;
- ``/convert``: the BGPPeer ConversionReview (:mod:`ironlb.webhooks.conversion`);
- ``/healthz`` and ``/readyz`` (GET) for probes.

If the existing objects cannot be listed, the object is still validated on its own and the answer carries a
warning: an apiserver the webhook cannot reach must not block the user (metallb#1540).

The port is reachable by anyone who can reach the pod, and the controller's loop also runs its informers, so
every input is bounded: bodies up to ``MAX_BODY`` (3 MiB, the apiserver's own request limit), ``MAX_CONNECTIONS``
connections (an idle keep-alive connection gives its place to a new one), a request head within
``HEADER_TIMEOUT`` of its first byte; malformed framing (a bad ``Content-Length`` or chunk size) gets a 400 and
the connection is closed. JSON decoding, validation and conversion run on a worker thread, within
``VALIDATION_DEADLINE``: past it the review is denied, and the loop never waits on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import re
import shutil
import ssl
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from ironlb.kube.client import KubeClient, KubeError, Resource
from ironlb.webhooks import certs
from ironlb.webhooks.certs import CertBundle
from ironlb.webhooks.conversion import convert_review
from ironlb.webhooks.validate import LISTED, PATHS, Admission, decide, kinds_to_list, parse_request, response

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Lister = Callable[[str, str], Awaitable[list[Obj]]]
"""``await lister(kind, namespace)``: the current objects of a kind (``namespace`` is "" for Nodes)."""

CONVERT_PATH = "/convert"
MAX_HEADER = 64 * 1024
MAX_BODY = 3 * 1024 * 1024  # the apiserver's own request size limit: no AdmissionReview it sends is larger
MAX_CONNECTIONS = 64
IDLE_TIMEOUT = 120.0  # longer than the apiserver client's 90 s idle timeout: it closes first
HEADER_TIMEOUT = 10.0  # from a request's first byte to the end of its head
READ_TIMEOUT = 30.0
VALIDATION_DEADLINE = 5.0  # well inside the apiserver's 10 s webhook timeout
VALIDATION_WORKERS = 2
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
           431: "Request Header Fields Too Large", 503: "Service Unavailable"}
_DIGITS = re.compile(rb"[0-9]{1,19}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")


class FramingError(ValueError):
    """A request whose HTTP framing cannot be trusted: answered 400, then the connection is closed."""


def listed_resource(kind: str) -> Resource:
    """The API resource of a kind the validation lists (Nodes and the metallb.io configuration)."""
    api_version, plural, namespaced = LISTED[kind]
    group, _, version = api_version.rpartition("/")
    return Resource(group, version, plural, kind, namespaced=namespaced)


def rest_lister(api: KubeClient, *, page_size: int = 500) -> Lister:
    """A :data:`Lister` over the API (paged lists, items given apiVersion and kind)."""

    async def lister(kind: str, namespace: str) -> list[Obj]:
        res = listed_resource(kind)
        items, _ = await api.list_all(res, namespace if res.namespaced else None, page_size=page_size)
        return items

    return lister


class WebhookServer:
    """Serves the webhook paths over TLS (or plain HTTP when ``ssl_context`` is None, for tests)."""

    def __init__(
        self,
        lister: Lister,
        *,
        namespace: str = "metallb-system",
        host: str = "0.0.0.0",
        port: int = 9443,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.lister = lister
        self.namespace = namespace
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self.requests: Counter[str] = Counter()  # per path, for tests and debugging
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._idle: set[asyncio.Task[None]] = set()  # connections waiting for their next request
        self.refused = 0  # connections closed at once because MAX_CONNECTIONS were busy
        self._workers = concurrent.futures.ThreadPoolExecutor(VALIDATION_WORKERS, thread_name_prefix="webhook")
        self._slots = asyncio.Semaphore(VALIDATION_WORKERS)

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("webhooks on %s://%s:%d", "https" if self.ssl_context else "http", self.host, self.port)

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Abort the open connections rather than cancel their tasks: each one then ends normally (asyncio's
        # streams log a cancelled connection task as an error).
        for writer in list(self._connections.values()):
            writer.transport.abort()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=5)
        await self._server.wait_closed()
        self._server = None
        self._workers.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------------------------------------------- requests
    async def handle(self, method: str, path: str, body: bytes) -> tuple[int, Obj]:
        """One request -> (HTTP status, JSON body); everything after the HTTP framing."""
        path = path.split("?", 1)[0]
        self.requests[path] += 1
        if path in ("/healthz", "/readyz", "/livez"):
            return 200, {"status": "ok"}
        if path not in PATHS and path != CONVERT_PATH:
            return 404, {"error": f"no webhook at {path}"}
        if method != "POST":
            return 405, {"error": "webhooks take POST"}
        try:
            doc = await self._off_loop(_json_object, body)
        except (ValueError, RecursionError) as err:
            return 400, {"error": f"body is not a JSON object: {err}"}
        except TimeoutError:
            return 400, {"error": f"body not decoded within {VALIDATION_DEADLINE:g} s"}
        if path == CONVERT_PATH:
            return 200, await self._off_loop(convert_review, doc)
        return 200, await self.admit(PATHS[path][0], doc)

    async def _off_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a worker thread, at most VALIDATION_WORKERS at once; TimeoutError past the deadline.

        A thread cannot be stopped: one past its deadline runs on, but holds its slot until done, so late work
        never piles up beyond VALIDATION_WORKERS threads.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + VALIDATION_DEADLINE
        async with asyncio.timeout_at(deadline):
            await self._slots.acquire()
        future = loop.run_in_executor(self._workers, fn, *args)
        future.add_done_callback(lambda _: self._slots.release())
        async with asyncio.timeout_at(deadline):
            return await asyncio.shield(future)

    async def admit(self, kind: str, doc: Obj) -> Obj:
        try:
            req = parse_request(doc)
        except ValueError as err:
            return response("", Admission(False, f"bad admission request: {err}"))
        if req.kind != kind:
            return response(req.uid, Admission(False, f"this webhook validates {kind}, not {req.kind!r}"))
        existing: dict[str, list[Obj]] = {}
        problems = []
        for k in kinds_to_list(kind, req.operation):
            try:
                existing[k] = await self.lister(k, "" if k == "Node" else self.namespace)
            except Exception as err:  # an API problem must not block the user: validate without them
                log.warning("webhook: cannot list %s: %s", k, err)
                problems.append(f"ironlb could not list the existing {k} objects, so it validated without them: {err}")
        try:
            decision = await self._off_loop(partial(decide, req, existing, namespace=self.namespace))
        except TimeoutError:
            log.warning("webhook: %s %s %s/%s not validated within %g s: denied", req.operation, kind,
                        req.namespace, req.name, VALIDATION_DEADLINE)
            decision = Admission(False, f"ironlb could not validate this {kind} within {VALIDATION_DEADLINE:g} s")
        if problems:
            decision = Admission(decision.allowed, decision.message, (*problems, *decision.warnings))
        if not decision.allowed:
            log.info("webhook: denied %s %s %s/%s: %s", req.operation, kind, req.namespace, req.name,
                     decision.message)
        return response(req.uid, decision)

    # ---------------------------------------------------------------------------------------------- HTTP/1.1
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS and not self._evict_idle():
            self.refused += 1
            if self.refused in (1, 10, 100) or self.refused % 1000 == 0:
                log.warning("webhook: %d connections open, refused a new one (%d so far)", MAX_CONNECTIONS,
                            self.refused)
            writer.transport.abort()
            return
        self._connections[task] = writer
        try:
            while await self._one_request(reader, writer, task):
                pass
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self._idle.discard(task)
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)

    def _evict_idle(self) -> bool:
        """Close one connection that waits between requests, to make room; False if none does."""
        for task in self._idle:
            writer = self._connections.get(task)
            if writer is not None:
                self._idle.discard(task)
                writer.transport.abort()
                self._connections.pop(task, None)
                return True
        return False

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, task: asyncio.Task[None] | None = None
    ) -> bool:
        """Serve one request; False when the connection should close."""
        if task is not None:
            self._idle.add(task)
        try:
            first = await asyncio.wait_for(reader.readexactly(1), IDLE_TIMEOUT)
        except asyncio.IncompleteReadError:
            return False  # the client closed an idle connection
        finally:
            if task is not None:
                self._idle.discard(task)
        try:
            head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEADER_TIMEOUT)
        except asyncio.LimitOverrunError:
            return await self._send(writer, 431, {"error": "request head too large"}, False)
        if len(head) > MAX_HEADER:
            return await self._send(writer, 431, {"error": "request head too large"}, False)
        try:
            async with asyncio.timeout(READ_TIMEOUT):  # the whole body, however it is chunked
                method, path, keep_alive, body = await self._request(head, reader)
        except FramingError as err:
            return await self._send(writer, 400, {"error": str(err)}, False)
        if body is None:
            return await self._send(writer, 413, {"error": f"body larger than {MAX_BODY} bytes"}, False)
        try:
            status, payload = await self.handle(method, path, body)
        except Exception:
            log.exception("webhook: %s %s failed", method, path)
            status, payload = 503, {"error": "internal error"}
        return await self._send(writer, status, payload, keep_alive)

    async def _request(self, head: bytes, reader: asyncio.StreamReader) -> tuple[str, str, bool, bytes | None]:
        """(method, path, keep-alive, body or None when too large); FramingError when it cannot be parsed."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise FramingError("malformed request line")
        method, path, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                if key in ("content-length", "transfer-encoding") and key in headers:
                    raise FramingError(f"repeated {name.strip()} header")
                headers[key] = value.strip()
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        encoding = headers.get("transfer-encoding")
        if encoding is not None:
            if "content-length" in headers:
                raise FramingError("both Transfer-Encoding and Content-Length")
            if encoding.lower() != "chunked":
                raise FramingError(f"unsupported Transfer-Encoding {encoding!r}")
            return method, path, keep_alive, await self._chunked(reader)
        raw = headers.get("content-length", "0")
        if not _DIGITS.fullmatch(raw.encode("latin-1")):
            raise FramingError(f"invalid Content-Length {raw!r}")
        length = int(raw)
        if length > MAX_BODY:
            return method, path, False, None
        body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT) if length else b""
        return method, path, keep_alive, body

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes | None:
        body = bytearray()
        while True:
            size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), READ_TIMEOUT)
            size_text = size_line.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                raise FramingError(f"invalid chunk size {size_text[:20]!r}")
            size = int(size_text, 16)
            if size == 0:
                while (await asyncio.wait_for(reader.readuntil(b"\r\n"), READ_TIMEOUT)) != b"\r\n":
                    pass  # trailers
                return bytes(body)
            if len(body) + size > MAX_BODY:
                return None
            body += await asyncio.wait_for(reader.readexactly(size + 2), READ_TIMEOUT)
            if body[-2:] != b"\r\n":
                raise FramingError("chunk not followed by CRLF")
            del body[-2:]

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, payload: Obj, keep_alive: bool) -> bool:
        data = json.dumps(payload, separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + data)
        await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
        return keep_alive


def _json_object(body: bytes) -> Obj:
    """The body as a JSON object (on a worker thread); ValueError or RecursionError otherwise."""
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    return doc


def server_ssl_context(cert_file: Path, key_file: Path, *, min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
                       ) -> ssl.SSLContext:
    """TLS for the webhooks: MetalLB's default minimum (TLS 1.3), HTTP/1.1 only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = min_version
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


class Webhooks:
    """The webhook server plus its certificate life cycle; :func:`serve_webhooks` is the one-call form.

    With ``rotate`` (the default), the certificate comes from the Secret (made or renewed when needed), is written
    to ``cert_dir`` for ``ssl``, and its CA is injected into the webhook configuration and the BGPPeer CRD; every
    ``check_interval`` seconds both are checked again (a re-applied manifest that lost the caBundle gets it back,
    a certificate close to expiry is renewed and reloaded without a restart). Without ``rotate`` (MetalLB's
    ``--disable-cert-rotation``), ``tls.crt``/``tls.key`` are read from ``cert_dir`` and reloaded when they change.
    """

    def __init__(
        self,
        api: KubeClient,
        *,
        namespace: str = "metallb-system",
        host: str = "0.0.0.0",
        port: int = 9443,
        service_name: str = certs.SERVICE_NAME,
        secret_name: str = certs.SECRET_NAME,
        webhook_config: str = certs.WEBHOOK_CONFIG_NAME,
        crds: Sequence[str] = certs.CONVERSION_CRDS,
        ip_addresses: Sequence[str] = (),
        lister: Lister | None = None,
        rotate: bool = True,
        cert_dir: str | Path | None = None,
        check_interval: float = 300.0,
        lookahead: float = certs.LOOKAHEAD,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.host, self.port = host, port
        self.dns_names = certs.service_dns_names(service_name, namespace)
        self.ip_addresses = list(ip_addresses)
        self.secret_name = secret_name
        self.webhook_config = webhook_config
        self.crds = list(crds)
        self.lister = lister or rest_lister(api)
        self.rotate = rotate
        self._own_dir = cert_dir is None
        self.cert_dir = Path(cert_dir) if cert_dir is not None else Path(tempfile.mkdtemp(prefix="ironlb-webhook-"))
        self.check_interval = check_interval
        self.lookahead = lookahead
        self.bundle: CertBundle | None = None
        self.server: WebhookServer | None = None
        self._ctx: ssl.SSLContext | None = None
        self._loaded: tuple[bytes, bytes] = (b"", b"")

    @property
    def cert_file(self) -> Path:
        return self.cert_dir / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.cert_dir / "tls.key"

    async def start(self, *, retry: float = 2.0, max_retry: float = 60.0) -> None:
        """Get a certificate (retrying while the API or the files are not there), then listen."""
        delay = retry
        while True:
            try:
                await self.refresh()
                break
            except (certs.CertError, OSError) as err:
                log.warning("webhooks: no certificate yet: %s; retrying in %.0f s", err, delay)
            except (KubeError, TimeoutError) as err:  # refused, or no answer: the apiserver may come back
                log.warning("webhooks: cannot get the certificate: %s; retrying in %.0f s", err, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_retry)
        self.server = WebhookServer(self.lister, namespace=self.namespace, host=self.host, port=self.port,
                                    ssl_context=self._ctx)
        await self.server.start()
        self.port = self.server.port
        await self._inject()

    async def refresh(self) -> bool:
        """Renew and store the certificate when needed and (re)load it into the TLS context; True if it changed."""
        if self.rotate:
            self.bundle, _ = await certs.ensure_certificates(
                self.api, namespace=self.namespace, secret_name=self.secret_name, dns_names=self.dns_names,
                ip_addresses=self.ip_addresses, lookahead=self.lookahead,
            )
            pair = (self.bundle.tls_crt, self.bundle.tls_key)
            if pair != self._loaded:
                self.cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                _write_private(self.cert_file, pair[0])
                _write_private(self.key_file, pair[1])
        else:
            pair = (self.cert_file.read_bytes(), self.key_file.read_bytes())
        if pair == self._loaded:
            return False
        if self._ctx is None:
            self._ctx = server_ssl_context(self.cert_file, self.key_file)
        else:
            self._ctx.load_cert_chain(str(self.cert_file), str(self.key_file))  # used by new handshakes
            log.info("webhooks: serving a renewed certificate")
        self._loaded = pair
        return True

    async def _inject(self) -> None:
        if not self.rotate or self.bundle is None:
            return
        try:
            await certs.inject_ca_bundle(self.api, self.bundle.ca_bundle, webhook_config=self.webhook_config,
                                         crds=self.crds)
        except Exception as err:
            log.warning("webhooks: cannot inject the CA bundle (will retry): %s", err)

    async def run(self) -> None:
        """Check the certificate and the injected CA every ``check_interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                await self.refresh()
            except Exception as err:
                log.warning("webhooks: certificate check failed (will retry): %s", err)
            await self._inject()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None
        if self._own_dir:
            shutil.rmtree(self.cert_dir, ignore_errors=True)


async def serve_webhooks(api: KubeClient, *, listening: asyncio.Event | None = None, **options: Any) -> None:
    """Run ironlb's webhooks until cancelled (the controller's ``--webhook-mode enabled|onlywebhook``).

    ``api`` is the KubeClient; ``options`` are :class:`Webhooks`' (namespace,
    host, port, lister, rotate, cert_dir, ...). ``listening`` is set while the port accepts connections (it opens
    only once the certificate exists), for the controller's ``/readyz``. Raises OSError if the port cannot be bound.
    """
    webhooks = Webhooks(api, **options)
    try:
        await webhooks.start()
        if listening is not None:
            listening.set()
        await webhooks.run()
    finally:
        if listening is not None:
            listening.clear()
        await webhooks.close()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


__all__ = ["Lister", "WebhookServer", "Webhooks", "rest_lister", "serve_webhooks", "server_ssl_context"]
