"""Spawning the fast process before the heavy side's own imports, so that its start overlaps them.

The child is a new interpreter that imports membership, the responders and BFD (about 0.15 s of CPU on an idle
core) before it can answer. Spawned by :class:`ironlb.fastproc.parent.FastProcess` when it starts, that time
followed the heavy side's imports and first read; ``ironlb run`` and ``ironlb speaker`` spawn it first thing
instead (this module imports nothing heavy), so it runs on the other core while they import and read.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Spawned:
    """A started ``python -m ironlb.fastproc.child`` and our end of its channel (nothing sent yet)."""

    proc: subprocess.Popen[bytes]
    sock: socket.socket

    def discard(self) -> None:
        """Not used after all (the command refused its arguments): stop the child (it also exits on EOF)."""
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def spawn(log_level: str) -> Spawned:
    """Start the fast process with one end of a Unix socket pair; it waits for its ``start`` message."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ironlb.fastproc.child", "--fd", str(theirs.fileno()), "--log-level", log_level],
            pass_fds=(theirs.fileno(),),
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return Spawned(proc, ours)
