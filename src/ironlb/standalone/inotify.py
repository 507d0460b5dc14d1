"""Linux inotify through libc (ctypes): "something changed in these directories", nothing more.

The state directory watch (:mod:`.statedir`) uses it to sleep until a directory it reads changes, instead of
rescanning 20 times a second. It says only *that* something happened: which file, and whether it matters, is
decided by rescanning, so a missed, merged or overflowed event costs at most a late rescan, never a wrong
answer. Where inotify is missing (another OS, no libc symbol, the per-user watch limit reached) :meth:`open`
returns None or :meth:`sync` returns False, and the caller polls.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["Notifier"]

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
MASK = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
    | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
)  # fmt: skip
"""Every change to a directory's entries or to the files in it (content, metadata, renames)."""
READ_SIZE = 64 * 1024
MAX_READS = 16
"""Buffers read per drain: 1 MiB, more than the kernel's default queue of 16,384 events holds."""


class Notifier:
    """One inotify descriptor watching a set of directories (not recursively: the caller lists them)."""

    def __init__(self, fd: int, libc: ctypes.CDLL) -> None:
        self.fd = fd
        self._libc = libc
        self._watches: dict[Path, int] = {}
        self.renewed = False
        """Whether the last :meth:`sync` watched a directory (an inode) it did not watch before."""

    @classmethod
    def open(cls) -> Notifier | None:
        """A new notifier, or None where inotify is not available."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            init = libc.inotify_init1
        except (OSError, AttributeError):
            return None
        init.argtypes = [ctypes.c_int]
        init.restype = ctypes.c_int
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        libc.inotify_add_watch.restype = ctypes.c_int
        libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.inotify_rm_watch.restype = ctypes.c_int
        fd = init(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            return None
        return cls(fd, libc)

    @property
    def watched(self) -> frozenset[Path]:
        return frozenset(self._watches)

    def sync(self, directories: Iterable[Path]) -> bool:
        """Watch exactly ``directories``; False if one could not be watched (the watch limit, say): poll then.

        A directory that vanished meanwhile is simply not watched (its parent's event brings a rescan).
        """
        wanted = set(directories)
        self.renewed = False
        for path in set(self._watches) - wanted:
            with contextlib.suppress(OSError):
                self._libc.inotify_rm_watch(self.fd, self._watches.pop(path))
        complete = True
        for path in wanted:  # all of them: a directory removed and made again is a new inode to watch
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), MASK)
            if wd >= 0:
                self.renewed |= self._watches.get(path) != wd
                self._watches[path] = wd
            else:
                self._watches.pop(path, None)
                if ctypes.get_errno() not in (errno.ENOENT, errno.ENOTDIR):
                    complete = False
        return complete

    def drain(self) -> bool:
        """Read the pending events, at most MAX_READS buffers (a writer that never stops cannot keep us here: what
        is left is read next time); True if there was any (what they were does not matter, see the module doc)."""
        seen = False
        for _ in range(MAX_READS):
            try:
                data = os.read(self.fd, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return seen
            except OSError:
                return True  # unreadable: treat as a change, the caller rescans
            if not data:
                return seen
            seen = True
        return seen

    def close(self) -> None:
        self._watches.clear()
        with contextlib.suppress(OSError):
            os.close(self.fd)
