"""Exact pool capacity.

MetalLB counts a CIDR of 62 host bits or more as MaxInt64; ironlb counts every address exactly (Python
integers), so an IPv6 /64 reports 18446744073709551616. Only the Kubernetes status fields, which are int64,
clamp to MaxInt64.
"""

from __future__ import annotations

from ironlb.config.types import IPNetwork, Pool

MAX_INT64 = 2**63 - 1


def buggy_count(lo: int, hi: int) -> int:
    """How many IPv4 addresses in ``[lo, hi]`` end in .0 or .255."""

    def upto(n: int) -> int:  # count in [0, n]
        if n < 0:
            return 0
        full, rem = divmod(n + 1, 256)
        return full * 2 + (1 if rem >= 1 else 0) + (1 if rem >= 256 else 0)

    return upto(hi) - upto(lo - 1)


def cidr_capacity(cidr: IPNetwork, avoid_buggy_ips: bool) -> int:
    size = cidr.num_addresses
    if avoid_buggy_ips and cidr.version == 4:
        size -= buggy_count(int(cidr.network_address), int(cidr.broadcast_address))
    return size


def pool_capacity(pool: Pool) -> tuple[int, int]:
    """(IPv4, IPv6) allocatable addresses, network and broadcast included (MetalLB hands them out too)."""
    v4 = sum(cidr_capacity(c, pool.avoid_buggy_ips) for c in pool.cidrs if c.version == 4)
    v6 = sum(c.num_addresses for c in pool.cidrs if c.version == 6)
    return v4, v6


def clamp_int64(n: int) -> int:
    return min(n, MAX_INT64)
