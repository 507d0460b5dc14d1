"""The webhook HTTPS server (MetalLB's paths, on :9443) and :func:`serve_webhooks`, which the controller runs.

One asyncio task per connection, HTTP/1.1 with keep-alive (the apiserver reuses connections; HTTP/2 is not offered,
as MetalLB does not without ``--webhook-http2``). The paths are MetalLB's:

- ``/validate-metallb-io-<version>-<kind>`` (six of them): AdmissionReview in, AdmissionReview out
  (:mod:`ironlb.webhooks.validate`); the existing objects come from a :data:`Lister`;
- ``/convert``: the BGPPeer ConversionReview (:mod:`ironlb.webhooks.conversion`);
- ``/healthz`` and ``/readyz`` (GET) for probes.

If the existing objects cannot be listed, the object is still validated on its own and the answer carries a
warning: an apiserver the webhook cannot reach must not block the user (metallb#1540).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import ssl
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from ironlb.webhooks import certs
from ironlb.webhooks.certs import CertBundle, RestApi
from ironlb.webhooks.conversion import convert_review
from ironlb.webhooks.validate import LISTED, PATHS, Admission, decide, kinds_to_list, parse_request, response

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Lister = Callable[[str, str], Awaitable[list[Obj]]]
"""``await lister(kind, namespace)``: the current objects of a kind (``namespace`` is "" for Nodes)."""

CONVERT_PATH = "/convert"
MAX_HEADER = 64 * 1024
MAX_BODY = 16 * 1024 * 1024  # the apiserver's own request limit is 3 MiB
IDLE_TIMEOUT = 120.0  # longer than the apiserver client's 90 s idle timeout: it closes first
READ_TIMEOUT = 30.0
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
           503: "Service Unavailable"}


def rest_lister(api: RestApi, *, page_size: int = 500) -> Lister:
    """A :data:`Lister` over the REST API (paged lists, items given apiVersion and kind)."""

    async def lister(kind: str, namespace: str) -> list[Obj]:
        api_version, plural, namespaced = LISTED[kind]
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        path = f"{base}/namespaces/{namespace}/{plural}" if namespaced else f"{base}/{plural}"
        items: list[Obj] = []
        token = ""
        while True:
            params = {"limit": str(page_size)}
            if token:
                params["continue"] = token
            page = await api.request("GET", path, params=params)
            for item in page.get("items") or []:
                items.append({"apiVersion": api_version, "kind": kind, **item})
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
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
            doc = json.loads(body)
        except ValueError as err:
            return 400, {"error": f"body is not JSON: {err}"}
        if not isinstance(doc, dict):
            return 400, {"error": "body is not a JSON object"}
        if path == CONVERT_PATH:
            return 200, convert_review(doc)
        return 200, await self.admit(PATHS[path][0], doc)

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
        decision = decide(req, existing, namespace=self.namespace)
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
        self._connections[task] = writer
        try:
            while await self._one_request(reader, writer):
                pass
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection should close."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
        except asyncio.IncompleteReadError:
            return False  # the client closed an idle connection
        if len(head) > MAX_HEADER:
            return False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            return False
        method, path, version = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked(reader)
            if body is None:
                return await self._send(writer, 413, {"error": "body too large"}, False)
        else:
            length = int(headers.get("content-length") or 0)
            if length > MAX_BODY:
                return await self._send(writer, 413, {"error": "body too large"}, False)
            body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT) if length else b""
        try:
            status, payload = await self.handle(method, path, body)
        except Exception:
            log.exception("webhook: %s %s failed", method, path)
            status, payload = 503, {"error": "internal error"}
        return await self._send(writer, status, payload, keep_alive)

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes | None:
        body = bytearray()
        while True:
            size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), READ_TIMEOUT)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await asyncio.wait_for(reader.readuntil(b"\r\n"), READ_TIMEOUT)) != b"\r\n":
                    pass  # trailers
                return bytes(body)
            if len(body) + size > MAX_BODY:
                return None
            body += await asyncio.wait_for(reader.readexactly(size + 2), READ_TIMEOUT)
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
        api: RestApi,
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
            except Exception as err:
                if certs.http_status(err) is None and not _is_transport(err):
                    raise
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


async def serve_webhooks(api: RestApi, *, listening: asyncio.Event | None = None, **options: Any) -> None:
    """Run ironlb's webhooks until cancelled (the controller's ``--webhook-mode enabled|onlywebhook``).

    ``api`` is any client with ``KubeClient.request``'s shape; ``options`` are :class:`Webhooks`' (namespace,
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


def _is_transport(err: BaseException) -> bool:
    """A client's "no answer" error (ironlb's TransportError, httpx's, or an OSError underneath)."""
    return isinstance(err, OSError | TimeoutError) or "Transport" in type(err).__name__


__all__ = ["Lister", "WebhookServer", "Webhooks", "rest_lister", "serve_webhooks", "server_ssl_context"]
