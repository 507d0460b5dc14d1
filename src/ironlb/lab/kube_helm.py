"""ironlb installed and upgraded with Helm on the real cluster lab (:mod:`ironlb.lab.kube_cluster`), and what a
speaker rollout costs the Services: the client probes them every 10 ms while ``helm upgrade`` changes the speaker
DaemonSet's pod template (new tolerations, say) and the DaemonSet replaces the speakers one node at a time. Used by
tests/cluster/test_helm_cluster.py and bench/helm_rollout.py.

``helm`` runs in the control plane's network namespace with the cluster's kubeconfig, its own state under the
cluster's work directory.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ironlb.lab.cluster import SEED_CONFIG, SEED_SERVICE, VIP
from ironlb.lab.kube_cluster import KubeCluster, wait_until
from ironlb.lab.kube_demo import BACKEND, Rollout, external_ip, measure_rollout, ready_pods, wait_ironlb_ready

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


def helm_upgrade_rollout(cluster: KubeCluster, *sets: str, services: dict[str, str] | None = None) -> Rollout:
    """``helm upgrade --reuse-values --set SETS`` (a change to the speakers' pod template) while the client probes
    every Service (name -> IP; default the seed's my-service) every 10 ms, until ``rollout status`` of the speaker
    DaemonSet is done (:func:`ironlb.lab.kube_demo.measure_rollout`)."""
    args = ["upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values"]
    for s in sets:
        args += ["--set", s]
    return measure_rollout(cluster, "daemonset/speaker", services or {"my-service": VIP},
                           start=lambda: helm(cluster, *args))


def seed_service(cluster: KubeCluster) -> None:
    """The seed's backend, legacy ConfigMap and my-service; waits until the client gets answers at the VIP."""
    for doc in (BACKEND, SEED_CONFIG, SEED_SERVICE):
        cluster.kubectl("apply", "-f", "-", input=doc)
    wait_until(lambda: external_ip(cluster), 120, "EXTERNAL-IP of my-service")
    wait_until(lambda: len(ready_pods(cluster, "default", "app=my-app")) == 3, 180, "my-app pods Ready", interval=1)
    wait_until(lambda: cluster.client_get(f"http://{VIP}/"), 120, f"the client's GET http://{VIP}/")
