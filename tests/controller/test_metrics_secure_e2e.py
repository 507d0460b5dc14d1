"""``ironlb controller --metrics-secure``: /metrics over HTTPS, authenticated and authorized by the real apiserver
(TokenReview, then SubjectAccessReview for ``get`` on the non-resource URL ``/metrics``), as MetalLB v0.16 serves it."""

from __future__ import annotations

import contextlib
import http.client
import ssl
from collections.abc import Callable

import pytest

from tests.support.controller import ControllerProcess, create_pool, ip_pool
from tests.support.controlplane import ControlPlane, KubeError
from tests.support.waits import wait_until

pytestmark = pytest.mark.kube

Start = Callable[..., ControllerProcess]


def get(port: int, path: str, token: str | None = None) -> tuple[int, str, bytes]:
    """One HTTPS GET (the certificate is self-signed: not verified); status, body and the server's certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        assert isinstance(conn.sock, ssl.SSLSocket)
        cert = conn.sock.getpeercert(binary_form=True) or b""
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), cert
    finally:
        conn.close()


def token_for(cp: ControlPlane, ns: str, account: str) -> str:
    cp.create(f"/api/v1/namespaces/{ns}/serviceaccounts",
              {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}})  # fmt: skip
    review = cp.create(f"/api/v1/namespaces/{ns}/serviceaccounts/{account}/token",
                       {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                        "spec": {"expirationSeconds": 3600}})  # fmt: skip
    return str(review["status"]["token"])


def test_metrics_need_a_token_with_get_on_metrics(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("p", "10.40.0.0/30"))
    reader, nobody = token_for(cp, ns, "scraper"), token_for(cp, ns, "nobody")
    role = f"{ns}-metrics-reader"
    cp.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role},
        "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
    })  # fmt: skip
    cp.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": ns}],
    })  # fmt: skip
    try:
        ctl = controller("--metrics-secure", wait=False)

        def ready() -> bool:
            with contextlib.suppress(OSError, ssl.SSLError):
                return get(ctl.port, "/readyz")[0] == 200
            return False

        wait_until(ready, 30, "the controller's /readyz over HTTPS")
        assert get(ctl.port, "/metrics")[0] == 401
        assert get(ctl.port, "/metrics", "not-a-token")[0] == 401
        assert get(ctl.port, "/metrics", nobody)[0] == 403
        status, body, cert = get(ctl.port, "/metrics", reader)
        assert status == 200 and "metallb_k8s_client_config_loaded_bool 1.0" in body
        assert cert  # TLS, with the self-signed certificate made at start-up
        assert get(ctl.port, "/metrics", nobody)[0] == 403  # cached decisions stay what the apiserver said
        # plain HTTP gets nothing from the TLS port
        conn = http.client.HTTPConnection("127.0.0.1", ctl.port, timeout=5)
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            conn.request("GET", "/metrics")
            conn.getresponse()
        conn.close()
    finally:
        for path in (f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{role}",
                     f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}"):  # fmt: skip
            with contextlib.suppress(KubeError):
                cp.delete(path)
