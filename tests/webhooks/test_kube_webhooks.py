"""The webhooks for real: ironlb's HTTPS server on loopback, registered with a real kube-apiserver (1.34) through a
ValidatingWebhookConfiguration whose caBundle the cert code injected. Invalid objects sent to the apiserver are
rejected with MetalLB's messages, valid ones accepted; the BGPPeer conversion webhook serves v1beta1 reads and
writes of v1beta2 objects."""

from __future__ import annotations

import asyncio
import base64
import copy
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from ironlb.webhooks import certs
from ironlb.webhooks.server import Webhooks
from tests.support.controlplane import REPO, ControlPlane

from .asyncapi import AsyncApi

pytestmark = pytest.mark.kube

NS = "metallb-system"
BUNDLE = REPO / "config" / "manifests" / "ironlb.yaml"
VWC = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/bgppeers.metallb.io"
PLURAL = {"IPAddressPool": "ipaddresspools", "L2Advertisement": "l2advertisements",
          "BGPAdvertisement": "bgpadvertisements", "BGPPeer": "bgppeers", "BFDProfile": "bfdprofiles",
          "Community": "communities"}


def path(kind: str, ns: str = NS, name: str = "", version: str | None = None) -> str:
    v = version or ("v1beta2" if kind == "BGPPeer" else "v1beta1")
    p = f"/apis/metallb.io/{v}/namespaces/{ns}/{PLURAL[kind]}"
    return f"{p}/{name}" if name else p


def cr(kind: str, name: str, spec: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    v = version or ("v1beta2" if kind == "BGPPeer" else "v1beta1")
    return {"apiVersion": f"metallb.io/{v}", "kind": kind, "metadata": {"name": name}, "spec": spec}


def bundle_webhook_configuration() -> dict[str, Any]:
    for doc in yaml.safe_load_all(BUNDLE.read_text()):
        if doc and doc["kind"] == "ValidatingWebhookConfiguration":
            return dict(doc)
    raise AssertionError("no ValidatingWebhookConfiguration in the bundle")


async def ensure_namespace(api: AsyncApi, name: str) -> None:
    resp = await api.call("POST", "/api/v1/namespaces",
                          body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert resp.status in (201, 409), resp.body


@pytest.fixture
async def webhooks(webhook_control_plane: ControlPlane) -> AsyncIterator[tuple[AsyncApi, Webhooks]]:
    """ironlb's webhooks on 127.0.0.1, their certificate in the Secret, as the controller runs them."""
    api = AsyncApi(webhook_control_plane)
    await ensure_namespace(api, NS)
    hooks = Webhooks(api, namespace=NS, host="127.0.0.1", port=0, ip_addresses=["127.0.0.1"])
    await hooks.start()
    try:
        yield api, hooks
    finally:
        await hooks.close()


async def register(api: AsyncApi, hooks: Webhooks) -> dict[str, Any]:
    """The bundle's ValidatingWebhookConfiguration, pointed at the loopback server (failurePolicy Fail, so an
    accepted object proves the webhook answered), its caBundle injected by the cert code."""
    vwc = copy.deepcopy(bundle_webhook_configuration())
    for hook in vwc["webhooks"]:
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{hooks.port}{hook['clientConfig']['service']['path']}"}
        hook["failurePolicy"] = "Fail"
    resp = await api.call("GET", f"{VWC}/{vwc['metadata']['name']}")
    if resp.status == 200:
        await api.request("DELETE", f"{VWC}/{vwc['metadata']['name']}")
    await api.request("POST", VWC, body=vwc)
    assert hooks.bundle is not None
    assert await certs.inject_ca_bundle(api, hooks.bundle.ca_bundle) == [
        "ValidatingWebhookConfiguration/metallb-webhook-configuration"]
    stored = await api.request("GET", f"{VWC}/metallb-webhook-configuration")
    want = base64.b64encode(hooks.bundle.ca_bundle).decode()
    assert [h["clientConfig"]["caBundle"] for h in stored["webhooks"]] == [want] * 6
    return dict(stored)


async def rejected(api: AsyncApi, method: str, p: str, body: Any) -> str:
    resp = await api.call(method, p, body=body)
    assert resp.status >= 400, f"{method} {p} was accepted"
    return str(resp.body["message"])


def by_webhook(kind: str, message: str) -> str:
    return f'admission webhook "{kind.lower()}validationwebhook.metallb.io" denied the request: {message}'


async def test_validating_webhooks_through_the_apiserver(webhooks: tuple[AsyncApi, Webhooks]) -> None:
    api, hooks = webhooks
    assert hooks.server is not None
    secret = await api.request("GET", f"/api/v1/namespaces/{NS}/secrets/metallb-webhook-cert")
    assert set(secret["data"]) == {"ca.crt", "ca.key", "tls.crt", "tls.key"}
    await ensure_namespace(api, "elsewhere")
    await register(api, hooks)
    try:
        # the apiserver picks the configuration up within a moment
        deadline = time.monotonic() + 30
        while True:
            resp = await api.call("POST", path("IPAddressPool", "elsewhere"),
                                  body=cr("IPAddressPool", "p0", {"addresses": ["10.0.0.0/24"]}))
            if resp.status == 403 or time.monotonic() > deadline:
                break
            if resp.status == 201:
                await api.request("DELETE", path("IPAddressPool", "elsewhere", "p0"))
            await asyncio.sleep(0.2)
        assert resp.body["message"] == by_webhook("IPAddressPool", "resource must be created in metallb-system "
                                                                   "namespace")

        # ---- IPAddressPool: alone
        await api.request("POST", path("IPAddressPool"), body=cr("IPAddressPool", "p1", {"addresses": ["10.0.0.0/24"]}))
        msg = await rejected(api, "POST", path("IPAddressPool"),
                             cr("IPAddressPool", "p2", {"addresses": ["10.0.0.128/25"]}))
        assert msg.startswith(by_webhook("IPAddressPool", ""))
        assert 'CIDR "10.0.0.128/25" in pool "p2" overlaps with already defined CIDR "10.0.0.0/24"' in msg
        msg = await rejected(api, "POST", path("IPAddressPool"), cr("IPAddressPool", "p2", {"addresses": ["x"]}))
        assert 'parsing address pool p2: invalid CIDR "x" in pool "p2"' in msg
        await api.request("POST", path("IPAddressPool"), body=cr("IPAddressPool", "p2", {"addresses": ["1.1.1.0/28"]}))
        # UPDATE: the stored object is replaced by the new version
        p1 = await api.request("GET", path("IPAddressPool", name="p1"))
        p1["spec"]["addresses"] = ["1.1.1.8/29"]
        msg = await rejected(api, "PUT", path("IPAddressPool", name="p1"), p1)
        assert "overlaps with already defined CIDR" in msg
        p1["spec"]["addresses"] = ["10.0.0.0/23"]
        await api.request("PUT", path("IPAddressPool", name="p1"), body=p1)

        # ---- L2Advertisement: with the pools
        msg = await rejected(api, "POST", path("L2Advertisement"),
                             cr("L2Advertisement", "l2", {"ipAddressPools": ["p1", "p1"]}))
        assert msg.startswith(by_webhook("L2Advertisement", "")) and 'duplicate definition of ipAddressPools "p1"' in msg
        resp = await api.call("POST", path("L2Advertisement"), body=cr("L2Advertisement", "l2",
                                                                       {"ipAddressPools": ["p1", "nope"]}))
        assert resp.status == 201
        assert 'no valid IPAddressPool named \\"nope\\"' in resp.headers.get("Warning", "")  # quoted in the header

        # ---- BGPAdvertisement: with the pools and nodes (MetalLB's e2e message)
        msg = await rejected(api, "POST", path("BGPAdvertisement"),
                             cr("BGPAdvertisement", "ad", {"aggregationLength": 26, "ipAddressPools": ["p2"]}))
        assert by_webhook("BGPAdvertisement", "") in msg
        assert ("invalid aggregation length 26: prefix 28 in this pool is more specific than the aggregation length "
                "for addresses 1.1.1.0/28") in msg
        msg = await rejected(api, "POST", path("BGPAdvertisement"),
                             cr("BGPAdvertisement", "ad", {"communities": ["65535:99999"]}))
        assert 'invalid community value: invalid section "99999"' in msg
        # a community alias that does not exist yet is a transient reference: accepted
        await api.request("POST", path("BGPAdvertisement"),
                          body=cr("BGPAdvertisement", "ad", {"communities": ["later", "1:1"], "localPref": 100}))
        await api.request("POST", "/api/v1/nodes", body={"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": "n1", "labels": {"rack": "1"}}})
        msg = await rejected(api, "POST", path("BGPAdvertisement"), cr("BGPAdvertisement", "ad2", {
            "localPref": 200, "nodeSelectors": [{"matchLabels": {"rack": "1"}}]}))
        assert "invalid local preference 200: local preferernce 100 was already set" in msg

        # ---- BGPPeer: with the nodes; v1beta1 writes reach the v1beta2 webhook too
        peer = {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1"}
        msg = await rejected(api, "POST", path("BGPPeer"), cr("BGPPeer", "bad", {**peer, "peerAddress": "10.0.0.300"}))
        assert msg.startswith(by_webhook("BGPPeer", "")) and 'invalid BGPPeer address "10.0.0.300"' in msg
        msg = await rejected(api, "POST", path("BGPPeer", version="v1beta1"),
                             cr("BGPPeer", "bad", {**peer, "holdTime": "1s"}, version="v1beta1"))
        assert 'invalid hold time "1s": must be 0 or >=3s' in msg
        msg = await rejected(api, "POST", path("BGPPeer"), cr("BGPPeer", "bad", {**peer, "peerASN": 64500,
                                                                                "ebgpMultiHop": True}))
        assert "invalid ebgp-multihop parameter set for an ibgp peer" in msg
        resp = await api.call("POST", path("BGPPeer"), body=cr("BGPPeer", "old", {**peer, "disableMP": True}))
        assert resp.status == 201
        assert "disable mp is deprecated and has no effect since it's the default behavior now" in resp.headers.get(
            "Warning", "")
        # dangling BFD profile and Secret: transient, accepted
        await api.request("POST", path("BGPPeer"), body=cr("BGPPeer", "peer1", {
            **peer, "bfdProfile": "fast", "passwordSecret": {"name": "later", "namespace": NS}}))

        # ---- Community: alone
        await api.request("POST", path("Community"), body=cr("Community", "c1", {"communities": [
            {"name": "a", "value": "65535:65282"}]}))
        msg = await rejected(api, "POST", path("Community"), cr("Community", "c2", {"communities": [
            {"name": "a", "value": "1:1"}]}))
        assert msg.startswith(by_webhook("Community", "")) and 'duplicate definition of community "a"' in msg

        # ---- BFDProfile: create, and delete while a peer uses it
        await api.request("POST", path("BFDProfile"), body=cr("BFDProfile", "fast", {"receiveInterval": 100}))
        await api.request("POST", path("BFDProfile"), body=cr("BFDProfile", "unused", {}))
        msg = await rejected(api, "DELETE", path("BFDProfile", name="fast"), None)
        assert msg == by_webhook("BFDProfile", "failed to delete BFDProfile fast, used by BGPPeer peer1")
        await api.request("DELETE", path("BFDProfile", name="unused"))

        assert all(hooks.server.requests[p] > 0 for p in (
            "/validate-metallb-io-v1beta1-ipaddresspool", "/validate-metallb-io-v1beta2-bgppeer",
            "/validate-metallb-io-v1beta1-bgpadvertisement", "/validate-metallb-io-v1beta1-l2advertisement",
            "/validate-metallb-io-v1beta1-community", "/validate-metallb-io-v1beta1-bfdprofile"))
    finally:
        await api.call("DELETE", f"{VWC}/metallb-webhook-configuration")


async def test_conversion_webhook_through_the_apiserver(webhooks: tuple[AsyncApi, Webhooks]) -> None:
    api, hooks = webhooks
    assert hooks.server is not None and hooks.bundle is not None
    crd = await api.request("GET", CRD)
    original = copy.deepcopy(crd["spec"]["conversion"])
    crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
        "conversionReviewVersions": ["v1"], "clientConfig": {"url": f"https://127.0.0.1:{hooks.port}/convert"}}}
    await api.request("PUT", CRD, body=crd)
    assert await certs.inject_ca_bundle(api, hooks.bundle.ca_bundle) == ["CustomResourceDefinition/bgppeers.metallb.io"]
    crd = await api.request("GET", CRD)
    assert crd["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] == base64.b64encode(
        hooks.bundle.ca_bundle).decode()
    try:
        selectors = [{"matchLabels": {"zone": "a"},
                      "matchExpressions": [{"key": "rack", "operator": "In", "values": ["1", "2"]}]}]
        v2 = {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.9", "holdTime": "90s",
              "nodeSelectors": selectors, "connectTime": "5s", "enableGracefulRestart": True,
              "passwordSecret": {"name": "s", "namespace": NS}, "dualStackAddressFamily": True}
        await api.request("POST", path("BGPPeer"), body=cr("BGPPeer", "conv2", v2))
        deadline = time.monotonic() + 30
        while True:  # the apiserver switches to the webhook within a moment
            before = hooks.server.requests["/convert"]
            got = await api.request("GET", path("BGPPeer", name="conv2", version="v1beta1"))
            if hooks.server.requests["/convert"] > before or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert hooks.server.requests["/convert"] > before, "the apiserver never called /convert"
        assert got["apiVersion"] == "metallb.io/v1beta1"
        # v1beta2's defaults (peerPort 179) were applied on write; the v1beta2-only fields are gone
        assert got["spec"] == {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.9", "holdTime": "90s",
                               "peerPort": 179, "nodeSelectors": selectors}
        # the v1beta2 object still has everything
        stored = await api.request("GET", path("BGPPeer", name="conv2"))
        assert stored["spec"]["connectTime"] == "5s" and stored["spec"]["enableGracefulRestart"] is True

        # a v1beta1 write is converted to the storage version by the webhook
        calls = hooks.server.requests["/convert"]
        v1 = {"myASN": 64500, "peerASN": 64502, "peerAddress": "10.0.0.10", "ebgpMultiHop": True,
              "nodeSelectors": selectors, "bfdProfile": "x"}
        await api.request("POST", path("BGPPeer", version="v1beta1"), body=cr("BGPPeer", "conv1", v1, "v1beta1"))
        assert hooks.server.requests["/convert"] > calls
        stored = await api.request("GET", path("BGPPeer", name="conv1"))
        assert stored["apiVersion"] == "metallb.io/v1beta2"
        for key, value in v1.items():
            assert stored["spec"][key] == value
        listed = await api.request("GET", path("BGPPeer", version="v1beta1"))
        assert {i["metadata"]["name"] for i in listed["items"]} >= {"conv1", "conv2"}
        assert {i["apiVersion"] for i in listed["items"]} == {"metallb.io/v1beta1"}
    finally:
        crd = await api.request("GET", CRD)
        crd["spec"]["conversion"] = original
        await api.request("PUT", CRD, body=crd)
