"""The secure metrics port without an apiserver: a user's certificate is the one served, the bearer token reaches the
authorizer, decisions are cached per token for a bounded time and size, and an unreachable apiserver grants nothing.
(The real TokenReview/SubjectAccessReview path is tested in tests/controller/test_metrics_secure_e2e.py.)"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any, cast

import pytest

from ironlb.kube.client import KubeClient, TransportError
from ironlb.metrics import secure
from ironlb.metrics.secure import KubeAuthorizer, SecureOptions, self_signed, server_context
from ironlb.metrics.server import HealthServer, bearer_token


async def fetch(port: int, path: str, headers: str = "", *, cafile: Path | None = None) -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_user_certificate_and_the_token_reach_the_authorizer(tmp_path: Path) -> None:
    cert, key = await self_signed(("localhost",))
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    seen: list[str | None] = []

    async def authorize(token: str | None) -> int:
        seen.append(token)
        return 200 if token == "good" else (401 if token is None else 403)

    server = HealthServer("127.0.0.1", 0, ssl_context=await server_context(SecureOptions(str(tmp_path))),
                          authorize=authorize)  # fmt: skip
    await server.start()
    try:
        ca = tmp_path / "tls.crt"  # verified against the user's certificate: it is the one served
        assert (await fetch(server.port, "/metrics", cafile=ca))[0] == 401
        assert (await fetch(server.port, "/metrics", "authorization: bearer bad\r\n", cafile=ca))[0] == 403
        status, body = await fetch(server.port, "/metrics", "Authorization: Bearer good\r\n", cafile=ca)
        assert status == 200 and b"# HELP" in body
        assert (await fetch(server.port, "/readyz", cafile=ca))[0] == 200  # probes need no token
        assert seen == [None, "bad", "good"]
    finally:
        await server.close()


async def test_probe_port_serves_no_metrics_when_secure() -> None:
    server = HealthServer("127.0.0.1", 0, serve_metrics=False)
    await server.start()
    try:
        assert (await fetch(server.port, "/metrics"))[0] == 404
        assert (await fetch(server.port, "/healthz"))[0] == 200
    finally:
        await server.close()


async def test_bad_certificate_dir_and_tls_version_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=str(tmp_path)):
        await server_context(SecureOptions(str(tmp_path)))
    with pytest.raises(ValueError, match="--tls-min-version"):
        await server_context(SecureOptions(min_version="VersionTLS10"))


def test_bearer_token() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None
    assert bearer_token("Bearer " + "x" * 20000) is None


class FakeApi:
    """Answers TokenReview and SubjectAccessReview like an apiserver that knows two tokens."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        self.calls += 1
        if self.down:
            raise TransportError("connection refused")
        if path == secure.TOKEN_REVIEWS:
            user = {"reader": "alice", "other": "bob"}.get(body["spec"]["token"])
            return {"status": {"authenticated": user is not None, "user": {"username": user or "", "groups": []}}}
        assert body["spec"]["nonResourceAttributes"] == {"path": "/metrics", "verb": "get"}
        return {"status": {"allowed": body["spec"]["user"] == "alice"}}


async def test_decisions_are_cached_per_token_bounded_and_never_granted_on_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    api, now = FakeApi(), [0.0]
    auth = KubeAuthorizer(cast(KubeClient, api), clock=lambda: now[0])
    assert await auth(None) == 401 and api.calls == 0
    assert await auth("reader") == 200 and api.calls == 2
    assert await auth("other") == 403 and api.calls == 4
    assert await auth("stranger") == 401 and api.calls == 5
    assert await auth("reader") == 200 and api.calls == 5  # cached
    now[0] += secure.CACHE_TTL + 1
    api.down = True
    assert await auth("reader") == 503  # expired, and the apiserver cannot say: no grant
    assert await auth("reader") == 503  # errors are not cached
    api.down = False
    monkeypatch.setattr(secure, "CACHE_SIZE", 3)
    for i in range(10):
        await auth(f"random-{i}")
    assert len(auth._cache) == 3
