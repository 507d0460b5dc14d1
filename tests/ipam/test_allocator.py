"""The allocator against MetalLB's own test tables (TestConfigReload, TestBuggyIPs) and its rules."""

from __future__ import annotations

import ipaddress

import pytest

from ironlb.cluster.objects import ServicePort
from ironlb.ipam.allocator import AllocationError, Allocator, AllocKey

from .helpers import config, pinned, pool, svc

NO_SHARE = AllocKey("", "")
TCP80 = (ServicePort("TCP", 80),)


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_first_free_ip_is_the_lowest() -> None:
    a = Allocator(config(pool("p", "192.168.1.240/29")))
    got = [a.allocate(f"ns/s{i}", svc(f"s{i}"), "ipv4", TCP80, NO_SHARE)[0] for i in range(8)]
    assert [str(x) for x in got] == [f"192.168.1.{n}" for n in range(240, 248)]
    with pytest.raises(AllocationError, match="^no available IPs$"):
        a.allocate("ns/s9", svc("s9"), "ipv4", TCP80, NO_SHARE)
    a.unassign("ns/s3")
    assert str(a.allocate("ns/s9", svc("s9"), "ipv4", TCP80, NO_SHARE)[0]) == "192.168.1.243"


def test_cidrs_are_walked_in_spec_order() -> None:
    a = Allocator(config(pool("p", "10.0.0.8/31", "10.0.0.0/31")))
    got = [str(a.allocate(f"n/s{i}", svc(f"s{i}"), "ipv4", TCP80, NO_SHARE)[0]) for i in range(4)]
    assert got == ["10.0.0.8", "10.0.0.9", "10.0.0.0", "10.0.0.1"]


def test_buggy_ips() -> None:
    """MetalLB's TestBuggyIPs: exactly six allocations succeed, in this order."""
    a = Allocator(
        config(
            pool("a", "1.2.3.0/31"),
            pool("b", "1.2.3.254/31"),
            pool("c", "1.2.4.0/31", avoid_buggy_ips=True),
            pool("d", "1.2.4.254/31", avoid_buggy_ips=True),
        )
    )
    got = {str(a.allocate(f"n/s{i}", svc(f"s{i}"), "ipv4", TCP80, NO_SHARE)[0]) for i in range(6)}
    assert got == {"1.2.3.0", "1.2.3.1", "1.2.3.254", "1.2.3.255", "1.2.4.1", "1.2.4.254"}
    with pytest.raises(AllocationError):
        a.allocate("n/s7", svc("s7"), "ipv4", TCP80, NO_SHARE)


def test_avoid_buggy_ips_refuses_explicit_requests() -> None:
    a = Allocator(config(pool("p", "1.2.4.0/24", avoid_buggy_ips=True)))
    with pytest.raises(AllocationError, match=r'^\["1.2.4.0"\] is not allowed in config$'):
        a.assign("n/s", svc("s"), [ip("1.2.4.0")], TCP80, NO_SHARE)
    a.assign("n/s", svc("s"), [ip("1.2.4.1")], TCP80, NO_SHARE)


def test_buggy_skipping_across_many_slash24s() -> None:
    a = Allocator(config(pool("p", "10.0.0.0/22", avoid_buggy_ips=True)))
    got = [int(a.allocate(f"n/s{i}", svc(f"s{i}"), "ipv4", TCP80, NO_SHARE)[0]) & 0xFF for i in range(1016)]
    assert 0 not in got and 255 not in got
    with pytest.raises(AllocationError):
        a.allocate("n/x", svc("x"), "ipv4", TCP80, NO_SHARE)
    assert a.counters("p").available_ipv4 == 0


CONFIG_RELOAD = [
    ("same config", [pool("test", "1.2.3.0/30", "1000::/126")], "test", "test"),
    ("expand", [pool("test", "1.2.3.0/24", "1000::/120")], "test", "test"),
    ("shrink back", [pool("test", "1.2.3.0/30", "1000::/126")], "test", "test"),
    ("drop s1", [pool("test", "1.2.3.2/31", "1000::0/126")], "", "test"),
    ("drop s2", [pool("test", "1.2.3.0/30", "1000::2/127")], "test", ""),
    ("rename", [pool("test2", "1.2.3.0/30", "1000::/126")], "test2", "test2"),
    (
        "split",
        [pool("test", "1.2.3.0/31", "1000::2/127"), pool("test2", "1.2.3.2/31", "1000::/127")],
        "test",
        "test2",
    ),
    (
        "avoid buggy",
        [pool("test", "1.2.3.0/31", "1000::2/127", avoid_buggy_ips=True), pool("test2", "1.2.3.2/31", "1000::/127")],
        "",
        "test2",
    ),
]


@pytest.mark.parametrize(("desc", "pools", "s1_pool", "s2_pool"), CONFIG_RELOAD, ids=[c[0] for c in CONFIG_RELOAD])
def test_config_reload(desc: str, pools: list, s1_pool: str, s2_pool: str) -> None:  # type: ignore[type-arg]
    """MetalLB's TestConfigReload: pool changes release or re-home existing allocations."""
    a = Allocator(config(pool("test", "1.2.3.0/30", "1000::/126")))
    a.assign("n/s1", svc("s1"), [ip("1.2.3.0")], TCP80, NO_SHARE)
    a.assign("n/s2", svc("s2", cluster_ips=("fd00::1",)), [ip("1000::")], TCP80, NO_SHARE)
    a.set_pools(config(*pools))
    assert a.pool_of("n/s1") == s1_pool
    assert a.pool_of("n/s2") == s2_pool


def test_sharing_rules_and_messages() -> None:
    a = Allocator(config(pool("p", "10.0.0.0/30")))
    x = ip("10.0.0.0")
    a.assign("n/a", svc("a"), [x], TCP80, AllocKey("k", ""))
    # Same key, disjoint ports: shared.
    a.assign("n/b", svc("b"), [x], (ServicePort("UDP", 80),), AllocKey("k", ""))
    assert a.services_on(x) == {"n/a", "n/b"}
    cases = [
        (AllocKey("", ""), (ServicePort("TCP", 443),), "can't change sharing key for \"n/c\", address also in use by n/a,n/b"),
        (AllocKey("k", ""), (ServicePort("TCP", 80),), 'port TCP/80 is already in use on "10.0.0.0"'),
        (AllocKey("other", ""), (ServicePort("TCP", 1),), "can't change sharing key"),
        (AllocKey("k", "app=x"), (ServicePort("TCP", 1),), "can't change sharing key"),
    ]
    for key, ports, message in cases:
        with pytest.raises(AllocationError, match=message.replace("/", "/")):
            a.assign("n/c", svc("c"), [x], ports, key)
    # In-use counts distinct IPs, not services.
    assert a.counters("p").assigned_ipv4 == 1
    # Automatic allocation with the same key lands on the shared IP, without the key on a free one.
    assert str(a.allocate("n/d", svc("d"), "ipv4", (ServicePort("TCP", 8080),), AllocKey("k", ""))[0]) == "10.0.0.0"
    assert str(a.allocate("n/e", svc("e"), "ipv4", TCP80, NO_SHARE)[0]) == "10.0.0.1"


def test_sole_user_may_change_its_sharing_key() -> None:
    a = Allocator(config(pool("p", "10.0.0.0/30")))
    x = ip("10.0.0.0")
    a.assign("n/a", svc("a"), [x], TCP80, AllocKey("k", ""))
    a.assign("n/a", svc("a"), [x], TCP80, AllocKey("other", ""))
    a.assign("n/b", svc("b"), [x], (ServicePort("TCP", 81),), AllocKey("other", ""))
    with pytest.raises(AllocationError, match="can't change sharing key"):
        a.assign("n/b", svc("b"), [x], (ServicePort("TCP", 81),), AllocKey("k", ""))


def test_pinned_pools_by_priority_then_fallback() -> None:
    a = Allocator(
        config(
            pool("zz-fallback", "10.9.0.0/32"),
            pool("low", "10.2.0.0/32", allocation=pinned(20, namespaces=["red"])),
            pool("high", "10.1.0.0/32", allocation=pinned(1, namespaces=["red"])),
            pool("unset", "10.3.0.0/32", allocation=pinned(0, selectors={"app": "web"})),
            pool("manual", "10.4.0.0/32", auto_assign=False),
        )
    )

    def alloc(name: str, **kw: object) -> str:
        return str(a.allocate(f"red/{name}", svc(name, namespace="red", **kw), "ipv4", TCP80, NO_SHARE)[0])  # type: ignore[arg-type]

    web = {"app": "web"}
    assert alloc("a", labels=web) == "10.1.0.0"
    assert alloc("b", labels=web) == "10.2.0.0"
    assert alloc("c", labels=web) == "10.3.0.0"
    assert alloc("d", labels=web) == "10.9.0.0"
    with pytest.raises(AllocationError, match="^no available IPs$"):
        alloc("e", labels=web)
    # A pool with serviceAllocation never serves a service it does not match, even when others are full.
    b = Allocator(config(pool("only-blue", "10.5.0.0/32", allocation=pinned(namespaces=["blue"]))))
    with pytest.raises(AllocationError):
        b.allocate("red/x", svc("x", namespace="red"), "ipv4", TCP80, NO_SHARE)
    with pytest.raises(AllocationError, match="^pool only-blue not compatible for ip assignment$"):
        b.assign("red/x", svc("x", namespace="red"), [ip("10.5.0.0")], TCP80, NO_SHARE)


def test_pinned_pool_order_is_metallbs_sort_pools() -> None:
    """MetalLB's pinnedPoolsForService + sortPools: its comparator says "less" for two unset priorities, so Go's
    insertion sort (up to 12 pools) ends with the unset ones in reverse input order; equal set priorities keep
    the input order, namespace-pinned pools before selector-pinned ones (ByServiceSelector is name-sorted)."""
    web = {"app": "web"}

    def order(*pools: object) -> list[str]:
        a = Allocator(config(*pools))  # type: ignore[arg-type]
        return [p.name for p in a.pinned_pools(svc("x", namespace="red", labels=web))]

    # Two selector-pinned pools, no priority: b before a.
    assert order(pool("a", "10.0.0.0/32", allocation=pinned(selectors=web)),
                 pool("b", "10.0.1.0/32", allocation=pinned(selectors=web))) == ["b", "a"]
    # Equal set priority: the namespace-pinned pool first, whatever the names.
    assert order(pool("a-sel", "10.0.0.0/32", allocation=pinned(5, selectors=web)),
                 pool("z-ns", "10.0.1.0/32", allocation=pinned(5, namespaces=["red"]))) == ["z-ns", "a-sel"]
    # Set priorities ascending, then the unset ones reversed: selector-pinned (reverse name) before
    # namespace-pinned; a pool pinned both ways counts at its selector place.
    assert order(
        pool("n1", "10.0.0.0/32", allocation=pinned(namespaces=["red"])),
        pool("n2", "10.0.1.0/32", allocation=pinned(namespaces=["red"])),
        pool("s1", "10.0.2.0/32", allocation=pinned(selectors=web)),
        pool("s2", "10.0.3.0/32", allocation=pinned(7, selectors=web)),
        pool("s3", "10.0.4.0/32", allocation=pinned(2, selectors=web)),
        pool("both", "10.0.5.0/32", allocation=pinned(namespaces=["red"], selectors=web)),
    ) == ["s3", "s2", "s1", "both", "n2", "n1"]
    # The allocation follows: with no priority, pool b's address is handed out first.
    a = Allocator(config(pool("a", "10.0.0.0/32", allocation=pinned(selectors=web)),
                         pool("b", "10.0.1.0/32", allocation=pinned(selectors=web))))
    assert str(a.allocate("n/x", svc("x", labels=web), "ipv4", TCP80, NO_SHARE)[0]) == "10.0.1.0"


def test_unpinned_pools_in_name_order() -> None:
    a = Allocator(config(pool("b", "10.0.1.0/32"), pool("a", "10.0.0.0/32"), pool("c", "10.0.2.0/32")))
    got = [str(a.allocate(f"n/{i}", svc(str(i)), "ipv4", TCP80, NO_SHARE)[0]) for i in range(3)]
    assert got == ["10.0.0.0", "10.0.1.0", "10.0.2.0"]


def test_allocate_from_pool_ignores_auto_assign() -> None:
    a = Allocator(config(pool("manual", "10.4.0.0/31", auto_assign=False)))
    with pytest.raises(AllocationError):
        a.allocate("n/x", svc("x"), "ipv4", TCP80, NO_SHARE)
    assert str(a.allocate_from_pool("n/x", svc("x"), "ipv4", "manual", TCP80, NO_SHARE)[0]) == "10.4.0.0"
    with pytest.raises(AllocationError, match='^unknown pool "nope"$'):
        a.allocate_from_pool("n/y", svc("y"), "ipv4", "nope", TCP80, NO_SHARE)
    with pytest.raises(AllocationError, match="^no available IPs in pool manual for ipv6 IPFamily$"):
        a.allocate_from_pool("n/y", svc("y"), "ipv6", "manual", TCP80, NO_SHARE)
    assert str(a.allocate_from_pool("n/y", svc("y"), "ipv4", "manual", TCP80, NO_SHARE)[0]) == "10.4.0.1"
    # MetalLB's getFreeIPsFromPool: no free address in any family of the pool.
    with pytest.raises(AllocationError, match="^no available IPs in pool manual$"):
        a.allocate_from_pool("n/z", svc("z"), "ipv4", "manual", TCP80, NO_SHARE)
    with pytest.raises(AllocationError, match="^no available IPs in pool manual$"):
        a.allocate_from_pool("n/z", svc("z"), "ipv6", "manual", TCP80, NO_SHARE)


def test_dual_stack_needs_both_families_in_one_pool() -> None:
    a = Allocator(config(pool("a-v4", "10.0.0.0/32"), pool("b-dual", "10.1.0.0/32", "fc00::/127")))
    s = svc("d", cluster_ips=("10.96.0.1", "fd00::1"), policy="RequireDualStack")
    assert [str(x) for x in a.allocate("n/d", s, "dual", TCP80, NO_SHARE)] == ["10.1.0.0", "fc00::"]
    assert a.counters("b-dual").assigned_ipv4 == 1 and a.counters("b-dual").assigned_ipv6 == 1


def test_prefer_dual_stack_falls_back_to_primary_family() -> None:
    a = Allocator(config(pool("a-v6", "fc00::/127"), pool("b-v4", "10.0.0.0/32")))
    s = svc("d", cluster_ips=("10.96.0.1", "fd00::1"), policy="PreferDualStack")
    assert [str(x) for x in a.allocate("n/d", s, "dual", TCP80, NO_SHARE)] == ["10.0.0.0"]
    s6 = svc("e", cluster_ips=("fd00::1", "10.96.0.1"), policy="PreferDualStack", families=("IPv6", "IPv4"))
    assert [str(x) for x in a.allocate("n/e", s6, "dual", TCP80, NO_SHARE)] == ["fc00::"]


def test_assign_family_checks() -> None:
    a = Allocator(config(pool("p", "10.0.0.0/30", "fc00::/126")))
    with pytest.raises(AllocationError, match='^"10.0.0.0" "10.0.0.1" has the same family$'):
        a.assign("n/x", svc("x"), [ip("10.0.0.0"), ip("10.0.0.1")], TCP80, NO_SHARE)
    with pytest.raises(AllocationError, match="^more than two addresses"):
        a.assign("n/x", svc("x"), [ip("10.0.0.0"), ip("fc00::"), ip("10.0.0.1")], TCP80, NO_SHARE)
    with pytest.raises(AllocationError, match=r'^\["10.0.0.0" "fc01::"\] is not allowed in config$'):
        a.assign("n/x", svc("x"), [ip("10.0.0.0"), ip("fc01::")], TCP80, NO_SHARE)


def test_huge_pools_are_not_enumerated() -> None:
    a = Allocator(config(pool("v6", "2001:db8::/64"), pool("v4", "10.0.0.0/8")))
    s = svc("x", cluster_ips=("fd00::1",))
    for i in range(2000):
        a.allocate(f"n/{i}", s, "ipv6", TCP80, NO_SHARE)
    assert a.counters("v6").assigned_ipv6 == 2000
    assert a.counters("v6").available_ipv6 == 2**64 - 2000
    assert a.counters("v4").available_ipv4 == 2**24
