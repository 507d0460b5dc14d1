"""ironlb installed and upgraded with Helm on the real cluster lab (:mod:`ironlb.lab.kube_cluster`), and what a
speaker rollout costs the Services: the client probes one IP every 50 ms while ``helm upgrade`` changes the speaker
DaemonSet's pod template (new tolerations, say) and the DaemonSet replaces the speakers one node at a time. Used by
tests/cluster/test_helm_cluster.py and bench/helm_rollout.py.

``helm`` runs in the control plane's network namespace with the cluster's kubeconfig, its own state under the
cluster's work directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ironlb.lab.cluster import SEED_CONFIG, SEED_SERVICE, VIP
from ironlb.lab.kube_cluster import KubeCluster, wait_until
from ironlb.lab.kube_demo import BACKEND, external_ip, ready_pods, wait_ironlb_ready

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "ironlb"
NAMESPACE = "metallb-system"
RELEASE = "metallb"


def helm_binary() -> str:
    """scripts/build-helm.sh's helm (built when missing)."""
    out = subprocess.run([str(REPO / "scripts" / "build-helm.sh")], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def helm(cluster: KubeCluster, *args: str, timeout: float = 300) -> str:
    """``helm ARGS`` against the cluster; its stdout, or RuntimeError with its stderr."""
    state = cluster.workdir / "helm"
    env = {**os.environ, "HELM_CACHE_HOME": str(state / "cache"), "HELM_CONFIG_HOME": str(state / "config"),
           "HELM_DATA_HOME": str(state / "data")}
    r = subprocess.run(["ip", "netns", "exec", cluster.cp, helm_binary(), f"--kubeconfig={cluster.kubeconfig}",
                        *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if r.returncode:
        raise RuntimeError(f"helm {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r.stdout


def helm_install(cluster: KubeCluster, *sets: str, timeout: float = 600) -> str:
    """The README's Helm install: the namespace labelled for the speakers' Pod Security level, then
    ``helm install metallb charts/ironlb``; waits until the controller and one speaker per node are Ready."""
    t0 = time.monotonic()
    cluster.kubectl("create", "namespace", NAMESPACE)
    cluster.kubectl("label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=privileged")
    args = ["install", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for s in sets:
        args += ["--set", s]
    out = helm(cluster, *args)
    wait_ironlb_ready(cluster, timeout)
    cluster.timings["helm_install"] = time.monotonic() - t0
    return out


@dataclass
class Rollout:
    """What the client saw while the speakers were replaced."""

    seconds: float = 0.0  # helm upgrade -> every speaker replaced and Ready
    attempts: int = 0
    failed: int = 0
    unreachable_ms: float = 0.0  # summed: first failed attempt of a run -> the next answer
    max_gap_ms: float = 0.0  # longest time between two answers
    ips_before: list[str] = field(default_factory=list)
    ips_after: list[str] = field(default_factory=list)


def ingress_ips(cluster: KubeCluster, name: str = "my-service") -> list[str]:
    svc = cluster.get_json("svc", name)
    return [i["ip"] for i in svc["status"].get("loadBalancer", {}).get("ingress", [])]


def speaker_pods(cluster: KubeCluster) -> set[str]:
    return {p["metadata"]["name"] for p in ready_pods(cluster, NAMESPACE, "component=speaker")}


def measure_speaker_rollout(cluster: KubeCluster, *sets: str, ip: str = VIP, timeout: float = 600) -> Rollout:
    """``helm upgrade --reuse-values --set SETS`` (a change to the speakers' pod template) while the client sends
    an HTTP GET to ``ip`` every 50 ms; returns when every speaker pod was replaced and is Ready."""
    result = Rollout(ips_before=ingress_ips(cluster))
    old = speaker_pods(cluster)
    cmd = [sys.executable, "-m", "ironlb.lab.probe", "probe", ip, "--interval", "0.05", "--timeout", "0.5"]
    probe = cluster.lab.popen(cluster.client, cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    events: list[dict[str, Any]] = []
    try:
        assert probe.stdout is not None
        if json.loads(probe.stdout.readline() or "{}").get("ev") != "ready":
            raise RuntimeError("the client's probe did not start")
        t0 = time.monotonic()
        args = ["upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values"]
        for s in sets:
            args += ["--set", s]
        helm(cluster, *args)

        def replaced() -> bool:
            now = speaker_pods(cluster)
            return len(now) == len(cluster.nodes) and not now & old

        wait_until(replaced, timeout, "every speaker pod replaced and Ready", interval=1)
        result.seconds = time.monotonic() - t0
        time.sleep(2)  # answers after the last replacement count too
    finally:
        out, _ = probe.communicate(timeout=10)  # closes its stdin: the probe stops
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    http = [e for e in events if e.get("ev") == "http" and e["t0"] >= t0]
    result.attempts, result.failed, result.unreachable_ms, result.max_gap_ms = outage(http)
    result.ips_after = ingress_ips(cluster)
    return result


def outage(http: list[dict[str, Any]]) -> tuple[int, int, float, float]:
    """The probe's HTTP events (``t0``, ``t1``, ``ok``) -> attempts, failed, unreachable ms (first failure of a run
    -> the next answer, summed) and the longest gap between two answers, ms."""
    attempts = sorted(http, key=lambda e: float(e["t0"]))
    unreachable = max_gap = 0.0
    first_failed: float | None = None
    last_ok: float | None = None
    for e in attempts:
        if not e["ok"]:
            first_failed = e["t0"] if first_failed is None else first_failed
            continue
        if first_failed is not None:
            unreachable += (e["t1"] - first_failed) * 1000
            first_failed = None
        if last_ok is not None:
            max_gap = max(max_gap, (e["t1"] - last_ok) * 1000)
        last_ok = e["t1"]
    return len(attempts), sum(not e["ok"] for e in attempts), unreachable, max_gap


def seed_service(cluster: KubeCluster) -> None:
    """The seed's backend, legacy ConfigMap and my-service; waits until the client gets answers at the VIP."""
    for doc in (BACKEND, SEED_CONFIG, SEED_SERVICE):
        cluster.kubectl("apply", "-f", "-", input=doc)
    wait_until(lambda: external_ip(cluster), 120, "EXTERNAL-IP of my-service")
    wait_until(lambda: len(ready_pods(cluster, "default", "app=my-app")) == 3, 180, "my-app pods Ready", interval=1)
    wait_until(lambda: cluster.client_get(f"http://{VIP}/"), 120, f"the client's GET http://{VIP}/")
