"""The pool overlap check in O(log n) per CIDR instead of a scan of every earlier one.

MetalLB checks each new CIDR against every CIDR accepted before it, in order, and names the first one it overlaps;
that is quadratic (3,000 pools took 16 s). The CIDRs accepted so far never overlap each other (each was checked
first), so the ones a new CIDR overlaps are: at most one that contains it (found by looking up its supernets,
one per prefix length) and those whose start lies inside it (a contiguous run in start order). A segment tree over
the start addresses of every candidate CIDR keeps, per run, the earliest accepted one, so the answer names the
same CIDR MetalLB's scan would.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable

from ironlb.config.types import IPNetwork

_NONE = 1 << 62  # larger than any acceptance order


class OverlapIndex:
    """Accepted CIDRs; ``first_overlap`` answers which accepted CIDR, earliest first, a new one overlaps.

    ``universe`` lists every CIDR that may later be added (the index is built over their start addresses).
    """

    def __init__(self, universe: Iterable[IPNetwork]) -> None:
        self._keys = sorted({(c.version, int(c.network_address)) for c in universe})
        size = 1
        while size < len(self._keys):
            size *= 2
        self._size = size
        self._tree = [_NONE] * (2 * size)  # min acceptance order per node
        self._accepted: list[IPNetwork] = []
        self._by_network: dict[tuple[int, int, int], int] = {}  # (version, start, prefixlen) -> order
        self._prefixlens: dict[int, set[int]] = {4: set(), 6: set()}  # prefix lengths accepted, per version

    def _range_min(self, lo: int, hi: int) -> int:
        """Minimum over positions [lo, hi)."""
        best = _NONE
        lo += self._size
        hi += self._size
        while lo < hi:
            if lo & 1:
                best = min(best, self._tree[lo])
                lo += 1
            if hi & 1:
                hi -= 1
                best = min(best, self._tree[hi])
            lo //= 2
            hi //= 2
        return best

    def first_overlap(self, cidr: IPNetwork) -> IPNetwork | None:
        """The earliest accepted CIDR that overlaps ``cidr`` (contains it or lies inside it), or None."""
        version, start, end = cidr.version, int(cidr.network_address), int(cidr.broadcast_address)
        best = self._range_min(bisect_left(self._keys, (version, start)), bisect_right(self._keys, (version, end)))
        bits = cidr.max_prefixlen
        for plen in self._prefixlens[version]:  # only lengths in use: a handful, not 32 or 128
            if plen >= cidr.prefixlen:
                continue
            mask = ((1 << plen) - 1) << (bits - plen)
            order = self._by_network.get((version, start & mask, plen))
            if order is not None and order < best:
                best = order
        return None if best == _NONE else self._accepted[best]

    def add(self, cidr: IPNetwork) -> None:
        """Accept ``cidr`` (it must be in the universe and overlap nothing accepted)."""
        key = (cidr.version, int(cidr.network_address))
        pos = bisect_left(self._keys, key)
        if pos == len(self._keys) or self._keys[pos] != key:
            raise ValueError(f"{cidr} is not in the index's universe")
        order = len(self._accepted)
        self._accepted.append(cidr)
        self._by_network[(key[0], key[1], cidr.prefixlen)] = order
        self._prefixlens[key[0]].add(cidr.prefixlen)
        node = pos + self._size
        while node and self._tree[node] > order:
            self._tree[node] = order
            node //= 2
