"""The allocation rules of MetalLB (reference section 4) as a user sees them through ``ironlb controller``:
Service status, the pool annotation, Events and IPAddressPool status, on a real kube-apiserver."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from tests.support.controller import (
    ControllerProcess,
    create_pool,
    create_service,
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
from tests.support.waits import wait_until

pytestmark = pytest.mark.kube
Start = Callable[..., ControllerProcess]


def _failed(ns: str, name: str) -> str:
    return f'Failed to allocate IP for "{ns}/{name}": '


def _pool_status(cp: ControlPlane, ns: str, name: str) -> dict[str, int]:
    return dict(cp.get(pool_path(ns, name)).get("status") or {})


def test_lowest_free_ip_and_avoid_buggy_ips(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    """MetalLB's TestBuggyIPs: exactly 6 allocations, lowest first, .0/.255 skipped only where asked."""
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("a", "10.81.3.0/31", "10.81.3.254/31"))
    create_pool(cp, ns, ip_pool("b", "10.81.4.0/31", "10.81.4.254/31", avoidBuggyIPs=True))
    controller()
    got = []
    for i in range(6):
        create_service(cp, ns, lb_service(f"s{i}"))
        got += wait_ingress(cp, ns, f"s{i}")
    assert got == ["10.81.3.0", "10.81.3.1", "10.81.3.254", "10.81.3.255", "10.81.4.1", "10.81.4.254"]
    assert [pool_annotation(cp, ns, f"s{i}") for i in range(6)] == ["a"] * 4 + ["b"] * 2
    create_service(cp, ns, lb_service("s6"))
    wait_event(cp, ns, "s6", "AllocationFailed", _failed(ns, "s6") + "no available IPs")
    assert ingress(cp, ns, "s6") == []
    wait_until(lambda: _pool_status(cp, ns, "b") == {"assignedIPv4": 2, "assignedIPv6": 0, "availableIPv4": 0,
                                                    "availableIPv6": 0}, 20, "pool b status")
    wait_event(cp, ns, "s0", "IPAllocated", 'Assigned IP ["10.81.3.0"]')


def test_auto_assign_false_and_pool_annotation(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("manual", "10.82.0.0/30", autoAssign=False))
    create_pool(cp, ns, ip_pool("auto", "10.82.1.0/30"))
    controller()
    create_service(cp, ns, lb_service("plain"))
    assert wait_ingress(cp, ns, "plain") == ["10.82.1.0"]
    create_service(cp, ns, lb_service("pinned", annotations={"metallb.io/address-pool": "manual"}))
    assert wait_ingress(cp, ns, "pinned") == ["10.82.0.0"]
    assert pool_annotation(cp, ns, "pinned") == "manual"
    create_service(cp, ns, lb_service("explicit", annotations={"metallb.io/loadBalancerIPs": "10.82.0.3"}))
    assert wait_ingress(cp, ns, "explicit") == ["10.82.0.3"]
    create_service(cp, ns, lb_service("unknown", annotations={"metallb.io/address-pool": "nope"}))
    wait_event(cp, ns, "unknown", "AllocationFailed", _failed(ns, "unknown") + 'unknown pool "nope"')
    # the deprecated prefix still works, with a warning
    create_service(cp, ns, lb_service("old", annotations={"metallb.universe.tf/address-pool": "manual"}))
    assert wait_ingress(cp, ns, "old") == ["10.82.0.1"]
    wait_event(cp, ns, "old", "deprecatedAnnotation",
               "Service uses deprecated annotation metallb.universe.tf/address-pool")


def test_pool_priority_namespaces_and_service_selectors(
    control_plane: ControlPlane, namespace: str, controller: Start
) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("general", "10.83.9.0/30"))
    create_pool(cp, ns, ip_pool("for-ns", "10.83.1.0/30", serviceAllocation={"priority": 5, "namespaces": [ns]}))
    create_pool(cp, ns, ip_pool("gold", "10.83.2.0/30", serviceAllocation={
        "priority": 1, "serviceSelectors": [{"matchLabels": {"tier": "gold"}}]}))
    create_pool(cp, ns, ip_pool("elsewhere", "10.83.0.0/30", serviceAllocation={"namespaces": ["other-ns"]}))
    controller()
    create_service(cp, ns, lb_service("plain"))
    assert wait_ingress(cp, ns, "plain") == ["10.83.1.0"]  # pinned to the namespace beats the general pool
    create_service(cp, ns, lb_service("golden", labels={"tier": "gold"}))
    assert wait_ingress(cp, ns, "golden") == ["10.83.2.0"]  # priority 1 before 5
    # a pool with serviceAllocation never serves others, even explicitly
    create_service(cp, ns, lb_service("intruder", annotations={"metallb.io/loadBalancerIPs": "10.83.0.1"}))
    wait_event(cp, ns, "intruder", "AllocationFailed", "pool elsewhere not compatible for ip assignment")


def test_explicit_ips(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("p", "10.84.0.0/29", "fd00:84::/126"))
    controller()
    create_service(cp, ns, lb_service("spec-ip", loadBalancerIP="10.84.0.5"))
    assert wait_ingress(cp, ns, "spec-ip") == ["10.84.0.5"]
    create_service(cp, ns, lb_service("ann-ip", annotations={"metallb.io/loadBalancerIPs": "10.84.0.3"}))
    assert wait_ingress(cp, ns, "ann-ip") == ["10.84.0.3"]
    create_service(cp, ns, lb_service("outside", annotations={"metallb.io/loadBalancerIPs": "10.99.9.9"}))
    wait_event(cp, ns, "outside", "AllocationFailed", _failed(ns, "outside") + '["10.99.9.9"] is not allowed in config')
    create_service(cp, ns, lb_service("both", loadBalancerIP="10.84.0.6",
                                      annotations={"metallb.io/loadBalancerIPs": "10.84.0.6"}))
    wait_event(cp, ns, "both", "AllocationFailed",
               "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP")
    create_service(cp, ns, lb_service("wrong-family", annotations={"metallb.io/loadBalancerIPs": "fd00:84::1"}))
    wait_event(cp, ns, "wrong-family", "AllocationFailed",
               'requested loadBalancer IP(s) ["fd00:84::1"] does not match the ipFamily of the service')
    create_service(cp, ns, lb_service("taken", annotations={"metallb.io/loadBalancerIPs": "10.84.0.3"}))
    wait_event(cp, ns, "taken", "AllocationFailed", "address also in use by")
    for name in ("outside", "both", "wrong-family", "taken"):
        assert ingress(cp, ns, name) == []


def test_sharing(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("p", "10.85.0.0/30"))
    controller()
    share = {"metallb.io/allow-shared-ip": "k", "metallb.io/loadBalancerIPs": "10.85.0.1"}
    create_service(cp, ns, lb_service("web", annotations=share, ports=[80]))
    assert wait_ingress(cp, ns, "web") == ["10.85.0.1"]
    create_service(cp, ns, lb_service("tls", annotations=share, ports=[443]))
    assert wait_ingress(cp, ns, "tls") == ["10.85.0.1"]
    create_service(cp, ns, lb_service("dns-udp", annotations=share, ports=[80], protocol="UDP"))
    assert wait_ingress(cp, ns, "dns-udp") == ["10.85.0.1"]  # UDP/80 and TCP/80 coexist
    create_service(cp, ns, lb_service("clash", annotations=share, ports=[80]))
    wait_event(cp, ns, "clash", "AllocationFailed", 'port TCP/80 is already in use on "10.85.0.1"')
    other = {"metallb.io/allow-shared-ip": "other", "metallb.io/loadBalancerIPs": "10.85.0.1"}
    create_service(cp, ns, lb_service("otherkey", annotations=other, ports=[8080]))
    wait_event(cp, ns, "otherkey", "AllocationFailed", "address also in use by")
    # three services on one IP count once
    wait_until(lambda: _pool_status(cp, ns, "p").get("assignedIPv4") == 1, 20, "one IP in use")


def test_dual_stack(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("dual", "10.86.0.0/30", "fd00:86::/126"))
    controller()
    create_service(cp, ns, lb_service("d1", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"]))
    assert wait_ingress(cp, ns, "d1") == ["10.86.0.0", "fd00:86::"]
    create_service(cp, ns, lb_service("d2", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6", "IPv4"]))
    assert wait_ingress(cp, ns, "d2") == ["10.86.0.1", "fd00:86::1"]  # always [v4, v6]
    create_service(cp, ns, lb_service("v6", ipFamilies=["IPv6"]))
    assert wait_ingress(cp, ns, "v6") == ["fd00:86::2"]
    wait_event(cp, ns, "d1", "IPAllocated", 'Assigned IP ["10.86.0.0" "fd00:86::"]')
    wait_until(lambda: _pool_status(cp, ns, "dual") == {"assignedIPv4": 2, "assignedIPv6": 3, "availableIPv4": 2,
                                                       "availableIPv6": 1}, 20, "dual pool status")


def test_load_balancer_class(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    cp, ns = control_plane, namespace
    other_ns = f"t-{uuid.uuid4().hex[:10]}"
    cp.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other_ns}})
    create_pool(cp, ns, ip_pool("p", "10.87.0.0/30"))
    create_pool(cp, other_ns, ip_pool("q", "10.87.1.0/30"))
    controller()
    create_service(cp, ns, lb_service("foo", loadBalancerClass="example.com/foo"))
    create_service(cp, ns, lb_service("plain"))
    assert wait_ingress(cp, ns, "plain") == ["10.87.0.0"]
    time.sleep(0.5)
    assert ingress(cp, ns, "foo") == []  # no --lb-class: services with a class are not ours
    controller("--lb-class", "example.com/foo", ns=other_ns)
    assert wait_ingress(cp, ns, "foo") == ["10.87.1.0"]
    assert ingress(cp, ns, "plain") == ["10.87.0.0"]


def test_pool_status_edits_are_reverted(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("p", "10.88.0.0/30"))
    controller()
    create_service(cp, ns, lb_service("a"))
    wait_ingress(cp, ns, "a")
    want = {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 3, "availableIPv6": 0}
    wait_until(lambda: _pool_status(cp, ns, "p") == want, 20, "pool status")
    cp.patch(pool_path(ns, "p") + "/status", {"status": {"availableIPv4": 1000}})
    wait_until(lambda: _pool_status(cp, ns, "p") == want, 20, "pool status reverted")


def test_invalid_request_keeps_the_working_ip(control_plane: ControlPlane, namespace: str, controller: Start) -> None:
    """MetalLB's convergeBalancer returns after LoadBalancerFailed without clearing: the Service keeps its IP (and
    nobody else gets it) until the request is fixed."""
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("p", "10.83.0.0/31"))
    controller()
    create_service(cp, ns, lb_service("a"))
    assert wait_ingress(cp, ns, "a") == ["10.83.0.0"]
    cp.patch(svc_path(ns, "a"), {"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "10.83.0.1,bogus"}}})
    wait_event(cp, ns, "a", "LoadBalancerFailed",
               'invalid requested loadbalancer IPs: invalid metallb.io/loadBalancerIPs: "10.83.0.1,bogus"')
    assert ingress(cp, ns, "a") == ["10.83.0.0"] and pool_annotation(cp, ns, "a") == "p"
    create_service(cp, ns, lb_service("b"))
    assert wait_ingress(cp, ns, "b") == ["10.83.0.1"]  # 10.83.0.0 is still a's
    assert ingress(cp, ns, "a") == ["10.83.0.0"]
