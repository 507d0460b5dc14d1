"""The seed's workflow on a real cluster, verbatim: install with kubectl, the legacy ``config`` ConfigMap, the
``my-service`` LoadBalancer Service, ``EXTERNAL-IP 192.168.1.240`` in ``kubectl get svc``, and the client outside
the cluster reaching a backend pod at 192.168.1.240:80 through kube-proxy. Then Layer 2 failover when the
announcing node dies, seen from the client. Runs in file order on one cluster (conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ironlb.fastproc.realtime import rt_budget
from ironlb.lab.cluster import SEED_CONFIG, SEED_SERVICE, VIP
from ironlb.lab.kube_cluster import KubeCluster, wait_until
from ironlb.lab.kube_demo import (
    BACKEND,
    announcer,
    external_ip,
    http_echo_deployment,
    lb_service,
    measure_failover,
    reachability,
    ready_pods,
)
from tests.cluster.evidence import follow_log
from tests.support.sched import SCHED_RR, fast_process, scheduling

pytestmark = pytest.mark.cluster


def test_install_runs_every_component(ironlb_installed: KubeCluster) -> None:
    """The bundle's controller Deployment and speaker DaemonSet run for real: one speaker per node, each on its
    node's network, the controller on the pod network, with their ServiceAccount tokens (they list and watch)."""
    c = ironlb_installed
    speakers = ready_pods(c, "metallb-system", "component=speaker")
    assert sorted(p["spec"]["nodeName"] for p in speakers) == sorted(n.name for n in c.nodes)
    for pod in speakers:
        assert pod["status"]["podIP"] == pod["status"]["hostIP"]
    (controller,) = ready_pods(c, "metallb-system", "component=controller")
    assert controller["status"]["podIP"].startswith("10.244.")
    # The controller made the memberlist Secret that the speakers mount.
    c.kubectl("-n", "metallb-system", "get", "secret", "memberlist")


def _proc(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_text()


def _root_mount_options(pid: int) -> list[str]:
    """The options of the container's root mount (mountinfo field 6, the mount point being field 5)."""
    for line in _proc(pid, "mountinfo").splitlines():
        fields = line.split()
        if fields[4] == "/":
            return fields[5].split(",")
    raise AssertionError(f"no root mount for pid {pid}")


def _status(pid: int, key: str) -> list[str]:
    line = next(ln for ln in _proc(pid, "status").splitlines() if ln.startswith(key + ":"))
    return line.split()[1:]


def test_image_built_from_the_dockerfile_runs_as_the_manifests_say(ironlb_installed: KubeCluster) -> None:
    """The pods run the image that scripts/build-images.py built from the Dockerfile (Debian 12, the /opt/ironlb
    venv of the Dockerfile's build stage) with the bundle's hardening: the controller as nobody (65534), the
    speaker as root with NET_RAW, NET_BIND_SERVICE and SYS_NICE only, both on a read-only root file system; the
    speaker's fast process got the real-time priority that SYS_NICE is there for, or, where the kernel keeps
    containers from it (real-time group scheduling on cgroup v1 and no budget for the container, as on this lab's
    kernel), said why in its log."""
    c = ironlb_installed
    (controller,) = ready_pods(c, "metallb-system", "component=controller")
    pid = c.container_pid(controller, "controller")
    assert _status(pid, "Uid") == ["65534"] * 4 and _status(pid, "Gid") == ["65534"] * 4
    assert "ro" in _root_mount_options(pid)
    root = Path(f"/proc/{pid}/root")
    assert (root / "etc/debian_version").read_text().startswith("12.")
    assert "home = /usr/bin" in (root / "opt/ironlb/pyvenv.cfg").read_text()
    assert any(root.glob("opt/ironlb/lib/python3.11/site-packages/ironlb/__pycache__/cli.cpython-311.pyc"))
    speaker = ready_pods(c, "metallb-system", "component=speaker")[0]
    spid = c.container_pid(speaker, "speaker")
    assert _status(spid, "Uid")[0] == "0" and "ro" in _root_mount_options(spid)
    cap_net_bind_service, cap_net_raw, cap_sys_nice = 10, 13, 23
    assert int(_status(spid, "CapEff")[0], 16) == (1 << cap_net_bind_service) | (1 << cap_net_raw) | (1 << cap_sys_nice)
    fast = fast_process(spid)
    policy, priority = scheduling(fast)
    if rt_budget(Path(f"/proc/{fast}/cgroup")) == 0:
        assert policy == os.SCHED_OTHER
        log = c.kubectl("-n", "metallb-system", "logs", speaker["metadata"]["name"], "-c", "speaker").stdout
        assert "fast path: normal scheduling (SCHED_RR 10 refused" in log and "cpu.rt_runtime_us is 0" in log, log
    else:
        assert (policy, priority) == (SCHED_RR, 10)


def test_seed_workflow(ironlb_installed: KubeCluster) -> None:
    """The seed's steps 2-4 as its user types them; the client reaches the pods at 192.168.1.240:80."""
    c = ironlb_installed
    c.kubectl("apply", "-f", "-", input=BACKEND)
    c.kubectl("apply", "-f", "-", input=SEED_CONFIG)
    t0 = time.monotonic()
    c.kubectl("apply", "-f", "-", input=SEED_SERVICE)
    assert wait_until(lambda: external_ip(c), 120, "EXTERNAL-IP of my-service") == VIP
    header, row = c.kubectl("get", "svc", "my-service").stdout.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]
    assert row.split()[:2] == ["my-service", "LoadBalancer"]
    assert row.split()[3] == VIP and row.split()[4].startswith("80:")

    wait_until(lambda: len(ready_pods(c, "default", "app=my-app")) == 3, 180, "my-app pods Ready", interval=1)
    pod_names = {p["metadata"]["name"] for p in ready_pods(c, "default", "app=my-app")}
    body = wait_until(lambda: c.client_get(f"http://{VIP}/"), 120, f"the client's GET http://{VIP}/")
    c.timings["service_first_answer"] = time.monotonic() - t0
    assert body.strip() in pod_names
    # Every answer comes from one of the pods, through the VIP's port 80 (kube-proxy balances between them).
    answers = {(c.client_get(f"http://{VIP}/") or "").strip() for _ in range(10)}
    assert answers <= pod_names
    assert announcer(c) in {n.name for n in c.nodes}


CRD_CONFIG = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: crd-pool
  namespace: metallb-system
spec:
  addresses:
  - 192.168.1.230-192.168.1.235
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: crd-l2
  namespace: metallb-system
spec:
  ipAddressPools:
  - crd-pool
"""

CRD_SERVICE = lb_service("crd-service", pool="crd-pool")


def test_crd_equivalent(ironlb_installed: KubeCluster) -> None:
    """The seed's configuration written as IPAddressPool + L2Advertisement (beside the legacy ConfigMap): a Service
    from that pool gets its first address and the client reaches the pods there."""
    c = ironlb_installed
    c.kubectl("apply", "-f", "-", input=CRD_CONFIG)
    c.kubectl("apply", "-f", "-", input=CRD_SERVICE)
    assert wait_until(lambda: external_ip(c, "crd-service"), 120, "EXTERNAL-IP of crd-service") == "192.168.1.230"
    pod_names = {p["metadata"]["name"] for p in ready_pods(c, "default", "app=my-app")}
    body = wait_until(lambda: c.client_get("http://192.168.1.230/"), 120, "the client's GET http://192.168.1.230/")
    assert body.strip() in pod_names
    c.kubectl("delete", "svc", "crd-service")


def test_webhook_served_by_the_controller_pod_rejects_an_overlapping_pool(ironlb_installed: KubeCluster) -> None:
    """The apiserver calls the controller's webhook (its Service, its injected CA): a pool overlapping another,
    which no CRD schema can see, is denied. With ``failurePolicy: Ignore`` it would be admitted if the call failed."""
    c = ironlb_installed
    c.kubectl("apply", "-f", "-", input=CRD_CONFIG)
    # The controller has crd-pool in its configuration once it wrote the pool's status.
    wait_until(lambda: c.get_json("-n", "metallb-system", "ipaddresspool", "crd-pool").get("status", {})
               .get("availableIPv4") is not None, 60, "crd-pool's status from the controller")
    bad = CRD_CONFIG.split("---")[0].replace("name: crd-pool", "name: overlapping").replace(
        "192.168.1.230-192.168.1.235", "192.168.1.232/32")
    r = c.kubectl("apply", "-f", "-", input=bad, check=False)
    assert r.returncode != 0, r.stdout
    assert 'admission webhook "ipaddresspoolvalidationwebhook.metallb.io" denied the request' in r.stderr
    assert "overlapping" in r.stderr or "overlap" in r.stderr
    assert c.kubectl("-n", "metallb-system", "get", "ipaddresspool", "overlapping", check=False).returncode != 0


def test_two_services_share_an_ip(ironlb_installed: KubeCluster) -> None:
    """``metallb.io/allow-shared-ip`` with the same key and different ports: one IP, both Services reachable."""
    c = ironlb_installed
    shared = {"metallb.io/allow-shared-ip": "web", "metallb.io/loadBalancerIPs": "192.168.1.245"}
    c.kubectl("apply", "-f", "-", input=lb_service("shared-a", annotations=shared) + "---\n" + lb_service("shared-b", port=81, annotations=shared))
    for name in ("shared-a", "shared-b"):
        assert wait_until(lambda name=name: external_ip(c, name), 120, f"EXTERNAL-IP of {name}") == "192.168.1.245"
    for port in (80, 81):
        assert wait_until(lambda port=port: c.client_get(f"http://192.168.1.245:{port}/"), 120, f"port {port}")
    c.kubectl("delete", "svc", "shared-a", "shared-b")


def test_l2advertisement_node_selector_picks_the_announcer(ironlb_installed: KubeCluster) -> None:
    """An L2Advertisement whose nodeSelectors select node2 only: node2 answers ARP for that pool's IP."""
    c = ironlb_installed
    c.kubectl("apply", "-f", "-", input="""\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: only-node2, namespace: metallb-system}
spec: {addresses: [192.168.1.220/32]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: only-node2, namespace: metallb-system}
spec:
  ipAddressPools: [only-node2]
  nodeSelectors:
  - matchLabels: {kubernetes.io/hostname: node2}
""")
    c.kubectl("apply", "-f", "-", input=lb_service("pinned-node2", pool="only-node2"))
    assert wait_until(lambda: external_ip(c, "pinned-node2"), 120, "EXTERNAL-IP of pinned-node2") == "192.168.1.220"
    assert wait_until(lambda: announcer(c, "192.168.1.220"), 60, "an ARP answer for 192.168.1.220") == "node2"
    assert wait_until(lambda: c.client_get("http://192.168.1.220/"), 60, "the client's GET at 192.168.1.220")
    c.kubectl("delete", "svc", "pinned-node2")


def test_controller_pod_deleted_no_ip_moves(ironlb_installed: KubeCluster) -> None:
    """The controller's pod is deleted: the Deployment starts another, which keeps every allocation."""
    c = ironlb_installed
    assert external_ip(c) == VIP
    (old,) = ready_pods(c, "metallb-system", "component=controller")
    c.kubectl("-n", "metallb-system", "delete", "pod", old["metadata"]["name"])

    def new_controller() -> bool:
        pods = ready_pods(c, "metallb-system", "component=controller")
        return len(pods) == 1 and pods[0]["metadata"]["name"] != old["metadata"]["name"]

    wait_until(new_controller, 180, "a new controller pod Ready", interval=1)
    assert external_ip(c) == VIP
    assert [i["ip"] for i in c.get_json("svc", "my-service")["status"]["loadBalancer"]["ingress"]] == [VIP]
    assert wait_until(lambda: c.client_get(f"http://{VIP}/"), 60, "the service answering")


def _speaker_logs(c: KubeCluster, pod: str) -> str:
    return c.kubectl("-n", "metallb-system", "logs", pod).stdout


WAKE_LABEL = "ironlb.lab/wakes-listings"


def _churn_nodes(c: KubeCluster, prefix: str, stop: threading.Event, most: int = 100) -> None:
    """Add and delete Nodes one after the other until ``stop``: each add and each delete wakes every speaker's
    listing of the speaker Pods. They get no speaker Pod (no ``kubernetes.io/os`` label for the DaemonSet)."""
    for k in range(most):
        if stop.is_set():
            return
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"{prefix}-{k}", "labels": {WAKE_LABEL: "1"}}}
        c.kubectl("create", "-f", "-", input=json.dumps(node), check=False)
        c.kubectl("delete", "node", f"{prefix}-{k}", "--wait=false", check=False)


def test_speaker_pod_deleted_daemonset_brings_it_back(ironlb_installed: KubeCluster) -> None:
    """The announcing node's speaker pod is deleted: the DaemonSet starts a new one there and the IP never moves.

    A restart in a pod: the kubelet's SIGTERM reaches the speaker (PID 1 of its container); its Node stays up
    (Ready, not cordoned), so it leaves the membership with a signed *hold* LEAVE before it exits. The other
    speakers keep the node as the owner (``MemberHeld``, no ``MemberDown``), the one that would take the IP over
    answers ARP for it with the node's own MAC, and the new pod on the same node announces it again once it has
    heard the others. The client, sniffing ARP all along, sees that node's MAC only: the IP never moved.

    Meanwhile the other speakers list the speaker Pods again and again (Nodes added and deleted wake that listing,
    as its 30 s period or a node joining the cluster may), from the old Pod's deletion until the new one has its
    IP: the node has no listed speaker Pod meanwhile, and they keep it a member all the same (a listing there once
    ended the hold as ``removed`` and the next node answered with its own MAC, 1 run in 12)."""
    c = ironlb_installed
    node = wait_until(lambda: announcer(c), 60, f"an ARP answer for {VIP}")
    node_mac = c.lab.mac(c.node(node).netns, "eth0").lower()
    speakers = ready_pods(c, "metallb-system", "component=speaker")
    (old,) = [p for p in speakers if p["spec"]["nodeName"] == node]
    survivors = [p["metadata"]["name"] for p in speakers if p["spec"]["nodeName"] != node]
    held = f"MemberHeld(name='{node}'"
    gone = (f"MemberDown(name='{node}', reason='left')", f"MemberDown(name='{node}', reason='timeout')")

    def counts(pod: str) -> tuple[int, ...]:
        logs = _speaker_logs(c, pod)
        return (logs.count(held), *(logs.count(line) for line in gone))

    before = {pod: counts(pod) for pod in survivors}
    out = c.workdir / "probe-pod-delete.jsonl"
    cmd = [sys.executable, "-m", "ironlb.lab.probe", "probe", VIP, "--interval", "0.05", "--timeout", "1"]
    followed: subprocess.Popen[bytes] | None = None
    with open(out, "w") as sink:
        probe = c.lab.popen(c.client, cmd, stdin=subprocess.PIPE, stdout=sink, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: '"ready"' in out.read_text(), 60, "the client's probe started")
        followed = follow_log(c, old["metadata"]["name"])  # its log, for a failure's evidence (conftest.py)
        t0 = time.monotonic()

        def replaced() -> bool:  # the new Pod listed with its IP: the end of the window without one
            pods = c.get_json("-n", "metallb-system", "pods", "-l", "component=speaker")["items"]
            return any(p["spec"].get("nodeName") == node and p["metadata"]["name"] != old["metadata"]["name"]
                       and p.get("status", {}).get("podIP") for p in pods)

        stop = threading.Event()
        with ThreadPoolExecutor(2) as pool:  # two in parallel: a listing every few tenths of a second
            churns = [pool.submit(_churn_nodes, c, f"wake-{j}", stop) for j in range(2)]
            try:
                c.kubectl("-n", "metallb-system", "delete", "pod", old["metadata"]["name"])
                wait_until(replaced, 180, f"a new speaker pod on {node} with its IP", interval=0.2)
            finally:
                stop.set()
            for churn in churns:
                churn.result()

        def back() -> bool:
            pods = [p for p in ready_pods(c, "metallb-system", "component=speaker") if p["spec"]["nodeName"] == node]
            return len(pods) == 1 and pods[0]["metadata"]["name"] != old["metadata"]["name"]

        wait_until(back, 180, f"a new speaker pod Ready on {node}", interval=1)
        for pod in survivors:
            assert counts(pod)[0] > before[pod][0], f"{pod} did not hold {node} for its restart"
        wait_until(lambda: announcer(c) == node, 60, f"{node} answering ARP for {VIP} again")
        time.sleep(3)  # the new pod's own announcements are seen too
    finally:
        probe.terminate()
        probe.wait(5)
        if followed is not None:
            followed.terminate()
            followed.wait(5)
        c.kubectl("delete", "node", "-l", WAKE_LABEL, "--wait=false", check=False)
    events = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    seen = reachability(VIP, [e for e in events if e.get("t0", e.get("t", 0)) >= t0])
    assert seen.macs == [node_mac], f"ARP for {VIP} came from {seen.macs}, not only {node}'s {node_mac}: {seen}"
    for pod in survivors:  # a restart ("restarted"), never a departure
        assert counts(pod)[1:] == before[pod][1:], f"{pod} saw {node} leave or time out"
    assert external_ip(c) == VIP
    assert wait_until(lambda: c.client_get(f"http://{VIP}/"), 60, "the service answering")


LOCAL_SERVICE = lb_service("local-service", "192.168.1.246", selector="local-app", policy="Local")


def test_external_traffic_policy_local_follows_the_pod(ironlb_installed: KubeCluster) -> None:
    """``externalTrafficPolicy: Local``: only the node with a ready pod announces, and the announcement moves
    with the pod (here moved from node2 to node1 by its nodeSelector)."""
    c = ironlb_installed
    ip = "192.168.1.246"
    c.kubectl("apply", "-f", "-", input=http_echo_deployment("local-app", node="node2"))
    c.kubectl("apply", "-f", "-", input=LOCAL_SERVICE)
    assert wait_until(lambda: external_ip(c, "local-service"), 120, "EXTERNAL-IP of local-service") == ip
    wait_until(lambda: [p["spec"]["nodeName"] for p in ready_pods(c, "default", "app=local-app")] == ["node2"],
               180, "local-app Ready on node2", interval=1)
    assert wait_until(lambda: announcer(c, ip) == "node2", 60, f"node2 answering ARP for {ip}")
    assert wait_until(lambda: c.client_get(f"http://{ip}/"), 60, f"the client's GET at {ip}")
    c.kubectl("apply", "-f", "-", input=http_echo_deployment("local-app", node="node1"))
    wait_until(lambda: [p["spec"]["nodeName"] for p in ready_pods(c, "default", "app=local-app")] == ["node1"],
               180, "local-app Ready on node1 only", interval=1)
    assert wait_until(lambda: announcer(c, ip) == "node1", 60, f"node1 answering ARP for {ip}")
    assert wait_until(lambda: c.client_get(f"http://{ip}/"), 60, f"the client's GET at {ip} after the move")
    c.kubectl("delete", "svc", "local-service")
    c.kubectl("delete", "deployment", "local-app")


def test_layer2_failover_when_the_announcing_node_dies(ironlb_installed: KubeCluster) -> None:
    """Kill the announcing node (link down; its kubelet, containerd, kube-proxy and containers killed): another
    node's speaker takes the IP over and the client gets answers again. Stays the last test: a node dies."""
    c = ironlb_installed
    wait_until(lambda: c.client_get(f"http://{VIP}/"), 60, "the service answering before the failover")
    result = measure_failover(c)
    assert result.new is not None and result.new != result.dead, f"no other node announced {VIP}: {result}"
    assert result.answer_s is not None, f"the client got no answer through {result.new}: {result}"
    print(f"failover {result}; cluster timings {json.dumps({k: round(v, 2) for k, v in c.timings.items()})}")
