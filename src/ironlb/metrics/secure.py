"""``/metrics`` over HTTPS with Kubernetes authentication and authorization, as MetalLB v0.16 serves it.

A scrape presents a bearer token. The apiserver says who it is (a TokenReview) and whether that identity may
``get`` the non-resource URL ``/metrics`` (a SubjectAccessReview): no token or a token the apiserver does not
accept gets 401, an identity without that permission 403. Decisions are cached for :data:`CACHE_TTL` seconds
per token (hashed), so a scraper every few seconds costs the apiserver two calls per TTL, not per scrape; at most
:data:`CACHE_SIZE` tokens are remembered, so random tokens cannot grow memory. An apiserver that cannot be asked
gives 503, never a grant.

The certificate is the user's (``--metrics-cert-dir`` with ``tls.crt`` and ``tls.key``, MetalLB's layout) or a
self-signed one made at start-up with the openssl CLI (ECDSA P-256, valid a year). The files of a generated key
live only in a temporary directory for the time it takes to load them.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ironlb.kube.client import KubeClient, KubeError
from ironlb.metrics.export import DEFAULT_REGISTRY, DefaultRegistry
from ironlb.metrics.server import HealthServer

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
CACHE_TTL = 10.0
CACHE_SIZE = 1024
TLS_VERSIONS = {"VersionTLS12": ssl.TLSVersion.TLSv1_2, "VersionTLS13": ssl.TLSVersion.TLSv1_3}

OK, UNAUTHORIZED, FORBIDDEN, UNAVAILABLE = 200, 401, 403, 503

@dataclass(frozen=True)
class SecureOptions:
    """``--metrics-cert-dir`` (empty: self-signed) and ``--tls-min-version`` (Go's names, as MetalLB's flag)."""

    cert_dir: str = ""
    min_version: str = "VersionTLS12"
    hostnames: tuple[str, ...] = ("localhost",)


class KubeAuthorizer:
    """TokenReview then SubjectAccessReview for ``get /metrics``; the status code to answer (see module doc)."""

    def __init__(self, client: KubeClient, *, path: str = "/metrics", clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.path = path
        self.clock = clock
        self._cache: OrderedDict[bytes, tuple[float, int]] = OrderedDict()

    async def __call__(self, token: str | None) -> int:
        if token is None:
            return UNAUTHORIZED
        key = hashlib.sha256(token.encode()).digest()
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            code = await self._review(token)
        except KubeError as err:
            log.warning("cannot authorize a /metrics request: %s", err)
            return UNAVAILABLE
        self._cache[key] = (now + CACHE_TTL, code)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return code

    async def _review(self, token: str) -> int:
        review = await self.client.request(
            "POST", TOKEN_REVIEWS,
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
        )  # fmt: skip
        status = (review or {}).get("status") or {}
        if not status.get("authenticated"):
            return UNAUTHORIZED
        user = status.get("user") or {}
        spec: dict[str, object] = {
            "user": user.get("username", ""),
            "groups": user.get("groups") or [],
            "uid": user.get("uid", ""),
            "nonResourceAttributes": {"path": self.path, "verb": "get"},
        }
        if user.get("extra"):
            spec["extra"] = user["extra"]
        access = await self.client.request(
            "POST", SUBJECT_ACCESS_REVIEWS,
            body={"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
        )  # fmt: skip
        allowed = bool(((access or {}).get("status") or {}).get("allowed"))
        return OK if allowed else FORBIDDEN


async def self_signed(hostnames: tuple[str, ...]) -> tuple[bytes, bytes]:
    """A self-signed serving certificate for ``hostnames`` (and 127.0.0.1): (certificate PEM, key PEM)."""
    from ironlb.webhooks.certs import openssl  # with a certificate to make only: not at every start

    sans = ",".join([*(f"DNS:{h}" for h in hostnames), "IP:127.0.0.1"])
    with tempfile.TemporaryDirectory(prefix="ironlb-metrics-") as tmp:
        d = Path(tmp)
        await openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "tls.key", "-out", "tls.crt", "-days", "365", "-sha256", "-subj", f"/CN={hostnames[0]}",
            "-addext", f"subjectAltName={sans}", "-addext", "extendedKeyUsage=serverAuth", cwd=d,
        )  # fmt: skip
        return (d / "tls.crt").read_bytes(), (d / "tls.key").read_bytes()


async def server_context(options: SecureOptions) -> ssl.SSLContext:
    """The TLS context of the metrics port; ValueError naming the problem (bad files, unknown TLS version)."""
    if options.min_version not in TLS_VERSIONS:
        raise ValueError(f"--tls-min-version {options.min_version!r}: one of {', '.join(TLS_VERSIONS)}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[options.min_version]
    if options.cert_dir:
        d = Path(options.cert_dir)
        try:
            ctx.load_cert_chain(d / "tls.crt", d / "tls.key")
        except (OSError, ssl.SSLError) as err:
            raise ValueError(f"--metrics-cert-dir {d}: cannot load tls.crt and tls.key: {err}") from None
        return ctx
    from ironlb.webhooks.certs import CertError

    try:
        cert, key = await self_signed(options.hostnames)
    except CertError as err:
        raise ValueError(f"cannot make a self-signed metrics certificate: {err}") from None
    with tempfile.TemporaryDirectory(prefix="ironlb-metrics-") as tmp:
        (Path(tmp) / "tls.crt").write_bytes(cert)
        key_path = Path(tmp) / "tls.key"
        key_path.touch(mode=0o600)
        key_path.write_bytes(key)
        ctx.load_cert_chain(Path(tmp) / "tls.crt", key_path)
    return ctx


async def metrics_servers(
    client: KubeClient,
    metrics: tuple[str, int],
    health: tuple[str, int],
    *,
    ready: Callable[[], bool],
    secure: SecureOptions | None,
    registry: CollectorRegistry | DefaultRegistry = DEFAULT_REGISTRY,
) -> list[HealthServer]:
    """The metrics port (HTTPS with authn/authz when ``secure``) and the plain probe port (a port 0 is left out).

    Secure, ``/metrics`` is served on the metrics port only. ValueError when the TLS setup fails.
    """
    context = await server_context(secure) if secure is not None and metrics[1] else None
    authorize = KubeAuthorizer(client) if context is not None else None
    servers = []
    if metrics[1]:
        servers.append(HealthServer(*metrics, registry=registry, ready=ready, ssl_context=context, authorize=authorize))
    if health[1]:
        servers.append(HealthServer(*health, registry=registry, ready=ready, serve_metrics=secure is None))
    return servers
