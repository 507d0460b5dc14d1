"""The state directory: YAML/JSON manifests that stand in for the Kubernetes API.

It is polled rather than watched with inotify: a stat of a few files every 50 ms costs nothing, works on every
filesystem (NFS, bind mounts, config-management rewrites by rename), and needs no dependency.

Both the poll and the load run in a worker thread: a slow filesystem, a large manifest or a costly validation
must not delay the event loop. What is read is bounded (:mod:`ironlb.config.reading`): regular files only, at most
``ReadLimits`` bytes each and in total.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from ironlb.config import Resources, load_files
from ironlb.config.reading import DEFAULT_LIMITS, ReadLimits

SUFFIXES = (".yaml", ".yml", ".json")

Signature = tuple[tuple[str, int, int, int], ...]


def manifest_files(root: Path) -> list[Path]:
    """Manifest files under ``root`` in a stable order; hidden files and directories are skipped."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath, f) for f in sorted(filenames) if f.endswith(SUFFIXES) and not f.startswith(".")]
    return found


def signature(root: Path) -> Signature:
    """What changes when any manifest is added, removed or rewritten."""
    sig = []
    for path in manifest_files(root):
        try:
            st = path.stat()
        except OSError:
            continue
        sig.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(sig)


def load(root: Path, namespace: str, limits: ReadLimits = DEFAULT_LIMITS) -> Resources:
    """Every manifest under ``root``; ConfigError naming each file refused or invalid. Blocking: run it in a thread."""
    return load_files(manifest_files(root), default_namespace=namespace, limits=limits)


async def watch(
    root: Path, on_change: Callable[[], Awaitable[None]], *, interval: float = 0.05, stop: asyncio.Event
) -> None:
    """Call ``on_change`` whenever the directory's signature changes, until ``stop`` is set."""
    last = await asyncio.to_thread(signature, root)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if stop.is_set():
            return
        current = await asyncio.to_thread(signature, root)
        if current != last:
            last = current
            await on_change()
