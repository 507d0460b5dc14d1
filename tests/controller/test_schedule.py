"""MetalLB's controller schedule on a real kube-apiserver: which convergences happen, so which events a user sees
and how often (the same :class:`ironlb.ipam.reprocess.Reconciler` that ``ironlb plan`` runs; its pure cases are
in ``tests/ipam/test_reprocess.py``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.controller import (
    ControllerProcess,
    create_pool,
    create_service,
    ip_pool,
    lb_service,
    svc_path,
    wait_event,
    wait_ingress,
)
from tests.support.controlplane import ControlPlane
from tests.support.waits import wait_until

pytestmark = pytest.mark.kube
Start = Callable[..., ControllerProcess]


def event_count(cp: ControlPlane, ns: str, name: str, reason: str) -> int:
    """How many times the controller reported ``reason`` on Service ``name`` (Events deduplicate into ``count``)."""
    items = cp.get(f"/api/v1/namespaces/{ns}/events", fieldSelector=f"involvedObject.name={name}")["items"]
    return sum(int(e.get("count") or 1) for e in items
               if e["reason"] == reason and (e.get("source") or {}).get("component") == "metallb-controller")


def test_a_failing_service_reports_again_on_each_pass(control_plane: ControlPlane, namespace: str,
                                                     controller: Start) -> None:
    """SetBalancer asks for reprocessAll when a Service's allocation key changes (here: an ETP Local Service gets
    an IP); reprocessAll converges every Service, so the one that cannot get an IP reports it again."""
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("one", "10.91.0.0/32"))
    create_pool(cp, ns, ip_pool("manual", "10.91.1.0/30", autoAssign=False))
    controller()
    create_service(cp, ns, lb_service("first"))
    assert wait_ingress(cp, ns, "first") == ["10.91.0.0"]
    create_service(cp, ns, lb_service("late"))
    failed = f'Failed to allocate IP for "{ns}/late": no available IPs'
    wait_event(cp, ns, "late", "AllocationFailed", failed)
    assert event_count(cp, ns, "late", "AllocationFailed") == 1
    local = lb_service("local", annotations={"metallb.io/address-pool": "manual"}, externalTrafficPolicy="Local")
    create_service(cp, ns, local)
    assert wait_ingress(cp, ns, "local") == ["10.91.1.0"]
    wait_until(lambda: event_count(cp, ns, "late", "AllocationFailed") == 2, 20, "a second AllocationFailed on late")


def test_prefer_dual_stack_with_one_ip_reports_after_its_write(control_plane: ControlPlane, namespace: str,
                                                              controller: Start) -> None:
    """The status write comes back as a watch event and converges the Service again: MetalLB's PreferDualStack
    branch then reports the missing family (without MetalLB's ``<nil>``)."""
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("v4only", "10.92.0.0/30"))
    controller()
    create_service(cp, ns, lb_service("web", ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv4", "IPv6"]))
    assert wait_ingress(cp, ns, "web") == ["10.92.0.0"]
    wait_event(cp, ns, "web", "IPAllocated", 'Assigned IP ["10.92.0.0"]')
    found = wait_event(cp, ns, "web", "AdditionalAssignFailed",
                       "cannot assign additional IP in PreferDualStack: no available IPs in pool v4only")
    assert "<nil>" not in found[2]


def test_clearing_a_stale_ingress_warns_about_deprecated_annotations(control_plane: ControlPlane, namespace: str,
                                                                    controller: Start) -> None:
    """SetBalancer warns ``deprecatedAnnotation`` whenever it writes the Service, also when the write only clears
    an ingress no pool allows; a failure that writes nothing does not warn."""
    cp, ns = control_plane, namespace
    create_pool(cp, ns, ip_pool("one", "10.93.0.0/32"))
    controller()
    create_service(cp, ns, lb_service("first"))
    assert wait_ingress(cp, ns, "first") == ["10.93.0.0"]
    create_service(cp, ns, lb_service("old", annotations={"metallb.universe.tf/allow-shared-ip": "k"}))
    wait_event(cp, ns, "old", "AllocationFailed", "no available IPs")
    assert event_count(cp, ns, "old", "deprecatedAnnotation") == 0
    # Another writer leaves an IP in the status that no pool allows: the controller clears it, and warns.
    cp.patch(svc_path(ns, "old") + "/status", {"status": {"loadBalancer": {"ingress": [{"ip": "10.99.0.1"}]}}})
    wait_event(cp, ns, "old", "ClearAssignment", '"10.99.0.1"')
    wait_event(cp, ns, "old", "deprecatedAnnotation",
               "Service uses deprecated annotation metallb.universe.tf/allow-shared-ip")
    wait_until(lambda: cp.get(svc_path(ns, "old")).get("status", {}).get("loadBalancer", {}).get("ingress") is None, 20, "the stale ingress cleared")
