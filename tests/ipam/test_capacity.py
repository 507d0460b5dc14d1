"""MetalLB's TestPoolCount, with exact counts where MetalLB caps at MaxInt64."""

import pytest

from ironlb.ipam.capacity import MAX_INT64, buggy_count, clamp_int64, pool_capacity

from .helpers import pool


@pytest.mark.parametrize(
    ("cidrs", "avoid", "v4", "v6"),
    [
        (("1.2.3.0/24",), False, 256, 0),
        (("1.2.3.0/24", "2.3.4.128/25"), False, 384, 0),
        (("1.2.3.0/24", "2.3.4.128/25"), True, 381, 0),
        (("1.2.3.0/24", "2.3.4.128/25", "1000::/64"), True, 381, 2**64),
        (("1.2.3.0/31", "1000::/127"), True, 1, 2),
        (("192.168.10.0/30",), False, 4, 0),
        (("10.0.0.0/8",), True, 2**24 - 2 * 2**16, 0),
        (("1.2.3.4/32",), True, 1, 0),
        (("1.2.3.255/32",), True, 0, 0),
    ],
)
def test_pool_count(cidrs: tuple[str, ...], avoid: bool, v4: int, v6: int) -> None:
    assert pool_capacity(pool("p", *cidrs, avoid_buggy_ips=avoid)) == (v4, v6)


def test_metallb_caps_huge_pools_but_status_must_fit_int64() -> None:
    v4, v6 = pool_capacity(pool("p", "1000::/64"))
    assert v6 == 18446744073709551616
    assert clamp_int64(v6) == MAX_INT64
    assert clamp_int64(5) == 5


@pytest.mark.parametrize(("lo", "hi"), [(0, 0), (0, 255), (1, 254), (250, 1030), (255, 256), (3, 3)])
def test_buggy_count_matches_enumeration(lo: int, hi: int) -> None:
    assert buggy_count(lo, hi) == sum(1 for x in range(lo, hi + 1) if x & 0xFF in (0, 255))
