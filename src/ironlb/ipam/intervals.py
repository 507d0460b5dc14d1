"""A set of integers stored as sorted, disjoint, non-adjacent closed runs.

The allocator keeps the used addresses of each family here, so finding the lowest free address of a CIDR costs
O(runs skipped x log runs) whatever the size of the CIDR: an IPv6 /64 costs what a /30 does.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator


class IntervalSet:
    __slots__ = ("_ends", "_size", "_starts")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []  # inclusive
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, x: int) -> bool:
        return self.run_containing(x) is not None

    def __iter__(self) -> Iterator[int]:
        for s, e in zip(self._starts, self._ends, strict=True):
            yield from range(s, e + 1)

    @property
    def runs(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))

    def run_containing(self, x: int) -> tuple[int, int] | None:
        i = bisect_right(self._starts, x) - 1
        if i >= 0 and self._ends[i] >= x:
            return self._starts[i], self._ends[i]
        return None

    def add(self, x: int) -> bool:
        """Add ``x``; return False if it was already present."""
        starts, ends = self._starts, self._ends
        i = bisect_right(starts, x) - 1
        if i >= 0 and ends[i] >= x:
            return False
        joins_left = i >= 0 and ends[i] == x - 1
        joins_right = i + 1 < len(starts) and starts[i + 1] == x + 1
        if joins_left and joins_right:
            ends[i] = ends[i + 1]
            del starts[i + 1]
            del ends[i + 1]
        elif joins_left:
            ends[i] = x
        elif joins_right:
            starts[i + 1] = x
        else:
            starts.insert(i + 1, x)
            ends.insert(i + 1, x)
        self._size += 1
        return True

    def discard(self, x: int) -> bool:
        """Remove ``x``; return False if it was absent."""
        starts, ends = self._starts, self._ends
        i = bisect_right(starts, x) - 1
        if i < 0 or ends[i] < x:
            return False
        s, e = starts[i], ends[i]
        if s == e:
            del starts[i]
            del ends[i]
        elif x == s:
            starts[i] = x + 1
        elif x == e:
            ends[i] = x - 1
        else:
            ends[i] = x - 1
            starts.insert(i + 1, x + 1)
            ends.insert(i + 1, e)
        self._size -= 1
        return True

    def first_absent(self, lo: int, hi: int) -> int | None:
        """The smallest integer in ``[lo, hi]`` not in the set, or None."""
        x = lo
        while x <= hi:
            run = self.run_containing(x)
            if run is None:
                return x
            x = run[1] + 1
        return None

    def count_in(self, lo: int, hi: int) -> int:
        """How many members lie in ``[lo, hi]``."""
        starts, ends = self._starts, self._ends
        i = max(bisect_right(starts, lo) - 1, 0)
        total = 0
        while i < len(starts) and starts[i] <= hi:
            s, e = max(starts[i], lo), min(ends[i], hi)
            if s <= e:
                total += e - s + 1
            i += 1
        return total
