"""Benchmark of ironlb on the real Kubernetes cluster lab (src/ironlb/lab/kube_cluster.py): 3 kubelet nodes with
containerd and kube-proxy in network namespaces, ironlb installed with ``kubectl apply``.

- cluster up: namespaces, etcd, apiserver, controller-manager, scheduler, 3 nodes (images imported) -> all Ready;
- install: ``kubectl apply -f config/manifests/ironlb.yaml`` -> the controller and the 3 speakers Ready;
- service -> answer: ``kubectl apply`` of a LoadBalancer Service (the seed's, pinned to a fresh IP each time) ->
  the client's first HTTP answer at that IP through kube-proxy (the Service is deleted between trials);
- rolling restart: ``kubectl rollout restart`` of the speaker DaemonSet, then of the controller Deployment, while the
  client sends an HTTP GET to each of 4 Layer 2 Services every 10 ms -> per Service the longest run of failed
  attempts, the nodes that sent ARP for its IP, and whether any EXTERNAL-IP changed; then the same for the speaker
  DaemonSet with 4 BGP Services (the lab's FRR router, ECMP over the 3 nodes), without and with graceful restart;
- L2 failover: the announcing node dies (link down; kubelet, containerd, kube-proxy and its containers killed) ->
  the client's first answer through the new announcer; the node is booted again between trials;
- memory: VmRSS of the speaker and controller processes.

Needs root and ``make k8s-cluster``. Run from the repository root:
``python -m bench.k8s_cluster [--answer-trials 20] [--rollouts 1] [--failover-trials 10] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ironlb.lab.cluster import SEED_CONFIG, VIP
from ironlb.lab.kube_cluster import (
    KubeCluster,
    _epoch,
    _proc_table,
    default_bin_dir,
    default_images_dir,
    missing_requirements,
    wait_until,
)
from ironlb.lab.kube_demo import (
    BACKEND,
    BGP_POOL,
    Rollout,
    announcer,
    bgp_config,
    delete_bgp_config,
    external_ip,
    install_ironlb,
    lb_service,
    measure_failover,
    measure_rollout,
    node_of_mac,
    ready_pods,
)


def percentile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def rss_mib(component: str) -> list[float]:
    """VmRSS (MiB) of the image's ``ironlb <component>`` processes (the pods', not a test's ``python -m ironlb``)."""
    out = []
    for pid, (_, cmd) in _proc_table().items():
        if f"/opt/ironlb/bin/ironlb {component}" in cmd:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out.append(int(line.split()[1]) / 1024)
            except OSError:
                continue
    return out


def _speaker_back(cluster: KubeCluster, node: str, since: float) -> bool:
    for pod in ready_pods(cluster, "metallb-system", "component=speaker"):
        if pod["spec"]["nodeName"] != node:
            continue
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        return _epoch(ready["lastTransitionTime"]) >= int(since)
    return False


ROLLOUT_SERVICES = {"my-service": VIP, "roll-1": "192.168.1.241", "roll-2": "192.168.1.242",
                    "roll-3": "192.168.1.243"}


def rollout_summary(cluster: KubeCluster, r: Rollout) -> dict[str, object]:
    out: dict[str, object] = {
        "rollout_s": round(r.seconds, 1),
        "ip_changes": r.ip_changes,
        "services": {s.ip: {"worst_gap_ms": round(s.worst_gap_s * 1000), "failed": s.failed, "attempts": s.attempts,
                            "recovered": s.recovered, "errors": s.errors,
                            "probe_pause_ms": round(s.probe_pause_s * 1000),
                            "arp_from": [node_of_mac(cluster, m) or m for m in s.macs]} for s in r.services},
        "restarts": r.restarts,
        "load_1min": round(os.getloadavg()[0], 1),  # at the end: the machine is shared, figures are noisy
    }
    if r.trace is not None:
        out["attempts_through_restarting_node"] = r.trace.restarting  # [attempts, failed]
        out["attempts_through_other_nodes"] = r.trace.elsewhere
        out["attempts_untraced"] = r.trace.untraced  # no SYN of theirs forwarded by the router
        out["attempts_by_node"] = r.trace.by_node
        out["failures"] = r.trace.failures
        out["route_changes"] = r.routes[:40]
    return out


NOISE_DAEMONSET = json.dumps({
    "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "noise", "namespace": "default"},
    "spec": {"selector": {"matchLabels": {"app": "noise"}}, "template": {
        "metadata": {"labels": {"app": "noise"}},
        "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
            "name": "http", "image": "ironlb.local/http-echo:1", "imagePullPolicy": "Never",
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}}]}}},
})  # fmt: skip
"""A DaemonSet unrelated to ironlb and to the probed Services: its rollout is the same pod churn on every node
(containers stopped and started, the kubelets and containerd busy) with nothing on the Services' paths."""


def bgp_rollouts(cluster: KubeCluster, count: int, *, gr_only: bool = False,
                 baselines: bool = True) -> dict[str, list[dict[str, object]]]:
    """``rollout restart daemonset/speaker`` with 4 BGP Services, ``count`` times without graceful restart, then
    ``count`` times with it (the BGPPeer's ``enableGracefulRestart``; the router is FRR with ``bgp
    graceful-restart``). With ``baselines``, each graceful-restart rollout comes with two controls measured the same
    way just before it: the probe alone for as long as the previous speaker rollout took (nothing restarted), and a
    rollout of :data:`NOISE_DAEMONSET`. Every measurement traces each connection's node at the router."""
    base = BGP_POOL[0].rsplit(".", 1)
    services = {f"bgp-roll-{i}": f"{base[0]}.{int(base[1]) + i}" for i in range(4)}
    out: dict[str, list[dict[str, object]]] = {}
    if baselines:
        cluster.kubectl("apply", "-f", "-", input=NOISE_DAEMONSET)
        wait_until(lambda: len(ready_pods(cluster, "default", "app=noise")) == len(cluster.nodes), 180,
                   "the noise DaemonSet Ready", interval=1)
    for gr in ((True,) if gr_only else (False, True)):
        cluster.kubectl("apply", "-f", "-", input=bgp_config(graceful_restart=gr))
        for name, ip in services.items():
            cluster.kubectl("apply", "-f", "-", input=lb_service(name, ip, pool="bgp-pool"))
        for name, ip in services.items():
            wait_until(lambda name=name, ip=ip: external_ip(cluster, name) == ip  # type: ignore[misc]
                       and cluster.client_get(f"http://{ip}/", timeout=0.5), 120, f"{name} answering", interval=0.5)
        key = "daemonset/speaker, graceful restart" if gr else "daemonset/speaker"
        last_s = 40.0
        for i in range(count):
            runs: list[tuple[str, Callable[[], Rollout]]] = []
            if gr and baselines:
                runs.append(("nothing restarted (baseline)", lambda s=last_s: measure_rollout(  # type: ignore[misc]
                    cluster, "", services, idle_s=s, trace_paths=True)))
                runs.append(("daemonset/noise (unrelated)", lambda: measure_rollout(
                    cluster, "daemonset/noise", services, namespace="default", selector="app=noise",
                    trace_paths=True)))
            runs.append((key, lambda: measure_rollout(cluster, "daemonset/speaker", services, trace_paths=True)))
            for label, measure in runs:
                # The sessions re-established after the previous restart (FRR's stale timers done) before the next one.
                time.sleep(5)
                r = measure()
                if r.target == "daemonset/speaker":
                    last_s = r.seconds
                out.setdefault(label, []).append(rollout_summary(cluster, r))
                print(f"{label} (BGP) #{i + 1}: {json.dumps(out[label][-1])}", file=sys.stderr, flush=True)
    cluster.kubectl("delete", "svc", *services)
    if baselines:
        cluster.kubectl("delete", "daemonset", "noise", "--ignore-not-found")
    delete_bgp_config(cluster)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answer-trials", type=int, default=20)
    parser.add_argument("--rollouts", type=int, default=1, help="rolling restarts of each of speaker and controller")
    parser.add_argument("--failover-trials", type=int, default=10)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--bgp-gr-only", action="store_true",
                        help="only the BGP graceful-restart rollouts and their baselines (no Layer 2, controller or "
                             "no-graceful-restart rollouts)")
    parser.add_argument("--no-baselines", action="store_true",
                        help="no baseline (nothing restarted, an unrelated DaemonSet) beside each BGP GR rollout")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cluster is stopped by the finally below
    bin_dir, images = default_bin_dir(), default_images_dir()
    problem = missing_requirements(bin_dir, images)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    assert bin_dir is not None
    workdir = Path(tempfile.mkdtemp(prefix="ironlb-k8s-bench."))
    results: dict[str, object] = {}
    cluster = KubeCluster.start(bin_dir, images, workdir)
    try:
        results["up_s"] = round(cluster.timings["up"], 1)
        install_ironlb(cluster)
        results["install_s"] = round(cluster.timings["install"], 1)
        cluster.kubectl("apply", "-f", "-", input=BACKEND)
        cluster.kubectl("apply", "-f", "-", input=SEED_CONFIG)
        wait_until(lambda: len(ready_pods(cluster, "default", "app=my-app")) == 3, 180, "my-app Ready", interval=1)
        answers = []
        for i in range(args.answer_trials):
            ip = f"192.168.1.{241 + i % 9}"
            t0 = time.monotonic()
            cluster.kubectl("apply", "-f", "-", input=lb_service(f"bench-{i}", ip))
            wait_until(lambda ip=ip: cluster.client_get(f"http://{ip}/", timeout=0.5), 60,  # type: ignore[misc]
                       f"answer at {ip}", interval=0.02)
            answers.append(time.monotonic() - t0)
            cluster.kubectl("delete", "svc", f"bench-{i}", "--wait=true")
            print(f"service -> answer #{i + 1}: {answers[-1]:.2f} s", file=sys.stderr)
        results["service_answer_s"] = {"n": len(answers), "p50": round(percentile(answers, 50), 2),
                                       "p95": round(percentile(answers, 95), 2)}
        results["speaker_rss_mib"] = [round(v, 1) for v in rss_mib("speaker")]
        results["controller_rss_mib"] = [round(v, 1) for v in rss_mib("controller")]
        for name, ip in ROLLOUT_SERVICES.items():
            cluster.kubectl("apply", "-f", "-", input=lb_service(name, ip))
        for name, ip in ROLLOUT_SERVICES.items():
            wait_until(lambda name=name, ip=ip: external_ip(cluster, name) == ip  # type: ignore[misc]
                       and cluster.client_get(f"http://{ip}/", timeout=0.5), 120, f"{name} answering", interval=0.5)
        rollouts: dict[str, list[dict[str, object]]] = {}
        for i in range(0 if args.bgp_gr_only else args.rollouts):
            for target in ("daemonset/speaker", "deployment/controller"):
                r = measure_rollout(cluster, target, ROLLOUT_SERVICES,
                                    selector="component=" + target.split("/")[1])
                rollouts.setdefault(target, []).append(rollout_summary(cluster, r))
                print(f"rollout restart {target} #{i + 1}: {json.dumps(rollouts[target][-1])}", file=sys.stderr)
        results["rollouts"] = rollouts
        if cluster.frr is not None:
            results["rollouts_bgp"] = bgp_rollouts(cluster, args.rollouts, gr_only=args.bgp_gr_only,
                                                   baselines=not args.no_baselines)
        cluster.kubectl("delete", "svc", *[n for n in ROLLOUT_SERVICES if n != "my-service"])
        failovers = []
        for i in range(args.failover_trials):
            wait_until(lambda: cluster.client_get(f"http://{VIP}/", timeout=0.5) and announcer(cluster), 180,
                       "steady state", interval=0.5)
            f = measure_failover(cluster)
            print(f"failover #{i + 1}: {f}", file=sys.stderr)
            if f.answer_s is not None:
                failovers.append(f.answer_s)
            booted = time.time()
            cluster.revive_node(f.dead)
            # Its speaker must be back before the next trial: with 2 of 3 members alive the survivors keep quorum,
            # with 1 of 3 (the revived node's speaker still starting) nobody may announce (split-brain guard).
            wait_until(lambda dead=f.dead, t=booted: _speaker_back(cluster, dead, t), 300,  # type: ignore[misc]
                       f"the speaker of {f.dead} Ready again", interval=1)
        if failovers:
            results["l2_failover_s"] = {"n": len(failovers), "p50": round(percentile(failovers, 50), 2),
                                        "p95": round(percentile(failovers, 95), 2), "max": round(max(failovers), 2)}
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
