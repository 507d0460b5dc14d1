"""Idle CPU of ``ironlb run``'s state directory watch: inotify against the 50 ms poll (issue 15).

The watch (``ironlb.standalone.statedir.watch``) runs on its own event loop over a directory holding the seed
manifests, nothing changing, for ``--seconds``; the figure is this process's CPU time (all threads: the rescans
run in a worker thread) over the wall time, so it is the watch's whole idle cost. ``poll`` forces the fallback
used where inotify is missing (a rescan every 50 ms, what every node did before); ``inotify`` is the default.

    .venv/bin/python -m bench.statedir_watch [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ironlb.lab.cluster import SEED_CONFIG, SEED_SERVICE
from ironlb.standalone import statedir


async def idle_cost(root: Path, seconds: float, *, inotify: bool) -> tuple[float, int]:
    """Percent of a core the idle watch used, and how many rescans it ran."""
    scans = 0
    real_scan = statedir.scan

    def counted(*args: object) -> tuple[statedir.Signature, list[Path]]:
        nonlocal scans
        scans += 1
        return real_scan(*args)  # type: ignore[arg-type]

    async def nothing() -> None:
        return None

    real_open = statedir.Notifier.open
    statedir.scan = counted  # type: ignore[assignment]
    if not inotify:
        statedir.Notifier.open = classmethod(lambda cls: None)  # type: ignore[method-assign,assignment]
    stop = asyncio.Event()
    try:
        task = asyncio.create_task(statedir.watch(root, nothing, stop=stop))
        await asyncio.sleep(0.5)
        cpu0, wall0, scans0 = time.process_time(), time.monotonic(), scans
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        stop.set()
        await task
    finally:
        statedir.scan = real_scan  # type: ignore[assignment]
        statedir.Notifier.open = real_open  # type: ignore[method-assign]
    return cpu / wall * 100, scans - scans0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternating poll/inotify rounds")
    args = parser.parse_args(argv)
    print("load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.yaml").write_text(SEED_CONFIG)
        (root / "service.yaml").write_text(SEED_SERVICE)
        for _ in range(args.rounds):
            for name, inotify in (("poll", False), ("inotify", True)):
                cost, scans = asyncio.run(idle_cost(root, args.seconds, inotify=inotify))
                print(f"{name:<8} {cost:6.3f} % of a core, {scans / args.seconds:5.1f} rescans/s")
    print("load average at end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
