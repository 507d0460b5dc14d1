"""The indexed overlap check names exactly the CIDR MetalLB's quadratic scan names, on random pools."""

from __future__ import annotations

import ipaddress
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ironlb.config.addresses import cidrs_overlap
from ironlb.config.overlap import OverlapIndex
from ironlb.config.types import IPNetwork
from tests.config.helpers import error_of


def scan(cidrs: list[IPNetwork]) -> list[IPNetwork | None]:
    """MetalLB's loop: each CIDR against every accepted one, in order; the overlapping one is not accepted."""
    accepted: list[IPNetwork] = []
    out: list[IPNetwork | None] = []
    for c in cidrs:
        hit = next((m for m in accepted if cidrs_overlap(c, m)), None)
        out.append(hit)
        if hit is None:
            accepted.append(c)
    return out


def indexed(cidrs: list[IPNetwork]) -> list[IPNetwork | None]:
    index = OverlapIndex(cidrs)
    out: list[IPNetwork | None] = []
    for c in cidrs:
        hit = index.first_overlap(c)
        out.append(hit)
        if hit is None:
            index.add(c)
    return out


def cidr(draw_int: int, plen: int, v6: bool) -> IPNetwork:
    if v6:
        return ipaddress.IPv6Network(((0xFD00 << 112) | (draw_int << 96), 16 + plen), strict=False)
    return ipaddress.IPv4Network(((10 << 24) | (draw_int << 16), 8 + plen), strict=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 16), st.booleans()), max_size=60))
def test_index_matches_the_scan(specs: list[tuple[int, int, bool]]) -> None:
    cidrs = [cidr(n, plen, v6) for n, plen, v6 in specs]
    assert indexed(cidrs) == scan(cidrs)


def test_many_small_then_one_large_names_the_earliest() -> None:
    rng = random.Random(1)
    small = [ipaddress.IPv4Network(f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24") for _ in range(2000)]
    cidrs = [*small, ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("10.7.0.0/16")]
    assert indexed(cidrs) == scan(cidrs)


def test_build_reports_the_same_overlap_message() -> None:
    e = error_of(
        """
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: a}
        spec: {addresses: [10.0.0.128/25, 10.0.0.0/25]}
        ---
        apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: b}
        spec: {addresses: [192.168.0.0/24, 10.0.0.0/24]}
        """
    )
    assert (
        'CIDR "10.0.0.0/24" in pool "b" overlaps with already defined CIDR "10.0.0.128/25"' in str(e)
    ), str(e)
