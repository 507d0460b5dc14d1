"""Reading a child process's JSON-lines output with a timeout.

``select()`` on a Python file object is a trap: after a ``readline()`` the file may hold further complete lines in
its own buffer while the descriptor has nothing left, so ``select`` times out with an answer already there. This
reader does its own buffering on the raw descriptor instead.
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import IO, Any


class ChildExited(RuntimeError):
    """The child closed its output."""


class JsonLineReader:
    def __init__(self, stream: IO[str] | IO[bytes]) -> None:
        self._fd = stream.fileno()
        self._buf = b""

    def read(self, timeout: float) -> dict[str, Any]:
        """The next JSON object; TimeoutError when none arrives in time, ChildExited at end of output."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line from the child in time")
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise ChildExited("the child closed its output")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg: dict[str, Any] = json.loads(line)
        return msg
