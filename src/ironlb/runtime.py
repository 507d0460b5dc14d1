"""Process-wide settings for ironlb's long-running components."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Make the cyclic GC cheap for a process holding a large, long-lived cluster snapshot.

    ironlb keeps one object per Service, EndpointSlice and allocation for as long as they exist. With CPython's
    default thresholds (700 allocations) a full scan of that heap runs every few thousand allocations, which costs
    more than the allocation work itself at 100,000 Services. Objects alive at start-up are frozen out of
    collection, and young generations are scanned every 50,000 allocations instead.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
