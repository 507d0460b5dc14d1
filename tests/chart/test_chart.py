"""The Helm chart charts/ironlb with the real `helm` (scripts/build-helm.sh): `helm lint` passes with the default
and with non-default values, and `helm template` renders what the values say. A MetalLB values file works: its keys
reach the objects they configure in MetalLB's chart (tolerations reach the DaemonSet, a ServiceMonitor appears,
...). The defaults are hardened and serve metrics over HTTPS with the RBAC that needs; what ironlb cannot do is
refused with a message, never ignored."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ironlb.cli import build_parser
from ironlb.histogram import DETECTION_BUCKETS, LOOP_LAG_BUCKETS, Histogram
from tests.support.controlplane import REPO
from tests.support.gotools import helm_binary

CHART = REPO / "charts" / "ironlb"
NS = "metallb-system"

# A values file as a MetalLB user has it: keys of MetalLB's chart only (frr/frrk8s ones included, ignored here).
METALLB_VALUES: dict[str, Any] = {
    "loadBalancerClass": "example.com/lb",
    "imagePullSecrets": [{"name": "regcred"}],
    "controller": {
        "logLevel": "debug",
        "image": {"repository": "registry.example/ironlb", "tag": "9.9.9"},
        "resources": {"limits": {"memory": "200Mi"}},
        "nodeSelector": {"role": "infra"},
        "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"example.com/a": "b"},
    },
    "speaker": {
        "logLevel": "warn",
        "tolerateMaster": False,
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "edge", "effect": "NoExecute"}],
        "resources": {"requests": {"cpu": "100m"}},
        "priorityClassName": "system-node-critical",
        "ignoreExcludeLB": True,
        "memberlist": {"enabled": True, "mlBindPort": 7947},
        "labels": {"team": "net"},
        "frr": {"enabled": False},
    },
    "frrk8s": {"enabled": True},
    "prometheus": {
        "scrapeAnnotations": True,
        "serviceAccount": "prometheus-k8s",
        "namespace": "monitoring",
        "serviceMonitor": {"enabled": True, "interval": "30s",
                           "speaker": {"additionalLabels": {"release": "kps"}}},
        "prometheusRule": {"enabled": True, "addressPoolUsage": {"excludePools": "^test-.*"}},
    },
    "tls": {"minVersion": "VersionTLS13", "speakerMetricsTLSSecret": "speaker-metrics-tls"},
    "networkpolicies": {"enabled": True, "defaultDeny": True, "apiPort": 16443},
    "crds": {"enabled": False, "validationFailurePolicy": "Fail"},
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120)


def template(tmp_path: Path, values: dict[str, Any] | None = None, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "metallb", str(CHART), "--namespace", NS]
    if values is not None:
        f = tmp_path / "values.yaml"
        f.write_text(yaml.safe_dump(values))
        args += ["--values", str(f)]
    for s in sets:
        args += ["--set", s]
    out = helm(*args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    raise AssertionError(f"no {kind} {name} in {[(d['kind'], d['metadata']['name']) for d in docs]}")


def kinds(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs}


def pod_spec(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(docs, kind, name)["spec"]["template"]["spec"]
    return spec


def container(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    c: dict[str, Any] = pod_spec(docs, kind, name)["containers"][0]
    return c


def test_lint_default_and_metallb_values(tmp_path: Path) -> None:
    out = helm("lint", "--strict", str(CHART))
    assert out.returncode == 0, out.stdout + out.stderr
    f = tmp_path / "metallb-values.yaml"
    f.write_text(yaml.safe_dump(METALLB_VALUES))
    out = helm("lint", "--strict", str(CHART), "--values", str(f))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout


def test_defaults_secure_metrics_and_hardening(tmp_path: Path) -> None:
    docs = template(tmp_path)
    assert ("Namespace", NS) not in kinds(docs)  # a Helm release does not own its namespace
    assert not any(d["apiVersion"].startswith("monitoring.coreos.com") for d in docs)
    assert not any(d["kind"] == "NetworkPolicy" for d in docs)
    assert len([d for d in docs if d["kind"] == "CustomResourceDefinition"]) == 9
    for kind, name in (("Deployment", "controller"), ("DaemonSet", "speaker")):
        c = container(docs, kind, name)
        assert "--metrics-secure" in c["args"] and "--port=9120" in c["args"]
        assert {"name": "metricshttps", "containerPort": 9120} in c["ports"]
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert pod_spec(docs, kind, name)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert c["image"] == "ironlb:0.1.0"
    # the speaker: only NET_RAW (ARP/NDP packet sockets), NET_BIND_SERVICE (BGP's port 179) and SYS_NICE (the fast
    # process's real-time priority); the controller: nothing, not root
    assert container(docs, "DaemonSet", "speaker")["securityContext"]["capabilities"]["add"] == [
        "NET_RAW", "NET_BIND_SERVICE", "SYS_NICE"]
    assert {"name": "IRONLB_FASTPATH_RT_PRIORITY", "value": "10"} in container(docs, "DaemonSet", "speaker")["env"]
    assert "add" not in container(docs, "Deployment", "controller")["securityContext"]["capabilities"]
    assert pod_spec(docs, "Deployment", "controller")["securityContext"]["runAsNonRoot"] is True
    # secure metrics: both components may ask the apiserver who a token is and what it may do
    for role in (f"{NS}:controller", f"{NS}:speaker"):
        rules = find(docs, "ClusterRole", role)["rules"]
        assert {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]} in rules
        assert {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"],
                "verbs": ["create"]} in rules
    reader = find(docs, "ClusterRole", f"{NS}:metrics-reader")
    assert reader["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    speaker = pod_spec(docs, "DaemonSet", "speaker")
    assert speaker["tolerations"] == [
        {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]


def test_metallb_values_file(tmp_path: Path) -> None:
    docs = template(tmp_path, METALLB_VALUES)
    speaker = pod_spec(docs, "DaemonSet", "speaker")
    c = container(docs, "DaemonSet", "speaker")
    assert speaker["tolerations"] == METALLB_VALUES["speaker"]["tolerations"]  # tolerateMaster: false
    assert speaker["priorityClassName"] == "system-node-critical"
    assert speaker["imagePullSecrets"] == [{"name": "regcred"}]
    assert c["resources"] == {"requests": {"cpu": "100m"}}
    assert c["image"] == "ironlb:0.1.0"  # only the controller's image was changed
    assert {"--lb-class=example.com/lb", "--ignore-exclude-lb", "--log-level=warn", "--tls-min-version=VersionTLS13",
            "--metrics-cert-dir=/etc/metrics"} <= set(c["args"])
    assert {"name": "METALLB_ML_BIND_PORT", "value": "7947"} in c["env"]
    assert {(p["containerPort"], p.get("protocol", "TCP")) for p in c["ports"]} >= {(7947, "TCP"), (7947, "UDP")}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in speaker["volumes"]}
    assert volumes[mounts["/etc/metrics"]]["secret"]["secretName"] == "speaker-metrics-tls"
    labels = find(docs, "DaemonSet", "speaker")["spec"]["template"]["metadata"]["labels"]
    assert labels == {"app": "metallb", "component": "speaker", "team": "net"}
    assert find(docs, "DaemonSet", "speaker")["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/scheme": "https", "prometheus.io/port": "9120"}

    controller = pod_spec(docs, "Deployment", "controller")
    cc = container(docs, "Deployment", "controller")
    assert cc["image"] == "registry.example/ironlb:9.9.9"
    assert controller["nodeSelector"] == {"kubernetes.io/os": "linux", "role": "infra"}
    assert controller["tolerations"] == METALLB_VALUES["controller"]["tolerations"]
    assert controller["priorityClassName"] == "system-cluster-critical"
    assert cc["resources"] == {"limits": {"memory": "200Mi"}}
    assert {"--lb-class=example.com/lb", "--log-level=debug"} <= set(cc["args"])
    assert "--metrics-cert-dir=/etc/metrics" not in cc["args"]  # no controller secret given: self-signed

    # crds.enabled false: none; validationFailurePolicy reaches every webhook
    assert not any(d["kind"] == "CustomResourceDefinition" for d in docs)
    vwc = find(docs, "ValidatingWebhookConfiguration", "metallb-webhook-configuration")
    assert {h["failurePolicy"] for h in vwc["webhooks"]} == {"Fail"}

    # monitoring: a ServiceMonitor per component, scraping HTTPS with the metrics-reader token
    for component in ("controller", "speaker"):
        sm = find(docs, "ServiceMonitor", f"metallb-{component}-monitor")
        [ep] = sm["spec"]["endpoints"]
        assert ep["scheme"] == "https" and ep["port"] == "metricshttps" and ep["interval"] == "30s"
        assert ep["authorization"]["credentials"] == {"name": "metallb-metrics-token", "key": "token"}
        assert ep["tlsConfig"] == {"insecureSkipVerify": True}
        svc = find(docs, "Service", f"metallb-{component}-monitor-service")
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert svc["spec"]["selector"] == {"app": "metallb", "component": component}
    assert find(docs, "ServiceMonitor", "metallb-speaker-monitor")["metadata"]["labels"]["release"] == "kps"
    token = find(docs, "Secret", "metallb-metrics-token")
    assert token["type"] == "kubernetes.io/service-account-token"
    binding = find(docs, "ClusterRoleBinding", f"{NS}:metrics-reader")
    assert binding["roleRef"]["name"] == f"{NS}:metrics-reader"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "metallb-metrics-reader", "namespace": NS}]
    prom = find(docs, "RoleBinding", "metallb-prometheus")
    assert prom["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus-k8s", "namespace": "monitoring"}]

    # network policies as MetalLB v0.15.3
    deny = find(docs, "NetworkPolicy", "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    np = find(docs, "NetworkPolicy", "controller")["spec"]
    assert np["podSelector"]["matchLabels"] == {"app": "metallb", "component": "controller"}
    assert np["egress"] == [{"ports": [{"protocol": "TCP", "port": 16443}]}]
    assert np["ingress"] == [{"ports": [{"protocol": "TCP", "port": "metricshttps"},
                                        {"protocol": "TCP", "port": "webhook-server"}]}]


def test_prometheus_rule_names_and_thresholds(tmp_path: Path) -> None:
    docs = template(tmp_path, METALLB_VALUES)
    [group] = find(docs, "PrometheusRule", "metallb")["spec"]["groups"]
    rules = {r["alert"]: r for r in group["rules"]}
    assert list(rules) == ["MetalLBStaleConfig", "MetalLBConfigNotLoaded", "MetalLBAddressPoolExhausted",
                           "MetalLBAddressPoolUsage75Percent", "MetalLBAddressPoolUsage85Percent",
                           "MetalLBAddressPoolUsage95Percent", "MetalLBBGPSessionDown", "IronLBBFDSessionDown",
                           "IronLBNoQuorum", "IronLBMembershipDisagreement", "IronLBFastPathLag",
                           "IronLBSlowFailureDetection"]
    sel = f'namespace="{NS}"'
    assert rules["MetalLBStaleConfig"]["expr"] == f"metallb_k8s_client_config_stale_bool{{{sel}}} == 1"
    assert rules["MetalLBConfigNotLoaded"]["expr"] == f"metallb_k8s_client_config_loaded_bool{{{sel}}} == 0"
    assert rules["MetalLBAddressPoolExhausted"]["expr"] == (
        f'metallb_allocator_addresses_in_use_total{{{sel},pool!~""}} >= metallb_allocator_addresses_total')
    assert rules["MetalLBAddressPoolUsage85Percent"]["expr"] == (
        f'(metallb_allocator_addresses_in_use_total{{{sel},pool!~"^test-.*"}} / metallb_allocator_addresses_total)'
        " * 100 > 85")
    assert rules["MetalLBBGPSessionDown"]["expr"] == f"metallb_bgp_session_up{{{sel}}} == 0"
    assert rules["IronLBBFDSessionDown"]["expr"] == f"metallb_bfd_session_up{{{sel}}} == 0"
    assert rules["IronLBNoQuorum"]["expr"] == f"ironlb_membership_quorum_bool{{{sel}}} == 0"
    assert rules["IronLBMembershipDisagreement"]["expr"] == (
        f"max(ironlb_membership_alive_members{{{sel}}}) != min(ironlb_membership_alive_members{{{sel}}})")
    lag, by = "ironlb_fastpath_loop_lag_seconds", "sum by (namespace, pod)"
    assert rules["IronLBFastPathLag"]["expr"] == (
        f"100 * ({by} (increase({lag}_count{{{sel}}}[5m])) - {by} (increase({lag}_bucket{{{sel},le=\"0.1\"}}[5m])))"
        f" / {by} (increase({lag}_count{{{sel}}}[5m])) > 1")
    det = "ironlb_membership_detection_seconds"
    assert rules["IronLBSlowFailureDetection"]["expr"] == (
        f"{by} (increase({det}_count{{{sel}}}[15m])) - {by} (increase({det}_bucket{{{sel},le=\"1.0\"}}[15m])) > 0")
    severities = {name: r["labels"]["severity"] for name, r in rules.items()}
    assert severities == {"MetalLBStaleConfig": "warning", "MetalLBConfigNotLoaded": "warning",
                          "MetalLBAddressPoolExhausted": "critical", "MetalLBAddressPoolUsage75Percent": "warning",
                          "MetalLBAddressPoolUsage85Percent": "warning",
                          "MetalLBAddressPoolUsage95Percent": "critical", "MetalLBBGPSessionDown": "critical",
                          "IronLBBFDSessionDown": "critical", "IronLBNoQuorum": "critical",
                          "IronLBMembershipDisagreement": "warning", "IronLBFastPathLag": "warning",
                          "IronLBSlowFailureDetection": "warning"}
    for name, r in rules.items():
        assert r["for"] == {"IronLBMembershipDisagreement": "2m", "IronLBFastPathLag": "5m"}.get(name, "1m")
        if name != "IronLBMembershipDisagreement":  # per pod; Prometheus's templating survives Helm's
            assert "{{ $labels." in r["annotations"]["summary"]

    # each can be turned off, and extra alerts are appended
    extra = {"alert": "Custom", "expr": "vector(1)"}
    values = {"prometheus": {"prometheusRule": {"enabled": True, "staleConfig": {"enabled": False},
                                                "addressPoolUsage": {"thresholds": [{"percent": 50}]},
                                                "extraAlerts": [extra]}}}
    [group] = find(template(tmp_path, values), "PrometheusRule", "metallb")["spec"]["groups"]
    names = [r["alert"] for r in group["rules"]]
    assert "MetalLBStaleConfig" not in names and "MetalLBAddressPoolUsage50Percent" in names
    assert group["rules"][-1] == extra
    assert "labels" not in group["rules"][names.index("MetalLBAddressPoolUsage50Percent")]
    # the fast-path thresholds are bucket bounds of their histograms, as Prometheus writes them: others are refused
    values = {"prometheus": {"prometheusRule": {"enabled": True, "fastPathLag": {"thresholdSeconds": "0.25"},
                                                "slowFailureDetection": {"thresholdSeconds": "2.0"}}}}
    [group] = find(template(tmp_path, values), "PrometheusRule", "metallb")["spec"]["groups"]
    rules = {r["alert"]: r for r in group["rules"]}
    assert 'le="0.25"' in rules["IronLBFastPathLag"]["expr"] and "0.25 s late" in rules["IronLBFastPathLag"][
        "annotations"]["description"]
    assert 'le="2.0"' in rules["IronLBSlowFailureDetection"]["expr"]
    bad = helm("template", "metallb", str(CHART), "--namespace", NS, "--set", "prometheus.prometheusRule.enabled=true",
               "--set-string", "prometheus.prometheusRule.slowFailureDetection.thresholdSeconds=1")
    assert bad.returncode != 0 and "/prometheus/prometheusRule/slowFailureDetection/thresholdSeconds" in bad.stderr
    # the schema's thresholds are exactly the `le` values ironlb exposes (Prometheus keeps them as written)
    schema = json.loads((CHART / "values.schema.json").read_text())
    rule_schema = schema["properties"]["prometheus"]["properties"]["prometheusRule"]["properties"]
    for alert, buckets in (("fastPathLag", LOOP_LAG_BUCKETS), ("slowFailureDetection", DETECTION_BUCKETS)):
        exposed = [le for le, _ in Histogram(buckets).cumulative() if le != "+Inf"]
        enum = rule_schema[alert]["properties"]["thresholdSeconds"]["enum"]
        assert [v for v in enum if isinstance(v, str)] == exposed  # and the same bounds as numbers (--set gives them)
        assert [v for v in enum if not isinstance(v, str)] == [float(le) for le in exposed]


# (how the value is given, what --set/--values gets, the `le` and the text the alert renders)
THRESHOLD_FORMS = [
    ("--set", "1", "1.0"),          # helm's --set parses a whole number as an integer
    ("--set", "10", "10.0"),
    ("--set", "0.75", "0.75"),      # and keeps a decimal one a string
    ("--set-string", "1.0", "1.0"),
    ("--values", 1.0, "1.0"),       # a number in a values file (YAML 1.0)
    ("--values", 2, "2.0"),
    ("--values", 0.5, "0.5"),
    ("--values", "5.0", "5.0"),
]


@pytest.mark.parametrize(("how", "given", "le"), THRESHOLD_FORMS)
def test_bucket_threshold_number_or_string(tmp_path: Path, how: str, given: object, le: str) -> None:
    """A threshold given as a number or as a string renders the same bucket bound, as Prometheus writes it (a
    `le="1"` would match no series: the alert would never fire); helm lint passes with it."""
    key = "prometheus.prometheusRule.slowFailureDetection.thresholdSeconds"
    args = ["metallb", str(CHART), "--namespace", NS, "--set", "prometheus.prometheusRule.enabled=true"]
    if how == "--values":
        f = tmp_path / "values.yaml"
        f.write_text(yaml.safe_dump({"prometheus": {"prometheusRule": {
            "slowFailureDetection": {"thresholdSeconds": given}}}}))
        args += ["--values", str(f)]
    else:
        args += [how, f"{key}={given}"]
    out = helm("template", *args)
    assert out.returncode == 0, out.stderr
    [rule] = [r for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "PrometheusRule"
              for r in d["spec"]["groups"][0]["rules"] if r["alert"] == "IronLBSlowFailureDetection"]
    assert f'ironlb_membership_detection_seconds_bucket{{namespace="{NS}",le="{le}"}}' in rule["expr"]
    assert f"more than {le} s to declare" in rule["annotations"]["description"]
    lint = helm("lint", "--strict", *args[1:])
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize(("how", "given"), [("--set", "0.7"), ("--set", "3.5"), ("--set-string", "1"),
                                            ("--set", "true"), ("--set", "1e0")])
def test_bucket_threshold_not_a_bound_refused(how: str, given: str) -> None:
    """A value that is no bucket bound, or a whole number as a string (Prometheus writes "1.0"), is refused by path."""
    out = helm("template", "metallb", str(CHART), "--namespace", NS, "--set", "prometheus.prometheusRule.enabled=true",
               how, f"prometheus.prometheusRule.fastPathLag.thresholdSeconds={given}")
    assert out.returncode != 0 and "/prometheus/prometheusRule/fastPathLag/thresholdSeconds" in out.stderr, out.stderr


def test_image_tag_number_or_string(tmp_path: Path) -> None:
    """`--set speaker.image.tag=2` (an integer to helm) is a tag like "2"."""
    docs = template(tmp_path, None, "speaker.image.tag=2", "controller.image.tag=0.16")
    assert container(docs, "DaemonSet", "speaker")["image"] == "ironlb:2"
    assert container(docs, "Deployment", "controller")["image"] == "ironlb:0.16"


def test_pod_monitor(tmp_path: Path) -> None:
    values = {"prometheus": {"podMonitor": {"enabled": True}, "rbacPrometheus": False}}
    docs = template(tmp_path, values)
    for component in ("controller", "speaker"):
        pm = find(docs, "PodMonitor", f"metallb-{component}")
        assert pm["spec"]["selector"]["matchLabels"] == {"app": "metallb", "component": component}
        [ep] = pm["spec"]["podMetricsEndpoints"]
        assert ep["port"] == "metricshttps" and ep["scheme"] == "https"
        assert ep["authorization"]["credentials"]["name"] == "metallb-metrics-token"
    assert not any(d["kind"] == "ServiceMonitor" for d in docs)
    assert ("RoleBinding", "metallb-prometheus") not in kinds(docs)


@pytest.mark.parametrize("monitor", ["serviceMonitor", "podMonitor"])
def test_monitor_ca_means_verify(tmp_path: Path, monitor: str) -> None:
    """A tlsConfig with a CA verifies against it: Helm merges it into the default tlsConfig, whose
    insecureSkipVerify: true would otherwise stay beside the CA (Prometheus would then ignore it)."""
    ca = {"secret": {"name": "metrics-ca", "key": "ca.crt"}}
    tls = {"ca": ca, "serverName": "controller.example"}
    mon = {"controller": {"tlsConfig": tls}} if monitor == "serviceMonitor" else {"tlsConfig": tls}
    docs = template(tmp_path, {"prometheus": {monitor: {"enabled": True, **mon}, "rbacPrometheus": False}})
    kind = "ServiceMonitor" if monitor == "serviceMonitor" else "PodMonitor"
    name = "metallb-controller-monitor" if monitor == "serviceMonitor" else "metallb-controller"
    key = "endpoints" if monitor == "serviceMonitor" else "podMetricsEndpoints"
    [ep] = find(docs, kind, name)["spec"][key]
    assert ep["tlsConfig"] == tls
    # without a CA the default stays, and an explicit choice is kept
    other = "metallb-speaker-monitor" if monitor == "serviceMonitor" else None
    if other:
        [ep] = find(docs, kind, other)["spec"][key]
        assert ep["tlsConfig"] == {"insecureSkipVerify": True}
    mon = {"controller": {"tlsConfig": {"caFile": "/etc/ca.crt"}}} if monitor == "serviceMonitor" else {
        "tlsConfig": {"caFile": "/etc/ca.crt"}}
    docs = template(tmp_path, {"prometheus": {monitor: {"enabled": True, **mon}, "rbacPrometheus": False}})
    [ep] = find(docs, kind, name)["spec"][key]
    assert ep["tlsConfig"] == {"caFile": "/etc/ca.crt"}


def test_plain_metrics_and_memberlist_off(tmp_path: Path) -> None:
    values = {"prometheus": {"secureMetrics": False, "podMonitor": {"enabled": True}, "rbacPrometheus": False},
              "speaker": {"memberlist": {"enabled": False}}}
    docs = template(tmp_path, values)
    c = container(docs, "DaemonSet", "speaker")
    assert "--metrics-secure" not in c["args"]
    assert {"name": "metrics", "containerPort": 9120} in c["ports"]
    assert not any(e["name"].startswith("METALLB_ML_") for e in c["env"])
    assert "memberlist" not in {v["name"] for v in pod_spec(docs, "DaemonSet", "speaker")["volumes"]}
    env = {e["name"]: e.get("value") for e in container(docs, "Deployment", "controller")["env"]}
    assert env["METALLB_ML_SECRET_NAME"] == ""  # the controller then creates no membership key
    for role in (f"{NS}:controller", f"{NS}:speaker"):
        assert not any("tokenreviews" in r.get("resources", []) for r in find(docs, "ClusterRole", role)["rules"])
    [ep] = find(docs, "PodMonitor", "metallb-speaker")["spec"]["podMetricsEndpoints"]
    assert ep["scheme"] == "http" and "authorization" not in ep
    assert ("Secret", "metallb-metrics-token") not in kinds(docs)


def test_rbac_off_and_components_off(tmp_path: Path) -> None:
    docs = template(tmp_path, {"rbac": {"create": False}, "speaker": {"serviceAccount": {"create": False,
                                                                                       "name": "my-speaker"}}})
    assert not any(d["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding") for d in docs)
    assert ("ServiceAccount", "speaker") not in kinds(docs)
    assert pod_spec(docs, "DaemonSet", "speaker")["serviceAccountName"] == "my-speaker"
    docs = template(tmp_path, {"speaker": {"enabled": False}, "controller": {"webhookMode": "disabled"}})
    assert not any(d["kind"] in ("DaemonSet", "ValidatingWebhookConfiguration") for d in docs)
    assert ("Service", "metallb-webhook-service") not in kinds(docs)
    assert "--webhook-mode=disabled" in container(docs, "Deployment", "controller")["args"]


def test_fast_path_realtime_priority_off_drops_sys_nice(tmp_path: Path) -> None:
    """Priority 0: the fast process asks for no real-time scheduling and the speaker has MetalLB's capabilities."""
    c = container(template(tmp_path, {"speaker": {"fastPathRealtimePriority": 0}}), "DaemonSet", "speaker")
    assert c["securityContext"]["capabilities"]["add"] == ["NET_RAW", "NET_BIND_SERVICE"]
    assert {"name": "IRONLB_FASTPATH_RT_PRIORITY", "value": "0"} in c["env"]
    c = container(template(tmp_path, {"speaker": {"fastPathRealtimePriority": 20}}), "DaemonSet", "speaker")
    assert "SYS_NICE" in c["securityContext"]["capabilities"]["add"]
    assert {"name": "IRONLB_FASTPATH_RT_PRIORITY", "value": "20"} in c["env"]


@pytest.mark.parametrize(("values", "message"), [
    ({"tls": {"cipherSuites": "TLS_AES_128_GCM_SHA256"}}, "tls.cipherSuites and tls.curvePreferences are not supported"),
    ({"prometheus": {"podMonitor": {"enabled": True}, "serviceMonitor": {"enabled": True}}},
     "cannot both be true"),
    ({"speaker": {"memberlist": {"enabled": False}, "nodeSelector": {"a": "b"}}}, "speaker.nodeSelector must be empty"),
    ({"prometheus": {"serviceMonitor": {"enabled": True}}}, "prometheus.serviceAccount is required"),
    ({"crds": {"bgppeerConversion": "sometimes"}}, "crds.bgppeerConversion must be none or webhook"),
    # values.schema.json: wrong types and values are named by their path
    ({"prometheus": {"metricsPort": "9120x"}}, "/prometheus/metricsPort"),
    ({"controller": {"logLevel": "loud"}}, "/controller/logLevel"),
    ({"speaker": {"memberlist": {"mlBindPort": 70000}}}, "/speaker/memberlist/mlBindPort"),
    ({"speaker": {"fastPathRealtimePriority": 60}}, "/speaker/fastPathRealtimePriority"),
])
def test_refused_values(tmp_path: Path, values: dict[str, Any], message: str) -> None:
    f = tmp_path / "values.yaml"
    f.write_text(yaml.safe_dump(values))
    out = helm("template", "metallb", str(CHART), "--namespace", NS, "--values", str(f))
    assert out.returncode != 0 and message in out.stderr, out.stderr


@pytest.mark.parametrize("values", [None, METALLB_VALUES, {"prometheus": {"secureMetrics": False}}])
def test_args_are_ironlb_flags(tmp_path: Path, values: dict[str, Any] | None) -> None:
    """ironlb's own parser accepts every command line the chart renders (a flag it lacks would crash the pod)."""
    docs = template(tmp_path, values)
    for kind, name in (("Deployment", "controller"), ("DaemonSet", "speaker")):
        args = build_parser().parse_args(container(docs, kind, name)["args"])
        assert args.command == name
        assert args.metrics_secure is (values is None or values["prometheus"].get("secureMetrics", True))


def test_alerts_watch_exported_metrics(tmp_path: Path) -> None:
    """Every metric an alert reads is one ironlb exports (listed in docs/metrics.md): no alert silent forever."""
    docs = template(tmp_path, {"prometheus": {"prometheusRule": {"enabled": True}}})
    [group] = find(docs, "PrometheusRule", "metallb")["spec"]["groups"]
    exported = set(re.findall(r"`((?:metallb|ironlb)_[a-z0-9_]+)`", (REPO / "docs" / "metrics.md").read_text()))
    used = {re.sub(r"_(bucket|count|sum)$", "", name)  # a histogram's series, by the histogram's name
            for r in group["rules"] for name in re.findall(r"\b(?:metallb|ironlb)_[a-z0-9_]+", r["expr"])}
    assert len(used) >= 7 and used <= exported, used - exported


def test_packaged_chart_is_self_contained(tmp_path: Path) -> None:
    """`helm package` copies the CRDs in (files/crd links to config/crd): the archive renders all nine alone."""
    out = helm("package", str(CHART), "--destination", str(tmp_path))
    assert out.returncode == 0, out.stderr
    [archive] = tmp_path.glob("ironlb-*.tgz")
    out = helm("template", "metallb", str(archive), "--namespace", NS)
    assert out.returncode == 0, out.stderr
    crds = [d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 9


def test_crds_are_kept_on_uninstall_unless_told(tmp_path: Path) -> None:
    """`helm uninstall` must not delete the CRDs: that would delete every pool, peer and advertisement with them."""
    crds = [d for d in template(tmp_path) if d["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 9
    assert all(d["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"} for d in crds)
    crds = [d for d in template(tmp_path, None, "crds.keep=false") if d["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 9 and not any("annotations" in d["metadata"] for d in crds)
