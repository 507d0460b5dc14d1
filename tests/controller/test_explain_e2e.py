"""``ironlb explain`` against a real kube-apiserver with ``ironlb controller`` running: what it reads from the cluster
(Service status, Events, ConfigurationState, ServiceL2Status, Nodes, EndpointSlices, pool status) and explains."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ironlb.layer2.election import sort_candidates
from tests.support.controller import (
    ControllerProcess,
    create_pool,
    create_service,
    ip_pool,
    lb_service,
    wait_event,
    wait_ingress,
)
from tests.support.controlplane import ControlPlane, KubeError
from tests.support.waits import wait_until

pytestmark = pytest.mark.kube

Start = Callable[..., ControllerProcess]


def explain(cp: ControlPlane, ns: str, *args: str | Path) -> tuple[int, Any]:
    r = subprocess.run(
        [sys.executable, "-m", "ironlb", "explain", "--kubeconfig", str(cp.kubeconfig), "--namespace", ns,
         "-o", "json", *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode in (0, 3), r.stderr
    return r.returncode, json.loads(r.stdout)


@pytest.fixture
def nodes(control_plane: ControlPlane, namespace: str) -> Iterator[list[str]]:
    names = [f"{namespace}-{x}" for x in ("a", "b", "c")]
    for i, name in enumerate(names):
        labels = {"kubernetes.io/hostname": name}
        if i == 2:
            labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        control_plane.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                               "metadata": {"name": name, "labels": labels}})  # fmt: skip
    yield names
    for name in names:
        with contextlib.suppress(KubeError):
            control_plane.delete(f"/api/v1/nodes/{name}")


def test_explain_a_live_cluster(
    control_plane: ControlPlane, namespace: str, controller: Start, nodes: list[str], tmp_path: Path
) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("one", "10.30.0.1/32"))
    cp.create(f"/apis/metallb.io/v1beta1/namespaces/{ns}/l2advertisements",
              {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "l2"}, "spec": {}})
    controller()
    create_service(cp, ns, lb_service("first"))
    assert wait_ingress(cp, ns, "first") == ["10.30.0.1"]
    create_service(cp, ns, lb_service("second"))
    wait_event(cp, ns, "second", "AllocationFailed", "no available IPs")
    cp.create(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": "first-1", "labels": {"kubernetes.io/service-name": "first"}},
        "endpoints": [{"addresses": ["10.1.0.1"], "nodeName": nodes[0], "conditions": {"ready": True}}],
    })  # fmt: skip
    elected = sort_candidates(nodes[:2], "10.30.0.1")[0]
    # what a speaker on the elected node writes (ServiceL2Status: created, then its status subresource)
    path = f"/apis/metallb.io/v1beta1/namespaces/{ns}/servicel2statuses"
    obj = cp.create(path, {"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
                           "metadata": {"name": "l2-first", "labels": {"metallb.io/node": elected}}})  # fmt: skip
    obj["status"] = {"node": elected, "serviceName": "first", "serviceNamespace": ns}
    cp.replace(f"{path}/l2-first/status", obj)
    wait_until(lambda: cp.get(f"/apis/metallb.io/v1beta1/namespaces/{ns}/configurationstates/controller")
               .get("status", {}).get("result") == "Valid", 20, "the controller's ConfigurationState")

    code, result = explain(cp, ns, f"{ns}/first")
    first = result["services"][f"{ns}/first"]
    assert first["ingress"] == ["10.30.0.1"] and first["pool"] == "one"
    assert first["poolReason"].startswith("auto-assigned")
    assert first["layer2"]["node"] == elected and first["layer2"]["announcedBy"] == [elected]
    rows = {r["node"]: r for r in first["layer2"]["nodes"]}
    assert rows[elected]["state"] == "elected"
    assert rows[nodes[2]]["reason"] == "nodeLabeledExcludeBalancers"
    assert ("Normal", "IPAllocated") in {(e["type"], e["reason"]) for e in first["events"]}
    assert {"name": "controller", "valid": True, "error": None} in result["configuration"]
    assert result["pools"]["one"]["used"] == 1 and result["pools"]["one"]["size"] == 1
    assert code == 3 and "pool one is full" in result["problems"]

    table = subprocess.run(
        [sys.executable, "-m", "ironlb", "explain", "--kubeconfig", str(cp.kubeconfig), "--namespace", ns],
        capture_output=True, text=True, timeout=120, check=False,
    ).stdout  # fmt: skip
    assert f"{ns}/first" in table and f"L2 {elected}" in table and "no available IPs" in table
    assert "problem: pool one is full" in table

    _, result = explain(cp, ns, "-n", ns, "second")
    second = result["services"][f"{ns}/second"]
    assert second["ingress"] == [] and second["noIPReason"] == f'Failed to allocate IP for "{ns}/second": no available IPs'
    warning = [e for e in second["events"] if e["reason"] == "AllocationFailed"]
    assert warning and warning[0]["type"] == "Warning" and warning[0]["source"]

    # a second address: the what-if shows that "second" would get it and "first" keeps its own
    change = tmp_path / "change.yaml"
    change.write_text(textwrap.dedent(f"""
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {{name: one, namespace: {ns}}}
        spec: {{addresses: [10.30.0.1/32, 10.30.0.9/32]}}
    """))
    _, result = explain(cp, ns, "--what-if", change)
    assert result["services"][f"{ns}/first"]["change"] == "unchanged"
    assert result["services"][f"{ns}/second"]["change"] == "getsIP"
    assert result["services"][f"{ns}/second"]["after"]["ingress"] == ["10.30.0.9"]

    # speakers are the nodes with a ready speaker pod (the Helm chart's label here): only the other candidate has one
    other = next(n for n in nodes[:2] if n != elected)
    pod = cp.create(f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "speaker-x", "labels": {"app.kubernetes.io/component": "speaker"}},
        "spec": {"nodeName": other, "containers": [{"name": "speaker", "image": "ironlb:test"}]},
    })  # fmt: skip
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    cp.replace(f"/api/v1/namespaces/{ns}/pods/speaker-x/status", pod)
    code, result = explain(cp, ns, f"{ns}/first")
    first = result["services"][f"{ns}/first"]
    rows = {r["node"]: r for r in first["layer2"]["nodes"]}
    assert first["layer2"]["node"] == other and result["live"] == [other]
    assert rows[elected]["reason"] == "speakerNotLive" and rows[elected]["detail"] == "no speaker runs on this node"
    assert code == 3 and any(f"announced by [{elected}], elected: [{other}]" in p for p in result["problems"])
