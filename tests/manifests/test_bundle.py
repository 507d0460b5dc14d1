"""config/manifests/ironlb.yaml without a cluster: it is a fresh render of the chart charts/ironlb (whose CRDs are
config/crd), uses MetalLB's names, and its workloads, RBAC and webhooks say what the issue asks; the Dockerfile
builds from files that exist and runs `ironlb`."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tomllib
from typing import Any

import yaml

from ironlb.webhooks.validate import PATHS, WEBHOOKS
from tests.support.controlplane import CRD_DIR, REPO
from tests.support.gotools import helm_binary

from .conftest import BUNDLE, SCRIPT, documents, find, render

NS = "metallb-system"


def test_bundle_is_a_fresh_render() -> None:
    assert BUNDLE.read_text() == render(), "run scripts/render-manifests.py"
    env = {**os.environ, "IRONLB_HELM": helm_binary()}
    assert subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, env=env).returncode == 0


def test_crds_are_config_crd_verbatim() -> None:
    docs = documents()
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    expected = [d for f in sorted(CRD_DIR.glob("metallb.io_*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    assert sorted(crds, key=lambda d: d["metadata"]["name"]) == sorted(expected, key=lambda d: d["metadata"]["name"])
    assert len(crds) == 9


def test_names_and_namespaces() -> None:
    docs = documents()
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    for want in [("Namespace", NS), ("Deployment", "controller"), ("DaemonSet", "speaker"),
                 ("Service", "metallb-webhook-service"), ("ValidatingWebhookConfiguration", "metallb-webhook-configuration"),
                 ("Secret", "metallb-webhook-cert"), ("ServiceAccount", "controller"), ("ServiceAccount", "speaker"),
                 ("ClusterRole", f"{NS}:controller"), ("ClusterRole", f"{NS}:speaker"), ("Role", "pod-lister"),
                 ("Role", "controller")]:
        assert want in kinds
    assert len(set(kinds)) == len(kinds)
    assert kinds[0] == ("Namespace", NS)  # first, so `kubectl apply -f` creates it before what lives in it
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                      "ValidatingWebhookConfiguration"}
    for d in docs:
        assert d.get("metadata", {}).get("namespace") == (None if d["kind"] in cluster_scoped else NS), d["kind"]
    labels = find(docs, "Namespace", NS)["metadata"]["labels"]
    assert {labels[f"pod-security.kubernetes.io/{m}"] for m in ("enforce", "audit", "warn")} == {"privileged"}
    # no memberlist key is shipped: it would be the same in every cluster
    assert not any(d["kind"] == "Secret" and d["metadata"]["name"] == "memberlist" for d in docs)
    assert "data" not in find(docs, "Secret", "metallb-webhook-cert")


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    [c] = workload["spec"]["template"]["spec"]["containers"]
    return dict(c)


def _env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def test_speaker_daemonset() -> None:
    ds = find(documents(), "DaemonSet", "speaker")
    pod = ds["spec"]["template"]
    assert pod["metadata"]["labels"] == {"app": "metallb", "component": "speaker"}
    assert ds["spec"]["selector"]["matchLabels"] == {"app": "metallb", "component": "speaker"}
    assert pod["spec"]["hostNetwork"] is True
    c = _container(ds)
    assert c["args"][:3] == ["speaker", "--node-name", "$(METALLB_NODE_NAME)"]
    assert "--metrics-secure" in c["args"]  # HTTPS with Kubernetes authn/authz, as MetalLB v0.16
    sc = c["securityContext"]
    # MetalLB's two, and SYS_NICE for the fast process's real-time priority (IRONLB_FASTPATH_RT_PRIORITY below)
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW", "NET_BIND_SERVICE", "SYS_NICE"]}
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    env = _env(c)
    assert env["METALLB_NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["METALLB_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["METALLB_ML_BIND_ADDR"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["METALLB_ML_LABELS"] == "app=metallb,component=speaker"
    assert env["METALLB_ML_SECRET_KEY_PATH"] == "/etc/ml_secret_key"
    assert env["IRONLB_FASTPATH_RT_PRIORITY"] == "10"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[mounts["/etc/ml_secret_key"]]["secret"]["secretName"] == "memberlist"
    ports = {(p["containerPort"], p.get("protocol", "TCP")) for p in c["ports"]}
    assert {(7946, "TCP"), (7946, "UDP")} <= ports


def test_controller_deployment() -> None:
    docs = documents()
    dep = find(docs, "Deployment", "controller")
    pod = dep["spec"]["template"]
    assert pod["metadata"]["labels"] == {"app": "metallb", "component": "controller"}
    c = _container(dep)
    assert c["args"][0] == "controller" and "--metrics-secure" in c["args"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}
    assert "hostNetwork" not in pod["spec"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["webhook-server"] == 9443
    svc = find(docs, "Service", "metallb-webhook-service")
    assert svc["spec"]["ports"] == [{"name": "webhook", "port": 443, "targetPort": "webhook-server"}]
    assert set(svc["spec"]["selector"].items()) <= set(pod["metadata"]["labels"].items())
    env = _env(c)
    assert env["METALLB_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["METALLB_ML_SECRET_NAME"] == "memberlist"


def test_webhook_configuration_matches_the_server() -> None:
    vwc = find(documents(), "ValidatingWebhookConfiguration", "metallb-webhook-configuration")
    by_path = {h["clientConfig"]["service"]["path"]: h for h in vwc["webhooks"]}
    assert set(by_path) == set(PATHS)
    for path, (kind, version) in PATHS.items():
        hook = by_path[path]
        name, resource, operations = WEBHOOKS[kind]
        assert hook["name"] == name
        assert hook["clientConfig"]["service"] == {"name": "metallb-webhook-service", "namespace": NS, "path": path}
        assert hook["rules"] == [{"apiGroups": ["metallb.io"], "apiVersions": [version],
                                  "operations": list(operations), "resources": [resource]}]
        assert hook["failurePolicy"] == "Ignore"  # a broken webhook never blocks users (metallb#1540)
        assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]


def test_bgppeer_conversion_variant() -> None:
    docs = documents(render(bgppeer_conversion="webhook"))
    crd = find(docs, "CustomResourceDefinition", "bgppeers.metallb.io")
    assert crd["spec"]["conversion"] == {"strategy": "Webhook", "webhook": {
        "conversionReviewVersions": ["v1"],
        "clientConfig": {"service": {"name": "metallb-webhook-service", "namespace": NS, "path": "/convert"}}}}
    default = find(documents(), "CustomResourceDefinition", "bgppeers.metallb.io")
    assert default["spec"]["conversion"] == {"strategy": "None"}


def test_rbac_least_privilege() -> None:
    docs = documents()
    rules = {(d["kind"], d["metadata"]["name"]): d["rules"] for d in docs if d["kind"] in ("Role", "ClusterRole")}
    for rs in rules.values():
        for r in rs:
            if "nonResourceURLs" in r:  # the metrics-reader role: get /metrics, nothing else
                assert r == {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}
                continue
            assert "*" not in r["verbs"] and "*" not in r["resources"] and "*" not in r["apiGroups"]
            assert "podsecuritypolicies" not in r["resources"]
    controller = rules[("ClusterRole", f"{NS}:controller")]
    for r in controller:
        if r["apiGroups"] in (["admissionregistration.k8s.io"], ["apiextensions.k8s.io"]):
            assert r.get("resourceNames"), r  # only the named objects
            assert set(r["verbs"]) <= {"get", "patch"}
    assert any(r["apiGroups"] == ["coordination.k8s.io"] for r in rules[("Role", "controller")])
    bindings = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"].endswith("Binding")}
    for b in bindings.values():
        assert (b["roleRef"]["kind"], b["roleRef"]["name"]) in rules
    assert {s["name"] for s in bindings[("RoleBinding", "pod-lister")]["subjects"]} == {"controller", "speaker"}


def test_dockerfile() -> None:
    text = (REPO / "Dockerfile").read_text()
    instructions = [line for line in re.sub(r"\\\n", " ", text).splitlines() if line and not line.startswith("#")]
    froms = [i for i in instructions if i.startswith("FROM ")]
    assert len(froms) == 2 and "slim" in text.split("ARG PYTHON_IMAGE=", 1)[1].split()[0]
    for i in instructions:
        if i.startswith("COPY ") and "--from=" not in i:
            for src in shlex.split(i)[1:-1]:
                assert (REPO / src).exists(), src
    [user] = [i for i in instructions if i.startswith("USER ")]
    assert user.split()[1].split(":")[0] not in ("0", "root")
    [entry] = [i for i in instructions if i.startswith("ENTRYPOINT ")]
    assert entry == 'ENTRYPOINT ["ironlb"]'
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "ironlb" in scripts
    # The lab's image (scripts/build-images.py) takes its configuration from this Dockerfile's last stage.
    spec = importlib.util.spec_from_file_location("build_images", REPO / "scripts" / "build-images.py")
    assert spec is not None and spec.loader is not None
    build_images = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_images)
    assert build_images.dockerfile_config() == {
        "WorkingDir": "/", "User": "65534:65534", "Entrypoint": ["ironlb"], "Cmd": ["--help"],
        "Env": ["PATH=/opt/ironlb/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"],
    }
    # .dockerignore lets through what the build copies
    ignore = (REPO / ".dockerignore").read_text().split()
    for needed in ("pyproject.toml", "README.md", "src/"):
        assert f"!{needed}" in ignore
