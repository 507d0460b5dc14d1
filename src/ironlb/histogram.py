"""A fixed-bucket histogram of durations as plain data: observed in the fast process (or the membership core),
handed to the main process as a snapshot, exported there as a Prometheus histogram.

Pure (no clock, no I/O, no prometheus_client): the membership core records its detection times in one, and the
fast process's channel carries :meth:`Histogram.snapshot` as JSON. A snapshot from the channel is checked before
it is used (:meth:`Histogram.from_snapshot`), like any input that crosses a process boundary.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DETECTION_BUCKETS", "LOOP_LAG_BUCKETS", "Histogram"]

DETECTION_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
"""Member-failure detection times, seconds: the default dead timeout (350 ms) lands in 0.3-0.4 or 0.4-0.5."""
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""How late an event loop runs a timer, seconds: a healthy fast process is in the first buckets."""
MAX_BUCKETS = 64


class Histogram:
    """Counts per bucket (``counts[i]``: observations ``<= bounds[i]`` and above the bound before; the last one
    is ``+Inf``), their sum and number. Not thread-safe: one owner writes, others read snapshots."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        bounds = tuple(float(b) for b in bounds)
        if not bounds or len(bounds) > MAX_BUCKETS:
            raise ValueError(f"a histogram needs 1 to {MAX_BUCKETS} bucket bounds, got {len(bounds)}")
        if any(not math.isfinite(b) for b in bounds) or any(a >= b for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"bucket bounds must be finite and increasing: {bounds}")
        self.bounds: tuple[float, ...] = bounds
        self.counts: list[int] = [0] * (len(bounds) + 1)
        self.sum = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def observe(self, value: float) -> None:
        """Count ``value`` (negative values, from a clock that stepped, count as 0; NaN is ignored)."""
        if math.isnan(value):
            return
        value = max(value, 0.0)
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.sum += value

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s observations (same bounds), e.g. those of a membership that was restarted."""
        if other.bounds != self.bounds:
            raise ValueError("cannot merge histograms with different buckets")
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum

    def copy(self) -> Histogram:
        new = Histogram(self.bounds)
        new.counts, new.sum = list(self.counts), self.sum
        return new

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus's buckets: (``le``, observations ``<= le``), ending with ``+Inf``."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == math.inf else repr(bound), total))
        return out

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy (what the fast process sends)."""
        return {"bounds": list(self.bounds), "counts": list(self.counts), "sum": self.sum}

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Histogram:
        """The histogram of :meth:`snapshot`; ValueError (naming what is wrong) for anything else."""
        try:
            new = cls(data["bounds"])
            counts = [int(n) for n in data["counts"]]
            total = float(data["sum"])
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a histogram snapshot: {err}") from None
        if len(counts) != len(new.counts) or any(n < 0 for n in counts) or not math.isfinite(total) or total < 0:
            raise ValueError("not a histogram snapshot: counts or sum out of range")
        new.counts, new.sum = counts, total
        return new
