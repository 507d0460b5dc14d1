"""The webhook HTTPS server on loopback: MetalLB's paths, AdmissionReview and ConversionReview over TLS with a
certificate from the Secret, keep-alive, HTTP errors, a lister that fails, and a renewed certificate served
without a restart."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
from typing import Any

import pytest

from ironlb.kube.client import VALIDATING_WEBHOOK_CONFIGURATIONS
from ironlb.webhooks import certs, serve_webhooks
from ironlb.webhooks.server import Webhooks, WebhookServer, rest_lister
from tests.support.requestclient import RequestClient

from .helpers import NS, FakeApi, FakeApiError, admission, node, obj, pool

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

VWC = VALIDATING_WEBHOOK_CONFIGURATIONS.path(name="metallb-webhook-configuration")
POOLS = "/validate-metallb-io-v1beta1-ipaddresspool"


async def http(port: int, requests: list[tuple[str, str, bytes, dict[str, str]]], *,
               ctx: ssl.SSLContext | None = None, server_hostname: str | None = None
               ) -> list[tuple[int, dict[str, str], Any]]:
    """Send requests on one connection; return (status, headers, decoded JSON body) for each."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=server_hostname)
    out = []
    try:
        for method, path, body, extra in requests:
            head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
            if "Transfer-Encoding" not in extra:
                head += f"Content-Length: {len(body)}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
            status_line = await reader.readuntil(b"\r\n")
            headers = {}
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                k, _, v = line.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            data = await reader.readexactly(int(headers["content-length"]))
            out.append((int(status_line.split()[1]), headers, json.loads(data)))
    finally:
        writer.close()
    return out


def client_ctx(ca: bytes) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca.decode())
    return ctx


@pytest.fixture
def api() -> FakeApi:
    a = FakeApi()
    a.put(VWC, {"metadata": {"name": "metallb-webhook-configuration"},
                "webhooks": [{"name": "ipaddresspoolvalidationwebhook.metallb.io", "clientConfig": {}}]})
    a.put(f"/apis/metallb.io/v1beta1/namespaces/{NS}/ipaddresspools/b", pool("b", "10.0.0.0/24"))
    return a


async def test_https_admission_and_conversion(api: FakeApi) -> None:
    hooks = Webhooks(api, namespace=NS, host="127.0.0.1", port=0, ip_addresses=["127.0.0.1"])
    await hooks.start()
    try:
        assert hooks.bundle is not None and hooks.server is not None
        ca = hooks.bundle.ca_bundle
        # the CA went into the webhook configuration
        assert api.objects[VWC]["webhooks"][0]["clientConfig"]["caBundle"] == hooks.bundle.secret_data()["ca.crt"]
        ctx = client_ctx(ca)
        bad = json.dumps(admission("CREATE", pool("a", "10.0.0.128/25"))).encode()
        good = json.dumps(admission("CREATE", pool("a", "10.0.1.0/24"))).encode()
        conv = json.dumps({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "request": {
            "uid": "c1", "desiredAPIVersion": "metallb.io/v1beta1",
            "objects": [obj("BGPPeer", "p", {"myASN": 1, "peerASN": 2, "peerAddress": "1.1.1.1", "vrf": "x"})]}})
        answers = await http(hooks.port, [
            ("POST", POOLS, bad, {"Content-Type": "application/json"}),
            ("POST", POOLS + "?timeout=10s", good, {}),
            ("POST", "/convert", conv.encode(), {}),
            ("GET", "/healthz", b"", {}),
        ], ctx=ctx, server_hostname="metallb-webhook-service.metallb-system.svc")
        (s1, h1, r1), (s2, _, r2), (s3, _, r3), (s4, _, _) = answers
        assert (s1, s2, s3, s4) == (200, 200, 200, 200)
        assert h1["connection"] == "keep-alive" and h1["content-type"] == "application/json"
        assert r1["response"]["allowed"] is False
        assert "overlaps with already defined CIDR" in r1["response"]["status"]["message"]
        assert r2["response"]["allowed"] is True
        converted = r3["response"]["convertedObjects"][0]
        assert converted["apiVersion"] == "metallb.io/v1beta1" and "vrf" not in converted["spec"]
        # the certificate also holds for the IP address
        [(status, _, _)] = await http(hooks.port, [("GET", "/readyz", b"", {})], ctx=ctx, server_hostname="127.0.0.1")
        assert status == 200
        assert hooks.server.requests[POOLS] == 2 and hooks.server.requests["/convert"] == 1
    finally:
        await hooks.close()


async def test_renewed_certificate_is_served_without_a_restart(api: FakeApi) -> None:
    hooks = Webhooks(api, namespace=NS, host="127.0.0.1", port=0, ip_addresses=["127.0.0.1"])
    await hooks.start()
    try:
        assert hooks.bundle is not None
        ctx = client_ctx(hooks.bundle.ca_bundle)

        async def served() -> bytes:
            _, writer = await asyncio.open_connection("127.0.0.1", hooks.port, ssl=ctx)
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            writer.close()
            return bytes(der)

        first = await served()
        hooks.lookahead = 400 * 86400  # as if the certificate were about to expire
        assert await hooks.refresh()
        assert await served() != first
        assert await served() == ssl.PEM_cert_to_DER_cert(hooks.bundle.tls_crt.decode())
        hooks.lookahead = certs.LOOKAHEAD
        assert not await hooks.refresh()
    finally:
        await hooks.close()


async def test_http_errors() -> None:
    async def lister(kind: str, namespace: str) -> list[dict[str, Any]]:
        return []

    server = WebhookServer(lister, host="127.0.0.1", port=0)  # plain HTTP: the framing alone
    await server.start()
    try:
        body = json.dumps(admission("CREATE", pool("a", "10.0.1.0/24"))).encode()
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        answers = await http(server.port, [
            ("POST", "/nope", b"{}", {}),
            ("GET", POOLS, b"", {}),
            ("POST", POOLS, b"not json", {}),
            ("POST", POOLS, chunked, {"Transfer-Encoding": "chunked"}),
            ("POST", "/validate-metallb-io-v1beta1-community", body, {}),
        ])
        assert [a[0] for a in answers] == [404, 405, 400, 200, 200]
        assert answers[3][2]["response"]["allowed"] is True
        assert "this webhook validates Community, not 'IPAddressPool'" in answers[4][2]["response"]["status"]["message"]
        [(status, headers, _)] = await http(server.port, [("POST", POOLS, body, {"Connection": "close"})])
        assert status == 200 and headers["connection"] == "close"
    finally:
        await server.close()


async def test_a_failing_lister_does_not_block() -> None:
    """Without the existing objects the object is validated alone, and the answer says so."""
    async def lister(kind: str, namespace: str) -> list[dict[str, Any]]:
        raise FakeApiError(503, "apiserver unavailable")

    server = WebhookServer(lister, host="127.0.0.1", port=0)
    valid = await server.admit("IPAddressPool", admission("CREATE", pool("a", "10.0.1.0/24")))
    assert valid["response"]["allowed"] is True
    assert "could not list the existing IPAddressPool objects" in valid["response"]["warnings"][0]
    invalid = await server.admit("IPAddressPool", admission("CREATE", pool("a", "junk")))
    assert invalid["response"]["allowed"] is False


async def test_rest_lister_pages_and_kinds() -> None:
    pages = {
        "": {"items": [{"metadata": {"name": "n1"}}], "metadata": {"continue": "t1"}},
        "t1": {"items": [{"metadata": {"name": "n2"}}], "metadata": {}},
    }
    seen = []

    class Api(RequestClient):
        async def request(self, method: str, path: str, *, params: Any = None, body: Any = None,
                          content_type: str = "application/json", verb: str | None = None,
                          timeout: float | None = None) -> Any:
            seen.append((path, dict(params)))
            return pages[params.get("continue", "")]

    nodes = await rest_lister(Api())("Node", "")
    assert nodes == [node("n1") | {"metadata": {"name": "n1"}}, node("n2") | {"metadata": {"name": "n2"}}]
    assert [p for p, _ in seen] == ["/api/v1/nodes", "/api/v1/nodes"]
    seen.clear()
    pages[""] = {"items": [], "metadata": {}}
    assert await rest_lister(Api())("BGPPeer", NS) == []
    assert seen[0][0] == f"/apis/metallb.io/v1beta2/namespaces/{NS}/bgppeers"


async def test_serve_webhooks_runs_until_cancelled(api: FakeApi) -> None:
    listening = asyncio.Event()
    task = asyncio.create_task(serve_webhooks(api, namespace=NS, host="127.0.0.1", port=0, check_interval=0.05,
                                              listening=listening))
    await asyncio.wait_for(listening.wait(), 10)  # set once the port is open (after the certificate exists)
    for _ in range(200):
        if "caBundle" in api.objects[VWC]["webhooks"][0]["clientConfig"]:
            break
        await asyncio.sleep(0.02)
    assert "caBundle" in api.objects[VWC]["webhooks"][0]["clientConfig"]
    # someone re-applies the configuration without the caBundle: it comes back on the next check
    api.put(VWC, {"metadata": {"name": "metallb-webhook-configuration"},
                  "webhooks": [{"name": "ipaddresspoolvalidationwebhook.metallb.io", "clientConfig": {}}]})
    for _ in range(200):
        if "caBundle" in api.objects[VWC]["webhooks"][0]["clientConfig"]:
            break
        await asyncio.sleep(0.02)
    assert "caBundle" in api.objects[VWC]["webhooks"][0]["clientConfig"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not listening.is_set()


async def test_start_waits_for_the_api() -> None:
    """The apiserver is not reachable yet: start() retries, then serves."""
    api = FakeApi()
    real = api.request
    failures = 2

    async def flaky(method: str, path: str, **kw: Any) -> Any:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionRefusedError("no apiserver")
        return await real(method, path, **kw)

    api.request = flaky  # type: ignore[method-assign]
    hooks = Webhooks(api, namespace=NS, host="127.0.0.1", port=0)
    await asyncio.wait_for(hooks.start(retry=0.01), 10)
    assert hooks.server is not None and hooks.server.serving
    await hooks.close()
