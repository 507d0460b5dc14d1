"""ironlb installed with ``helm install`` of charts/ironlb on the real cluster lab, on a cluster of its own (this
module's; the other cluster tests install the bundle on theirs): the components run, the seed's Service gets its IP
and answers, the metrics are HTTPS and answer only a token allowed to get /metrics, and ``helm upgrade`` to new
speaker tolerations rolls the DaemonSet without moving the IP; with a BGP peer configured the speakers accept
connections on port 179 (their NET_BIND_SERVICE capability). The speakers run in the lab's RuntimeClass that
grants containers a real-time budget (``speaker.runtimeClassName``; needed on this lab's kernel, see
``KubeCluster._rt_base_spec``), so their fast processes run at SCHED_RR through SYS_NICE, before and after the
rollout. The unreachable time the client saw during the rollout is printed (figures: bench/RESULTS.md), not
asserted: it is a timing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict

import pytest

from ironlb.lab.cluster import VIP
from ironlb.lab.kube_cluster import RT_RUNTIME_CLASS, KubeCluster, wait_until
from ironlb.lab.kube_demo import external_ip, ready_pods
from ironlb.lab.kube_helm import NAMESPACE, helm, helm_install, helm_upgrade_rollout, seed_service
from tests.support.sched import SCHED_RR, fast_process, scheduling

from .conftest import start_cluster

pytestmark = pytest.mark.cluster


own_cluster = True  # conftest runs this module before the modules sharing the session's cluster


@pytest.fixture(scope="module")
def helm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    yield from start_cluster(tmp_path_factory)


def metrics_status(c: KubeCluster, ip: str, token: str | None) -> tuple[int, str]:
    """The client's HTTPS GET of https://IP:9120/metrics (self-signed: not verified); status and body."""
    cmd = ["curl", "-sk", "--max-time", "5", "-w", "\n%{http_code}", f"https://{ip}:9120/metrics"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    r = c.client_run(cmd, timeout=15)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def assert_fast_processes_real_time(c: KubeCluster) -> None:
    """Every speaker's fast process runs SCHED_RR at the chart's default priority (read-only, from /proc)."""
    for pod in ready_pods(c, NAMESPACE, "component=speaker"):
        fast = fast_process(c.container_pid(pod, "speaker"))
        assert scheduling(fast) == (SCHED_RR, 10), (pod["spec"]["nodeName"], scheduling(fast))


def test_helm_install_upgrade_and_secure_metrics(helm_cluster: KubeCluster) -> None:
    c = helm_cluster
    helm_install(c, f"speaker.runtimeClassName={RT_RUNTIME_CLASS}")
    assert "STATUS: deployed" in helm(c, "status", "metallb", "--namespace", NAMESPACE)
    speakers = ready_pods(c, NAMESPACE, "component=speaker")
    assert sorted(p["spec"]["nodeName"] for p in speakers) == sorted(n.name for n in c.nodes)
    assert_fast_processes_real_time(c)
    seed_service(c)

    # ---- /metrics: HTTPS only; no token 401, a token without get /metrics 403, one bound to metrics-reader 200
    for account in ("scraper", "nobody"):
        c.kubectl("-n", NAMESPACE, "create", "serviceaccount", account)
    c.kubectl("create", "clusterrolebinding", "scraper-metrics", f"--clusterrole={NAMESPACE}:metrics-reader",
              f"--serviceaccount={NAMESPACE}:scraper")
    scraper, nobody = (c.kubectl("-n", NAMESPACE, "create", "token", a).stdout.strip() for a in ("scraper", "nobody"))
    node_ip = c.nodes[0].ip
    assert metrics_status(c, node_ip, None)[0] == 401
    assert metrics_status(c, node_ip, nobody)[0] == 403
    status, body = metrics_status(c, node_ip, scraper)
    assert status == 200 and "metallb_k8s_client_config_loaded_bool 1.0" in body, body[-2000:]
    # Membership converges after the pods are Ready (their fast processes heartbeat once the speaker pods are
    # listed): a starting thing, waited for.
    converged = ("ironlb_membership_alive_members 3.0", "ironlb_membership_quorum_bool 1.0")
    wait_until(lambda: all(m in metrics_status(c, node_ip, scraper)[1] for m in converged), 60,
               "the speakers' membership converged (3 alive, quorum)")
    plain = c.client_run(["curl", "-s", "--max-time", "5", f"http://{node_ip}:9120/metrics"], timeout=15)
    assert "metallb_" not in plain.stdout  # no plain-HTTP metrics beside the HTTPS ones

    # ---- helm upgrade: new speaker tolerations roll the DaemonSet; the IP stays where it is
    old = {p["metadata"]["name"] for p in ready_pods(c, NAMESPACE, "component=speaker")}
    rollout = helm_upgrade_rollout(c, "speaker.tolerations[0].key=example.com/edge",
                                   "speaker.tolerations[0].operator=Exists")
    print(f"speaker rollout (helm upgrade): {json.dumps(asdict(rollout))}")
    ds = c.get_json("daemonset", "speaker", "-n", NAMESPACE)
    assert {"key": "example.com/edge", "operator": "Exists"} in ds["spec"]["template"]["spec"]["tolerations"]
    new = {p["metadata"]["name"] for p in ready_pods(c, NAMESPACE, "component=speaker")}
    assert len(new) == len(c.nodes) and not new & old  # every speaker was replaced
    assert_fast_processes_real_time(c)
    assert rollout.ip_changes == [] and external_ip(c) == VIP
    [seen] = rollout.services
    assert seen.attempts > 0 and seen.recovered
    assert c.client_get(f"http://{VIP}/")

    # ---- with a BGP peer configured, each speaker accepts connections on port 179 (NET_BIND_SERVICE)
    c.kubectl("apply", "-f", "-", input=BGP_PEER)
    for node in c.nodes:
        wait_until(lambda ip=node.ip: c.client_run(["bash", "-c", f"exec 3<>/dev/tcp/{ip}/179"], timeout=10)
                   .returncode == 0, 60, f"a TCP connection to {node.name}:179")
    c.kubectl("delete", "-f", "-", input=BGP_PEER)


BGP_PEER = """\
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: listen-check, namespace: metallb-system}
spec: {myASN: 64513, peerASN: 64512, peerAddress: 192.168.1.1}
"""
