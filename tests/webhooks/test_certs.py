"""Webhook certificates with the openssl CLI: issued for the Service's names, stored in the Secret, renewed before
expiry (the CA kept, or replaced with the old one still trusted), and the CA injected where the apiserver reads it.
"""

from __future__ import annotations

import base64
import shutil
import time

import pytest

from ironlb.kube.client import CUSTOM_RESOURCE_DEFINITIONS, VALIDATING_WEBHOOK_CONFIGURATIONS
from ironlb.webhooks import certs
from ironlb.webhooks.certs import CertBundle

from .helpers import FakeApi

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

NS = "metallb-system"
NAMES = certs.service_dns_names("metallb-webhook-service", NS)
SECRET = f"/api/v1/namespaces/{NS}/secrets/metallb-webhook-cert"
VWC = VALIDATING_WEBHOOK_CONFIGURATIONS.path(name="metallb-webhook-configuration")
CRD = CUSTOM_RESOURCE_DEFINITIONS.path(name="bgppeers.metallb.io")


def test_service_names() -> None:
    assert "metallb-webhook-service.metallb-system.svc" in NAMES


async def test_issue_and_inspect() -> None:
    bundle = await certs.renew(None, "ca", NAMES, ["127.0.0.1", "::1"])
    info = await certs.cert_info(bundle.tls_crt)
    assert info.dns_names == set(NAMES)
    assert info.ip_addresses == {"127.0.0.1", "::1"}
    assert 364 * 86400 < info.not_after - time.time() <= 365 * 86400 + 60
    assert (await certs.cert_info(bundle.ca_crt)).not_after - time.time() > 3649 * 86400
    assert await certs.signed_by(bundle.ca_crt, bundle.tls_crt)
    assert await certs.rotation_needed(bundle, NAMES, ["127.0.0.1"]) == ""


async def test_what_needs_renewal() -> None:
    bundle = await certs.renew(None, "ca", NAMES)
    assert await certs.rotation_needed(None, NAMES) == "ca"
    assert await certs.rotation_needed(bundle, [*NAMES, "other.svc"]) == "cert"
    assert await certs.rotation_needed(bundle, NAMES, ["10.1.1.1"]) == "cert"
    soon = time.time() + 340 * 86400  # within 30 days of the certificate's end
    assert await certs.rotation_needed(bundle, NAMES, now=soon) == "cert"
    late = time.time() + 3630 * 86400  # within 30 days of the CA's end
    assert await certs.rotation_needed(bundle, NAMES, now=late) == "ca"
    other = await certs.renew(None, "ca", NAMES)
    assert await certs.rotation_needed(CertBundle(bundle.ca_bundle, bundle.ca_key, other.tls_crt, other.tls_key),
                                       NAMES) == "cert"  # signed by another CA
    assert await certs.rotation_needed(CertBundle(bundle.ca_bundle, bundle.ca_key, bundle.tls_crt, other.tls_key),
                                       NAMES) == "cert"  # key of another certificate
    assert await certs.rotation_needed(CertBundle(bundle.ca_bundle, other.ca_key, bundle.tls_crt, bundle.tls_key),
                                       NAMES) == "ca"
    assert await certs.rotation_needed(CertBundle(b"junk", b"junk", b"junk", b"junk"), NAMES) == "ca"


async def test_renewing_the_certificate_keeps_the_ca() -> None:
    first = await certs.renew(None, "ca", NAMES)
    second = await certs.renew(first, "cert", NAMES)
    assert second.ca_bundle == first.ca_bundle and second.tls_crt != first.tls_crt
    third = await certs.renew(second, "ca", NAMES)
    assert third.ca_crt != first.ca_crt
    assert certs.split_pem(third.ca_bundle) == [third.ca_crt, first.ca_crt]  # the old CA is still trusted


async def test_ensure_creates_then_keeps_the_secret() -> None:
    api = FakeApi()
    bundle, changed = await certs.ensure_certificates(api, namespace=NS, dns_names=NAMES)
    assert changed
    secret = api.objects[SECRET]
    assert set(secret["data"]) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    assert base64.b64decode(secret["data"]["tls.crt"]) == bundle.tls_crt
    again, changed = await certs.ensure_certificates(api, namespace=NS, dns_names=NAMES)
    assert not changed and again == bundle


async def test_ensure_fills_an_empty_secret_and_renews_a_stale_one() -> None:
    """The manifest ships the Secret empty; the controller fills it in place."""
    api = FakeApi()
    api.put(SECRET, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "metallb-webhook-cert",
                                                                         "namespace": NS, "labels": {"app": "metallb"}}})
    bundle, changed = await certs.ensure_certificates(api, namespace=NS, dns_names=NAMES)
    assert changed and api.objects[SECRET]["metadata"]["labels"] == {"app": "metallb"}
    renewed, changed = await certs.ensure_certificates(api, namespace=NS, dns_names=NAMES, lookahead=400 * 86400)
    assert changed and renewed.ca_bundle == bundle.ca_bundle and renewed.tls_crt != bundle.tls_crt


async def test_ensure_retries_on_a_conflict() -> None:
    """Another replica wrote the Secret between our read and our write: read it again and use theirs."""
    api = FakeApi()
    theirs = await certs.renew(None, "ca", NAMES)
    real_request = api.request
    raced = False

    async def racing(method: str, path: str, **kw: object) -> object:
        nonlocal raced
        if method == "POST" and not raced:
            raced = True
            api.put(SECRET, {"apiVersion": "v1", "kind": "Secret", "data": theirs.secret_data(),
                             "metadata": {"name": "metallb-webhook-cert", "namespace": NS}})
        return await real_request(method, path, **kw)  # type: ignore[arg-type]

    api.request = racing  # type: ignore[method-assign]
    bundle, changed = await certs.ensure_certificates(api, namespace=NS, dns_names=NAMES)
    assert bundle == theirs and not changed


async def test_inject_ca_bundle() -> None:
    api = FakeApi()
    hooks = [{"name": f"h{i}.metallb.io", "clientConfig": {"service": {"name": "s"}}} for i in range(3)]
    api.put(VWC, {"metadata": {"name": "metallb-webhook-configuration"}, "webhooks": hooks})
    api.put(CRD, {"metadata": {"name": "bgppeers.metallb.io"}, "spec": {"conversion": {"strategy": "None"}}})
    changed = await certs.inject_ca_bundle(api, b"PEM")
    assert changed == ["ValidatingWebhookConfiguration/metallb-webhook-configuration"]
    assert [h["clientConfig"]["caBundle"] for h in api.objects[VWC]["webhooks"]] == ["UEVN"] * 3
    assert await certs.inject_ca_bundle(api, b"PEM") == []  # nothing to do, nothing written
    api.put(CRD, {"metadata": {"name": "bgppeers.metallb.io"}, "spec": {"conversion": {
        "strategy": "Webhook", "webhook": {"clientConfig": {"service": {"name": "s", "path": "/convert"}}}}}})
    assert await certs.inject_ca_bundle(api, b"PEM") == ["CustomResourceDefinition/bgppeers.metallb.io"]
    client_config = api.objects[CRD]["spec"]["conversion"]["webhook"]["clientConfig"]
    assert client_config == {"service": {"name": "s", "path": "/convert"}, "caBundle": "UEVN"}


async def test_inject_without_the_objects() -> None:
    """An install without the webhook configuration (or CRDs) is not an error."""
    assert await certs.inject_ca_bundle(FakeApi(), b"PEM") == []


async def test_memberlist_secret() -> None:
    api = FakeApi()
    assert await certs.ensure_memberlist_secret(api, namespace=NS)
    secret = api.objects[f"/api/v1/namespaces/{NS}/secrets/memberlist"]
    key = base64.b64decode(secret["data"]["secretkey"])
    assert len(key) == 22 and len(base64.b64decode(key + b"==")) == 16  # RawStdEncoding of 16 bytes
    assert not await certs.ensure_memberlist_secret(api, namespace=NS)
    assert api.objects[f"/api/v1/namespaces/{NS}/secrets/memberlist"]["data"] == secret["data"]
