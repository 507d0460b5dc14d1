"""A real Prometheus (v3.16.0, scripts/build-prometheus.sh) scraping ``ironlb controller --metrics-secure`` as the
chart's monitors have it scrape: HTTPS verified against the CA that signed ironlb's certificate, a ServiceAccount
token as the bearer credential, and ironlb asking the real apiserver (TokenReview, SubjectAccessReview for ``get`` on
``/metrics``). The account bound to a ``/metrics`` reader role gets ``up == 1`` and every ironlb series; one without
that permission gets 403 and ``up == 0``; no token gets 401; trusting another CA fails the TLS handshake."""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.test_chart import NS
from tests.chart.test_prometheus_rules import rendered_rules
from tests.controller.test_metrics_secure_e2e import get, token_for
from tests.support.controller import ControllerProcess, create_pool, create_service, ip_pool, lb_service
from tests.support.controlplane import ControlPlane, KubeError, death_signal, free_port, stop_process
from tests.support.gotools import prometheus_binary
from tests.support.waits import NOT_LISTENING, wait_until

pytestmark = pytest.mark.kube

Start = Callable[..., ControllerProcess]
JOBS = ("reader", "nobody", "anonymous", "wrong-ca")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def metrics_certificate(d: Path) -> Path:
    """A CA, and ironlb's serving certificate for 127.0.0.1 signed by it (tls.crt, tls.key in D); the CA's path."""
    d.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=ironlb-metrics-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign", cwd=d)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=ironlb",
            cwd=d)  # fmt: skip
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "tls.crt", "-days", "1", "-extfile", "ext", cwd=d)  # fmt: skip
    return d / "ca.crt"


def scrape_config(target: str, ca: Path, other_ca: Path, tokens: dict[str, Path], rules: Path) -> dict[str, Any]:
    """One job per identity, all on the same target, verifying it with the CA: ``anonymous`` sends no token,
    ``wrong-ca`` sends the reader's token but trusts another CA (the apiserver's). The reader's series get the
    labels the chart's monitors give them (namespace, pod), so the chart's alert rules (RULES) select them."""
    def job(name: str, token: str | None, ca: Path) -> dict[str, Any]:
        auth = {"authorization": {"type": "Bearer", "credentials_file": str(tokens[token])}} if token else {}
        labels = {"namespace": NS, "pod": "controller-1"} if name == "reader" else {}
        return {"job_name": name, "scheme": "https", "tls_config": {"ca_file": str(ca)}, **auth,
                "static_configs": [{"targets": [target], "labels": labels}]}  # fmt: skip

    jobs = [job("reader", "reader", ca), job("nobody", "nobody", ca), job("anonymous", None, ca),
            job("wrong-ca", "reader", other_ca)]  # fmt: skip
    return {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)], "scrape_configs": jobs}


class Prometheus:
    """``prometheus`` on a loopback port with its own TSDB, stopped by its PID (and killed with the test process)."""

    def __init__(self, config: dict[str, Any], d: Path) -> None:
        d.mkdir()
        (d / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port, self.log = free_port(), d / "prometheus.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [prometheus_binary(), f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=death_signal(),  # a killed pytest leaves no prometheus behind
            )  # fmt: skip

    def api(self, path: str, **query: str) -> Any:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> dict[str, float]:
        """The instant vector PROMQL as job -> value."""
        return {r["metric"].get("job", ""): float(r["value"][1]) for r in self.api("query", query=promql)["result"]}

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def metrics_reader(control_plane: ControlPlane, namespace: str) -> Iterator[str]:
    """A ClusterRole allowed ``get`` on ``/metrics``, bound to the ServiceAccount ``reader`` of the namespace."""
    cp, role = control_plane, f"{namespace}-metrics-reader"
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    cp.create(f"{rbac}/clusterroles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": role},
        "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
    })  # fmt: skip
    cp.create(f"{rbac}/clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
    })  # fmt: skip
    yield "reader"
    for path in (f"{rbac}/clusterrolebindings/{role}", f"{rbac}/clusterroles/{role}"):
        with contextlib.suppress(KubeError):
            cp.delete(path)


def test_prometheus_scrapes_with_a_service_account_token(
    control_plane: ControlPlane, namespace: str, controller: Start, metrics_reader: str, tmp_path: Path
) -> None:
    ca = metrics_certificate(tmp_path / "certs")
    tokens = {}
    for account in ("reader", "nobody"):
        tokens[account] = tmp_path / f"{account}.token"
        tokens[account].write_text(token_for(control_plane, namespace, account))
    # a pool of one address, taken by a Service: exhausted, so past every usage threshold
    create_pool(control_plane, namespace, ip_pool("one", "10.40.9.1/32"))
    create_service(control_plane, namespace, lb_service("takes-it"))
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rendered_rules(tmp_path)))
    ctl = controller("--metrics-secure", "--metrics-cert-dir", str(tmp_path / "certs"), wait=False)
    wait_until(lambda: get(ctl.port, "/readyz")[0] == 200, 30, "the controller's /readyz over HTTPS",
               (*NOT_LISTENING, ssl.SSLError))  # fmt: skip
    config = scrape_config(f"127.0.0.1:{ctl.port}", ca, control_plane.ca_file, tokens, rules)
    prom = Prometheus(config, tmp_path / "prometheus")
    try:
        # Prometheus hands its targets to the scrape loop within 5 s of starting, then scrapes every second.
        def scraped() -> dict[str, float] | None:
            up = prom.query("up")
            return up if up.get("reader") == 1 and set(up) == set(JOBS) else None

        up = wait_until(scraped, 30, lambda: f"up == 1 for the reader job (log: {ctl.log()[-1500:]})", NOT_LISTENING)
        assert up == {"reader": 1, "nobody": 0, "anonymous": 0, "wrong-ca": 0}
        ironlb = '{__name__=~"(metallb|ironlb)_.+"}'
        assert set(prom.query(f"count by (job) ({ironlb})")) == {"reader"}
        assert prom.query("metallb_k8s_client_config_loaded_bool") == {"reader": 1.0}

        def same_series() -> bool:
            """Every ironlb series the controller serves (read directly, with the same token) is in Prometheus,
            and no other."""
            status, text, _ = get(ctl.port, "/metrics", tokens["reader"].read_text())
            served = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
                      if line.startswith(("metallb_", "ironlb_"))}  # fmt: skip
            stored = {r["metric"]["__name__"] for r in prom.api("query", query=ironlb)["result"]}
            return status == 200 and bool(served) and served == stored

        wait_until(same_series, 10, "the same ironlb series served and stored", NOT_LISTENING)

        def errors() -> dict[str, str] | None:
            targets = prom.api("targets", state="active")["activeTargets"]
            found = {t["labels"]["job"]: t["lastError"] for t in targets}
            return found if all(found.get(j) for j in JOBS if j != "reader") else None

        last = wait_until(errors, 10, "the refused jobs' last errors", NOT_LISTENING)
        assert "403" in last["nobody"] and "401" in last["anonymous"], last
        assert "certificate signed by unknown authority" in last["wrong-ca"], last
        assert not last["reader"], last

        # The chart's rules, in the real Prometheus on the real series: every one evaluates without error, and the
        # pool alerts are pending (their `for: 1m` not yet over) for the exhausted pool, with the controller's labels.
        pool_alerts = {"MetalLBAddressPoolExhausted", "MetalLBAddressPoolUsage75Percent",
                       "MetalLBAddressPoolUsage85Percent", "MetalLBAddressPoolUsage95Percent"}  # fmt: skip

        def pending() -> list[dict[str, Any]] | None:
            alerts = prom.api("alerts")["alerts"]
            return alerts if {a["labels"]["alertname"] for a in alerts} >= pool_alerts else None

        alerts = wait_until(pending, 10, "the pool alerts pending", NOT_LISTENING)
        assert {a["labels"]["alertname"] for a in alerts} == pool_alerts, alerts
        for a in alerts:
            assert a["state"] == "pending" and a["labels"]["pool"] == "one" and a["labels"]["pod"] == "controller-1"
        groups = prom.api("rules")["groups"]
        evaluated = [r for g in groups for r in g["rules"]]
        assert len(evaluated) == 12 and all(r["health"] == "ok" for r in evaluated), evaluated
    finally:
        prom.stop()
