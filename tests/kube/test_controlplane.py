"""Smoke tests of the test control plane itself: the built version, core objects, restart and compaction."""

from __future__ import annotations

import http.client
import ipaddress
import re
import ssl
import time
from collections.abc import Callable

import pytest

from tests.support.controlplane import REPO, ControlPlane, KubeError

pytestmark = pytest.mark.kube


def _kube_version() -> str:
    text = (REPO / "scripts" / "k8s" / "versions.env").read_text()
    m = re.search(r"^KUBE_VERSION=(\S+)$", text, re.M)
    assert m
    return m.group(1)


def test_version_is_the_built_release(control_plane: ControlPlane) -> None:
    v = control_plane.version()
    want = _kube_version()
    assert v["gitVersion"] == want
    assert (v["major"], v["minor"]) == tuple(want.lstrip("v").split(".")[:2])
    assert v["gitTreeState"] == "clean"


def test_admin_is_cluster_admin_and_anonymous_is_not(control_plane: ControlPlane) -> None:
    review = control_plane.create("/apis/authentication.k8s.io/v1/selfsubjectreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    user = review["status"]["userInfo"]
    assert user["username"] == "admin"
    assert "system:masters" in user["groups"]
    # Without the client certificate the request is anonymous, and RBAC refuses it.
    ctx = ssl.create_default_context(cafile=str(control_plane.ca_file))
    conn = http.client.HTTPSConnection("127.0.0.1", control_plane.port, context=ctx, timeout=10)
    try:
        conn.request("GET", "/api/v1/namespaces")
        assert conn.getresponse().status == 403
    finally:
        conn.close()


def test_core_objects_round_trip(control_plane: ControlPlane, namespace: str) -> None:
    cp = control_plane
    # Namespace (made by the fixture) is listed.
    names = {n["metadata"]["name"] for n in cp.get("/api/v1/namespaces")["items"]}
    assert {namespace, "default", "kube-system"} <= names

    # Node: no kubelet, so the test writes its status.
    node = f"{namespace}-node"
    cp.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}}})
    cp.patch(f"/api/v1/nodes/{node}/status", {"status": {
        "addresses": [{"type": "InternalIP", "address": "192.0.2.10"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test",
                        "lastHeartbeatTime": "2025-01-01T00:00:00Z", "lastTransitionTime": "2025-01-01T00:00:00Z"}],
    }})
    got = cp.get(f"/api/v1/nodes/{node}")
    assert got["status"]["addresses"] == [{"type": "InternalIP", "address": "192.0.2.10"}]
    assert node in {n["metadata"]["name"] for n in cp.get("/api/v1/nodes", labelSelector=f"kubernetes.io/hostname={node}")["items"]}

    # Service type LoadBalancer: the apiserver allocates the ClusterIP and a NodePort.
    svc = cp.create(f"/api/v1/namespaces/{namespace}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]},
    })
    assert ipaddress.ip_address(svc["spec"]["clusterIP"]) in ipaddress.ip_network("10.96.0.0/12")
    assert svc["spec"]["ipFamilies"] == ["IPv4"]
    assert 30000 <= svc["spec"]["ports"][0]["nodePort"] <= 32767
    assert svc["status"]["loadBalancer"] == {}

    # Dual stack: both service ranges are configured.
    dual = cp.create(f"/api/v1/namespaces/{namespace}/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "dual"},
        "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6", "IPv4"],
                 "ports": [{"port": 443}]},
    })
    v6, v4 = (ipaddress.ip_address(a) for a in dual["spec"]["clusterIPs"])
    assert v6 in ipaddress.ip_network("fd00:10:96::/112") and v4.version == 4

    # What ironlb's controller does: write status.loadBalancer through the status subresource.
    cp.patch(f"/api/v1/namespaces/{namespace}/services/web/status",
             {"status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.240"}]}}})
    assert cp.get(f"/api/v1/namespaces/{namespace}/services/web")["status"]["loadBalancer"]["ingress"] == [
        {"ip": "192.168.1.240", "ipMode": "VIP"}]

    # EndpointSlice for the Service, found by its service-name label.
    cp.create(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.5"], "nodeName": node, "conditions": {"ready": True}}],
        "ports": [{"port": 80, "protocol": "TCP"}],
    })
    slices = cp.get(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                    labelSelector="kubernetes.io/service-name=web")["items"]
    assert [s["endpoints"][0]["nodeName"] for s in slices] == [node]

    services = {s["metadata"]["name"] for s in cp.get(f"/api/v1/namespaces/{namespace}/services")["items"]}
    assert services == {"web", "dual"}


def test_namespace_must_exist(control_plane: ControlPlane) -> None:
    with pytest.raises(KubeError) as e:
        control_plane.create("/api/v1/namespaces/no-such-ns/configmaps",
                             {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert e.value.status == 404


def test_watch_sees_changes(control_plane: ControlPlane, namespace: str) -> None:
    cp = control_plane
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    rv = cp.get(path)["metadata"]["resourceVersion"]
    cp.create(path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}})
    events = []
    for ev in cp.watch(path, resource_version=rv, timeout=5):
        events.append((ev["type"], ev["object"]["metadata"]["name"]))
        break
    assert events == [("ADDED", "a")]


def _old_rv_and_newer(cp: ControlPlane, namespace: str) -> tuple[str, str]:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    cp.create(path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old"}})
    old_rv = cp.get(path)["metadata"]["resourceVersion"]
    for i in range(3):
        cp.create(path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"new{i}"}})
    return path, old_rv


def _watch_result(cp: ControlPlane, path: str, rv: str) -> list[tuple[str, object]]:
    return [(ev["type"], ev["object"].get("code") or ev["object"]["metadata"].get("name"))
            for ev in cp.watch(path, resource_version=rv, timeout=2)]


def test_compaction_without_watch_cache_gives_410(make_control_plane: Callable[..., ControlPlane]) -> None:
    cp = make_control_plane(watch_cache=False, install_crds=False)
    cp.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "w"}})
    path, old_rv = _old_rv_and_newer(cp, "w")
    assert _watch_result(cp, path, old_rv) == [("ADDED", f"new{i}") for i in range(3)]
    rev = cp.compact_etcd()
    assert rev > int(old_rv)
    assert _watch_result(cp, path, old_rv) == [("ERROR", 410)]
    with pytest.raises(KubeError) as e:
        cp.get(path, resourceVersion=old_rv, resourceVersionMatch="Exact")
    assert (e.value.status, e.value.reason) == (410, "Expired")


def test_expire_history_with_watch_cache_gives_410(control_plane: ControlPlane, namespace: str) -> None:
    cp = control_plane
    path, old_rv = _old_rv_and_newer(cp, namespace)
    cp.compact_etcd()
    # The watch cache still serves the compacted history...
    assert _watch_result(cp, path, old_rv) == [("ADDED", f"new{i}") for i in range(3)]
    # ...until the apiserver restarts with a fresh cache.
    cp.expire_history()
    assert _watch_result(cp, path, old_rv) == [("ERROR", 410)]
    # A watch from a current resourceVersion works.
    rv = cp.get(path)["metadata"]["resourceVersion"]
    assert _watch_result(cp, path, rv) == []


def test_restart_apiserver_keeps_state(control_plane: ControlPlane, namespace: str) -> None:
    cp = control_plane
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    cp.create(path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept"}})
    port = cp.port
    t0 = time.monotonic()
    cp.restart_apiserver()
    assert cp.port == port
    assert time.monotonic() - t0 < 120
    assert cp.get(f"{path}/kept")["metadata"]["name"] == "kept"
    # The CRDs survive too (they are in etcd).
    assert cp.get("/apis/metallb.io/v1beta1/namespaces/default/ipaddresspools")["items"] == []
