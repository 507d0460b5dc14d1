"""config/manifests/ironlb.yaml on a real kube-apiserver 1.34 with no CRDs installed: every object passes a
server-side dry run with strict field validation (the apiserver's own schemas are the validator: unknown or
misplaced fields, wrong types and failed validation are errors), then the bundle applies cleanly, twice. Run as
the controller's ServiceAccount, the webhook code fills the certificate Secret and injects the CA with exactly the
permissions the bundle grants, and nothing more is allowed; as either component, the secure metrics port's
TokenReview and SubjectAccessReview work with those permissions. The controller's pod passes the "restricted" Pod
Security level; the speaker's needs "privileged", which the namespace grants. (No kubelet runs: the workloads are
accepted, not run.)"""

from __future__ import annotations

import base64
import copy
import time
from typing import Any

import pytest

from ironlb.metrics.secure import KubeAuthorizer
from ironlb.webhooks import certs
from ironlb.webhooks.server import Webhooks, rest_lister
from ironlb.webhooks.validate import LISTED
from tests.support.controlplane import ControlPlane
from tests.support.waits import wait_until_async
from tests.webhooks.asyncapi import AsyncApi

from .conftest import documents, find, render, render_module

pytestmark = pytest.mark.kube

NS = "metallb-system"
CONTROLLER = f"system:serviceaccount:{NS}:controller"
SPEAKER = f"system:serviceaccount:{NS}:speaker"
RESOURCES = {  # kind -> (API prefix, plural, namespaced)
    "Namespace": ("/api/v1", "namespaces", False),
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Secret": ("/api/v1", "secrets", True),
    "Service": ("/api/v1", "services", True),
    "Pod": ("/api/v1", "pods", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "ValidatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1", "validatingwebhookconfigurations",
                                       False),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
}
VWC = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/metallb-webhook-configuration"


def object_path(doc: dict[str, Any]) -> str:
    prefix, plural, namespaced = RESOURCES[doc["kind"]]
    meta = doc["metadata"]
    ns = f"/namespaces/{meta['namespace']}" if namespaced else ""
    return f"{prefix}{ns}/{plural}/{meta['name']}"


async def apply(api: AsyncApi, doc: dict[str, Any], *, dry_run: bool = False) -> Any:
    """Server-side apply, as `kubectl apply --server-side` does, with strict field validation."""
    params = {"fieldManager": "ironlb-install", "force": "true", "fieldValidation": "Strict"}
    if dry_run:
        params["dryRun"] = "All"
    resp = await api.call("PATCH", object_path(doc), params=params, body=doc,
                          content_type="application/apply-patch+yaml")
    assert resp.status in (200, 201), f"{doc['kind']} {doc['metadata']['name']}: {resp.status} {resp.body}"
    assert "Warning" not in resp.headers, f"{doc['kind']} {doc['metadata']['name']}: {resp.headers['Warning']}"
    return resp.body


async def apply_bundle(api: AsyncApi, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        await apply(api, doc)
    deadline = time.monotonic() + 60
    for doc in docs:
        if doc["kind"] != "CustomResourceDefinition":
            continue

        async def established(doc: dict[str, Any] = doc) -> bool:
            crd = await api.request("GET", object_path(doc))
            return any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"].get("conditions", []))

        # A CRD just created may have no status yet (KeyError): not yet.
        await wait_until_async(established, max(0.0, deadline - time.monotonic()),
                               f"{doc['metadata']['name']} Established", retry=(KeyError,), interval=0.1)


async def test_bundle_installs_cleanly(bare_control_plane: ControlPlane) -> None:
    admin = AsyncApi(bare_control_plane)
    docs = documents()
    crds = await admin.request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    assert crds["items"] == []  # the bundle brings its own

    # ---- the dry run: every object, validated by the apiserver's schemas (the namespace must exist first)
    await apply(admin, docs[0], dry_run=True)
    await apply(admin, docs[0])
    for doc in docs[1:]:
        await apply(admin, doc, dry_run=True)

    # ---- the real thing, then again (idempotent)
    await apply_bundle(admin, docs)
    for kind, name in (("Deployment", "controller"), ("DaemonSet", "speaker")):
        stored = await admin.request("GET", object_path(find(docs, kind, name)))
        assert stored["spec"]["template"]["metadata"]["labels"]["app"] == "metallb"
    vwc = await admin.request("GET", VWC)
    assert len(vwc["webhooks"]) == 6 and all("caBundle" not in h["clientConfig"] for h in vwc["webhooks"])

    # ---- the controller's webhook code, with the controller's permissions only
    as_controller = AsyncApi(bare_control_plane, impersonate=CONTROLLER)
    hooks = Webhooks(as_controller, namespace=NS, host="127.0.0.1", port=0)
    await hooks.start()
    await hooks.close()
    assert hooks.bundle is not None
    want = base64.b64encode(hooks.bundle.ca_bundle).decode()
    vwc = await admin.request("GET", VWC)
    assert [h["clientConfig"]["caBundle"] for h in vwc["webhooks"]] == [want] * 6
    secret = await admin.request("GET", f"/api/v1/namespaces/{NS}/secrets/metallb-webhook-cert")
    assert base64.b64decode(secret["data"]["ca.crt"]) == hooks.bundle.ca_bundle
    assert secret["metadata"]["labels"] == {"app": "metallb"}  # the shipped Secret, filled in place
    assert await certs.ensure_memberlist_secret(as_controller, namespace=NS)
    lister = rest_lister(as_controller)
    for kind in LISTED:
        assert await lister(kind, NS) == []

    # ---- applying the bundle again keeps what the controller wrote
    await apply_bundle(admin, docs)
    vwc = await admin.request("GET", VWC)
    assert [h["clientConfig"]["caBundle"] for h in vwc["webhooks"]] == [want] * 6
    secret = await admin.request("GET", f"/api/v1/namespaces/{NS}/secrets/metallb-webhook-cert")
    assert base64.b64decode(secret["data"]["tls.crt"]) == hooks.bundle.tls_crt

    # ---- least privilege
    denied = [
        (as_controller, "GET", "/api/v1/namespaces/default/secrets"),
        (as_controller, "DELETE", VWC),
        (as_controller, "PUT", f"/api/v1/namespaces/{NS}/secrets/some-other-secret"),
        (as_controller, "PATCH", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/ipaddresspools.metallb.io"),
        (AsyncApi(bare_control_plane, impersonate=SPEAKER), "PATCH", VWC),
        (AsyncApi(bare_control_plane, impersonate=SPEAKER), "POST", f"/api/v1/namespaces/{NS}/secrets"),
    ]
    for api, method, path in denied:
        body = None if method in ("GET", "DELETE") else {"metadata": {"name": "some-other-secret"}}
        ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
        resp = await api.call(method, path, body=body, content_type=ctype)
        assert resp.status == 403, f"{api.headers} {method} {path}: {resp.status}"
    as_speaker = AsyncApi(bare_control_plane, impersonate=SPEAKER)
    for path in ("/api/v1/services", "/api/v1/nodes", "/apis/discovery.k8s.io/v1/endpointslices",
                 f"/api/v1/namespaces/{NS}/secrets", f"/apis/metallb.io/v1beta2/namespaces/{NS}/bgppeers",
                 f"/apis/metallb.io/v1beta1/namespaces/{NS}/servicel2statuses"):
        await as_speaker.request("GET", path)

    # ---- secure metrics (--metrics-secure) with the bundle's RBAC: each component may ask who a token is and
    # whether it may get /metrics; a token bound to the bundle's metrics-reader ClusterRole may, another may not.
    tokens = {}
    for account in ("scraper", "nobody"):
        await apply(admin, {"apiVersion": "v1", "kind": "ServiceAccount",
                            "metadata": {"name": account, "namespace": NS}})
        review = await admin.request("POST", f"/api/v1/namespaces/{NS}/serviceaccounts/{account}/token", body={
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}})
        tokens[account] = review["status"]["token"]
    await apply(admin, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                        "metadata": {"name": "scraper-reads-metrics"},
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                    "name": f"{NS}:metrics-reader"},
                        "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": NS}]})
    for account in (CONTROLLER, SPEAKER):
        authorize = KubeAuthorizer(AsyncApi(bare_control_plane, impersonate=account))
        decisions = [await authorize(t) for t in (None, "not-a-token", tokens["nobody"], tokens["scraper"])]
        assert decisions == [401, 401, 403, 200], account

    # ---- the BGPPeer conversion variant: the controller injects the CA into the CRD too
    variant = find(documents(render(bgppeer_conversion="webhook")), "CustomResourceDefinition",
                   "bgppeers.metallb.io")
    await apply(admin, variant)
    assert await certs.inject_ca_bundle(as_controller, hooks.bundle.ca_bundle) == [
        "CustomResourceDefinition/bgppeers.metallb.io"]
    crd = await admin.request("GET", object_path(variant))
    assert crd["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] == want
    # Going back to `strategy: None` needs a replace: an apply keeps the injected caBundle, which the apiserver
    # refuses without the Webhook strategy.
    default = copy.deepcopy(find(docs, "CustomResourceDefinition", "bgppeers.metallb.io"))
    default["metadata"]["resourceVersion"] = crd["metadata"]["resourceVersion"]
    await admin.request("PUT", object_path(default), body=default)
    crd = await admin.request("GET", object_path(default))
    assert crd["spec"]["conversion"] == {"strategy": "None"}


async def test_pod_security(bare_control_plane: ControlPlane) -> None:
    """The controller's pod is "restricted"; the speaker's is refused there (the check is real) and accepted in
    ironlb's own namespace, which is "privileged"."""
    admin = AsyncApi(bare_control_plane)
    docs = documents()
    await apply(admin, docs[0])
    restricted = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pss-restricted", "labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}}}
    await apply(admin, restricted)

    def pod(workload: str, kind: str, ns: str) -> dict[str, Any]:
        template = copy.deepcopy(find(docs, kind, workload)["spec"]["template"])
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{workload}-check", "namespace": ns,
                                                                "labels": template["metadata"]["labels"]},
                "spec": template["spec"]}

    async def dry_create(p: dict[str, Any]) -> Any:
        return await admin.call("POST", f"/api/v1/namespaces/{p['metadata']['namespace']}/pods",
                                params={"dryRun": "All", "fieldValidation": "Strict"}, body=p)

    resp = await dry_create(pod("controller", "Deployment", "pss-restricted"))
    assert resp.status == 201, resp.body
    assert "Warning" not in resp.headers
    resp = await dry_create(pod("speaker", "DaemonSet", "pss-restricted"))
    assert resp.status == 403 and "violates PodSecurity" in resp.body["message"]
    assert "hostNetwork" in resp.body["message"]
    resp = await dry_create(pod("speaker", "DaemonSet", NS))
    assert resp.status == 201, resp.body


async def test_chart_options_pass_strict_validation(bare_control_plane: ControlPlane) -> None:
    """The chart with its options on (network policies, service monitors' Services and token, user certificates,
    MetalLB-style tolerations, plain metrics off): every object the apiserver knows passes a strict server-side dry
    run (the Prometheus Operator's kinds are left out: no such CRDs here)."""
    from tests.support.gotools import helm_binary

    admin = AsyncApi(bare_control_plane)
    text = render_module().helm_template(
        "namespace.create=true", "networkpolicies.enabled=true", "networkpolicies.defaultDeny=true",
        "prometheus.serviceMonitor.enabled=true", "prometheus.serviceAccount=prometheus-k8s",
        "prometheus.namespace=monitoring", "tls.speakerMetricsTLSSecret=speaker-tls",
        "tls.controllerMetricsTLSSecret=controller-tls", "tls.minVersion=VersionTLS13",
        "speaker.tolerations[0].key=edge", "speaker.tolerations[0].operator=Exists",
        "controller.resources.limits.memory=200Mi", "loadBalancerClass=example.com/lb", helm_bin=helm_binary())
    docs = documents(text)
    await apply(admin, find(docs, "Namespace", NS))
    checked: set[str] = set()
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        await apply(admin, doc, dry_run=True)
        checked.add(doc["kind"])
    assert {"NetworkPolicy", "Service", "Secret", "ClusterRoleBinding", "DaemonSet", "Deployment"} <= checked
