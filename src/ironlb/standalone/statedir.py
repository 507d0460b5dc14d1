"""The state directory: YAML/JSON manifests that stand in for the Kubernetes API.

The watch sleeps until inotify (:mod:`.inotify`) says one of the directories it reads changed, then rescans
(at most once per ``interval``, 50 ms: a burst of writes is one rescan). The rescan decides: the signature of the
manifests (path, mtime, size, inode) compared with the last one, so inotify only says *when* to look. A rescan
also runs every ``fallback`` seconds (1 s) whatever inotify says, for what it cannot see: NFS and other network
filesystems changed from another host, manifests that are symlinks to files outside the tree; that period grows
with what a rescan costs (at least 100 times its duration: 9,000 manifests take about 0.1 s to stat, so 10 s), so
the fallback never takes more than 1 % of the time. Where inotify is
missing or its watch limit is reached, the directory is polled every ``interval`` as before. Rescanning 20 times
a second cost the idle process about 1.3 % of a core (the worker-thread hand-off more than the stats), which
was most of a node's steady-state cost outside the fast process; watched, it costs 0.07 %.

Both the rescan and the load run in a worker thread: a slow filesystem, a large manifest or a costly validation
must not delay the event loop. What is read is bounded (:mod:`ironlb.config.reading`): regular files only, at most
``ReadLimits`` bytes each and in total, and at most ``ReadLimits.files`` directory entries are looked at (a
directory flooded with files would otherwise make every rescan longer without end); the directories watched are
those the rescan looked at, so they are bounded too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ironlb.config import ConfigError, Resources, load_texts
from ironlb.config.reading import DEFAULT_LIMITS, MAX_FILES, ReadLimits, read_texts
from ironlb.standalone.inotify import Notifier

SUFFIXES = (".yaml", ".yml", ".json")
FALLBACK_INTERVAL = 1.0
"""Seconds between two rescans when inotify reports nothing (what it cannot see: network filesystems, symlinks)."""
FALLBACK_SHARE = 0.01
"""At most this share of the time goes to those rescans: a larger tree is rescanned less often."""

Signature = tuple[tuple[str, int, int, int], ...]


class TooManyFiles(ConfigError):
    """The state directory holds more entries than the limit (``--max-files``)."""


def manifest_files(root: Path, max_entries: int = MAX_FILES) -> list[Path]:
    """Manifest files under ``root`` in a stable order; hidden files and directories are skipped.

    Every entry looked at counts against ``max_entries`` (hidden ones too: listing them costs the same); past it,
    :class:`TooManyFiles` names the directory and the limit. Symlinks to directories are not followed.
    """
    return _walk(root, max_entries, [])


def _walk(root: Path, max_entries: int, directories: list[Path]) -> list[Path]:
    """:func:`manifest_files`, also appending every directory listed to ``directories``."""
    found: list[Path] = []
    seen = 0
    pending = [root]
    while pending:
        directory = pending.pop(0)
        directories.append(directory)
        try:
            with os.scandir(directory) as entries:
                names: list[tuple[str, bool, bool]] = []
                for entry in entries:
                    seen += 1
                    if seen > max_entries:
                        raise TooManyFiles(
                            f"{root}: refused: more than {max_entries} entries in the state directory "
                            f"(limit: --max-files {max_entries})"
                        )
                    if not entry.name.startswith("."):
                        names.append((entry.name, entry.is_dir(), entry.is_symlink()))
        except OSError:
            continue  # removed meanwhile, or unreadable: as os.walk, skip it
        names.sort()
        found += [Path(directory, n) for n, is_dir, _ in names if not is_dir and n.endswith(SUFFIXES)]
        pending[0:0] = [Path(directory, n) for n, is_dir, link in names if is_dir and not link]
    return found


def signature(root: Path, max_entries: int = MAX_FILES) -> Signature:
    """What changes when any manifest is added, removed or rewritten (or the directory gets too full)."""
    return scan(root, max_entries)[0]


def scan(root: Path, max_entries: int = MAX_FILES) -> tuple[Signature, list[Path]]:
    """:func:`signature`, and the directories it listed (those to watch; only ``root`` when it is too full)."""
    directories: list[Path] = []
    try:
        paths = _walk(root, max_entries, directories)
    except TooManyFiles:
        return (("", -1, -1, -1),), [root]
    sig = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        sig.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(sig), directories


def read(root: Path, limits: ReadLimits = DEFAULT_LIMITS) -> list[tuple[str, str]]:
    """``(path, text)`` of every manifest under ``root``, within ``limits``; ConfigError naming what is refused."""
    return read_texts(manifest_files(root, limits.files), limits)


def load(
    root: Path,
    namespace: str,
    limits: ReadLimits = DEFAULT_LIMITS,
    texts: list[tuple[str, str]] | None = None,
) -> Resources:
    """Every manifest under ``root``; ConfigError naming each file refused or invalid. Blocking: run it in a thread.

    When ``texts`` is given, the ``(path, text)`` pairs read are appended to it (even if they do not validate).
    """
    read_now = read(root, limits)
    if texts is not None:
        texts.extend(read_now)
    return load_texts(read_now, default_namespace=namespace, max_chars=max(limits.file_bytes, 1))


async def watch(
    root: Path,
    on_change: Callable[[], Awaitable[None]],
    *,
    interval: float = 0.05,
    stop: asyncio.Event,
    max_entries: int = MAX_FILES,
    fallback: float = FALLBACK_INTERVAL,
) -> None:
    """Call ``on_change`` whenever the directory's signature changes, until ``stop`` is set (see the module doc)."""
    notifier = Notifier.open()
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    if notifier is not None:
        events = notifier

        def on_events() -> None:
            events.drain()  # now: the descriptor is level-triggered, an undrained one would spin the loop
            changed.set()

        loop.add_reader(notifier.fd, on_events)
    cost = 0.0  # wall seconds of the last rescan

    async def rescan() -> tuple[Signature, list[Path]]:
        nonlocal cost
        start = time.monotonic()
        result = await asyncio.to_thread(scan, root, max_entries)
        cost = time.monotonic() - start
        return result

    try:
        last, directories = await rescan()
        watching = notifier is not None and notifier.sync(directories)
        while not stop.is_set():
            wake = asyncio.ensure_future(changed.wait()) if watching else None
            stopped = asyncio.ensure_future(stop.wait())
            waits = [stopped] if wake is None else [stopped, wake]
            timeout = max(fallback, cost / FALLBACK_SHARE) if watching else interval
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waits:
                waiter.cancel()
            if stop.is_set():
                return
            told = changed.is_set()
            if told:
                # Let a burst of writes finish (an editor's save, a tool's rename dance): one rescan for all of it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                if stop.is_set():
                    return
                changed.clear()
            current, listed = await rescan()
            if notifier is not None and (told or listed != directories or not watching):
                # Again for every directory: one removed and made again under the same name is a new inode.
                watching = notifier.sync(listed)
                if watching and (listed != directories or notifier.renewed):
                    # A file written in a new directory before its watch was added: this rescan sees it.
                    current, listed = await rescan()
            directories = listed
            if current != last:
                last = current
                await on_change()
    finally:
        if notifier is not None:
            loop.remove_reader(notifier.fd)
            notifier.close()
