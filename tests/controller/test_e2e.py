"""``ironlb controller`` against a real kube-apiserver: what a user sees in Service status, Events, pool status,
the ConfigurationState and /metrics. Each test has its own namespace, used as ironlb's namespace too."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.controller import (
    ControllerProcess,
    create_pool,
    create_service,
    events,
    ingress,
    ip_pool,
    lb_service,
    pool_annotation,
    pool_path,
    svc_path,
    wait_event,
    wait_ingress,
)
from tests.support.controlplane import ControlPlane
from tests.support.waits import KUBE_NOT_YET, only_404, wait_until

pytestmark = pytest.mark.kube

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
Start = Callable[..., ControllerProcess]


def _load_example(name: str, ns: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]
    for d in docs:
        d["metadata"]["namespace"] = ns
    return docs


def _create_any(cp: ControlPlane, ns: str, obj: dict) -> None:
    kind = obj["kind"]
    if obj["apiVersion"].startswith("metallb.io/"):
        group_version = obj["apiVersion"]
        plural = {"IPAddressPool": "ipaddresspools", "L2Advertisement": "l2advertisements",
                  "BGPAdvertisement": "bgpadvertisements", "BGPPeer": "bgppeers", "Community": "communities",
                  "BFDProfile": "bfdprofiles"}[kind]
        cp.create(f"/apis/{group_version}/namespaces/{ns}/{plural}", obj)
    elif kind == "ConfigMap":
        cp.create(f"/api/v1/namespaces/{ns}/configmaps", obj)
    elif kind == "Service":
        cp.create(svc_path(ns), obj)
    else:
        raise AssertionError(kind)


# ---------------------------------------------------------------------------------------------------- seed example
@pytest.mark.parametrize("config", ["metallb-config.yaml", "crds.yaml"])
def test_seed_example(control_plane: ControlPlane, namespace: str, controller: Start, config: str) -> None:
    cp, ns = control_plane, namespace
    for obj in _load_example(config, ns):
        _create_any(cp, ns, obj)
    ctl = controller()
    for obj in _load_example("my-service.yaml", ns):
        _create_any(cp, ns, obj)
    assert wait_ingress(cp, ns, "my-service") == ["192.168.1.240"]
    assert pool_annotation(cp, ns, "my-service") == "default"
    wait_event(cp, ns, "my-service", "IPAllocated", 'Assigned IP ["192.168.1.240"]')
    assert ("Normal", "IPAllocated", 'Assigned IP ["192.168.1.240"]') in events(cp, ns, "my-service")
    state = cp.get(f"/apis/metallb.io/v1beta1/namespaces/{ns}/configurationstates/controller")
    assert state["status"]["result"] == "Valid"
    assert state["metadata"]["labels"]["metallb.io/component-type"] == "controller"
    metrics = wait_until(lambda: (m := ctl.metrics()).get('metallb_allocator_addresses_in_use_total{pool="default"}')
                         and m, 20, "the allocator metrics")
    assert metrics['metallb_allocator_addresses_total{pool="default"}'] == 11
    assert metrics['metallb_allocator_ipv4_addresses_total{pool="default"}'] == 11
    assert metrics['metallb_allocator_ipv6_addresses_in_use_total{pool="default"}'] == 0
    assert metrics["metallb_k8s_client_config_loaded_bool"] == 1
    assert metrics["metallb_k8s_client_config_stale_bool"] == 0
    assert metrics["metallb_k8s_client_updates_total"] > 0
    assert "metallb_k8s_client_update_errors_total" in metrics
    if config == "crds.yaml":
        status = wait_until(lambda: cp.get(pool_path(ns, "default")).get("status", {}).get("assignedIPv4") == 1
                            and cp.get(pool_path(ns, "default"))["status"], 20, "the pool status")
        assert status == {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 10, "availableIPv6": 0}


# ---------------------------------------------------------------------------------------------------- handover
@pytest.mark.parametrize("how", ["delete", "cluster-ip"])
def test_single_ip_pool_handed_to_waiting_service(
    control_plane: ControlPlane, namespace: str, controller: Start, how: str
) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("one", "10.20.0.1/32"))
    controller()
    create_service(cp, ns, lb_service("first"))
    assert wait_ingress(cp, ns, "first") == ["10.20.0.1"]
    create_service(cp, ns, lb_service("second"))
    wait_event(cp, ns, "second", "AllocationFailed", 'Failed to allocate IP for "' + ns + '/second": no available IPs')
    assert ingress(cp, ns, "second") == []
    if how == "delete":
        cp.delete(svc_path(ns, "first"))
    else:
        cp.patch(svc_path(ns, "first"), {"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": None}]}})
    assert wait_ingress(cp, ns, "second") == ["10.20.0.1"]
    if how == "cluster-ip":
        assert ingress(cp, ns, "first") == []
        assert pool_annotation(cp, ns, "first") is None


# ---------------------------------------------------------------------------------------------------- restarts
def test_ips_kept_across_ten_restarts_with_exhausted_pool(
    control_plane: ControlPlane, namespace: str, controller: Start
) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("small", "10.30.0.0/30"))  # 4 addresses
    ctl = controller()
    names = [f"s{i}" for i in range(6)]
    for name in names:
        create_service(cp, ns, lb_service(name))
        time.sleep(0.05)  # distinct creation order
    wait_until(lambda: sum(bool(ingress(cp, ns, n)) for n in names) == 4, 20, "4 services with IPs")
    before = {n: ingress(cp, ns, n) for n in names}
    waiting = [n for n, ips in before.items() if not ips]
    assert len(waiting) == 2
    for _ in range(10):
        ctl.stop()
        ctl = controller()
        # a fresh controller re-claims first: nothing moves, the waiting ones still wait
        time.sleep(0.3)
        assert {n: ingress(cp, ns, n) for n in names} == before
    for n in waiting:
        assert ("Warning", "AllocationFailed", f'Failed to allocate IP for "{ns}/{n}": no available IPs') in events(
            cp, ns, n)


# ---------------------------------------------------------------------------------------------------- pool changes
def test_pool_deletion_releases_ips(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("pool1", "10.40.1.0/30"))
    controller()
    create_service(cp, ns, lb_service("a"))
    assert wait_ingress(cp, ns, "a") == ["10.40.1.0"]
    create_pool(cp, ns, ip_pool("pool2", "10.40.2.0/30"))
    cp.delete(pool_path(ns, "pool1"))
    assert wait_ingress(cp, ns, "a", ["10.40.2.0"]) == ["10.40.2.0"]
    wait_until(lambda: pool_annotation(cp, ns, "a") == "pool2", 20, "annotation pool2")
    wait_event(cp, ns, "a", "IPAllocated", 'Assigned IP ["10.40.2.0"]')
    cp.delete(pool_path(ns, "pool2"))  # no pool at all: the status is cleared
    wait_until(lambda: ingress(cp, ns, "a") == [] and pool_annotation(cp, ns, "a") is None, 20, "cleared status")


def test_invalid_config_is_kept_out(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("good", "10.50.0.0/30"))
    ctl = controller()
    create_service(cp, ns, lb_service("a"))
    assert wait_ingress(cp, ns, "a") == ["10.50.0.0"]
    # overlaps "good": the whole new config is refused, the old one stays in force
    create_pool(cp, ns, ip_pool("bad", "10.50.0.2/31"))
    state_path = f"/apis/metallb.io/v1beta1/namespaces/{ns}/configurationstates/controller"
    # The ConfigurationState is created before its status is written: 404 and a missing "status" mean not yet.
    state = wait_until(lambda: (s := cp.get(state_path))["status"].get("result") == "Invalid" and s, 20,
                       "ConfigurationState Invalid", retry=KUBE_NOT_YET, retry_if=only_404)
    assert "overlaps with already defined CIDR" in state["status"]["errorSummary"]
    assert state["status"]["errorSummary"].startswith("configuration error: ")
    (cond,) = state["status"]["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("poolReconcilerValid", "False", "ConfigurationError")
    wait_until(lambda: ctl.metrics()["metallb_k8s_client_config_stale_bool"] == 1, 20, "stale metric", retry=(KeyError,))
    create_service(cp, ns, lb_service("b"))
    assert wait_ingress(cp, ns, "b") == ["10.50.0.1"]  # allocated from the old config
    assert ingress(cp, ns, "a") == ["10.50.0.0"]
    # a deleted ConfigurationState comes back
    cp.delete(state_path)
    wait_until(lambda: cp.request("GET", state_path, raw=True).status == 200, 20, "ConfigurationState recreated")
    cp.delete(pool_path(ns, "bad"))
    wait_until(lambda: cp.get(state_path)["status"].get("result") == "Valid", 20, "Valid again", retry=KUBE_NOT_YET,
               retry_if=only_404)
    assert "errorSummary" not in cp.get(state_path)["status"]  # omitempty: the old summary is removed
    wait_until(lambda: ctl.metrics()["metallb_k8s_client_config_stale_bool"] == 0, 20, "stale metric cleared",
               retry=(KeyError,))


# ---------------------------------------------------------------------------------------------------- API faults
def test_relist_after_410_reports_deletion(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    """A deletion that happens while the controller cannot watch, followed by etcd compaction, is found by the
    relist that the 410 forces: the freed IP goes to the waiting Service."""
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("one", "10.60.0.1/32"))
    ctl = controller()
    create_service(cp, ns, lb_service("first"))
    assert wait_ingress(cp, ns, "first") == ["10.60.0.1"]
    create_service(cp, ns, lb_service("second"))
    wait_event(cp, ns, "second", "AllocationFailed", "no available IPs")
    ctl.signal(signal.SIGSTOP)  # frozen: it keeps its old resourceVersions
    try:
        cp.restart_apiserver()  # cuts its watches, so the deletion below cannot reach it through them
        cp.delete(svc_path(ns, "first"))
        for i in range(5):  # move the revision on, then forget the history
            cp.create("/api/v1/namespaces/" + ns + "/configmaps",
                      {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"bump{i}"}})
        cp.expire_history()
    finally:
        ctl.signal(signal.SIGCONT)
    assert wait_ingress(cp, ns, "second", timeout=60) == ["10.60.0.1"]
    assert "expired, relisting" in ctl.log()
    ctl.wait_ready()


def test_apiserver_restart_under_running_controller(
    control_plane: ControlPlane, namespace: str, controller: Start
) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("p", "10.70.0.0/29"))
    ctl = controller()
    create_service(cp, ns, lb_service("a"))
    assert wait_ingress(cp, ns, "a") == ["10.70.0.0"]
    cp.restart_apiserver(downtime=2.0)
    create_service(cp, ns, lb_service("b"))
    assert wait_ingress(cp, ns, "b", timeout=60) == ["10.70.0.1"]
    cp.delete(svc_path(ns, "a"))
    create_service(cp, ns, lb_service("c"))
    assert wait_ingress(cp, ns, "c", timeout=30) == ["10.70.0.0"]
    assert ctl.proc is not None and ctl.proc.poll() is None


# ---------------------------------------------------------------------------------------------------- HA
def test_leader_election_two_replicas(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("p", "10.90.0.0/29"))
    fast = ["--leader-elect", "--leader-elect-lease-duration", "3", "--leader-elect-renew-deadline", "2",
            "--leader-elect-retry-period", "0.5"]
    replicas = {name: controller(*fast, "--pod-name", name) for name in ("replica-a", "replica-b")}
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/ironlb-controller"
    # Both replicas report ready as standbys before either has created the Lease: a 404 means not yet.
    holder = wait_until(lambda: cp.get(lease_path)["spec"].get("holderIdentity"), 20, "a lease holder",
                        retry=KUBE_NOT_YET, retry_if=only_404)
    create_service(cp, ns, lb_service("a"))
    assert wait_ingress(cp, ns, "a") == ["10.90.0.0"]
    standby = next(n for n in replicas if n != holder)
    assert "is the leader" not in replicas[standby].log()
    replicas[holder].kill()  # no release: the standby waits for the lease to expire
    wait_until(lambda: cp.get(lease_path)["spec"].get("holderIdentity") == standby, 15, "takeover",
               retry=KUBE_NOT_YET, retry_if=only_404)
    create_service(cp, ns, lb_service("b"))
    assert wait_ingress(cp, ns, "b") == ["10.90.0.1"]  # the new leader re-claimed a's IP first
    assert ingress(cp, ns, "a") == ["10.90.0.0"]
    assert replicas[standby].stop() == 0  # a clean stop hands the lease back
    assert cp.get(lease_path)["spec"].get("holderIdentity", "") == ""


def test_metallb_environment_names_the_owners(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    """The install bundle sets only METALLB_POD_NAME / METALLB_DEPLOYMENT (MetalLB's controller/main.go flag
    defaults): the pod owns the ConfigurationState and is the leader identity; the Deployment owns the memberlist
    Secret (MetalLB's CreateMlSecret). A valid state has no errorSummary (omitempty)."""
    cp, ns = control_plane, namespace
    deploy = cp.create(f"/apis/apps/v1/namespaces/{ns}/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "controller"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {
            "metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "ironlb"}]}}},
    })
    pod = cp.create(f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "controller-abc"},
        "spec": {"containers": [{"name": "c", "image": "ironlb"}]},
    })
    create_pool(cp, ns, ip_pool("p", "10.95.0.0/30"))
    controller("--leader-elect", "--ml-secret-name", "memberlist",
               env={"METALLB_POD_NAME": "controller-abc", "METALLB_DEPLOYMENT": "controller"})

    def body(path: str) -> Any:
        resp = cp.request("GET", path, raw=True)  # 404 until the controller has written it
        return resp.body if resp.status == 200 else {}

    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/ironlb-controller"
    holder = wait_until(lambda: body(lease_path).get("spec", {}).get("holderIdentity"), 20, "lease")
    assert holder == "controller-abc"
    state_path = f"/apis/metallb.io/v1beta1/namespaces/{ns}/configurationstates/controller"
    state = wait_until(lambda: (s := body(state_path)).get("status", {}).get("result") == "Valid" and s, 20, "ConfigurationState")
    assert "errorSummary" not in state["status"]
    assert [(o["kind"], o["name"], o["uid"]) for o in state["metadata"]["ownerReferences"]] == [
        ("Pod", "controller-abc", pod["metadata"]["uid"])
    ]
    secret = wait_until(lambda: cp.get(f"/api/v1/namespaces/{ns}/secrets", fieldSelector="metadata.name=memberlist")
                      ["items"], 20, "memberlist Secret")[0]
    assert [(o["apiVersion"], o["kind"], o["name"], o["uid"]) for o in secret["metadata"]["ownerReferences"]] == [
        ("apps/v1", "Deployment", "controller", deploy["metadata"]["uid"])
    ]


def test_a_later_pod_adds_itself_to_the_configuration_state_owners(
    control_plane: ControlPlane, namespace: str, controller: Start
) -> None:
    """MetalLB's ConfigurationStateReconciler runs controllerutil.SetOwnerReference on every pass: a later controller
    Pod (a restart, a rollout) is appended beside the earlier ones (Kubernetes' garbage collector, absent here,
    drops references to deleted Pods); a Pod recreated under the same name replaces its reference (new UID)."""
    cp, ns = control_plane, namespace

    def pod(name: str) -> Any:
        return cp.create(f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "ironlb"}]},
        })

    state_path = f"/apis/metallb.io/v1beta1/namespaces/{ns}/configurationstates/controller"

    def owners_become(want: list[tuple[str, str]]) -> None:
        def owners() -> list[tuple[str, str]] | None:
            resp = cp.request("GET", state_path, raw=True)  # 404 until the controller has written it
            if resp.status != 200:
                return None
            got = [(o["name"], o["uid"]) for o in resp.body["metadata"].get("ownerReferences", [])]
            return got if got == want else None
        wait_until(owners, 20, f"ConfigurationState owners {want}")

    create_pool(cp, ns, ip_pool("p", "10.96.0.0/30"))
    first, second = pod("controller-1"), pod("controller-2")
    ctl = controller(env={"METALLB_POD_NAME": "controller-1"})
    owners_become([("controller-1", first["metadata"]["uid"])])
    ctl.stop()
    ctl = controller(env={"METALLB_POD_NAME": "controller-2"})
    owners_become([("controller-1", first["metadata"]["uid"]), ("controller-2", second["metadata"]["uid"])])
    ctl.stop()
    cp.request("DELETE", f"/api/v1/namespaces/{ns}/pods/controller-1", query={"gracePeriodSeconds": 0}, raw=True)
    wait_until(lambda: cp.request("GET", f"/api/v1/namespaces/{ns}/pods/controller-1", raw=True).status == 404, 20,
               "pod deleted")
    again = pod("controller-1")
    controller(env={"METALLB_POD_NAME": "controller-1"})
    owners_become([("controller-1", again["metadata"]["uid"]), ("controller-2", second["metadata"]["uid"])])
