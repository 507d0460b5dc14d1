"""The real Prometheus Operator (v0.85.0, scripts/build-prometheus-operator.sh) reconciling the chart's
ServiceMonitors, PodMonitors and PrometheusRule on a real apiserver, as a user's Prometheus stack would: a Prometheus
resource selects them, and the operator's generated configuration (the Secret ``prometheus-<name>``, gzipped
``prometheus.yaml``) scrapes ironlb's controller and speakers over HTTPS with the chart's ServiceAccount token, the
TLS settings the values give, on the ``metricshttps`` port, in ironlb's namespace only; its rule ConfigMap carries
every alert of the chart.

The operator runs as a host process with the admin kubeconfig, watching only the test's two namespaces. Nothing here
has kubelets or a kube-controller-manager: the StatefulSet the operator creates never gets pods (so the Prometheus
resource never becomes Available; only what the operator generated is read), and the test stands in for the token
controller by filling the chart's ``kubernetes.io/service-account-token`` Secret with a token from the TokenRequest
API."""

from __future__ import annotations

import base64
import copy
import gzip
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.controlplane import REPO, ControlPlane, KubeError, death_signal, stop_process
from tests.support.gotools import helm_binary, prometheus_operator_binary, prometheus_operator_crds
from tests.support.waits import wait_until

pytestmark = pytest.mark.kube

# The operator's Prometheus controller watches these (Probe too, though the chart has none); without the
# Alertmanager, ThanosRuler, PrometheusAgent and ScrapeConfig CRDs it leaves those controllers off.
CRDS = ("prometheuses", "servicemonitors", "podmonitors", "probes", "prometheusrules")
MON = "monitoring.coreos.com/v1"
PROMETHEUS = "k8s"  # the Prometheus resource: the operator names what it generates prometheus-k8s...


@pytest.fixture(scope="module")
def operator_crds(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> ControlPlane:
    src, d = prometheus_operator_crds(), tmp_path_factory.mktemp("promop-operator-crds")
    for plural in CRDS:
        shutil.copy(src / f"monitoring.coreos.com_{plural}.yaml", d)
    assert len(control_plane.install_crds(d)) == len(CRDS)
    return control_plane


class PrometheusOperator:
    """``prometheus-operator`` as a host process on the test apiserver, stopped by its PID (and killed with the test
    process)."""

    def __init__(self, cp: ControlPlane, namespaces: list[str], d: Path) -> None:
        d.mkdir()
        self.log = d / "operator.log"
        env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig)}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [prometheus_operator_binary(), f"--namespaces={','.join(namespaces)}",
                 "--web.listen-address=127.0.0.1:0", "--log-level=info"],  # its web server: any free port
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=death_signal(),
            )  # fmt: skip

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus-operator exited with {self.proc.returncode}: {self.tail()}")

    def stop(self) -> None:
        stop_process(self.proc)


def new_namespace(cp: ControlPlane) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cp.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def chart_objects(namespace: str, monitoring: str, tmp_path: Path) -> list[dict[str, Any]]:
    """The chart's ServiceMonitors (the controller's with a user's CA and server name, the speaker's as the chart
    has it), its PodMonitors (a second rendering: the chart has one kind on at a time), its PrometheusRule, and
    what they reference in NAMESPACE: the headless monitor Services, the token's ServiceAccount and Secret."""
    objs = []
    for monitor in ("serviceMonitor", "podMonitor"):
        values: dict[str, Any] = {"prometheus": {"serviceAccount": "prometheus-k8s", "namespace": monitoring,
                                 "prometheusRule": {"enabled": True}, monitor: {"enabled": True}}}
        if monitor == "serviceMonitor":
            values["prometheus"][monitor]["controller"] = {"tlsConfig": {
                "ca": {"secret": {"name": "metrics-ca", "key": "ca.crt"}}, "serverName": "controller.example"}}
        f = tmp_path / f"{monitor}.yaml"
        f.write_text(yaml.safe_dump(values))
        out = subprocess.run([helm_binary(), "template", "metallb", str(REPO / "charts" / "ironlb"), "--namespace",
                              namespace, "-f", str(f)], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr
        docs = [d for d in yaml.safe_load_all(out.stdout) if d]
        objs += [o for o in docs if o["kind"] in ("ServiceMonitor", "PodMonitor")]
        if monitor == "serviceMonitor":  # the rest once
            names = {("PrometheusRule", "metallb"), ("ServiceAccount", "metallb-metrics-reader"),
                     ("Secret", "metallb-metrics-token"), ("Service", "metallb-controller-monitor-service"),
                     ("Service", "metallb-speaker-monitor-service")}  # fmt: skip
            objs += [o for o in docs if (o["kind"], o["metadata"]["name"]) in names]
    return objs


def create(cp: ControlPlane, obj: dict[str, Any], namespace: str) -> None:
    group = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
    plural = {"Service": "services", "ServiceAccount": "serviceaccounts", "Secret": "secrets",
              "ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors",
              "PrometheusRule": "prometheusrules", "Prometheus": "prometheuses"}[obj["kind"]]  # fmt: skip
    cp.create(f"{group}/namespaces/{namespace}/{plural}", obj)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def prometheus_resource(namespace: str) -> dict[str, Any]:
    """A Prometheus as a user's stack has it: the chart's monitors and rules by their ``app`` label, in ironlb's
    namespace by its name label (the apiserver sets ``kubernetes.io/metadata.name``)."""
    ours = {"matchLabels": {"app": "metallb"}}
    there = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return {"apiVersion": MON, "kind": "Prometheus", "metadata": {"name": PROMETHEUS},
            "spec": {"serviceAccountName": "prometheus-k8s", "replicas": 1,
                     "serviceMonitorSelector": ours, "serviceMonitorNamespaceSelector": there,
                     "podMonitorSelector": ours, "podMonitorNamespaceSelector": there,
                     "ruleSelector": ours, "ruleNamespaceSelector": there}}  # fmt: skip


def test_operator_generates_the_scrape_config_and_rules_of_the_chart(operator_crds: ControlPlane,
                                                                      tmp_path: Path) -> None:
    cp = operator_crds
    ns, monitoring = new_namespace(cp), new_namespace(cp)
    objs = chart_objects(ns, monitoring, tmp_path)
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == sorted(["ServiceMonitor", "ServiceMonitor", "PodMonitor", "PodMonitor", "PrometheusRule",
                            "Service", "Service", "ServiceAccount", "Secret"]), kinds  # fmt: skip
    # The token controller's part: the chart's token Secret gets the reader account's token.
    for o in sorted(objs, key=lambda o: o["kind"] != "ServiceAccount"):  # the account before its Secret
        if o["kind"] == "Secret":
            token = cp.create(f"/api/v1/namespaces/{ns}/serviceaccounts/metallb-metrics-reader/token",
                              {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                               "spec": {"expirationSeconds": 3600}})["status"]["token"]  # fmt: skip
            o = {**copy.deepcopy(o), "data": {"token": b64(token)}}
        create(cp, o, ns)
    ca = cp.ca_file.read_text()  # a user's CA for the controller's certificate (the operator parses it: any will do)
    create(cp, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "metrics-ca"},
                "data": {"ca.crt": b64(ca)}}, ns)  # fmt: skip
    create(cp, prometheus_resource(ns), monitoring)

    op = PrometheusOperator(cp, [ns, monitoring], tmp_path / "operator")
    try:
        jobs = wait_until(lambda: generated_jobs(cp, op, monitoring), 60, lambda: f"the operator's config with "
                          f"the chart's 4 jobs (log: {op.tail()})", (KubeError,))  # fmt: skip
        rules = wait_until(lambda: generated_rules(cp, op, monitoring), 30, lambda: f"the operator's rule "
                           f"ConfigMap (log: {op.tail()})", (KubeError,))  # fmt: skip
        op.check()
    finally:
        op.stop()

    assert set(jobs) == {f"serviceMonitor/{ns}/metallb-controller-monitor/0",
                         f"serviceMonitor/{ns}/metallb-speaker-monitor/0",
                         f"podMonitor/{ns}/metallb-controller/0", f"podMonitor/{ns}/metallb-speaker/0"}
    for name, job in jobs.items():
        # HTTPS with the chart's reader token, inlined by the operator from the Secret
        assert job["scheme"] == "https" and job["metrics_path"] == "/metrics" and job["honor_labels"] is True, job
        assert job["authorization"] == {"type": "Bearer", "credentials": token}, name
        # in ironlb's namespace only, by the chart's labels, on the metricshttps port
        [sd] = job["kubernetes_sd_configs"]
        assert sd["namespaces"] == {"names": [ns]}, sd
        keep = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
        component = "controller" if "controller" in name else "speaker"
        if name.startswith("serviceMonitor/"):
            assert sd["role"] == "endpoints", sd
            assert keep[("__meta_kubernetes_service_label_name", "__meta_kubernetes_service_labelpresent_name")] \
                == f"(metallb-{component}-monitor-service);true", keep
            assert keep[("__meta_kubernetes_endpoint_port_name",)] == "metricshttps", keep
        else:
            assert sd["role"] == "pod", sd
            assert keep[("__meta_kubernetes_pod_label_component", "__meta_kubernetes_pod_labelpresent_component")] \
                == f"({component});true", keep
            assert keep[("__meta_kubernetes_pod_container_port_name",)] == "metricshttps", keep
        # the TLS the values give: the user's CA (a file the operator mounts from its tls-assets Secret) and server
        # name for the controller's ServiceMonitor, the chart's default elsewhere
        if name == f"serviceMonitor/{ns}/metallb-controller-monitor/0":
            tls = job["tls_config"]
            assert tls == {"ca_file": f"/etc/prometheus/certs/0_{ns}_metrics-ca_ca.crt",
                           "server_name": "controller.example"}, tls
        else:
            assert job["tls_config"] == {"insecure_skip_verify": True}, job["tls_config"]
    assets = cp.get(f"/api/v1/namespaces/{monitoring}/secrets/prometheus-{PROMETHEUS}-tls-assets-0")
    assert ca in {base64.b64decode(v).decode() for v in assets["data"].values()}

    rule = next(o for o in objs if o["kind"] == "PrometheusRule")
    expected = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert len(expected) == 12 and rules == expected


def generated_config(cp: ControlPlane, op: PrometheusOperator, monitoring: str) -> dict[str, Any] | None:
    op.check()
    secret = cp.get(f"/api/v1/namespaces/{monitoring}/secrets/prometheus-{PROMETHEUS}")
    data = (secret.get("data") or {}).get("prometheus.yaml.gz")
    if not data:
        return None
    config: dict[str, Any] = yaml.safe_load(gzip.decompress(base64.b64decode(data)))
    return config


def generated_jobs(cp: ControlPlane, op: PrometheusOperator, monitoring: str) -> dict[str, dict[str, Any]] | None:
    """The generated scrape jobs by name, once there are the chart's four."""
    config = generated_config(cp, op, monitoring)
    jobs = {j["job_name"]: j for j in (config or {}).get("scrape_configs") or []}
    return jobs if len(jobs) >= 4 else None


def generated_rules(cp: ControlPlane, op: PrometheusOperator, monitoring: str) -> set[str] | None:
    """The alert names of the operator's rule ConfigMap (one file per PrometheusRule)."""
    op.check()
    cm = cp.get(f"/api/v1/namespaces/{monitoring}/configmaps/prometheus-{PROMETHEUS}-rulefiles-0")
    alerts = {r["alert"] for text in (cm.get("data") or {}).values()
              for g in yaml.safe_load(text)["groups"] for r in g["rules"] if "alert" in r}
    return alerts or None
