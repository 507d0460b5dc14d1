"""Process-wide settings for ironlb's long-running components."""

from __future__ import annotations

import gc
import math
import os
import time
from pathlib import Path


def tune_gc() -> None:
    """Make the cyclic GC cheap for a process holding a large, long-lived cluster snapshot.

    ironlb keeps one object per Service, EndpointSlice and allocation for as long as they exist. With CPython's
    default thresholds (700 allocations) a full scan of that heap runs every few thousand allocations, which costs
    more than the allocation work itself at 100,000 Services. Objects alive at start-up are frozen out of
    collection, and young generations are scanned every 50,000 allocations instead.

    Only the young generations are collected before the freeze: what the imports leave as garbage is recent (a
    full collection here found none and cost 17-32 ms of a start-up budget of 500).

    ``ironlb run`` and ``ironlb speaker`` disable the collector first thing (issue 16, fast start): their imports
    allocate ~80,000 objects that live as long as the process, and CPython's default thresholds scan them ~90 times
    on the way (30-37 ms of CPU, measured with ``gc.callbacks``) for ~780 objects of garbage in all (~190 KiB:
    functions and types the imports made and dropped). Then nothing is collected here (every object is young, and
    collecting them would cost what the pause saved): that import-time garbage is frozen with the rest and never
    freed, the pattern ``gc.freeze``'s documentation gives for a process that forks after its imports.
    """
    if gc.isenabled():
        gc.collect(1)
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    gc.enable()


def process_age() -> tuple[float, float]:
    """(seconds since this process started, CPU seconds it has used so far), for the start-up log lines.

    The wall time comes from the kernel's record of the process start (``/proc/self/stat``, 10 ms resolution), so it
    includes the interpreter's own start and the imports; NaN where /proc is not readable.
    """
    cpu = time.process_time()
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in clock ticks after boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return math.nan, cpu
    return max(0.0, uptime - started), cpu


def age_text() -> str:
    """``1.23 s after the process started, 0.80 s of CPU``."""
    wall, cpu = process_age()
    return f"{wall:.2f} s after the process started, {cpu:.2f} s of CPU"
