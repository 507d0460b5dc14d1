"""Property tests: no IP is ever held by two services unless sharing allows it; counters stay exact."""

from __future__ import annotations

import ipaddress
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from ironlb.cluster.objects import ServicePort
from ironlb.ipam.allocator import AllocationError, Allocator, AllocKey, addr_key, ip_text, parse_ip

from .helpers import config, pool, svc

POOLS = config(
    pool("a", "10.0.0.0/30", "fc00::/126"),
    pool("b", "10.0.1.254/31", avoid_buggy_ips=True),
    pool("c", "10.0.2.0/29", auto_assign=False),
)

op = st.one_of(
    st.tuples(
        st.just("alloc"),
        st.integers(0, 14),
        st.sampled_from(["", "k1", "k2"]),
        st.sampled_from(["", "app=x"]),
        st.lists(st.integers(1, 4), min_size=1, max_size=2, unique=True),
        st.sampled_from(["ipv4", "ipv6", "dual"]),
        st.sampled_from([None, "a", "c"]),
    ),
    st.tuples(st.just("free"), st.integers(0, 14)),
)


def check_invariants(a: Allocator) -> None:
    users: dict[object, list[str]] = defaultdict(list)
    for key, alloc in a.allocations().items():
        for ip in alloc.ips:
            users[ip].append(key)
    for ip, holders in users.items():
        if len(holders) > 1:
            allocs = [a.allocations()[h] for h in holders]
            assert all(x.key == allocs[0].key and x.key.sharing for x in allocs), (ip, allocs)
            seen: set[ServicePort] = set()
            for x in allocs:
                assert not (seen & set(x.ports)), (ip, allocs)
                seen |= set(x.ports)
    for p in POOLS.pools:
        ips = {ip for ip, holders in users.items() if a.allocations()[holders[0]].pool == p.name}
        counters = a.counters(p.name)
        assert counters.assigned_ipv4 == sum(1 for ip in ips if ip.version == 4)
        assert counters.assigned_ipv6 == sum(1 for ip in ips if ip.version == 6)
        cap4, cap6 = a.capacity(p.name)
        assert counters.available_ipv4 == cap4 - counters.assigned_ipv4 >= 0
        assert counters.available_ipv6 == cap6 - counters.assigned_ipv6 >= 0
        assert all(p.contains(ip) for ip in ips)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=60))
def test_random_allocations_keep_invariants(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    a = Allocator(POOLS)
    for o in ops:
        if o[0] == "free":
            a.unassign(f"n/s{o[1]}")
        else:
            _, n, sharing, backend, ports, family, pool_name = o
            cips = {"ipv4": ("10.96.0.1",), "ipv6": ("fd00::1",), "dual": ("10.96.0.1", "fd00::1")}[family]
            s = svc(f"s{n}", namespace="n", cluster_ips=cips, policy="RequireDualStack" if family == "dual" else "SingleStack")
            pp = tuple(ServicePort("TCP", p) for p in ports)
            try:
                if pool_name:
                    a.allocate_from_pool(s.key, s, family, pool_name, pp, AllocKey(sharing, backend))
                else:
                    a.allocate(s.key, s, family, pp, AllocKey(sharing, backend))
            except AllocationError:
                pass
        check_invariants(a)


@settings(max_examples=100, deadline=None)
@given(st.permutations(list(range(12))), st.permutations(list(range(12))))
def test_release_and_reallocate_in_any_order_keeps_counts_exact(free_order: list[int], again: list[int]) -> None:
    a = Allocator(POOLS)
    for i in range(12):
        try:
            a.allocate(f"n/s{i}", svc(f"s{i}"), "ipv4", (ServicePort("TCP", 80),), AllocKey("", ""))
        except AllocationError:
            pass
    full = a.counters("a"), a.counters("b")
    for i in free_order:
        a.unassign(f"n/s{i}")
        check_invariants(a)
    assert a.counters("a").assigned_ipv4 == a.counters("b").assigned_ipv4 == 0
    for i in again:
        try:
            a.allocate(f"n/s{i}", svc(f"s{i}"), "ipv4", (ServicePort("TCP", 80),), AllocKey("", ""))
        except AllocationError:
            pass
        check_invariants(a)
    assert (a.counters("a"), a.counters("b")) == full



MAPPED = st.integers(0, 2**32 - 1).map(lambda n: ipaddress.IPv6Address((0xFFFF << 32) | n))


@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6), MAPPED))
def test_ip_text_and_keys(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert ip_text(ip) == str(ip)
    assert parse_ip(str(ip)) == ip
    if ip.version == 4:  # an IPv4 address never shares a key with the IPv6 address of the same integer
        assert addr_key(ip) != addr_key(ipaddress.IPv6Address(int(ip)))
