"""The state directory: YAML/JSON manifests that stand in for the Kubernetes API.

It is polled rather than watched with inotify: a stat of a few files every 50 ms costs nothing, works on every
filesystem (NFS, bind mounts, config-management rewrites by rename), and needs no dependency.

Both the poll and the load run in a worker thread: a slow filesystem, a large manifest or a costly validation
must not delay the event loop. What is read is bounded (:mod:`ironlb.config.reading`): regular files only, at most
``ReadLimits`` bytes each and in total, and at most ``ReadLimits.files`` directory entries are looked at (a
directory flooded with files would otherwise make every 50 ms poll longer without end).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from ironlb.config import ConfigError, Resources, load_texts
from ironlb.config.reading import DEFAULT_LIMITS, MAX_FILES, ReadLimits, read_texts

SUFFIXES = (".yaml", ".yml", ".json")

Signature = tuple[tuple[str, int, int, int], ...]


class TooManyFiles(ConfigError):
    """The state directory holds more entries than the limit (``--max-files``)."""


def manifest_files(root: Path, max_entries: int = MAX_FILES) -> list[Path]:
    """Manifest files under ``root`` in a stable order; hidden files and directories are skipped.

    Every entry looked at counts against ``max_entries`` (hidden ones too: listing them costs the same); past it,
    :class:`TooManyFiles` names the directory and the limit. Symlinks to directories are not followed.
    """
    found: list[Path] = []
    seen = 0
    pending = [root]
    while pending:
        directory = pending.pop(0)
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
    try:
        paths = manifest_files(root, max_entries)
    except TooManyFiles:
        return (("", -1, -1, -1),)
    sig = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        sig.append((str(path), st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(sig)


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
) -> None:
    """Call ``on_change`` whenever the directory's signature changes, until ``stop`` is set."""
    last = await asyncio.to_thread(signature, root, max_entries)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if stop.is_set():
            return
        current = await asyncio.to_thread(signature, root, max_entries)
        if current != last:
            last = current
            await on_change()
