"""The chart's Prometheus Operator objects (ServiceMonitor, PodMonitor, PrometheusRule) on a real apiserver with the
operator's own CRDs installed (scripts/fetch-prometheus-operator-crds.sh: v0.85.0's, from the Go module proxy): what
`helm template` renders with MetalLB-style ``prometheus.*`` values is accepted by their structural schemas with
strict field validation (no unknown field, nothing pruned: each reads back as sent), and a broken one is rejected."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.controlplane import REPO, ControlPlane, KubeError
from tests.support.gotools import helm_binary, prometheus_operator_crds

pytestmark = pytest.mark.kube

PLURALS = {"ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors", "PrometheusRule": "prometheusrules"}
# The chart's monitoring values as a MetalLB user sets them, with every optional field of the monitors in use.
RELABEL = [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node", "action": "replace"}]
DROP = [{"sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop"}]
PROMETHEUS = {"serviceAccount": "prometheus-k8s", "namespace": "monitoring", "scrapeAnnotations": True,
              "prometheusRule": {"enabled": True, "additionalLabels": {"release": "kps"}, "annotations": {"example.com/owner": "net"},
                                 "extraAlerts": [{"alert": "Custom", "expr": "vector(1)", "for": "10m",
                                                  "labels": {"severity": "info"}}]}}  # fmt: skip
MONITORS = {
    "serviceMonitor": {"enabled": True, "interval": "30s", "relabelings": RELABEL, "metricRelabelings": DROP,
                       "speaker": {"additionalLabels": {"release": "kps"}, "annotations": {"example.com/owner": "net"}},
                       "controller": {"tlsConfig": {"insecureSkipVerify": False, "serverName": "controller"}}},
    "podMonitor": {"enabled": True, "interval": "15s", "relabelings": RELABEL, "metricRelabelings": DROP,
                   "additionalLabels": {"release": "kps"}, "tlsConfig": {"insecureSkipVerify": True}},
}


@pytest.fixture(scope="module")
def monitoring_crds(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> ControlPlane:
    """The shared control plane with the three CRDs the chart uses (the others are large and unused)."""
    src, d = prometheus_operator_crds(), tmp_path_factory.mktemp("promop-crds")
    for plural in PLURALS.values():
        shutil.copy(src / f"monitoring.coreos.com_{plural}.yaml", d)
    assert len(control_plane.install_crds(d)) == 3
    return control_plane


def render(namespace: str, tmp_path: Path, monitor: str, *, secure: bool = True) -> list[dict[str, Any]]:
    """`helm template` of the chart into NAMESPACE with one kind of monitor on: its monitoring.coreos.com objects."""
    values = {"prometheus": {**copy.deepcopy(PROMETHEUS), monitor: MONITORS[monitor], "secureMetrics": secure}}
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    out = subprocess.run([helm_binary(), "template", "metallb", str(REPO / "charts" / "ironlb"), "--namespace",
                          namespace, "-f", str(tmp_path / "values.yaml")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d and d["apiVersion"] == "monitoring.coreos.com/v1"]


def path(obj: dict[str, Any], namespace: str) -> str:
    return f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}/{PLURALS[obj['kind']]}"


def create_strict(cp: ControlPlane, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Create OBJ with strict field validation: an unknown or duplicate field is an error, not a warning."""
    body: dict[str, Any] = cp.request("POST", path(obj, namespace), obj, query={"fieldValidation": "Strict"}).body
    return body


@pytest.mark.parametrize(("monitor", "secure"), [("serviceMonitor", True), ("podMonitor", True),
                                                 ("podMonitor", False)])  # fmt: skip
def test_chart_monitoring_objects_are_accepted_as_rendered(
    monitoring_crds: ControlPlane, namespace: str, tmp_path: Path, monitor: str, secure: bool
) -> None:
    cp = monitoring_crds
    objs = render(namespace, tmp_path, monitor, secure=secure)
    kind = "ServiceMonitor" if monitor == "serviceMonitor" else "PodMonitor"
    assert sorted(o["kind"] for o in objs) == sorted([kind, kind, "PrometheusRule"])
    for obj in objs:
        create_strict(cp, obj, namespace)
        back = cp.get(f"{path(obj, namespace)}/{obj['metadata']['name']}")
        assert back["spec"] == obj["spec"], f"{obj['kind']} {obj['metadata']['name']}: pruned or defaulted"
        assert back["metadata"]["labels"] == obj["metadata"]["labels"]
    rule = next(o for o in objs if o["kind"] == "PrometheusRule")
    assert len(rule["spec"]["groups"][0]["rules"]) == 13  # MetalLB's 7, ironlb's 5, the extra one


def test_broken_monitoring_objects_are_rejected(monitoring_crds: ControlPlane, namespace: str, tmp_path: Path) -> None:
    """The schemas do check: a wrong enum and a malformed duration are refused as invalid (422), an unknown field by
    the strict decoding (400), each naming the field."""
    cp = monitoring_crds
    objs = {o["kind"]: o for o in render(namespace, tmp_path, "serviceMonitor")}
    monitor, rule = objs["ServiceMonitor"], objs["PrometheusRule"]

    def rejected(obj: dict[str, Any], status: int = 422) -> str:
        obj["metadata"]["name"] = "broken"
        with pytest.raises(KubeError) as e:
            create_strict(cp, obj, namespace)
        assert e.value.status == status, e.value
        return str(e.value)

    bad = copy.deepcopy(monitor)
    bad["spec"]["endpoints"][0]["scheme"] = "httpx"
    assert 'spec.endpoints[0].scheme: Unsupported value: "httpx"' in rejected(bad)
    bad = copy.deepcopy(rule)
    bad["spec"]["groups"][0]["rules"][0]["for"] = "1 minute"
    assert "spec.groups[0].rules[0].for" in rejected(bad)
    bad = copy.deepcopy(monitor)
    bad["spec"]["endpoints"][0]["bearerTokenSecrett"] = {"name": "x", "key": "token"}
    assert 'unknown field "spec.endpoints[0].bearerTokenSecrett"' in rejected(bad, 400)
    # and the unbroken object of the same name is then accepted (the rejections left nothing behind)
    good = copy.deepcopy(monitor)
    good["metadata"]["name"] = "broken"
    create_strict(cp, good, namespace)
