"""Service-level convergence: annotations, explicit IPs, dual stack, restarts, with MetalLB's events."""

from __future__ import annotations

from dataclasses import replace

from ironlb.ipam.allocator import Allocator
from ironlb.ipam.converge import Convergence, converge, handles_class

from .helpers import DUAL, config, pool, svc


def reasons(c: Convergence) -> list[str]:
    return [e.reason for e in c.events]


def test_seed_example() -> None:
    a = Allocator(config(pool("default", "192.168.1.240/28")))
    c = converge(a, svc("my-service"))
    assert c.ok and c.ingress == ("192.168.1.240",) and c.pool == "default"
    assert [(e.type, e.reason, e.message) for e in c.events] == [
        ("Normal", "IPAllocated", 'Assigned IP ["192.168.1.240"]')
    ]
    again = converge(a, replace(svc("my-service"), ingress=c.ingress))
    assert again.ingress == c.ingress and again.events == ()


def test_no_pools_and_no_cluster_ips_fail_quietly() -> None:
    assert not converge(Allocator(config()), svc("x")).ok
    a = Allocator(config(pool("p", "10.0.0.0/30")))
    c = converge(a, svc("x", cluster_ips=()))
    assert not c.ok and c.ingress == ()


def test_not_a_load_balancer_releases() -> None:
    a = Allocator(config(pool("p", "10.0.0.0/32")))
    assert converge(a, svc("x")).ingress == ("10.0.0.0",)
    c = converge(a, svc("x", type_="ClusterIP", ingress=("10.0.0.0",)))
    assert c.ok and c.ingress == () and c.events == ()
    assert converge(a, svc("y")).ingress == ("10.0.0.0",)


def test_requested_ip_annotation_and_spec() -> None:
    a = Allocator(config(pool("p", "10.0.0.0/29", "fc00::/125")))
    c = converge(a, svc("x", lb_ip="10.0.0.5"))
    assert c.ingress == ("10.0.0.5",)
    c = converge(a, svc("y", cluster_ips=DUAL, policy="RequireDualStack",
                        annotations={"metallb.io/loadBalancerIPs": "fc00::3, 10.0.0.3"}))
    assert c.ingress == ("fc00::3", "10.0.0.3")  # ingress order follows the annotation
    c = converge(a, svc("z", lb_ip="10.0.0.1", annotations={"metallb.io/loadBalancerIPs": "10.0.0.2"}))
    assert reasons(c) == ["AllocationFailed"]
    assert c.events[0].message == (
        'Failed to allocate IP for "default/z": service can not have both metallb.io/loadBalancerIPs and '
        "svc.Spec.LoadBalancerIP"
    )
    c = converge(a, svc("w", lb_ip="10.9.9.9"))
    assert c.events[0].message == 'Failed to allocate IP for "default/w": ["10.9.9.9"] is not allowed in config'
    c = converge(a, svc("v", lb_ip="fc00::1"))
    assert c.events[0].message.endswith(
        'requested loadBalancer IP(s) ["fc00::1"] does not match the ipFamily of the service'
    )
    c = converge(a, svc("u", annotations={"metallb.io/loadBalancerIPs": "bogus"}))
    assert c.events[0].message.endswith('invalid metallb.io/loadBalancerIPs: "bogus"')
    c = converge(a, svc("t", lb_ip="10.0.0.6", annotations={"metallb.io/address-pool": "other"}))
    assert c.events[0].message.endswith(
        'requested loadBalancer IP(s) ["10.0.0.6"] is not compatible with requested address pool other'
    )


def test_changed_request_moves_the_ip() -> None:
    a = Allocator(config(pool("p", "10.0.0.0/29")))
    first = converge(a, svc("x", lb_ip="10.0.0.5"))
    moved = converge(a, svc("x", lb_ip="10.0.0.6", ingress=first.ingress))
    assert moved.ingress == ("10.0.0.6",)
    assert reasons(moved) == ["IPAllocated"]
    bad = converge(a, svc("x", lb_ip="nonsense", ingress=moved.ingress))
    assert reasons(bad) == ["LoadBalancerFailed"]
    assert bad.events[0].message == 'invalid requested loadbalancer IPs: invalid spec.loadBalancerIP "nonsense"'


def test_invalid_request_keeps_the_working_ip() -> None:
    """MetalLB's convergeBalancer returns after LoadBalancerFailed without clearServiceState: the IP stays."""
    a = Allocator(config(pool("p", "10.0.0.0/31")))
    first = converge(a, svc("x"))
    assert first.ingress == ("10.0.0.0",)
    bad = converge(a, svc("x", annotations={"metallb.io/loadBalancerIPs": "10.0.0.1,bogus"}, ingress=first.ingress))
    assert not bad.ok and reasons(bad) == ["LoadBalancerFailed"]
    assert bad.ingress == ("10.0.0.0",) and bad.pool == "p"
    assert [str(ip) for ip in a.ips_of("default/x")] == ["10.0.0.0"]
    other = converge(a, svc("y", lb_ip="10.0.0.0"))
    assert reasons(other) == ["AllocationFailed"]  # still held by x
    # Without a working IP there is nothing to keep.
    fresh = converge(a, svc("z", lb_ip="nonsense"))
    assert not fresh.ok and fresh.ingress == () and fresh.pool is None


def test_pool_annotation() -> None:
    a = Allocator(config(pool("auto", "10.0.0.0/30"), pool("manual", "10.1.0.0/30", auto_assign=False)))
    c = converge(a, svc("x", annotations={"metallb.io/address-pool": "manual"}))
    assert c.ingress == ("10.1.0.0",) and c.pool == "manual"
    c = converge(a, svc("y"))
    assert c.pool == "auto"
    # Changing the annotation re-allocates from the new pool.
    c = converge(a, svc("y", ingress=c.ingress, annotations={"metallb.io/address-pool": "manual"}))
    assert c.ingress == ("10.1.0.1",)
    c = converge(a, svc("z", annotations={"metallb.io/address-pool": "ghost"}))
    assert c.events[0].message == 'Failed to allocate IP for "default/z": unknown pool "ghost"'


def test_deprecated_annotations_work_and_warn() -> None:
    a = Allocator(config(pool("auto", "10.0.0.0/30"), pool("manual", "10.1.0.0/30", auto_assign=False)))
    c = converge(a, svc("x", annotations={"metallb.universe.tf/address-pool": "manual"}))
    assert c.ingress == ("10.1.0.0",)
    assert reasons(c) == ["IPAllocated", "deprecatedAnnotation"]
    assert c.events[1].message == "Service uses deprecated annotation metallb.universe.tf/address-pool"
    # Stable wins over deprecated.
    c = converge(a, svc("y", annotations={"metallb.io/address-pool": "auto", "metallb.universe.tf/address-pool": "manual"}))
    assert c.pool == "auto"
    # Not mutated (the status and the pool annotation the controller wrote): no warning.
    written = {"metallb.universe.tf/address-pool": "manual", "metallb.io/ip-allocated-from-pool": "manual"}
    c2 = converge(a, svc("x", ingress=("10.1.0.0",), annotations=written))
    assert c2.events == ()


def test_require_dual_stack_without_two_cluster_ips() -> None:
    a = Allocator(config(pool("p", "10.0.0.0/30", "fc00::/126")))
    c = converge(a, svc("x", policy="RequireDualStack"))
    assert not c.ok
    assert [(e.type, e.reason) for e in c.events] == [("Warning", "not enough clusterips")]
    assert c.events[0].message == "Service requires dual stack but not enough clusterips [10.96.0.10]"


def test_prefer_dual_stack_tops_up_when_the_pool_becomes_dual() -> None:
    a = Allocator(config(pool("p", "10.0.0.0/30")))
    s = svc("x", cluster_ips=DUAL, policy="PreferDualStack")
    c = converge(a, s)
    assert c.ingress == ("10.0.0.0",)
    a.set_pools(config(pool("p", "10.0.0.0/30", "fc00::/126")))
    c = converge(a, replace(s, ingress=c.ingress))
    assert c.ingress == ("10.0.0.0", "fc00::")
    assert [(e.reason, e.message) for e in c.events] == [("IPAllocated", 'Assigned additional IP "fc00::"')]


def test_prefer_dual_stack_does_not_jump_to_a_new_dual_pool() -> None:
    a = Allocator(config(pool("a", "10.0.0.0/30")))
    s = svc("x", cluster_ips=DUAL, policy="PreferDualStack")
    c = converge(a, s)
    a.set_pools(config(pool("a", "10.0.0.0/30"), pool("b", "10.1.0.0/30", "fc00::/126")))
    c = converge(a, replace(s, ingress=c.ingress))
    assert c.ingress == ("10.0.0.0",) and c.pool == "a"
    assert c.events[0].reason == "AdditionalAssignFailed"
    assert c.events[0].message == "cannot assign additional IP in PreferDualStack: no available IPs in pool a for ipv6 IPFamily"


def test_restart_reclaims_existing_ips_then_allocates() -> None:
    a = Allocator(config(pool("p", "10.0.0.0/30")))
    assert converge(a, svc("held", ingress=("10.0.0.2",))).ingress == ("10.0.0.2",)
    assert converge(a, svc("new")).ingress == ("10.0.0.0",)


def test_ip_no_longer_in_config_is_cleared_and_reallocated() -> None:
    a = Allocator(config(pool("p", "10.0.0.0/30")))
    c = converge(a, svc("x", ingress=("10.9.0.1",)))
    assert c.ingress == ("10.0.0.0",)
    assert reasons(c) == ["ClearAssignment", "IPAllocated"]
    assert c.events[0].message == (
        'current IP for "default/x" not allowed by config, will attempt for new IP assignment: '
        '["10.9.0.1"] is not allowed in config'
    )


def test_port_conflict_on_requested_shared_ip() -> None:
    a = Allocator(config(pool("p", "10.0.0.0/30")))
    share = {"metallb.io/allow-shared-ip": "k"}
    assert converge(a, svc("a", lb_ip="10.0.0.1", annotations=share)).ok
    c = converge(a, svc("b", lb_ip="10.0.0.1", annotations=share))
    assert c.events[0].message == 'Failed to allocate IP for "default/b": port TCP/80 is already in use on "10.0.0.1"'
    c = converge(a, svc("c", lb_ip="10.0.0.1", annotations=share, ports=(("TCP", 443),)))
    assert c.ingress == ("10.0.0.1",)
    # ETP Local shares only with identical selectors.
    local = dict(etp="Local", selector={"app": "x"}, annotations=share)
    c = converge(a, svc("d", lb_ip="10.0.0.2", ports=(("TCP", 1),), **local))  # type: ignore[arg-type]
    assert c.ok
    c = converge(a, svc("e", lb_ip="10.0.0.2", ports=(("TCP", 2),), etp="Local", selector={"app": "y"}, annotations=share))
    assert "can't change sharing key" in c.events[0].message


def test_load_balancer_class_filter() -> None:
    assert handles_class(svc("a"), "")
    assert not handles_class(svc("a", lb_class="foo"), "")
    assert handles_class(svc("a", lb_class="foo"), "foo")
    assert not handles_class(svc("a"), "foo")


def test_full_pool_text() -> None:
    """MetalLB's getFreeIPsFromPool says exactly this for a full pool (since v0.16.0)."""
    a = Allocator(config(pool("p", "10.0.0.0/32")))
    assert converge(a, svc("x")).ingress == ("10.0.0.0",)
    c = converge(a, svc("y", annotations={"metallb.io/address-pool": "p"}))
    assert [(e.type, e.reason, e.message) for e in c.events] == [
        ("Warning", "AllocationFailed", 'Failed to allocate IP for "default/y": no available IPs in pool p')
    ]
