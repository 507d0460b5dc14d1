"""The seed's workflow on the real cluster lab (:mod:`ironlb.lab.kube_cluster`), shared by ``make demo-k8s`` and the
cluster tests: install with ``kubectl apply``, the backend Deployment, the legacy ConfigMap and ``my-service``, the
client's view of 192.168.1.240, and the Layer 2 failover when the announcing node dies.

    python -m ironlb.lab.kube_demo [--no-failover]     # root; after scripts/build-k8s.sh --cluster and
                                                       # scripts/build-images.py (make demo-k8s does all three)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ironlb.lab.cluster import SEED_CONFIG, SEED_SERVICE, VIP, parse_arping
from ironlb.lab.kube_cluster import (
    CLUSTER_STARTING,
    NODE_ASN,
    ROUTER_ASN,
    ROUTER_IP,
    KubeCluster,
    default_bin_dir,
    default_images_dir,
    missing_requirements,
    wait_until,
)
from ironlb.lab.rollout_trace import Attribution, PathIndex, attribute, disturbed_windows

REPO = Path(__file__).resolve().parents[3]
BUNDLE = REPO / "config" / "manifests" / "ironlb.yaml"

def http_echo_deployment(name: str, *, replicas: int = 1, node: str | None = None, spread: bool = False,
                         grace: int = 1, probe_period: int = 1) -> str:
    """A Deployment of the http-echo image (pods labelled ``app: NAME``, answering on 8080 with their name).

    ``node`` pins the pods there; ``spread`` spreads them over the nodes (one per node as long as it can).
    """
    labels = {"app": name}
    pod: dict[str, Any] = {"terminationGracePeriodSeconds": grace}
    if node is not None:
        pod["nodeSelector"] = {"kubernetes.io/hostname": node}
    if spread:
        pod["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": labels},
        }]  # fmt: skip
    pod["containers"] = [{
        "name": "http", "image": "ironlb.local/http-echo:1", "imagePullPolicy": "Never",
        "ports": [{"containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": probe_period},
    }]  # fmt: skip
    template = {"metadata": {"labels": labels}, "spec": pod}
    spec = {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template}
    meta = {"name": name, "namespace": "default"}
    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}, indent=1) + "\n"


# The backend of the seed's Service: three pods labelled app: my-app, one per node while it can.
BACKEND = http_echo_deployment("my-app", replicas=3, spread=True, grace=2, probe_period=2)


BGP_POOL = ("10.77.0.10", "10.77.0.29")  # inside kube_cluster.BGP_RANGE, which the client routes via the router


def bgp_config(*, graceful_restart: bool = False, community: str = "64512:300") -> str:
    """ironlb's BGP configuration for the lab's router: a BFD profile, the BGPPeer (every node's speaker peers with
    192.168.1.1), the pool ``bgp-pool`` and its BGPAdvertisement with a community."""
    gr = ", enableGracefulRestart: true" if graceful_restart else ""
    return f"""\
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {{name: lab-bfd, namespace: metallb-system}}
spec: {{receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: lab-router, namespace: metallb-system}}
spec: {{myASN: {NODE_ASN}, peerASN: {ROUTER_ASN}, peerAddress: {ROUTER_IP}, bfdProfile: lab-bfd{gr}}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bgp-pool, namespace: metallb-system}}
spec: {{addresses: [{BGP_POOL[0]}-{BGP_POOL[1]}]}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp-adv, namespace: metallb-system}}
spec: {{ipAddressPools: [bgp-pool], communities: ["{community}"]}}
"""


def delete_bgp_config(cluster: KubeCluster) -> None:
    """Remove :func:`bgp_config`'s objects, the peer first (the webhook refuses to delete a BFDProfile in use)."""
    cluster.kubectl("-n", "metallb-system", "delete", "bgppeer", "lab-router", "--ignore-not-found")
    cluster.kubectl("delete", "--ignore-not-found", "-f", "-", input=bgp_config())


def lb_service(name: str, ip: str | None = None, *, pool: str | None = None, selector: str = "my-app",
               policy: str = "Cluster", port: int = 80, annotations: Mapping[str, str] | None = None) -> str:
    """A LoadBalancer Service (asking for ``ip`` from ``pool`` when given), ``port`` -> the pods' 8080."""
    notes = {"metallb.io/address-pool": pool} if pool else {}
    notes |= {"metallb.io/loadBalancerIPs": ip} if ip else {}
    notes |= annotations or {}
    return f"""\
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default
  annotations: {json.dumps(notes)}
spec:
  type: LoadBalancer
  externalTrafficPolicy: {policy}
  selector: {{app: {selector}}}
  ports:
  - {{name: http, protocol: TCP, port: {port}, targetPort: 8080}}
"""


def ready_pods(cluster: KubeCluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The pods matching ``selector`` that are Ready and not being deleted."""
    pods: list[dict[str, Any]] = cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]
    return [p for p in pods if p["metadata"].get("deletionTimestamp") is None
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]


def pods_state(cluster: KubeCluster, namespace: str, selector: str) -> str:
    """``kubectl get pods -o wide`` and the namespace's last events, for a wait's timeout message."""
    pods = cluster.kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "wide", check=False)
    events = cluster.kubectl("-n", namespace, "get", "events", "--sort-by=.lastTimestamp", check=False)
    return f"\n{pods.stdout}{pods.stderr}\n{events.stdout[-3000:]}"


def install_ironlb(cluster: KubeCluster, bundle: Path = BUNDLE, timeout: float = 600) -> str:
    """``kubectl apply -f <bundle>`` as a user runs it, then wait until the controller and one speaker per node
    are Ready. Returns kubectl's output; the time is in ``cluster.timings["install"]``."""
    t0 = time.monotonic()
    out = cluster.kubectl("apply", "-f", str(bundle), timeout=120).stdout
    wait_ironlb_ready(cluster, timeout)
    cluster.timings["install"] = time.monotonic() - t0
    return out


def wait_ironlb_ready(cluster: KubeCluster, timeout: float) -> None:
    """Wait until ironlb's controller and one speaker per node are Ready (on timeout, the pods are printed)."""

    def ready() -> bool:
        return (len(ready_pods(cluster, "metallb-system", "component=controller")) == 1
                and len(ready_pods(cluster, "metallb-system", "component=speaker")) == len(cluster.nodes))

    try:
        wait_until(ready, timeout, "ironlb's controller and speakers Ready", interval=1)
    except TimeoutError:
        print(cluster.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout, file=sys.stderr)
        print(cluster.kubectl("describe", "pods", "-n", "metallb-system", check=False).stdout[-8000:],
              file=sys.stderr)
        raise


def external_ip(cluster: KubeCluster, name: str = "my-service", namespace: str = "default") -> str | None:
    """The EXTERNAL-IP column of ``kubectl get svc`` (None while pending)."""
    cols = cluster.kubectl("-n", namespace, "get", "svc", name, "--no-headers").stdout.split()
    return cols[3] if len(cols) > 3 and cols[3] not in ("<pending>", "<none>") else None


def node_of_mac(cluster: KubeCluster, mac: str) -> str | None:
    for node in cluster.nodes:
        if cluster.lab.mac(node.netns, "eth0").lower() == mac.lower():
            return node.name
    return None


def announcer(cluster: KubeCluster, ip: str = VIP) -> str | None:
    """The node whose MAC answers the client's ``arping`` for ``ip`` (None if nobody does)."""
    r = cluster.client_run(["arping", "-c", "2", "-i", "eth0", ip], timeout=15)
    replies = parse_arping(r.stdout)
    return node_of_mac(cluster, replies[-1][0]) if replies else None


@dataclass
class Failover:
    dead: str
    new: str | None = None
    arp_s: float | None = None  # kill -> the client sees another node's MAC for the IP
    answer_s: float | None = None  # kill -> the client's first HTTP answer through it
    failed: int = 0  # the client's failed attempts meanwhile


def measure_failover(cluster: KubeCluster, ip: str = VIP, timeout: float = 90) -> Failover:
    """Kill the node announcing ``ip`` (:meth:`KubeCluster.kill_node`) while the client sends an HTTP GET every
    50 ms and sniffs ARP; time the move to another node."""
    dead = announcer(cluster, ip)
    if dead is None:
        raise RuntimeError(f"nobody answers ARP for {ip}")
    cmd = [sys.executable, "-m", "ironlb.lab.probe", "probe", ip, "--interval", "0.05", "--timeout", "0.5"]
    probe = cluster.lab.popen(cluster.client, cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    result = Failover(dead)
    try:
        assert probe.stdout is not None
        if json.loads(probe.stdout.readline() or "{}").get("ev") != "ready":
            raise RuntimeError("the client's probe did not start")
        dead_mac = cluster.lab.mac(cluster.node(dead).netns, "eth0").lower()
        t0 = time.monotonic()
        cluster.kill_node(dead)
        new_mac: str | None = None
        while time.monotonic() < t0 + timeout:
            line = probe.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            if event.get("ev") == "arp" and event["t"] > t0 and event["mac"] != dead_mac and new_mac is None:
                new_mac = str(event["mac"])
                result.arp_s = event["t"] - t0
            elif event.get("ev") == "http" and event["t0"] > t0:
                if event.get("ok") and new_mac is not None:
                    result.answer_s = event["t1"] - t0
                    break
                if not event.get("ok"):
                    result.failed += 1
        result.new = node_of_mac(cluster, new_mac) if new_mac else None
    finally:
        probe.terminate()
        probe.wait(5)
    if result.answer_s is not None:
        cluster.timings["l2_failover"] = result.answer_s
    return result


@dataclass
class Reachability:
    """What the client saw of one IP while something ran (a rollout): its HTTP attempts and the ARP senders."""

    ip: str
    attempts: int = 0
    failed: int = 0
    # The longest run of failed attempts: from the first one's start to the start of the next answered attempt
    # (to the last failed attempt's end when none answered after it). 0 when every attempt was answered.
    worst_gap_s: float = 0.0
    recovered: bool = True
    # The longest pause between two attempts' starts: the probe's own resolution (it aims at its interval, but a
    # client starved of CPU starts none for a while, and a failed attempt's gap lasts at least until the next start).
    probe_pause_s: float = 0.0
    macs: list[str] = field(default_factory=list)  # each MAC that sent ARP for the IP, in order of first sight
    errors: dict[str, int] = field(default_factory=dict)  # failed attempts by error ("timeout", "Connection refused")


def reachability(ip: str, events: list[dict[str, Any]]) -> Reachability:
    """Summarise a probe's JSON events (``ironlb.lab.probe probe``) for ``ip``."""
    r = Reachability(ip)
    for e in events:
        if e.get("ev") == "arp" and e.get("mac") not in r.macs:
            r.macs.append(str(e["mac"]))
    first_fail: float | None = None
    last_end = 0.0
    last_start: float | None = None
    for e in sorted((e for e in events if e.get("ev") == "http"), key=lambda e: float(e["t0"])):
        r.attempts += 1
        if last_start is not None:
            r.probe_pause_s = max(r.probe_pause_s, float(e["t0"]) - last_start)
        last_start = float(e["t0"])
        if e.get("ok"):
            if first_fail is not None:
                r.worst_gap_s = max(r.worst_gap_s, float(e["t0"]) - first_fail)
                first_fail = None
            continue
        r.failed += 1
        err = str(e.get("err", f"HTTP {e.get('status')}"))
        r.errors[err] = r.errors.get(err, 0) + 1
        last_end = float(e["t1"])
        if first_fail is None:
            first_fail = float(e["t0"])
    if first_fail is not None:
        r.recovered = False
        r.worst_gap_s = max(r.worst_gap_s, last_end - first_fail)
    return r


@dataclass
class Rollout:
    target: str  # e.g. "daemonset/speaker"; "" for a baseline with nothing restarted
    seconds: float  # `kubectl rollout restart` -> `kubectl rollout status` done (a baseline: its length)
    services: list[Reachability]
    ip_changes: list[str]  # "<service>: <old> -> <new>" for every EXTERNAL-IP seen changing meanwhile
    # Per node, when the restarted workload's pods there were not as before (seconds after the start).
    restarts: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    # With trace_paths: the failed attempts traced to their node, the attempts split by path, the route changes.
    trace: Attribution | None = None
    routes: list[dict[str, Any]] = field(default_factory=list)


def _pod_sample(cluster: KubeCluster, namespace: str, selector: str) -> dict[str, tuple[int, bool]]:
    """{node: (ready pods, whether a pod is not ready or being deleted)} of the pods matching ``selector``."""
    out: dict[str, tuple[int, bool]] = {}
    for pod in cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]:
        node = pod["spec"].get("nodeName")
        if not node:
            continue
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        ok = ready and pod["metadata"].get("deletionTimestamp") is None
        count, unsettled = out.get(node, (0, False))
        out[node] = (count + ok, unsettled or not ok)
    return out


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


def measure_rollout(cluster: KubeCluster, target: str, services: dict[str, str], *, interval: float = 0.01,
                    attempt_timeout: float = 1.0, timeout: float = 600,
                    start: Callable[[], object] | None = None, namespace: str = "metallb-system",
                    selector: str = "component=speaker", idle_s: float | None = None,
                    trace_paths: bool = False) -> Rollout:
    """``kubectl -n NAMESPACE rollout restart <target>`` (or ``start()``, e.g. a ``helm upgrade`` that changes
    its pod template) while the client sends an HTTP GET to every Service (name -> IP) every ``interval``; wait for
    ``rollout status``, then a few seconds more. Every Service's EXTERNAL-IP is read meanwhile, to see that none
    changed, and the pods matching ``selector`` every second, to know when each node's pod was restarting.

    ``idle_s``: restart nothing, probe as long (the noise floor of the same run). ``trace_paths``: the lab router
    records which node each connection went to and its route changes (BGP Services, which the client reaches
    through the router), each node which connections it answered, and every failed attempt is attributed to its
    node (:mod:`ironlb.lab.rollout_trace`).
    """
    outputs = {name: cluster.workdir / f"probe-{name}.jsonl" for name in services}
    paths_out = cluster.workdir / "paths.jsonl"
    answers_out = {n.name: cluster.workdir / f"answers-{n.name}.jsonl" for n in cluster.nodes}
    probes: list[subprocess.Popen[str]] = []
    samples: list[tuple[float, dict[str, tuple[int, bool]]]] = []
    try:
        if trace_paths:
            for ns, mode, path in [(cluster.router, "paths", paths_out),
                                   *((n.netns, "answers", answers_out[n.name]) for n in cluster.nodes)]:
                cmd = ["nice", "-n", "-10", sys.executable, "-m", "ironlb.lab.probe", mode, *services.values()]
                with open(path, "w") as out:
                    probes.append(cluster.lab.popen(ns, cmd, stdin=subprocess.PIPE, stdout=out,
                                                    stderr=subprocess.DEVNULL))
        for name, ip in services.items():
            # Above the lab's own processes (nice -10): a real client is another machine, and a starved probe
            # starts no attempt for a while, which would count in the gap of a failure next to it.
            cmd = ["nice", "-n", "-10", sys.executable, "-m", "ironlb.lab.probe", "probe", ip,
                   "--interval", str(interval), "--timeout", str(attempt_timeout)]
            with open(outputs[name], "w") as out:
                probes.append(cluster.lab.popen(cluster.client, cmd, stdin=subprocess.PIPE, stdout=out,
                                                stderr=subprocess.DEVNULL))

        def started() -> bool:
            files = [*outputs.values(), *([paths_out, *answers_out.values()] if trace_paths else [])]
            return all('"ready"' in f.read_text() for f in files)

        wait_until(started, 60, "the client's probes started")
        time.sleep(2)  # a baseline before the restart
        changes: list[str] = []

        def check() -> None:
            """One read of every Service's EXTERNAL-IP and one of the restarted pods (two kubectl calls)."""
            now = {s["metadata"]["name"]: (s["status"].get("loadBalancer", {}).get("ingress") or [{}])[0].get("ip")
                   for s in cluster.get_json("svc", "-n", "default")["items"]}
            for name, ip in services.items():
                if now.get(name) != ip and f"{name}: {ip} -> {now.get(name)}" not in changes:
                    changes.append(f"{name}: {ip} -> {now.get(name)}")
            t = time.monotonic()
            samples.append((t, _pod_sample(cluster, namespace, selector)))

        with contextlib.suppress(*CLUSTER_STARTING):
            check()
        t0 = time.monotonic()
        status: subprocess.Popen[str] | None = None
        if idle_s is None:
            if start is None:
                cluster.kubectl("-n", namespace, "rollout", "restart", target)
            else:
                start()
            status = subprocess.Popen(
                ["ip", "netns", "exec", cluster.cp, str(cluster.bin_dir / "kubectl"),
                 f"--kubeconfig={cluster.kubeconfig}", "-n", namespace, "rollout", "status", target,
                 f"--timeout={int(timeout)}s"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            while (status.poll() is None) if status is not None else time.monotonic() < t0 + (idle_s or 0):
                with contextlib.suppress(*CLUSTER_STARTING):
                    check()
                time.sleep(1)
        finally:
            if status is not None:
                if status.poll() is None:
                    status.kill()
                _, err = status.communicate()
        if status is not None and status.returncode:
            raise RuntimeError(f"kubectl rollout status {target}: exit {status.returncode}: {err.strip()[-500:]}")
        seconds = time.monotonic() - t0
        time.sleep(3)  # what the last restarted pod does once Ready (its first announcements) is seen too
        check()
    finally:
        for probe in reversed(probes):  # the traces (started first) last: they see the clients' last attempts
            if probe.poll() is None:
                probe.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                probe.wait(5)
            if probe.poll() is None:
                probe.kill()
                probe.wait()
    seen = []
    attempts: dict[str, list[dict[str, Any]]] = {}
    for name, ip in services.items():
        events = [e for e in _read_jsonl(outputs[name]) if e.get("t0", e.get("t", 0)) >= t0]
        seen.append(reachability(ip, events))
        attempts[ip] = [e for e in events if e.get("ev") == "http"]
        outputs[name].unlink()
    windows = disturbed_windows(samples)
    result = Rollout(target, seconds, seen, changes,
                     {n: [(round(a - t0, 1), round(b - t0, 1)) for a, b in w] for n, w in windows.items()})
    if trace_paths:
        traced = []
        for path in (paths_out, *answers_out.values()):
            traced += _read_jsonl(path)
            path.unlink()
        paths = PathIndex.of(traced)
        node_of = {cluster.lab.mac(n.netns, "eth0").lower(): n.name for n in cluster.nodes}
        ip_node = {n.ip: n.name for n in cluster.nodes}
        result.trace = attribute(attempts, paths, node_of, windows, t0)
        result.routes = [{"t": round(float(r["t"]) - t0, 3), "op": r["op"], "dst": r["dst"],
                          "via": [ip_node.get(v, v) for v in r["via"]]}
                         for r in paths.routes if float(r["t"]) >= t0 - 2]
    return result


# ---- the walkthrough -----------------------------------------------------------------------------------------------
def _show(out: IO[str], prompt: str, text: str) -> None:
    print(f"\n{prompt}", file=out)
    for line in text.rstrip().splitlines():
        print(f"    {line}", file=out)
    out.flush()


def walkthrough(cluster: KubeCluster, out: IO[str], *, failover: bool = True) -> None:
    c = cluster
    _show(out, f"cluster up in {c.timings['up']:.0f} s. $ kubectl get nodes -o wide",
          c.kubectl("get", "nodes", "-o", "wide").stdout)
    _show(out, "$ kubectl apply -f config/manifests/ironlb.yaml", install_ironlb(c))
    _show(out, f"ironlb Ready {c.timings['install']:.0f} s after the apply. "
          "$ kubectl -n metallb-system get pods -o wide",
          c.kubectl("-n", "metallb-system", "get", "pods", "-o", "wide").stdout)
    _show(out, "$ kubectl apply -f my-app.yaml   # 3 pods of a small HTTP server on :8080, labelled app: my-app",
          c.kubectl("apply", "-f", "-", input=BACKEND).stdout)
    _show(out, "$ kubectl apply -f metallb-config.yaml   # the seed's legacy ConfigMap", SEED_CONFIG + "\n" +
          c.kubectl("apply", "-f", "-", input=SEED_CONFIG).stdout)
    t0 = time.monotonic()
    _show(out, "$ kubectl apply -f my-service.yaml", SEED_SERVICE + "\n" +
          c.kubectl("apply", "-f", "-", input=SEED_SERVICE).stdout)
    wait_until(lambda: external_ip(c), 120, "EXTERNAL-IP of my-service")
    _show(out, "$ kubectl get svc my-service", c.kubectl("get", "svc", "my-service").stdout)
    wait_until(lambda: len(ready_pods(c, "default", "app=my-app")) == 3, 180, "my-app pods Ready", interval=1)
    body = wait_until(lambda: c.client_get(f"http://{VIP}/"), 120, f"the client's GET http://{VIP}/")
    c.timings["service_first_answer"] = time.monotonic() - t0
    answers = [body.strip()] + [(c.client_get(f"http://{VIP}/") or "(failed)").strip() for _ in range(5)]
    _show(out, f"client$ for i in 1..6; do curl http://{VIP}/; done   # the pod names, through kube-proxy",
          "\n".join(answers))
    _show(out, f"client$ arping {VIP}", f"answered by {announcer(c)}")
    if failover:
        f = measure_failover(c)
        _show(out, f"{f.dead} dies (link down; kubelet, containerd, kube-proxy and its containers killed):",
              f"{f.new} took {VIP} over; the client saw its ARP {f.arp_s or 0:.2f} s and got an answer "
              f"{f.answer_s or 0:.2f} s after the kill ({f.failed} attempts failed meanwhile)")
    _show(out, "figures", json.dumps({k: round(v, 2) for k, v in c.timings.items()}))


def main(argv: list[str] | None = None, out: IO[str] = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m ironlb.lab.kube_demo", description=__doc__.split("\n")[0])
    parser.add_argument("--no-failover", action="store_true", help="skip killing the announcing node")
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs and configuration after the run")
    args = parser.parse_args(argv)
    bin_dir, images = default_bin_dir(), default_images_dir()
    problem = missing_requirements(bin_dir, images)
    if problem:
        print(f"kube-demo: {problem}", file=sys.stderr)
        return 2
    assert bin_dir is not None
    workdir = Path(tempfile.mkdtemp(prefix="ironlb-k8s."))
    print(f"bringing up etcd, kube-apiserver, controller-manager, scheduler and 3 nodes (logs in {workdir}/logs)",
          file=out, flush=True)
    cluster: KubeCluster | None = None
    try:
        cluster = KubeCluster.start(bin_dir, images, workdir)
        walkthrough(cluster, out, failover=not args.no_failover)
    except KeyboardInterrupt:
        print("interrupted", file=out)
        return 130
    finally:
        if cluster is not None:
            cluster.stop()
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        print("torn down: every process, namespace, mount and cgroup of the lab removed", file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
