"""The controller serves the admission webhooks and creates the speakers' memberlist Secret (MetalLB's controller)."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.controller import ControllerProcess
from tests.support.controlplane import ControlPlane, KubeError, free_port
from tests.support.waits import NOT_LISTENING, wait_until

pytestmark = pytest.mark.kube


def get_or_none(cp: ControlPlane, path: str) -> Any:
    try:
        return cp.get(path)
    except KubeError as err:
        if err.status == 404:
            return None
        raise


def review(ns: str, pool: dict[str, object]) -> bytes:
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "1", "kind": {"group": "metallb.io", "version": "v1beta1", "kind": "IPAddressPool"},
            "operation": "CREATE", "namespace": ns, "name": pool["metadata"]["name"],  # type: ignore[index]
            "object": pool,
        },
    }).encode()


def test_webhooks_and_memberlist_secret(
    control_plane: ControlPlane, namespace: str, controller: Callable[..., ControllerProcess]
) -> None:
    cp, ns = control_plane, namespace
    port = free_port()
    controller("--webhook-mode", "enabled", "--webhook-port", str(port))  # returns once /readyz says 200
    # Ready means the webhooks it serves are listening: the apiserver may call them from now on.
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    secret = wait_until(lambda: get_or_none(cp, f"/api/v1/namespaces/{ns}/secrets/memberlist"), 20, "memberlist Secret")
    key = base64.b64decode(secret["data"]["secretkey"])
    assert len(base64.b64decode(key + b"=" * (-len(key) % 4))) == 16  # 16 random bytes, unpadded base64 (MetalLB)
    cert = wait_until(lambda: get_or_none(cp, f"/api/v1/namespaces/{ns}/secrets/metallb-webhook-cert"), 20, "cert")
    ca = base64.b64decode(cert["data"]["ca.crt"])
    ctx = ssl.create_default_context(cadata=ca.decode())
    ctx.check_hostname = False  # the certificate names the in-cluster Service, not 127.0.0.1

    def ask(pool: dict[str, object]) -> dict[str, object]:
        req = urllib.request.Request(
            f"https://127.0.0.1:{port}/validate-metallb-io-v1beta1-ipaddresspool", data=review(ns, pool),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            answer: dict[str, object] = json.loads(resp.read())["response"]
            return answer

    bad = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
           "metadata": {"name": "bad", "namespace": ns}, "spec": {"addresses": ["10.9.0.9-10.9.0.1"]}}
    # The webhook server starts listening after the certificate Secret exists: refused means not yet.
    answer = wait_until(lambda: ask(bad), 20, "webhook answer", retry=NOT_LISTENING)
    assert answer["allowed"] is False
    assert "is after the end IP" in json.dumps(answer)
    good = {**bad, "metadata": {"name": "good", "namespace": ns}, "spec": {"addresses": ["10.9.0.0/30"]}}
    assert ask(good)["allowed"] is True
